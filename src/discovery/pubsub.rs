//! Pub/sub for one client: its channels and patterns, the replies to
//! SUBSCRIBE / PSUBSCRIBE / UNSUBSCRIBE / PUNSUBSCRIBE, and the messages an
//! event turns into, in Redis' shapes (RESP2 arrays, RESP3 pushes).
//!
//! Channels are Sentinel's event names (`+switch-master`, `+sdown`, ...);
//! the message is the event payload.

use super::reply::Reply;
use crate::core::events::Event;

/// Most channels plus patterns one client may subscribe to. Sentinel has a
/// few dozen event channels; the cap keeps a hostile client from growing its
/// subscription lists (and the per-event matching work) without bound.
pub const MAX_SUBSCRIPTIONS: usize = 1024;

/// What one client is subscribed to, in subscription order.
#[derive(Debug, Default)]
pub struct Subscriptions {
    channels: Vec<Vec<u8>>,
    patterns: Vec<Vec<u8>>,
}

impl Subscriptions {
    /// Redis' count in the replies: channels plus patterns.
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    pub fn channels(&self) -> usize {
        self.channels.len()
    }

    pub fn patterns(&self) -> usize {
        self.patterns.len()
    }

    /// Whether subscribing to `names` (channels, or patterns when `pattern`)
    /// would pass [`MAX_SUBSCRIPTIONS`].
    pub fn would_exceed(&self, names: &[Vec<u8>], pattern: bool) -> bool {
        if names.len() > MAX_SUBSCRIPTIONS {
            return true;
        }
        let list = if pattern {
            &self.patterns
        } else {
            &self.channels
        };
        let mut new: Vec<&Vec<u8>> = Vec::new();
        for n in names {
            if !list.contains(n) && !new.contains(&n) {
                new.push(n);
            }
        }
        self.count() + new.len() > MAX_SUBSCRIPTIONS
    }

    fn ack(kind: &str, name: Option<&[u8]>, count: usize) -> Reply {
        Reply::Push(vec![
            Reply::bulk(kind),
            name.map_or(Reply::NullBulk, Reply::bulk),
            Reply::Int(count as i64),
        ])
    }

    /// `SUBSCRIBE ch...`: one acknowledgement per channel.
    pub fn subscribe(&mut self, names: &[Vec<u8>]) -> Vec<Reply> {
        names
            .iter()
            .map(|n| {
                if !self.channels.contains(n) {
                    self.channels.push(n.clone());
                }
                Self::ack("subscribe", Some(n), self.count())
            })
            .collect()
    }

    /// `PSUBSCRIBE pattern...`
    pub fn psubscribe(&mut self, names: &[Vec<u8>]) -> Vec<Reply> {
        names
            .iter()
            .map(|n| {
                if !self.patterns.contains(n) {
                    self.patterns.push(n.clone());
                }
                Self::ack("psubscribe", Some(n), self.count())
            })
            .collect()
    }

    /// `UNSUBSCRIBE [ch...]` (none: all; nothing subscribed: one reply with a
    /// null channel).
    pub fn unsubscribe(&mut self, names: &[Vec<u8>]) -> Vec<Reply> {
        Self::remove(names, "unsubscribe", |s| &mut s.channels, self)
    }

    /// `PUNSUBSCRIBE [pattern...]`
    pub fn punsubscribe(&mut self, names: &[Vec<u8>]) -> Vec<Reply> {
        Self::remove(names, "punsubscribe", |s| &mut s.patterns, self)
    }

    fn remove(
        names: &[Vec<u8>],
        kind: &str,
        list: fn(&mut Subscriptions) -> &mut Vec<Vec<u8>>,
        me: &mut Subscriptions,
    ) -> Vec<Reply> {
        let names: Vec<Vec<u8>> = if names.is_empty() {
            list(me).clone()
        } else {
            names.to_vec()
        };
        if names.is_empty() {
            return vec![Self::ack(kind, None, me.count())];
        }
        names
            .iter()
            .map(|n| {
                list(me).retain(|x| x != n);
                Self::ack(kind, Some(n), me.count())
            })
            .collect()
    }

    /// Drops every subscription (`RESET`).
    pub fn clear(&mut self) {
        self.channels.clear();
        self.patterns.clear();
    }

    /// The messages `event` means for this client: `message` for a subscribed
    /// channel, `pmessage` for every matching pattern.
    pub fn messages(&self, event: &Event) -> Vec<Reply> {
        let channel = event.name.as_bytes();
        let mut out = Vec::new();
        if self.channels.iter().any(|c| c == channel) {
            out.push(Reply::Push(vec![
                Reply::bulk("message"),
                Reply::bulk(channel),
                Reply::bulk(&event.payload),
            ]));
        }
        for p in &self.patterns {
            if glob_match(p, channel) {
                out.push(Reply::Push(vec![
                    Reply::bulk("pmessage"),
                    Reply::bulk(p),
                    Reply::bulk(channel),
                    Reply::bulk(&event.payload),
                ]));
            }
        }
        out
    }
}

/// Redis' glob (`stringmatchlen`): `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`.
/// Iterative with single-star backtracking: linear memory, no recursion.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after it, string index).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, i));
                    continue;
                }
                _ if i < s.len() => {
                    if let Some(next) = match_one(pattern, p, s[i]) {
                        p = next;
                        i += 1;
                        continue;
                    }
                }
                _ => {}
            }
        } else if i == s.len() {
            return true;
        }
        // Mismatch: let the last `*` swallow one more byte.
        match star {
            Some((sp, si)) if si < s.len() => {
                star = Some((sp, si + 1));
                p = sp;
                i = si + 1;
            }
            _ => return false,
        }
    }
}

/// Matches the single pattern element at `p` (not `*`) against `c`; returns
/// the index after the element.
fn match_one(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
        b'[' => {
            let mut j = p + 1;
            let negate = pattern.get(j) == Some(&b'^');
            if negate {
                j += 1;
            }
            let mut matched = false;
            loop {
                match pattern.get(j) {
                    // Unterminated class: Redis treats the end as closing it.
                    None => break,
                    Some(b']') => {
                        j += 1;
                        break;
                    }
                    Some(b'\\') if j + 1 < pattern.len() => {
                        matched |= pattern[j + 1] == c;
                        j += 2;
                    }
                    Some(&lo) if pattern.get(j + 1) == Some(&b'-') && j + 2 < pattern.len() => {
                        let hi = pattern[j + 2];
                        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                        matched |= (lo..=hi).contains(&c);
                        j += 3;
                    }
                    Some(&x) => {
                        matched |= x == c;
                        j += 1;
                    }
                }
            }
            (matched != negate).then_some(j)
        }
        x => (x == c).then_some(p + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let m = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes());
        assert!(m("*", "+switch-master"));
        assert!(m("*", ""));
        assert!(m("+*", "+sdown"));
        assert!(!m("+*", "-sdown"));
        assert!(m("?sdown", "-sdown"));
        assert!(m("[-+]sdown", "-sdown"));
        assert!(!m("[^-+]sdown", "-sdown"));
        assert!(m("*master", "+switch-master"));
        assert!(m("*-*-*", "+failover-state-select-slave"));
        assert!(!m("*-*-*-*-*", "+failover-end"));
        assert!(m("\\*x", "*x"));
        assert!(!m("\\*x", "ax"));
        assert!(m("[a-c]", "b"));
        assert!(!m("a", "ab"));
        assert!(m("a*b*c", "aXXbYYc"));
        // Pathological pattern: linear, not exponential.
        let long = "a".repeat(5000);
        assert!(!m(&format!("{}b", "*a".repeat(50)), &long));
    }

    #[test]
    fn counts_and_messages() {
        let mut s = Subscriptions::default();
        assert_eq!(
            s.subscribe(&[b"+switch-master".to_vec(), b"+sdown".to_vec()])
                .last(),
            Some(&Reply::Push(vec![
                Reply::bulk("subscribe"),
                Reply::bulk("+sdown"),
                Reply::Int(2)
            ]))
        );
        s.psubscribe(&[b"*".to_vec()]);
        assert_eq!(s.count(), 3);
        assert!(!s.would_exceed(&[b"*".to_vec(), b"x".to_vec()], true));
        let many: Vec<Vec<u8>> = (0..MAX_SUBSCRIPTIONS - 3)
            .map(|i| i.to_string().into_bytes())
            .collect();
        assert!(!s.would_exceed(&many, false));
        let too_many: Vec<Vec<u8>> = (0..MAX_SUBSCRIPTIONS - 2)
            .map(|i| i.to_string().into_bytes())
            .collect();
        assert!(s.would_exceed(&too_many, false));
        let ev = Event::new("+sdown", "master m 1.2.3.4 6379".into());
        assert_eq!(s.messages(&ev).len(), 2);
        let r = s.unsubscribe(&[]);
        assert_eq!(r.len(), 2);
        assert_eq!(s.count(), 1);
        let r = s.unsubscribe(&[]);
        assert_eq!(
            r,
            vec![Reply::Push(vec![
                Reply::bulk("unsubscribe"),
                Reply::NullBulk,
                Reply::Int(1)
            ])]
        );
        s.punsubscribe(&[]);
        assert!(s.is_empty());
    }
}
