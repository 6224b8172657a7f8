//! The embedded store: SQLite in WAL mode, following kine's schema (one row per revision,
//! deletes as rows, a unique index on (name, prev_revision)).
//!
//! Writes go through one writer thread that owns the write connection. It takes every write
//! waiting in its queue, applies them in one transaction and commits once (group commit), then
//! answers each caller and publishes the events to watchers. A write is acknowledged only after
//! its transaction committed with `synchronous = FULL`, so a crash loses no acknowledged write.
//! Reads use a small pool of read connections, which WAL lets run beside the writer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{broadcast, oneshot};

use super::{
    Error, Event, EventType, KeyValue, RangeOptions, RangeResult, Result, Revision, Store,
    WatchStream,
};

/// How many writes one transaction takes at most.
const MAX_BATCH: usize = 512;
/// How many history rows a watcher reads from the database per query while catching up.
const REPLAY_BATCH: i64 = 1000;
/// Read connections kept open.
const READ_POOL: usize = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kine (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB
);
CREATE INDEX IF NOT EXISTS kine_name_id ON kine (name, id);
CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision ON kine (name, prev_revision);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// The embedded SQLite store.
pub struct SqliteStore {
    writes: std::sync::mpsc::Sender<WriteRequest>,
    readers: Arc<ReadPool>,
    shared: Arc<Shared>,
}

/// State the writer thread publishes for readers and watchers.
struct Shared {
    /// The revision of the last committed write.
    revision: AtomicI64,
    /// The revision history was compacted to; older revisions are gone.
    compacted: AtomicI64,
    /// Each committed batch of events, for live watchers.
    events: broadcast::Sender<Arc<Vec<Event>>>,
}

struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    /// Runs `f` on an idle read connection (opening one if none is idle). Blocking.
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = match self.idle.lock().pop() {
            Some(c) => c,
            None => open(&self.path)?,
        };
        let out = f(&conn);
        let mut idle = self.idle.lock();
        if idle.len() < READ_POOL {
            idle.push(conn);
        }
        out
    }
}

enum WriteOp {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
}

/// What a successful write answers.
enum WriteOutcome {
    Put(KeyValue),
    Deleted(KeyValue, Revision),
    Compacted,
}

struct WriteRequest {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteOutcome>>,
}

/// The exclusive upper bound, in SQLite's text order, of the keys that start with `prefix`.
fn prefix_end(prefix: &str) -> String {
    // Keys are UTF-8 paths; U+10FFFF sorts after every character a key can contain.
    let mut end = String::with_capacity(prefix.len() + 4);
    end.push_str(prefix);
    end.push(char::MAX);
    end
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(e.to_string())
}

fn open(path: &Path) -> Result<Connection> {
    private_files(path).map_err(internal)?;
    let conn = Connection::open(path).map_err(internal)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;",
    )
    .map_err(internal)?;
    Ok(conn)
}

/// The database holds every Secret: it and its WAL and SHM files are the owner's alone. SQLite
/// gives the WAL and SHM files the database file's mode, so the database is created 0600
/// before SQLite opens it; files left wider by an older version are narrowed.
fn private_files(path: &Path) -> std::io::Result<()> {
    common::files::create_private(path, b"")?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        common::files::restrict(Path::new(&name), common::files::PRIVATE_FILE)?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, e.g. `<data-dir>/state.db`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let conn = open(&path)?;
        conn.execute_batch(SCHEMA).map_err(internal)?;
        let revision: Revision = conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM kine", [], |r| r.get(0))
            .map_err(internal)?;
        let stored_rev: Option<Revision> = conn
            .query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(internal)?;
        // Compaction may remove the newest rows' predecessors but never the newest row, so
        // MAX(id) is the revision; the meta row guards the case of an emptied table.
        let revision = revision.max(stored_rev.unwrap_or(0));
        let compacted: Revision = conn
            .query_row("SELECT value FROM meta WHERE key = 'compacted'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(internal)?
            .unwrap_or(0);
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            revision: AtomicI64::new(revision),
            compacted: AtomicI64::new(compacted),
            events,
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = Writer {
            conn,
            shared: shared.clone(),
            next: revision + 1,
        };
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(internal)?;
        Ok(SqliteStore {
            writes: tx,
            readers: Arc::new(ReadPool {
                path,
                idle: Mutex::new(Vec::new()),
            }),
            shared,
        })
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome> {
        let (reply, rx) = oneshot::channel();
        self.writes
            .send(WriteRequest { op, reply })
            .map_err(|_| Error::Unavailable("the store's writer has stopped".into()))?;
        rx.await
            .map_err(|_| Error::Unavailable("the store's writer has stopped".into()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .map_err(internal)?
    }
}

fn check_revision(shared: &Shared, requested: Revision) -> Result<()> {
    let compacted = shared.compacted.load(Ordering::Acquire);
    if requested != 0 && requested < compacted {
        return Err(Error::Compacted {
            requested,
            compacted,
        });
    }
    let current = shared.revision.load(Ordering::Acquire);
    if requested > current {
        return Err(Error::FutureRevision { requested, current });
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.read(move |conn| latest(conn, &key).map(|row| row.and_then(Row::into_live)))
            .await
    }

    async fn range(&self, prefix: &str, opts: RangeOptions) -> Result<RangeResult> {
        check_revision(&self.shared, opts.revision)?;
        let revision = match opts.revision {
            0 => self.shared.revision.load(Ordering::Acquire),
            r => r,
        };
        let start = super::range_start(prefix, &opts)?;
        let end = prefix_end(prefix);
        let limit = opts.limit;
        let mut result = self
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT k.name, k.value, k.create_revision, k.id FROM kine k
                         JOIN (SELECT MAX(id) AS id FROM kine
                               WHERE name >= ?1 AND name < ?2 AND id <= ?3 GROUP BY name) m
                         ON k.id = m.id
                         WHERE k.deleted = 0 ORDER BY k.name LIMIT ?4",
                    )
                    .map_err(internal)?;
                let sql_limit = if limit == 0 { -1 } else { limit as i64 + 1 };
                let rows = stmt
                    .query_map(params![start, end, revision, sql_limit], |r| {
                        Ok(KeyValue {
                            key: r.get(0)?,
                            value: Bytes::from(r.get::<_, Vec<u8>>(1)?),
                            create_revision: r.get(2)?,
                            mod_revision: r.get(3)?,
                        })
                    })
                    .map_err(internal)?;
                let kvs = rows.collect::<Result<Vec<_>, _>>().map_err(internal)?;
                Ok(RangeResult {
                    kvs,
                    revision,
                    more: false,
                })
            })
            .await?;
        if limit != 0 && result.kvs.len() > limit {
            result.kvs.truncate(limit);
            result.more = true;
        }
        Ok(result)
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        match self
            .write(WriteOp::Create {
                key: key.to_owned(),
                value,
            })
            .await?
        {
            WriteOutcome::Put(kv) => Ok(kv),
            _ => unreachable!("create answers Put"),
        }
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        match self
            .write(WriteOp::Update {
                key: key.to_owned(),
                value,
                expected,
            })
            .await?
        {
            WriteOutcome::Put(kv) => Ok(kv),
            _ => unreachable!("update answers Put"),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)> {
        match self
            .write(WriteOp::Delete {
                key: key.to_owned(),
                expected,
            })
            .await?
        {
            WriteOutcome::Deleted(kv, rev) => Ok((kv, rev)),
            _ => unreachable!("delete answers Deleted"),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        if after < compacted {
            return Err(Error::Compacted {
                requested: after,
                compacted,
            });
        }
        // Subscribe before reading history, so nothing committed in between is missed.
        let live = self.shared.events.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let watcher = Watcher {
            prefix: prefix.to_owned(),
            end: prefix_end(prefix),
            last: after,
            readers: self.readers.clone(),
            shared: self.shared.clone(),
            tx,
        };
        tokio::spawn(watcher.run(live));
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.revision.load(Ordering::Acquire))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        check_revision(&self.shared, revision)?;
        self.write(WriteOp::Compact { revision }).await.map(|_| ())
    }
}

/// The newest row of one key.
struct Row {
    id: Revision,
    create_revision: Revision,
    deleted: bool,
    key: String,
    value: Option<Vec<u8>>,
}

impl Row {
    fn into_live(self) -> Option<KeyValue> {
        (!self.deleted).then(|| KeyValue {
            key: self.key,
            value: Bytes::from(self.value.unwrap_or_default()),
            create_revision: self.create_revision,
            mod_revision: self.id,
        })
    }
}

fn latest(conn: &Connection, key: &str) -> Result<Option<Row>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, create_revision, deleted, value FROM kine
             WHERE name = ?1 ORDER BY id DESC LIMIT 1",
        )
        .map_err(internal)?;
    stmt.query_row([key], |r| {
        Ok(Row {
            id: r.get(0)?,
            create_revision: r.get(1)?,
            deleted: r.get::<_, i64>(2)? != 0,
            key: key.to_owned(),
            value: r.get(3)?,
        })
    })
    .optional()
    .map_err(internal)
}

/// Owns the write connection; see the module docs.
struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    /// The revision the next write gets.
    next: Revision,
}

impl Writer {
    fn run(mut self, rx: std::sync::mpsc::Receiver<WriteRequest>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(req) => batch.push(req),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
    }

    fn commit_batch(&mut self, batch: Vec<WriteRequest>) {
        let start_next = self.next;
        let mut events = Vec::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        // Cached statements: parsing the SQL again for every batch showed in profiles.
        let tx_result = (|| -> rusqlite::Result<()> {
            self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            for req in &batch {
                outcomes.push(self.apply(&req.op, &mut events));
            }
            self.conn
                .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('revision', ?1)")?
                .execute([self.next - 1])?;
            self.conn.prepare_cached("COMMIT")?.execute([])?;
            Ok(())
        })();
        if let Err(e) = tx_result {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.next = start_next;
            tracing::error!(error = %e, "store commit failed");
            for req in batch {
                let _ = req.reply.send(Err(internal(&e)));
            }
            return;
        }
        self.shared.revision.store(self.next - 1, Ordering::Release);
        if !events.is_empty() {
            // No receivers is fine: nobody watches yet.
            let _ = self.shared.events.send(Arc::new(events));
        }
        for (req, outcome) in batch.into_iter().zip(outcomes) {
            let _ = req.reply.send(outcome);
        }
    }

    /// Applies one write inside the open transaction. A database error aborts the whole batch.
    fn apply(&mut self, op: &WriteOp, events: &mut Vec<Event>) -> Result<WriteOutcome> {
        match op {
            WriteOp::Create { key, value } => {
                let current = latest(&self.conn, key)?;
                let prev_revision = match &current {
                    Some(row) if !row.deleted => return Err(Error::AlreadyExists(key.clone())),
                    Some(row) => row.id,
                    None => 0,
                };
                let rev = self.insert(key, true, false, None, prev_revision, Some(value))?;
                let kv = KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: rev,
                    mod_revision: rev,
                };
                events.push(Event {
                    event_type: EventType::Put,
                    kv: kv.clone(),
                    prev: None,
                });
                Ok(WriteOutcome::Put(kv))
            }
            WriteOp::Update {
                key,
                value,
                expected,
            } => {
                let current = live(latest(&self.conn, key)?, key)?;
                if current.mod_revision != *expected {
                    return Err(Error::Conflict {
                        key: key.clone(),
                        current: Box::new(current),
                    });
                }
                let rev = self.insert(
                    key,
                    false,
                    false,
                    Some(current.create_revision),
                    current.mod_revision,
                    Some(value),
                )?;
                let kv = KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: current.create_revision,
                    mod_revision: rev,
                };
                events.push(Event {
                    event_type: EventType::Put,
                    kv: kv.clone(),
                    prev: Some(current),
                });
                Ok(WriteOutcome::Put(kv))
            }
            WriteOp::Delete { key, expected } => {
                let current = live(latest(&self.conn, key)?, key)?;
                if expected.is_some_and(|e| e != current.mod_revision) {
                    return Err(Error::Conflict {
                        key: key.clone(),
                        current: Box::new(current),
                    });
                }
                let rev = self.insert(
                    key,
                    false,
                    true,
                    Some(current.create_revision),
                    current.mod_revision,
                    None,
                )?;
                events.push(Event {
                    event_type: EventType::Delete,
                    kv: KeyValue {
                        key: key.clone(),
                        value: Bytes::new(),
                        create_revision: current.create_revision,
                        mod_revision: rev,
                    },
                    prev: Some(current.clone()),
                });
                Ok(WriteOutcome::Deleted(current, rev))
            }
            WriteOp::Compact { revision } => {
                // Drop every row superseded at or before `revision`, then the tombstones that
                // are the newest row of their key at or before it: no read at or after
                // `revision` can see any of them.
                self.conn
                    .execute(
                        "DELETE FROM kine WHERE id <= ?1 AND id < (
                             SELECT MAX(n.id) FROM kine n WHERE n.name = kine.name AND n.id <= ?1)",
                        [revision],
                    )
                    .map_err(internal)?;
                self.conn
                    .execute(
                        "DELETE FROM kine WHERE id <= ?1 AND deleted = 1",
                        [revision],
                    )
                    .map_err(internal)?;
                self.conn
                    .execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('compacted', ?1)",
                        [revision],
                    )
                    .map_err(internal)?;
                self.shared.compacted.fetch_max(*revision, Ordering::AcqRel);
                Ok(WriteOutcome::Compacted)
            }
        }
    }

    fn insert(
        &mut self,
        key: &str,
        created: bool,
        deleted: bool,
        create_revision: Option<Revision>,
        prev_revision: Revision,
        value: Option<&Bytes>,
    ) -> Result<Revision> {
        let id = self.next;
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(internal)?;
        stmt.execute(params![
            id,
            key,
            created as i64,
            deleted as i64,
            create_revision.unwrap_or(id),
            prev_revision,
            value.map(|v| v.as_ref()),
        ])
        .map_err(internal)?;
        self.next += 1;
        Ok(id)
    }
}

fn live(row: Option<Row>, key: &str) -> Result<KeyValue> {
    row.and_then(Row::into_live)
        .ok_or_else(|| Error::NotFound(key.to_owned()))
}

/// Feeds one watch: history from the database until it has caught up, then live batches.
struct Watcher {
    prefix: String,
    end: String,
    /// The revision of the last event delivered (or skipped as outside the prefix).
    last: Revision,
    readers: Arc<ReadPool>,
    shared: Arc<Shared>,
    tx: tokio::sync::mpsc::Sender<Result<Event>>,
}

impl Watcher {
    async fn run(mut self, mut live: broadcast::Receiver<Arc<Vec<Event>>>) {
        loop {
            if self.replay().await.is_err() {
                return;
            }
            loop {
                match live.recv().await {
                    Ok(batch) => {
                        for event in batch.iter() {
                            if event.revision() <= self.last {
                                continue;
                            }
                            self.last = event.revision();
                            if event.kv.key.starts_with(&self.prefix)
                                && self.tx.send(Ok(event.clone())).await.is_err()
                            {
                                return;
                            }
                        }
                    }
                    // Fell behind the live feed: catch up from the database again.
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }

    /// Sends every stored event after `last` up to the current revision. Err: the watch ended.
    async fn replay(&mut self) -> Result<(), ()> {
        loop {
            let target = self.shared.revision.load(Ordering::Acquire);
            if self.last >= target {
                return Ok(());
            }
            let compacted = self.shared.compacted.load(Ordering::Acquire);
            if self.last < compacted {
                let _ = self
                    .tx
                    .send(Err(Error::Compacted {
                        requested: self.last,
                        compacted,
                    }))
                    .await;
                return Err(());
            }
            let (prefix, end, after, pool) = (
                self.prefix.clone(),
                self.end.clone(),
                self.last,
                self.readers.clone(),
            );
            let rows =
                tokio::task::spawn_blocking(move || history(&pool, &prefix, &end, after, target))
                    .await
                    .map_err(internal)
                    .and_then(|r| r);
            match rows {
                Ok(events) => {
                    let caught_up = events.len() < REPLAY_BATCH as usize;
                    for event in events {
                        self.last = event.revision();
                        if self.tx.send(Ok(event)).await.is_err() {
                            return Err(());
                        }
                    }
                    if caught_up {
                        self.last = self.last.max(target);
                    }
                }
                Err(e) => {
                    let _ = self.tx.send(Err(e)).await;
                    return Err(());
                }
            }
        }
    }
}

/// Stored events under a prefix with revision in (after, upto], oldest first.
fn history(
    pool: &ReadPool,
    prefix: &str,
    end: &str,
    after: Revision,
    upto: Revision,
) -> Result<Vec<Event>> {
    pool.with(|conn| {
        let mut stmt = conn
            .prepare_cached(
                "SELECT k.id, k.name, k.deleted, k.create_revision, k.value, p.id, p.value, p.create_revision
                 FROM kine k LEFT JOIN kine p ON p.id = k.prev_revision AND p.deleted = 0
                 WHERE k.id > ?1 AND k.id <= ?2 AND k.name >= ?3 AND k.name < ?4
                 ORDER BY k.id LIMIT ?5",
            )
            .map_err(internal)?;
        let rows = stmt
            .query_map(params![after, upto, prefix, end, REPLAY_BATCH], |r| {
                let key: String = r.get(1)?;
                let deleted = r.get::<_, i64>(2)? != 0;
                let prev = match r.get::<_, Option<Revision>>(5)? {
                    Some(id) => Some(KeyValue {
                        key: key.clone(),
                        value: Bytes::from(r.get::<_, Option<Vec<u8>>>(6)?.unwrap_or_default()),
                        create_revision: r.get(7)?,
                        mod_revision: id,
                    }),
                    None => None,
                };
                let kv = KeyValue {
                    key,
                    value: if deleted {
                        Bytes::new()
                    } else {
                        Bytes::from(r.get::<_, Option<Vec<u8>>>(4)?.unwrap_or_default())
                    },
                    create_revision: r.get(3)?,
                    mod_revision: r.get(0)?,
                };
                let event_type = if deleted { EventType::Delete } else { EventType::Put };
                Ok(Event { event_type, kv, prev })
            })
            .map_err(internal)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(internal)
    })
}
