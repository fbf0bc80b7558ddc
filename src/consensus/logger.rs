//! The slog → tracing bridge: raft-rs logs through `slog`; this module owns
//! the drain that forwards its records to `tracing` events (target `raft_rs`),
//! so the whole daemon has one log pipeline.

use std::fmt::{self, Write as _};

use slog::{Drain, Level, OwnedKVList, Record, KV};

/// A `slog::Logger` whose records become `tracing` events with target
/// `raft`, at the matching level (critical and error → `error`). The
/// record's key-values (and those of the logger) are appended to the message
/// as ` key=value`.
pub fn slog_to_tracing() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}

/// The drain behind [`slog_to_tracing`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingDrain;

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let enabled = match record.level() {
            Level::Critical | Level::Error => {
                tracing::enabled!(target: "raft_rs", tracing::Level::ERROR)
            }
            Level::Warning => tracing::enabled!(target: "raft_rs", tracing::Level::WARN),
            Level::Info => tracing::enabled!(target: "raft_rs", tracing::Level::INFO),
            Level::Debug => tracing::enabled!(target: "raft_rs", tracing::Level::DEBUG),
            Level::Trace => tracing::enabled!(target: "raft_rs", tracing::Level::TRACE),
        };
        if !enabled {
            return Ok(());
        }
        let mut msg = String::new();
        // Formatting into a String cannot fail.
        let _ = write!(msg, "{}", record.msg());
        let mut ser = KvFormatter(&mut msg);
        let _ = record.kv().serialize(record, &mut ser);
        let _ = values.serialize(record, &mut ser);
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(target: "raft_rs", "{msg}"),
            Level::Warning => tracing::warn!(target: "raft_rs", "{msg}"),
            Level::Info => tracing::info!(target: "raft_rs", "{msg}"),
            Level::Debug => tracing::debug!(target: "raft_rs", "{msg}"),
            Level::Trace => tracing::trace!(target: "raft_rs", "{msg}"),
        }
        Ok(())
    }
}

/// Appends ` key=value` for each key-value pair.
struct KvFormatter<'a>(&'a mut String);

impl slog::Serializer for KvFormatter<'_> {
    fn emit_arguments(&mut self, key: slog::Key, val: &fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn forwards_records_with_level_and_key_values() {
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let logger = slog_to_tracing().new(slog::o!("raft_id" => 7));
            slog::info!(logger, "became leader at term {}", 3; "term" => 3);
            slog::warn!(logger, "odd"; "peer" => "n2");
            slog::trace!(logger, "hidden");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("INFO raft_rs: became leader at term 3 term=3 raft_id=7"),
            "{text}"
        );
        assert!(
            text.contains("WARN raft_rs: odd peer=n2 raft_id=7"),
            "{text}"
        );
        assert!(!text.contains("hidden"), "{text}");
    }
}
