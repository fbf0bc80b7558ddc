//! Request framing: bytes from a client -> commands (argument vectors).
//!
//! Clients send commands as RESP arrays of bulk strings (RESP2 and RESP3 use
//! the same request format) or as inline lines (`PING\r\n`, telnet, health
//! checks). The `redis-protocol` crate decodes the arrays. Before a byte
//! reaches it, a small incremental guard walks the frame headers the way
//! Redis' `processMultibulkBuffer` does, because the decoder alone is not safe
//! on untrusted input:
//!
//! * it recurses once per nesting level: 10,000 nested `*1\r\n` (40 KB)
//!   overflow a 2 MiB thread stack and abort the process (measured with
//!   redis-protocol 6.0.0). The guard admits only flat arrays of bulk strings,
//!   as Redis does (`Protocol error: expected '$', got '*'`);
//! * it trusts declared lengths and waits for them. The guard rejects any
//!   bulk or array length that would make the request exceed
//!   `max_request_bytes`, before buffering it, so a client can never make the
//!   server hold more than about `max_request_bytes` + one read;
//! * it re-parses from the start on every call. The guard keeps its position
//!   in a partially received request, so a request trickling in byte by byte
//!   costs linear time.
//!
//! The error texts are Redis' own (`Protocol error: invalid bulk length`...).

use redis_protocol::resp2::{decode::decode_range, types::RangeFrame};

/// Longest inline request or length line (Redis' `PROTO_INLINE_MAX_SIZE`).
pub const INLINE_MAX: usize = 64 * 1024;
/// Most arguments in one request (Redis' limit for multibulk length).
pub const MAX_ARGS: usize = 1024 * 1024;
/// Before authentication: at most this many arguments (Redis' limit)...
pub const UNAUTH_MAX_ARGS: usize = 10;
/// ... and arguments of at most this many bytes (Redis' limit).
pub const UNAUTH_MAX_BULK: usize = 16 * 1024;
/// Smallest encoding of one argument: `$0\r\n\r\n`.
const MIN_ARG_BYTES: usize = 6;

/// One request taken from the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A command and its arguments (never empty).
    Command(Vec<Vec<u8>>),
    /// An empty request (`*0`, a blank inline line): nothing to answer.
    Empty,
    /// A protocol error (text after `-ERR `): answer it and close.
    Error(String),
}

/// Where the guard stopped inside a partially received array.
#[derive(Debug, Clone, Copy)]
struct Partial {
    /// Declared number of arguments.
    count: usize,
    /// Arguments fully received so far.
    seen: usize,
    /// Offset of the next unread header, from the start of the request.
    pos: usize,
}

/// Incremental request parser for one connection.
#[derive(Debug)]
pub struct RequestParser {
    max_request_bytes: usize,
    partial: Option<Partial>,
}

fn protocol_error(what: &str) -> Parsed {
    Parsed::Error(format!("Protocol error: {what}"))
}

/// Longest length line accepted (`$` or `*`, sign, 19 digits, `\r\n`, with
/// slack): anything longer is not a valid length.
const LEN_LINE_MAX: usize = 32;

/// The end of a length line starting at `from`: `Ok(Some(i))` where `\r\n`
/// starts at `i`, `Ok(None)` when more bytes are needed, `Err(())` when there
/// is no `\r\n` within [`LEN_LINE_MAX`] bytes.
fn find_len_line(buf: &[u8], from: usize) -> Result<Option<usize>, ()> {
    let window = buf.get(from..).unwrap_or_default();
    let window = &window[..window.len().min(LEN_LINE_MAX)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some(from + i)),
        None if window.len() >= LEN_LINE_MAX => Err(()),
        None => Ok(None),
    }
}

/// A length as Redis' `string2ll` accepts it: optional `-`, digits, no
/// leading zero, fits in an i64.
fn parse_len(digits: &[u8]) -> Option<i64> {
    let (neg, body) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if body.is_empty()
        || body.len() > 19
        || !body.iter().all(u8::is_ascii_digit)
        || (body.len() > 1 && body[0] == b'0')
    {
        return None;
    }
    let v: i64 = std::str::from_utf8(body).ok()?.parse().ok()?;
    Some(if neg { -v } else { v })
}

impl RequestParser {
    pub fn new(max_request_bytes: usize) -> Self {
        RequestParser {
            max_request_bytes,
            partial: None,
        }
    }

    /// The largest number of unconsumed bytes [`RequestParser::next`] may ask
    /// the caller to keep while waiting for the rest of a request.
    #[cfg(test)]
    pub fn max_pending(&self) -> usize {
        (self.max_request_bytes + LEN_LINE_MAX).max(INLINE_MAX)
    }

    /// Parses the next request at the start of `buf`. Returns the request and
    /// the number of bytes it used, or None when more bytes are needed (then
    /// the parser remembers how far it got; call again with the same bytes
    /// plus more). `authenticated` false applies Redis' tighter limits for
    /// clients that have not authenticated yet.
    pub fn next(&mut self, buf: &[u8], authenticated: bool) -> Option<(Parsed, usize)> {
        if self.partial.is_none() {
            match buf.first() {
                None => return None,
                Some(b'*') => {}
                Some(_) => return self.inline(buf),
            }
        }
        self.multibulk(buf, authenticated)
    }

    fn inline(&mut self, buf: &[u8]) -> Option<(Parsed, usize)> {
        let limit = INLINE_MAX.min(self.max_request_bytes);
        let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
            if buf.len() > limit {
                return Some((protocol_error("too big inline request"), buf.len()));
            }
            return None;
        };
        if nl > limit {
            return Some((protocol_error("too big inline request"), nl + 1));
        }
        let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
        let parsed = match split_args(line) {
            None => protocol_error("unbalanced quotes in request"),
            Some(args) if args.is_empty() => Parsed::Empty,
            Some(args) => Parsed::Command(args),
        };
        Some((parsed, nl + 1))
    }

    fn multibulk(&mut self, buf: &[u8], authenticated: bool) -> Option<(Parsed, usize)> {
        let mut p = match self.partial {
            Some(p) => p,
            None => {
                let cr = match find_len_line(buf, 0) {
                    Ok(Some(cr)) => cr,
                    Ok(None) => return None,
                    Err(()) => {
                        return Some((protocol_error("too big mbulk count string"), buf.len()))
                    }
                };
                let header = cr + 2;
                let count = match parse_len(&buf[1..cr]) {
                    Some(n) if n <= 0 => return Some((Parsed::Empty, header)),
                    Some(n) => n as u64,
                    None => return Some((protocol_error("invalid multibulk length"), header)),
                };
                if !authenticated && count > UNAUTH_MAX_ARGS as u64 {
                    return Some((protocol_error("unauthenticated multibulk length"), header));
                }
                let min_size =
                    (header as u64).saturating_add(count.saturating_mul(MIN_ARG_BYTES as u64));
                if count > MAX_ARGS as u64 || min_size > self.max_request_bytes as u64 {
                    return Some((protocol_error("invalid multibulk length"), header));
                }
                Partial {
                    count: count as usize,
                    seen: 0,
                    pos: header,
                }
            }
        };
        while p.seen < p.count {
            let Some(&kind) = buf.get(p.pos) else {
                self.partial = Some(p);
                return None;
            };
            if kind != b'$' {
                self.partial = None;
                let got = if kind.is_ascii_graphic() {
                    kind as char
                } else {
                    '?'
                };
                return Some((
                    Parsed::Error(format!("Protocol error: expected '$', got '{got}'")),
                    buf.len(),
                ));
            }
            let cr = match find_len_line(buf, p.pos) {
                Ok(Some(cr)) => cr,
                Ok(None) => {
                    self.partial = Some(p);
                    return None;
                }
                Err(()) => {
                    self.partial = None;
                    return Some((protocol_error("too big bulk count string"), buf.len()));
                }
            };
            let len = match parse_len(&buf[p.pos + 1..cr]) {
                Some(n) if n >= 0 => n as u64,
                _ => {
                    self.partial = None;
                    return Some((protocol_error("invalid bulk length"), cr + 2));
                }
            };
            if !authenticated && len > UNAUTH_MAX_BULK as u64 {
                self.partial = None;
                return Some((protocol_error("unauthenticated bulk length"), cr + 2));
            }
            // Everything before this argument, this argument, and the
            // smallest possible encoding of the ones still to come.
            let rest = (p.count - p.seen - 1) as u64 * MIN_ARG_BYTES as u64;
            let end = (cr as u64 + 2).saturating_add(len).saturating_add(2);
            if end.saturating_add(rest) > self.max_request_bytes as u64 {
                self.partial = None;
                return Some((protocol_error("invalid bulk length"), cr + 2));
            }
            let end = end as usize;
            if buf.len() < end {
                self.partial = Some(p);
                return None;
            }
            p.seen += 1;
            p.pos = end;
        }
        self.partial = None;
        Some(decode(&buf[..p.pos], p.count))
    }
}

/// Decodes a complete, guarded array of bulk strings with `redis-protocol`.
fn decode(frame: &[u8], count: usize) -> (Parsed, usize) {
    let bad = || (protocol_error("invalid multibulk request"), frame.len());
    let (parts, used) = match decode_range(frame) {
        Ok(Some((RangeFrame::Array(parts), used))) => (parts, used),
        _ => return bad(),
    };
    if used != frame.len() || parts.len() != count {
        return bad();
    }
    let mut args = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            RangeFrame::BulkString((start, end)) => match frame.get(start..end) {
                Some(bytes) => args.push(bytes.to_vec()),
                None => return bad(),
            },
            _ => return bad(),
        }
    }
    (Parsed::Command(args), used)
}

/// Splits an inline request like Redis' `sdssplitargs`: whitespace-separated
/// words, `"double quoted"` with `\n \r \t \b \a \\ \" \xHH` escapes, and
/// `'single quoted'` with `\'`. None on unbalanced quotes or a closing quote
/// not followed by a space.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    let at = |i: usize| line.get(i).copied();
    loop {
        while at(i).is_some_and(|c| c.is_ascii_whitespace() || c == 0x0b) {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut cur = Vec::new();
        let (mut dq, mut sq) = (false, false);
        loop {
            let c = at(i);
            if dq {
                match c {
                    None => return None,
                    Some(b'\\') if at(i + 1) == Some(b'x') => {
                        let hex = |o: Option<u8>| o.and_then(|h| (h as char).to_digit(16));
                        match (hex(at(i + 2)), hex(at(i + 3))) {
                            (Some(h), Some(l)) => {
                                cur.push((h * 16 + l) as u8);
                                i += 3;
                            }
                            _ => cur.push(b'\\'),
                        }
                    }
                    Some(b'\\') if at(i + 1).is_some() => {
                        i += 1;
                        cur.push(match at(i) {
                            Some(b'n') => b'\n',
                            Some(b'r') => b'\r',
                            Some(b't') => b'\t',
                            Some(b'b') => 0x08,
                            Some(b'a') => 0x07,
                            Some(other) => other,
                            None => return None,
                        });
                    }
                    Some(b'"') => {
                        if at(i + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => cur.push(other),
                }
            } else if sq {
                match c {
                    None => return None,
                    Some(b'\\') if at(i + 1) == Some(b'\'') => {
                        cur.push(b'\'');
                        i += 1;
                    }
                    Some(b'\'') => {
                        if at(i + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => cur.push(other),
                }
            } else {
                match c {
                    None | Some(b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c) => break,
                    Some(b'"') => dq = true,
                    Some(b'\'') => sq = true,
                    Some(other) => cur.push(other),
                }
            }
            i += 1;
        }
        args.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(input: &[u8]) -> Option<(Parsed, usize)> {
        RequestParser::new(1 << 20).next(input, true)
    }

    fn cmd(args: &[&str]) -> Parsed {
        Parsed::Command(args.iter().map(|a| a.as_bytes().to_vec()).collect())
    }

    #[test]
    fn multibulk_and_inline() {
        assert_eq!(
            one(b"*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n"),
            Some((cmd(&["PING", "hi"]), 22))
        );
        assert_eq!(one(b"PING hi\r\n"), Some((cmd(&["PING", "hi"]), 9)));
        assert_eq!(one(b"PING\n"), Some((cmd(&["PING"]), 5)));
        assert_eq!(one(b"\r\n"), Some((Parsed::Empty, 2)));
        assert_eq!(one(b"*0\r\n"), Some((Parsed::Empty, 4)));
        assert_eq!(one(b"*-1\r\n"), Some((Parsed::Empty, 5)));
        assert_eq!(one(b"*1\r\n$0\r\n\r\n"), Some((cmd(&[""]), 10)));
    }

    #[test]
    fn incomplete_requests_wait() {
        let full = b"*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n";
        let mut p = RequestParser::new(1 << 20);
        for end in 0..full.len() {
            assert_eq!(p.next(&full[..end], true), None, "prefix of {end} bytes");
        }
        assert_eq!(p.next(full, true), Some((cmd(&["PING", "hi"]), full.len())));
        assert_eq!(one(b"PING"), None);
    }

    #[test]
    fn protocol_errors_are_redis_texts() {
        let err = |input: &[u8]| match one(input) {
            Some((Parsed::Error(e), _)) => e,
            other => panic!("{input:?}: {other:?}"),
        };
        // Outside an array a `$` line is an inline command, as in Redis.
        assert_eq!(
            one(b"$999999999999\r\n"),
            Some((cmd(&["$999999999999"]), 15))
        );
        assert_eq!(
            err(b"*1\r\n$999999999999\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(err(b"*1\r\n$-5\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(err(b"*1\r\n$x\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(
            err(b"*99999999999\r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(err(b"*1x\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(
            err(b"*1\r\n*1\r\n$1\r\na\r\n"),
            "Protocol error: expected '$', got '*'"
        );
        assert_eq!(
            err(b"*1\r\n:1\r\n"),
            "Protocol error: expected '$', got ':'"
        );
        assert_eq!(
            err(b"SET \"a\r\n"),
            "Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            err(&vec![b'a'; INLINE_MAX + 1]),
            "Protocol error: too big inline request"
        );
        let mut long = b"*1\r\n".to_vec();
        long.push(b'$');
        long.extend(vec![b'1'; 40]);
        assert_eq!(err(&long), "Protocol error: too big bulk count string");
    }

    #[test]
    fn max_request_bytes_bounds_every_length() {
        let mut p = RequestParser::new(1024);
        // One bulk bigger than the limit, announced but not sent.
        match p.next(b"*1\r\n$1025\r\n", true) {
            Some((Parsed::Error(e), _)) => assert_eq!(e, "Protocol error: invalid bulk length"),
            other => panic!("{other:?}"),
        }
        // Several bulks that only together exceed it.
        let mut p = RequestParser::new(1024);
        match p.next(b"*3\r\n$500\r\n", true) {
            None => {}
            other => panic!("{other:?}"),
        }
        let mut req = b"*3\r\n$500\r\n".to_vec();
        req.extend(vec![b'a'; 500]);
        req.extend_from_slice(b"\r\n$600\r\n");
        match p.next(&req, true) {
            Some((Parsed::Error(e), _)) => assert_eq!(e, "Protocol error: invalid bulk length"),
            other => panic!("{other:?}"),
        }
        // More arguments than can fit.
        let mut p = RequestParser::new(1024);
        match p.next(b"*200\r\n", true) {
            Some((Parsed::Error(e), _)) => {
                assert_eq!(e, "Protocol error: invalid multibulk length")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unauthenticated_limits() {
        let mut p = RequestParser::new(1 << 20);
        match p.next(b"*11\r\n", false) {
            Some((Parsed::Error(e), _)) => {
                assert_eq!(e, "Protocol error: unauthenticated multibulk length")
            }
            other => panic!("{other:?}"),
        }
        match p.next(b"*1\r\n$16385\r\n", false) {
            Some((Parsed::Error(e), _)) => {
                assert_eq!(e, "Protocol error: unauthenticated bulk length")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let mut input = Vec::new();
        for _ in 0..200_000 {
            input.extend_from_slice(b"*1\r\n");
        }
        match one(&input) {
            Some((Parsed::Error(e), _)) => assert_eq!(e, "Protocol error: expected '$', got '*'"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn split_args_like_redis() {
        let s = |l: &str| {
            split_args(l.as_bytes()).map(|v| {
                v.into_iter()
                    .map(|a| String::from_utf8_lossy(&a).into_owned())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            s("  a  b\tc "),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(
            s(r#"set "a b" 'c d'"#),
            Some(vec!["set".into(), "a b".into(), "c d".into()])
        );
        assert_eq!(s(r#""\x41\n""#), Some(vec!["A\n".into()]));
        assert_eq!(s(r#"'it\'s'"#), Some(vec!["it's".into()]));
        assert_eq!(s(r#""a"b"#), None);
        assert_eq!(s(r#""abc"#), None);
        assert_eq!(s("'abc"), None);
        assert_eq!(s(""), Some(vec![]));
        // NUL is an ordinary byte (Redis would stop at it, a C string end).
        assert_eq!(s("a\0b c"), Some(vec!["a\0b".into(), "c".into()]));
        assert_eq!(s("\0"), Some(vec!["\0".into()]));
        assert_eq!(s("a\x0b\x0cb"), Some(vec!["a".into(), "b".into()]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Random bytes, fed in random pieces: the parser never panics, every
        /// answer consumes at least one byte and at most what it was given,
        /// and what it asks the caller to keep stays bounded.
        #[test]
        fn random_bytes_never_panic_and_stay_bounded(
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            cuts in proptest::collection::vec(1usize..64, 1..64),
            max in 16usize..2048,
            authenticated in any::<bool>(),
        ) {
            let mut p = RequestParser::new(max);
            let mut buf: Vec<u8> = Vec::new();
            let mut fed = 0;
            let mut cuts = cuts.into_iter().cycle();
            while fed < data.len() {
                let n = cuts.next().unwrap_or(1).min(data.len() - fed);
                buf.extend_from_slice(&data[fed..fed + n]);
                fed += n;
                while let Some((parsed, used)) = p.next(&buf, authenticated) {
                    prop_assert!(used >= 1 && used <= buf.len());
                    let stop = matches!(parsed, Parsed::Error(_));
                    buf.drain(..used);
                    if stop {
                        return Ok(());
                    }
                }
                prop_assert!(buf.len() <= p.max_pending(),
                    "kept {} bytes, limit {}", buf.len(), p.max_pending());
            }
        }

        /// Structured but hostile requests (random lengths and kinds).
        #[test]
        fn hostile_headers_never_panic(
            parts in proptest::collection::vec(
                prop_oneof![
                    any::<i64>().prop_map(|n| format!("*{n}\r\n").into_bytes()),
                    any::<i64>().prop_map(|n| format!("${n}\r\n").into_bytes()),
                    proptest::collection::vec(b'a'..=b'z', 0..8).prop_map(|mut w| {
                        w.extend_from_slice(b"\r\n");
                        w
                    }),
                    Just(b"*1\r\n".to_vec()),
                    Just(b"\r\n".to_vec()),
                    Just(b"\"".to_vec()),
                ],
                0..64,
            ),
        ) {
            let data: Vec<u8> = parts.concat();
            let mut p = RequestParser::new(1 << 20);
            let mut buf = data.as_slice();
            while let Some((parsed, used)) = p.next(buf, true) {
                prop_assert!(used >= 1 && used <= buf.len());
                buf = &buf[used..];
                if matches!(parsed, Parsed::Error(_)) {
                    break;
                }
            }
        }

        /// Well-formed requests round-trip whatever the argument bytes.
        #[test]
        fn well_formed_requests_round_trip(
            args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..8),
        ) {
            let mut req = format!("*{}\r\n", args.len()).into_bytes();
            for a in &args {
                req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                req.extend_from_slice(a);
                req.extend_from_slice(b"\r\n");
            }
            let got = RequestParser::new(1 << 20).next(&req, true);
            prop_assert_eq!(got, Some((Parsed::Command(args), req.len())));
        }
    }
}
