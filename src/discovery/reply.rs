//! Replies: one description ([`Reply`]) encoded as RESP2 or RESP3 by the
//! `redis-protocol` crate, with the downgrades Redis itself applies for RESP2
//! clients (maps become flat field/value arrays, sets and pushes become
//! arrays, verbatim strings become bulk strings, null is `$-1` or `*-1`).

use redis_protocol::resp2::types::{OwnedFrame as Frame2, Resp2Frame as _};
use redis_protocol::resp3::types::{
    FrameMap, FrameSet, OwnedFrame as Frame3, Resp3Frame as _, VerbatimStringFormat,
};

/// The protocol a client speaks (`HELLO 2|3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Resp2,
    Resp3,
}

impl Proto {
    pub fn number(self) -> i64 {
        match self {
            Proto::Resp2 => 2,
            Proto::Resp3 => 3,
        }
    }
}

/// A reply, independent of the protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+<text>`
    Simple(String),
    /// `-<text>`; the text starts with the error code (`ERR ...`, `NOAUTH ...`).
    Error(String),
    /// `:<n>`
    Int(i64),
    /// `$<len>` bulk string.
    Bulk(Vec<u8>),
    /// Null bulk string: RESP2 `$-1`, RESP3 `_`.
    NullBulk,
    /// Null array: RESP2 `*-1`, RESP3 `_`.
    NullArray,
    Array(Vec<Reply>),
    /// RESP3 map; RESP2 flat `[k1, v1, k2, v2...]`.
    Map(Vec<(Reply, Reply)>),
    /// RESP3 set; RESP2 array.
    Set(Vec<Reply>),
    /// RESP3 verbatim string (`txt`); RESP2 bulk string.
    Verbatim(String),
    /// RESP3 push (out-of-band pub/sub); RESP2 array.
    Push(Vec<Reply>),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    pub fn bulk(s: impl AsRef<[u8]>) -> Reply {
        Reply::Bulk(s.as_ref().to_vec())
    }

    /// An error with the `ERR` code.
    pub fn err(msg: impl AsRef<str>) -> Reply {
        Reply::Error(format!("ERR {}", msg.as_ref()))
    }

    /// An error with its own code (`NOAUTH ...`, `WRONGPASS ...`).
    pub fn coded(text: impl Into<String>) -> Reply {
        Reply::Error(text.into())
    }

    /// A map of string fields to bulk string values (Sentinel's records).
    pub fn record<K: AsRef<str>, V: AsRef<str>>(fields: impl IntoIterator<Item = (K, V)>) -> Reply {
        Reply::Map(
            fields
                .into_iter()
                .map(|(k, v)| (Reply::bulk(k.as_ref()), Reply::bulk(v.as_ref())))
                .collect(),
        )
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// Simple strings and errors cannot hold CR or LF (Redis replaces them too).
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn to_resp2(r: &Reply) -> Frame2 {
    match r {
        Reply::Simple(s) => Frame2::SimpleString(one_line(s).into_bytes()),
        Reply::Error(s) => Frame2::Error(one_line(s)),
        Reply::Int(n) => Frame2::Integer(*n),
        Reply::Bulk(b) => Frame2::BulkString(b.clone()),
        Reply::Verbatim(s) => Frame2::BulkString(s.as_bytes().to_vec()),
        // A nested null array cannot be told apart in RESP2 frames; no reply
        // nests one, so `$-1` is only a fallback.
        Reply::NullBulk | Reply::NullArray => Frame2::Null,
        Reply::Array(v) | Reply::Set(v) | Reply::Push(v) => {
            Frame2::Array(v.iter().map(to_resp2).collect())
        }
        Reply::Map(pairs) => Frame2::Array(
            pairs
                .iter()
                .flat_map(|(k, v)| [to_resp2(k), to_resp2(v)])
                .collect(),
        ),
    }
}

fn to_resp3(r: &Reply) -> Frame3 {
    match r {
        Reply::Simple(s) => Frame3::SimpleString {
            data: one_line(s).into_bytes(),
            attributes: None,
        },
        Reply::Error(s) => Frame3::SimpleError {
            data: one_line(s),
            attributes: None,
        },
        Reply::Int(n) => Frame3::Number {
            data: *n,
            attributes: None,
        },
        Reply::Bulk(b) => Frame3::BlobString {
            data: b.clone(),
            attributes: None,
        },
        Reply::Verbatim(s) => Frame3::VerbatimString {
            data: s.as_bytes().to_vec(),
            format: VerbatimStringFormat::Text,
            attributes: None,
        },
        Reply::NullBulk | Reply::NullArray => Frame3::Null,
        Reply::Array(v) => Frame3::Array {
            data: v.iter().map(to_resp3).collect(),
            attributes: None,
        },
        Reply::Push(v) => Frame3::Push {
            data: v.iter().map(to_resp3).collect(),
            attributes: None,
        },
        Reply::Set(v) => Frame3::Set {
            data: v.iter().map(to_resp3).collect::<FrameSet<_>>(),
            attributes: None,
        },
        Reply::Map(pairs) => Frame3::Map {
            data: pairs
                .iter()
                .map(|(k, v)| (to_resp3(k), to_resp3(v)))
                .collect::<FrameMap<_, _>>(),
            attributes: None,
        },
    }
}

/// Why a reply could not be encoded (a bug: every [`Reply`] is encodable).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode reply: {0}")]
pub struct EncodeError(String);

/// Appends `reply`, encoded for `proto`, to `out`.
pub fn encode(reply: &Reply, proto: Proto, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    let res = match (proto, reply) {
        (Proto::Resp2, Reply::NullArray) => {
            out.extend_from_slice(b"*-1\r\n");
            return Ok(());
        }
        (Proto::Resp2, r) => {
            let frame = to_resp2(r);
            out.resize(start + frame.encode_len(false), 0);
            redis_protocol::resp2::encode::encode(&mut out[start..], &frame, false)
        }
        (Proto::Resp3, r) => {
            let frame = to_resp3(r);
            out.resize(start + frame.encode_len(false), 0);
            redis_protocol::resp3::encode::complete::encode(&mut out[start..], &frame, false)
        }
    };
    match res {
        Ok(n) => {
            out.truncate(start + n);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(EncodeError(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: Reply, p: Proto) -> String {
        let mut out = Vec::new();
        encode(&r, p, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn resp2_and_resp3_shapes() {
        use Proto::*;
        assert_eq!(enc(Reply::ok(), Resp2), "+OK\r\n");
        assert_eq!(enc(Reply::err("x\r\ny"), Resp2), "-ERR x  y\r\n");
        assert_eq!(enc(Reply::NullArray, Resp2), "*-1\r\n");
        assert_eq!(enc(Reply::NullBulk, Resp2), "$-1\r\n");
        assert_eq!(enc(Reply::NullArray, Resp3), "_\r\n");
        assert_eq!(enc(Reply::NullBulk, Resp3), "_\r\n");
        let rec = Reply::record([("name", "mymaster"), ("port", "6379")]);
        assert_eq!(
            enc(rec.clone(), Resp2),
            "*4\r\n$4\r\nname\r\n$8\r\nmymaster\r\n$4\r\nport\r\n$4\r\n6379\r\n"
        );
        assert_eq!(
            enc(rec, Resp3),
            "%2\r\n$4\r\nname\r\n$8\r\nmymaster\r\n$4\r\nport\r\n$4\r\n6379\r\n"
        );
        let push = Reply::Push(vec![
            Reply::bulk("message"),
            Reply::bulk("c"),
            Reply::bulk("m"),
        ]);
        assert_eq!(
            enc(push.clone(), Resp2),
            "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n"
        );
        assert_eq!(
            enc(push, Resp3),
            ">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n"
        );
        assert_eq!(enc(Reply::Verbatim("a:b".into()), Resp2), "$3\r\na:b\r\n");
        assert_eq!(
            enc(Reply::Verbatim("a:b".into()), Resp3),
            "=7\r\ntxt:a:b\r\n"
        );
        assert_eq!(
            enc(Reply::Set(vec![Reply::Simple("x".into())]), Resp3),
            "~1\r\n+x\r\n"
        );
        assert_eq!(enc(Reply::Int(-3), Resp3), ":-3\r\n");
    }
}
