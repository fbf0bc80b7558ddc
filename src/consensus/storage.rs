//! Raft log storage: owns the durable Raft state (log entries, hard state,
//! conf state, latest snapshot) and its in-memory view implementing
//! [`raft::Storage`].
//!
//! The durable copy lives in one redb file (`<dir>/raft.redb`); every mutation
//! is a single redb write transaction committed with `Durability::Immediate`,
//! so entries and the hard state of one `Ready` reach disk atomically. The
//! in-memory view is updated only after the commit succeeded, so what raft
//! reads through [`raft::Storage`] is always what is on disk.
//!
//! [`LogStore::in_memory`] gives the same semantics without a file, for the
//! deterministic simulation.
//!
//! The semantics follow raft-rs 0.7's `MemStorageCore` (append truncates a
//! conflicting suffix, applying a snapshot replaces the whole log, `term` /
//! `entries` return `Compacted` / `Unavailable`), except that inconsistent
//! requests return errors instead of panicking.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState};
use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};

/// Log entries keyed by index; values are protobuf-encoded `Entry`.
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
/// Metadata: protobuf-encoded hard state, conf state and snapshot.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const KEY_HARD_STATE: &str = "hard_state";
const KEY_CONF_STATE: &str = "conf_state";
const KEY_SNAPSHOT: &str = "snapshot";

/// File name of the durable log inside the data directory.
pub const FILE_NAME: &str = "raft.redb";

/// Errors of the Raft log storage. Every variant names the file (or
/// `<memory>` for the in-memory store).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open raft log {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: Box<redb::DatabaseError>,
    },
    #[error("raft log {}: {op} failed: {source}", path.display())]
    Db {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("raft log {} is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("raft log {}: cannot encode {what}: {source}", path.display())]
    Encode {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: Box<protobuf::ProtobufError>,
    },
    #[error(
        "raft log {}: cannot append entries from index {index}: entries up to {compacted} are compacted",
        path.display()
    )]
    AppendCompacted {
        path: PathBuf,
        index: u64,
        compacted: u64,
    },
    #[error(
        "raft log {}: cannot append entries from index {index}: gap after last index {last}",
        path.display()
    )]
    AppendGap {
        path: PathBuf,
        index: u64,
        last: u64,
    },
    #[error(
        "raft log {}: appended entries are not contiguous (index {found} where {expected} was expected)",
        path.display()
    )]
    AppendNotContiguous {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error(
        "raft log {}: snapshot at index {index} is out of date (first index {first})",
        path.display()
    )]
    SnapshotOutOfDate {
        path: PathBuf,
        index: u64,
        first: u64,
    },
    #[error(
        "raft log {}: cannot compact at index {index} (committed {committed}, last index {last})",
        path.display()
    )]
    CompactOutOfRange {
        path: PathBuf,
        index: u64,
        committed: u64,
        last: u64,
    },
}

/// In-memory view implementing [`raft::Storage`], backed by an optional
/// durable redb file. Clones share the same state.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<RwLock<Inner>>,
}

struct Inner {
    /// Path of the redb file, or `<memory>`; used in error messages.
    path: PathBuf,
    db: Option<Database>,
    hard_state: HardState,
    conf_state: ConfState,
    /// Latest snapshot (metadata and data). Index 0 means "no snapshot".
    snapshot: Snapshot,
    /// Entries after the snapshot; `entries[i].index == first_index() + i`.
    entries: Vec<Entry>,
}

impl Inner {
    fn snap_meta(&self) -> &SnapshotMetadata {
        self.snapshot.get_metadata()
    }

    fn first_index(&self) -> u64 {
        match self.entries.first() {
            Some(e) => e.index,
            None => self.snap_meta().index + 1,
        }
    }

    fn last_index(&self) -> u64 {
        match self.entries.last() {
            Some(e) => e.index,
            None => self.snap_meta().index,
        }
    }

    fn entry(&self, index: u64) -> Option<&Entry> {
        let first = self.first_index();
        if index < first {
            return None;
        }
        self.entries.get(usize::try_from(index - first).ok()?)
    }

    fn db_err(&self, op: &'static str) -> impl FnOnce(redb::Error) -> StorageError + '_ {
        move |source| StorageError::Db {
            path: self.path.clone(),
            op,
            source: Box::new(source),
        }
    }

    fn encode<M: protobuf::Message>(
        &self,
        what: &'static str,
        m: &M,
    ) -> Result<Vec<u8>, StorageError> {
        m.write_to_bytes().map_err(|source| StorageError::Encode {
            path: self.path.clone(),
            what,
            source: Box::new(source),
        })
    }

    /// Runs `f` inside one write transaction committed with immediate
    /// durability. A no-op for the in-memory store.
    fn write<F>(&self, f: F) -> Result<(), StorageError>
    where
        F: FnOnce(&WriteTransaction) -> Result<(), StorageError>,
    {
        let Some(db) = &self.db else {
            return Ok(());
        };
        let mut txn = db
            .begin_write()
            .map_err(|e| self.db_err("begin transaction")(e.into()))?;
        txn.set_durability(Durability::Immediate);
        f(&txn)?;
        txn.commit().map_err(|e| self.db_err("commit")(e.into()))
    }

    fn put_meta(
        &self,
        txn: &WriteTransaction,
        key: &str,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        let mut meta = txn
            .open_table(META)
            .map_err(|e| self.db_err("open meta table")(e.into()))?;
        meta.insert(key, bytes)
            .map_err(|e| self.db_err("write meta")(e.into()))?;
        Ok(())
    }
}

fn read_lock(lock: &RwLock<Inner>) -> RwLockReadGuard<'_, Inner> {
    // A panic while holding the lock cannot leave a half-applied mutation:
    // memory is only mutated after the durable commit, without fallible steps.
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write_lock(lock: &RwLock<Inner>) -> RwLockWriteGuard<'_, Inner> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

fn conf_state_of(voters: &[u64]) -> ConfState {
    ConfState {
        voters: voters.to_vec(),
        ..Default::default()
    }
}

fn decode<M: protobuf::Message>(path: &Path, what: &str, bytes: &[u8]) -> Result<M, StorageError> {
    M::parse_from_bytes(bytes).map_err(|e| StorageError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("cannot decode {what}: {e}"),
    })
}

impl LogStore {
    /// Opens or creates `dir/raft.redb`. A fresh file starts with an empty log
    /// and a conf state holding `voters`; an existing one loads its snapshot
    /// (metadata and data), the entries after it, the hard state and the conf
    /// state (`voters` is then ignored).
    pub fn open(dir: &Path, voters: &[u64]) -> Result<LogStore, StorageError> {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|source| StorageError::Open {
            path: path.clone(),
            source: Box::new(source),
        })?;
        let db_err = |op: &'static str| {
            let path = path.clone();
            move |e: redb::Error| StorageError::Db {
                path,
                op,
                source: Box::new(e),
            }
        };
        let corrupt = |reason: String| StorageError::Corrupt {
            path: path.clone(),
            reason,
        };

        // Create the tables (and the initial conf state) if this is a fresh file.
        let mut txn = db
            .begin_write()
            .map_err(|e| db_err("begin transaction")(e.into()))?;
        txn.set_durability(Durability::Immediate);
        {
            txn.open_table(ENTRIES)
                .map_err(|e| db_err("open entries table")(e.into()))?;
            let mut meta = txn
                .open_table(META)
                .map_err(|e| db_err("open meta table")(e.into()))?;
            let fresh = meta
                .get(KEY_CONF_STATE)
                .map_err(|e| db_err("read conf state")(e.into()))?
                .is_none();
            if fresh {
                let bytes = conf_state_of(voters).write_to_bytes().map_err(|source| {
                    StorageError::Encode {
                        path: path.clone(),
                        what: "conf state",
                        source: Box::new(source),
                    }
                })?;
                meta.insert(KEY_CONF_STATE, bytes.as_slice())
                    .map_err(|e| db_err("write conf state")(e.into()))?;
            }
        }
        txn.commit().map_err(|e| db_err("commit")(e.into()))?;

        // Load everything.
        let txn = db
            .begin_read()
            .map_err(|e| db_err("begin read transaction")(e.into()))?;
        let meta = txn
            .open_table(META)
            .map_err(|e| db_err("open meta table")(e.into()))?;
        let get = |key: &str| -> Result<Option<Vec<u8>>, StorageError> {
            Ok(meta
                .get(key)
                .map_err(|e| db_err("read meta")(e.into()))?
                .map(|v| v.value().to_vec()))
        };
        let hard_state: HardState = match get(KEY_HARD_STATE)? {
            Some(b) => decode(&path, "hard state", &b)?,
            None => HardState::default(),
        };
        let conf_state: ConfState = match get(KEY_CONF_STATE)? {
            Some(b) => decode(&path, "conf state", &b)?,
            None => return Err(corrupt("conf state missing".into())),
        };
        let snapshot: Snapshot = match get(KEY_SNAPSHOT)? {
            Some(b) => decode(&path, "snapshot", &b)?,
            None => Snapshot::default(),
        };
        let table = txn
            .open_table(ENTRIES)
            .map_err(|e| db_err("open entries table")(e.into()))?;
        let mut entries = Vec::new();
        let rows = table.iter().map_err(|e| db_err("read entries")(e.into()))?;
        for (expected, item) in (snapshot.get_metadata().index + 1..).zip(rows) {
            let (k, v) = item.map_err(|e| db_err("read entries")(e.into()))?;
            let index = k.value();
            let entry: Entry = decode(&path, "entry", v.value())?;
            if entry.index != index {
                return Err(corrupt(format!(
                    "entry stored under key {index} has index {}",
                    entry.index
                )));
            }
            if index != expected {
                return Err(corrupt(format!(
                    "log is not contiguous: entry {index} where {expected} was expected"
                )));
            }
            entries.push(entry);
        }
        drop(table);
        drop(meta);
        drop(txn);

        let inner = Inner {
            path,
            db: Some(db),
            hard_state,
            conf_state,
            snapshot,
            entries,
        };
        if inner.hard_state.commit > inner.last_index() {
            return Err(StorageError::Corrupt {
                reason: format!(
                    "commit index {} is beyond the last index {}",
                    inner.hard_state.commit,
                    inner.last_index()
                ),
                path: inner.path,
            });
        }
        Ok(LogStore {
            inner: Arc::new(RwLock::new(inner)),
        })
    }

    /// A store without disk (used by the deterministic simulation; "durable"
    /// means what is in memory).
    pub fn in_memory(voters: &[u64]) -> LogStore {
        LogStore {
            inner: Arc::new(RwLock::new(Inner {
                path: PathBuf::from("<memory>"),
                db: None,
                hard_state: HardState::default(),
                conf_state: conf_state_of(voters),
                snapshot: Snapshot::default(),
                entries: Vec::new(),
            })),
        }
    }

    /// Persists in one durable write: applies `snapshot` if `Some` (it
    /// replaces the whole log, as in raft-rs' `MemStorage`), appends
    /// `entries` (truncating any conflicting suffix), then sets `hard_state`
    /// if `Some`. On error nothing is changed, in memory or on disk.
    pub fn persist(
        &self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), StorageError> {
        let mut inner = write_lock(&self.inner);
        let snapshot = snapshot.filter(|s| s.get_metadata().index > 0);
        if snapshot.is_none()
            && entries.is_empty()
            && hard_state.is_none_or(|hs| *hs == inner.hard_state)
        {
            return Ok(()); // nothing to write: spare the fsync
        }

        // Validate against the state after the snapshot.
        let (first, last) = match snapshot {
            Some(s) => {
                let index = s.get_metadata().index;
                if inner.first_index() > index {
                    return Err(StorageError::SnapshotOutOfDate {
                        path: inner.path.clone(),
                        index,
                        first: inner.first_index(),
                    });
                }
                (index + 1, index)
            }
            None => (inner.first_index(), inner.last_index()),
        };
        if let Some(e0) = entries.first() {
            if e0.index < first {
                return Err(StorageError::AppendCompacted {
                    path: inner.path.clone(),
                    index: e0.index,
                    compacted: first - 1,
                });
            }
            if e0.index > last + 1 {
                return Err(StorageError::AppendGap {
                    path: inner.path.clone(),
                    index: e0.index,
                    last,
                });
            }
            for (i, e) in entries.iter().enumerate() {
                let expected = e0.index + i as u64;
                if e.index != expected {
                    return Err(StorageError::AppendNotContiguous {
                        path: inner.path.clone(),
                        expected,
                        found: e.index,
                    });
                }
            }
        }

        // Compute the new metadata.
        let mut new_hs = inner.hard_state.clone();
        let mut new_cs = inner.conf_state.clone();
        if let Some(s) = snapshot {
            let meta = s.get_metadata();
            new_hs.term = new_hs.term.max(meta.term);
            new_hs.commit = meta.index;
            new_cs = meta.get_conf_state().clone();
        }
        if let Some(hs) = hard_state {
            new_hs = hs.clone();
        }

        // One durable write.
        if inner.db.is_some() {
            let hs_bytes = inner.encode("hard state", &new_hs)?;
            let cs_bytes = inner.encode("conf state", &new_cs)?;
            let snap_bytes = match snapshot {
                Some(s) => Some(inner.encode("snapshot", s)?),
                None => None,
            };
            let mut ent_bytes = Vec::with_capacity(entries.len());
            for e in entries {
                ent_bytes.push((e.index, inner.encode("entry", e)?));
            }
            let inner_ref = &*inner;
            inner_ref.write(|txn| {
                {
                    let mut table = txn
                        .open_table(ENTRIES)
                        .map_err(|e| inner_ref.db_err("open entries table")(e.into()))?;
                    // Drop what the snapshot replaces, then the conflicting suffix.
                    if snapshot.is_some() {
                        table
                            .retain(|_, _| false)
                            .map_err(|e| inner_ref.db_err("clear entries")(e.into()))?;
                    }
                    if let Some((from, _)) = ent_bytes.first() {
                        table
                            .retain_in(*from.., |_, _| false)
                            .map_err(|e| inner_ref.db_err("truncate entries")(e.into()))?;
                    }
                    for (index, bytes) in &ent_bytes {
                        table
                            .insert(*index, bytes.as_slice())
                            .map_err(|e| inner_ref.db_err("write entry")(e.into()))?;
                    }
                }
                if let Some(b) = &snap_bytes {
                    inner_ref.put_meta(txn, KEY_SNAPSHOT, b)?;
                    inner_ref.put_meta(txn, KEY_CONF_STATE, &cs_bytes)?;
                }
                inner_ref.put_meta(txn, KEY_HARD_STATE, &hs_bytes)
            })?;
        }

        // Mirror in memory.
        if let Some(s) = snapshot {
            inner.snapshot = s.clone();
            inner.entries.clear();
        }
        if let Some(e0) = entries.first() {
            let keep = (e0.index - inner.first_index()) as usize;
            inner.entries.truncate(keep);
            inner.entries.extend_from_slice(entries);
        }
        inner.hard_state = new_hs;
        inner.conf_state = new_cs;
        Ok(())
    }

    /// Updates only the commit index of the hard state (from a `LightReady`),
    /// durably.
    pub fn set_commit(&self, commit: u64) -> Result<(), StorageError> {
        let mut inner = write_lock(&self.inner);
        if inner.hard_state.commit == commit {
            return Ok(());
        }
        let mut hs = inner.hard_state.clone();
        hs.commit = commit;
        let bytes = inner.encode("hard state", &hs)?;
        inner.write(|txn| inner.put_meta(txn, KEY_HARD_STATE, &bytes))?;
        inner.hard_state = hs;
        Ok(())
    }

    /// Replaces the conf state (after applying a conf change), durably.
    pub fn set_conf_state(&self, conf_state: ConfState) -> Result<(), StorageError> {
        let mut inner = write_lock(&self.inner);
        let bytes = inner.encode("conf state", &conf_state)?;
        inner.write(|txn| inner.put_meta(txn, KEY_CONF_STATE, &bytes))?;
        inner.conf_state = conf_state;
        Ok(())
    }

    /// Log compaction: makes a snapshot at `index` holding `data` (the
    /// serialized state machine at that index, whose conf state is taken to
    /// be the current one) and drops the entries `<= index`, durably.
    /// `index` must be `<= committed` and `<= last index`; compacting at or
    /// below the current snapshot is a no-op.
    pub fn compact(&self, index: u64, data: Vec<u8>) -> Result<(), StorageError> {
        let mut inner = write_lock(&self.inner);
        if index <= inner.snap_meta().index {
            return Ok(());
        }
        let committed = inner.hard_state.commit;
        let last = inner.last_index();
        let term = match inner.entry(index) {
            Some(e) if index <= committed => e.term,
            _ => {
                return Err(StorageError::CompactOutOfRange {
                    path: inner.path.clone(),
                    index,
                    committed,
                    last,
                })
            }
        };
        let mut snap = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        {
            let meta = snap.mut_metadata();
            meta.index = index;
            meta.term = term;
            meta.set_conf_state(inner.conf_state.clone());
        }
        let bytes = inner.encode("snapshot", &snap)?;
        inner.write(|txn| {
            {
                let mut table = txn
                    .open_table(ENTRIES)
                    .map_err(|e| inner.db_err("open entries table")(e.into()))?;
                table
                    .retain_in(..=index, |_, _| false)
                    .map_err(|e| inner.db_err("drop compacted entries")(e.into()))?;
            }
            inner.put_meta(txn, KEY_SNAPSHOT, &bytes)
        })?;
        let drop_n = (index + 1 - inner.first_index()) as usize;
        inner.entries.drain(..drop_n);
        inner.snapshot = snap;
        Ok(())
    }

    /// The latest snapshot (metadata index/term and data), if any.
    pub fn snapshot(&self) -> Option<Snapshot> {
        let inner = read_lock(&self.inner);
        (inner.snap_meta().index > 0).then(|| inner.snapshot.clone())
    }

    /// The current hard state.
    pub fn hard_state(&self) -> HardState {
        read_lock(&self.inner).hard_state.clone()
    }

    /// The current conf state.
    pub fn conf_state(&self) -> ConfState {
        read_lock(&self.inner).conf_state.clone()
    }

    /// Index of the first entry available (snapshot index + 1).
    pub fn first_index(&self) -> u64 {
        read_lock(&self.inner).first_index()
    }

    /// Index of the last entry (or of the snapshot if the log is empty).
    pub fn last_index(&self) -> u64 {
        read_lock(&self.inner).last_index()
    }

    /// Path of the backing file (`<memory>` for the in-memory store).
    pub fn path(&self) -> PathBuf {
        read_lock(&self.inner).path.clone()
    }
}

fn store_err(e: raft::StorageError) -> raft::Error {
    raft::Error::Store(e)
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let inner = read_lock(&self.inner);
        Ok(RaftState::new(
            inner.hard_state.clone(),
            inner.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let inner = read_lock(&self.inner);
        let first = inner.first_index();
        if low < first {
            return Err(store_err(raft::StorageError::Compacted));
        }
        if high > inner.last_index() + 1 || low > high {
            // MemStorage panics here; raft turns this error into a fatal one.
            return Err(store_err(raft::StorageError::Unavailable));
        }
        let lo = (low - first) as usize;
        let hi = (high - first) as usize;
        let mut ents = inner.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let inner = read_lock(&self.inner);
        let meta = inner.snap_meta();
        if idx == meta.index {
            return Ok(meta.term);
        }
        if idx < inner.first_index() {
            return Err(store_err(raft::StorageError::Compacted));
        }
        match inner.entry(idx) {
            Some(e) => Ok(e.term),
            None => Err(store_err(raft::StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(read_lock(&self.inner).first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(read_lock(&self.inner).last_index())
    }

    /// Returns the latest stored snapshot (with its data). If there is none
    /// yet, or it is older than `request_index`, returns
    /// `SnapshotTemporarilyUnavailable` so raft retries later (after the
    /// application compacted again).
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let inner = read_lock(&self.inner);
        let index = inner.snap_meta().index;
        if index == 0 || index < request_index {
            return Err(store_err(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(inner.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::{Error as RaftError, Storage, StorageError as RaftStorageError};

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: format!("e{index}t{term}").into_bytes().into(),
            ..Default::default()
        }
    }

    fn hs(term: u64, vote: u64, commit: u64) -> HardState {
        HardState {
            term,
            vote,
            commit,
            ..Default::default()
        }
    }

    fn all_entries(s: &LogStore) -> Vec<(u64, u64)> {
        let (f, l) = (s.first_index(), s.last_index());
        s.entries(f, l + 1, None, GetEntriesContext::empty(false))
            .unwrap()
            .iter()
            .map(|e| (e.index, e.term))
            .collect()
    }

    /// Runs `f` on a fresh in-memory store and on a fresh file store.
    fn both(f: impl Fn(&LogStore)) {
        f(&LogStore::in_memory(&[1, 2, 3]));
        let dir = tempfile::tempdir().unwrap();
        f(&LogStore::open(dir.path(), &[1, 2, 3]).unwrap());
    }

    #[test]
    fn fresh_store_is_initialized_with_voters() {
        both(|s| {
            let st = s.initial_state().unwrap();
            assert!(st.initialized());
            assert_eq!(st.conf_state.voters, vec![1, 2, 3]);
            assert_eq!(st.hard_state, HardState::default());
            assert_eq!(s.first_index(), 1);
            assert_eq!(s.last_index(), 0);
            assert_eq!(s.term(0).unwrap(), 0);
            assert!(s.snapshot().is_none());
        });
    }

    #[test]
    fn persist_and_reopen_restores_state() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = LogStore::open(dir.path(), &[1, 2, 3]).unwrap();
            s.persist(
                None,
                &[entry(1, 1), entry(2, 1), entry(3, 2)],
                Some(&hs(2, 1, 2)),
            )
            .unwrap();
            s.set_commit(3).unwrap();
        }
        // Voters passed on reopen are ignored: the stored conf state wins.
        let s = LogStore::open(dir.path(), &[9]).unwrap();
        assert_eq!(all_entries(&s), vec![(1, 1), (2, 1), (3, 2)]);
        assert_eq!(s.hard_state(), hs(2, 1, 3));
        let st = s.initial_state().unwrap();
        assert_eq!(st.conf_state.voters, vec![1, 2, 3]);
        let e = s
            .entries(2, 3, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(e[0].data, b"e2t1".to_vec());
    }

    #[test]
    fn conflicting_append_truncates_suffix() {
        both(|s| {
            s.persist(
                None,
                &[entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)],
                None,
            )
            .unwrap();
            s.persist(None, &[entry(3, 2)], None).unwrap();
            assert_eq!(all_entries(s), vec![(1, 1), (2, 1), (3, 2)]);
            s.persist(None, &[entry(4, 2), entry(5, 2)], None).unwrap();
            assert_eq!(all_entries(s), vec![(1, 1), (2, 1), (3, 2), (4, 2), (5, 2)]);
            // Gap and non-contiguous appends are refused without changing anything.
            assert!(matches!(
                s.persist(None, &[entry(7, 2)], None),
                Err(StorageError::AppendGap { .. })
            ));
            assert!(matches!(
                s.persist(None, &[entry(6, 2), entry(8, 2)], None),
                Err(StorageError::AppendNotContiguous { .. })
            ));
            assert_eq!(s.last_index(), 5);
        });
        // And the truncation is durable.
        let dir = tempfile::tempdir().unwrap();
        {
            let s = LogStore::open(dir.path(), &[1]).unwrap();
            s.persist(None, &[entry(1, 1), entry(2, 1), entry(3, 1)], None)
                .unwrap();
            s.persist(None, &[entry(2, 3)], None).unwrap();
        }
        let s = LogStore::open(dir.path(), &[1]).unwrap();
        assert_eq!(all_entries(&s), vec![(1, 1), (2, 3)]);
    }

    #[test]
    fn compact_and_reopen_keeps_snapshot_and_later_entries() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = LogStore::open(dir.path(), &[1, 2, 3]).unwrap();
            let ents: Vec<_> = (1..=6).map(|i| entry(i, 1 + i / 3)).collect();
            s.persist(None, &ents, Some(&hs(3, 1, 5))).unwrap();
            // Beyond commit / last index: refused.
            assert!(matches!(
                s.compact(6, vec![]),
                Err(StorageError::CompactOutOfRange { .. })
            ));
            assert!(matches!(
                s.compact(7, vec![]),
                Err(StorageError::CompactOutOfRange { .. })
            ));
            s.compact(4, b"state@4".to_vec()).unwrap();
            // At or below the snapshot: no-op.
            s.compact(3, b"older".to_vec()).unwrap();
            assert_eq!(s.snapshot().unwrap().data, b"state@4".to_vec());
        }
        let s = LogStore::open(dir.path(), &[1, 2, 3]).unwrap();
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.get_metadata().index, 4);
        assert_eq!(snap.get_metadata().term, 2);
        assert_eq!(snap.get_metadata().get_conf_state().voters, vec![1, 2, 3]);
        assert_eq!(snap.data, b"state@4".to_vec());
        assert_eq!(s.first_index(), 5);
        assert_eq!(s.last_index(), 6);
        assert_eq!(all_entries(&s), vec![(5, 2), (6, 3)]);
        assert_eq!(s.term(4).unwrap(), 2);
        assert_eq!(s.hard_state().commit, 5);
        let rs = Storage::snapshot(&s, 0, 2).unwrap();
        assert_eq!(rs.data, b"state@4".to_vec());
        assert_eq!(
            Storage::snapshot(&s, 5, 2).unwrap_err(),
            RaftError::Store(RaftStorageError::SnapshotTemporarilyUnavailable)
        );
    }

    #[test]
    fn storage_error_cases() {
        both(|s| {
            assert_eq!(
                Storage::snapshot(s, 0, 2).unwrap_err(),
                RaftError::Store(RaftStorageError::SnapshotTemporarilyUnavailable)
            );
            let ents: Vec<_> = (1..=5).map(|i| entry(i, i)).collect();
            s.persist(None, &ents, Some(&hs(5, 0, 5))).unwrap();
            s.compact(2, vec![1]).unwrap();
            let ctx = || GetEntriesContext::empty(false);
            // term: [snapshot index, last index] available.
            assert_eq!(
                s.term(1),
                Err(RaftError::Store(RaftStorageError::Compacted))
            );
            assert_eq!(s.term(2), Ok(2));
            assert_eq!(s.term(5), Ok(5));
            assert_eq!(
                s.term(6),
                Err(RaftError::Store(RaftStorageError::Unavailable))
            );
            // entries
            assert_eq!(
                s.entries(2, 4, None, ctx()),
                Err(RaftError::Store(RaftStorageError::Compacted))
            );
            assert_eq!(
                s.entries(3, 7, None, ctx()),
                Err(RaftError::Store(RaftStorageError::Unavailable))
            );
            assert_eq!(s.entries(3, 3, None, ctx()).unwrap().len(), 0);
            assert_eq!(s.entries(3, 6, None, ctx()).unwrap().len(), 3);
            // max_size: at least one entry, then as many as fit.
            let one = u64::from(entry(3, 3).compute_size());
            assert_eq!(s.entries(3, 6, Some(0), ctx()).unwrap().len(), 1);
            assert_eq!(s.entries(3, 6, Some(one * 2), ctx()).unwrap().len(), 2);
            assert_eq!(s.entries(3, 6, raft::NO_LIMIT, ctx()).unwrap().len(), 3);
            // Appending over compacted entries is refused.
            assert!(matches!(
                s.persist(None, &[entry(2, 9)], None),
                Err(StorageError::AppendCompacted { .. })
            ));
        });
    }

    #[test]
    fn applying_a_snapshot_replaces_the_log() {
        both(|s| {
            let ents: Vec<_> = (1..=3).map(|i| entry(i, 1)).collect();
            s.persist(None, &ents, Some(&hs(1, 1, 2))).unwrap();
            let mut snap = Snapshot {
                data: b"remote".to_vec().into(),
                ..Default::default()
            };
            snap.mut_metadata().index = 10;
            snap.mut_metadata().term = 4;
            snap.mut_metadata().mut_conf_state().voters = vec![1, 2];
            s.persist(Some(&snap), &[entry(11, 4)], None).unwrap();
            assert_eq!(s.first_index(), 11);
            assert_eq!(s.last_index(), 11);
            assert_eq!(s.term(10), Ok(4));
            assert_eq!(s.hard_state().commit, 10);
            assert_eq!(s.hard_state().term, 4);
            assert_eq!(s.initial_state().unwrap().conf_state.voters, vec![1, 2]);
            assert_eq!(s.snapshot().unwrap().data, b"remote".to_vec());
            // An older snapshot is refused.
            snap.mut_metadata().index = 5;
            assert!(matches!(
                s.persist(Some(&snap), &[], None),
                Err(StorageError::SnapshotOutOfDate { .. })
            ));
        });
    }

    #[test]
    fn corrupt_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, vec![0xAB; 8192]).unwrap();
        let err = LogStore::open(dir.path(), &[1]).err().unwrap();
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }

    #[test]
    fn raw_node_survives_restart() {
        use raft::{Config, RawNode};

        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let config = || {
            let c = Config {
                id: 1,
                election_tick: 10,
                heartbeat_tick: 3,
                pre_vote: true,
                check_quorum: true,
                ..Default::default()
            };
            c.validate().unwrap();
            c
        };
        fn drive(node: &mut RawNode<LogStore>, applied: &mut Vec<Vec<u8>>) {
            while node.has_ready() {
                let mut rd = node.ready();
                let store = node.store().clone();
                let snap = (rd.snapshot().get_metadata().index != 0).then(|| rd.snapshot().clone());
                let mut apply = |ents: Vec<Entry>| {
                    for e in ents {
                        if !e.data.is_empty() {
                            applied.push(e.data.to_vec());
                        }
                    }
                };
                apply(rd.take_committed_entries());
                store.persist(snap.as_ref(), rd.entries(), rd.hs()).unwrap();
                let mut light = node.advance(rd);
                if let Some(c) = light.commit_index() {
                    store.set_commit(c).unwrap();
                }
                apply(light.take_committed_entries());
                node.advance_apply();
            }
        }

        let dir = tempfile::tempdir().unwrap();
        let mut applied = Vec::new();
        {
            let store = LogStore::open(dir.path(), &[1]).unwrap();
            let mut node = RawNode::new(&config(), store, &logger).unwrap();
            node.campaign().unwrap();
            drive(&mut node, &mut applied);
            assert_eq!(node.raft.state, raft::StateRole::Leader);
            for i in 0..3 {
                node.propose(vec![], format!("cmd{i}").into_bytes())
                    .unwrap();
                drive(&mut node, &mut applied);
            }
        }
        assert_eq!(
            applied,
            vec![b"cmd0".to_vec(), b"cmd1".to_vec(), b"cmd2".to_vec()]
        );

        let store = LogStore::open(dir.path(), &[1]).unwrap();
        assert_eq!(store.hard_state().commit, 4);
        let data: Vec<Vec<u8>> = store
            .entries(1, 5, None, GetEntriesContext::empty(false))
            .unwrap()
            .into_iter()
            .filter(|e| !e.data.is_empty())
            .map(|e| e.data.to_vec())
            .collect();
        assert_eq!(data, applied);
        // The restarted node replays the committed entries and can lead again.
        let mut node = RawNode::new(&config(), store, &logger).unwrap();
        let mut replayed = Vec::new();
        drive(&mut node, &mut replayed);
        assert_eq!(replayed, applied);
        node.campaign().unwrap();
        drive(&mut node, &mut replayed);
        node.propose(vec![], b"cmd3".to_vec()).unwrap();
        drive(&mut node, &mut replayed);
        assert_eq!(replayed.last().unwrap(), b"cmd3");
    }
}
