//! usersync's state store: connectors and their settings (secrets encrypted at rest), the link
//! table, per-connector source sync state (Graph delta links and the last complete snapshot),
//! and runs: a summary on the run row and one row per operation subject, which the journal
//! updates with each operation's apply status (see `runs.rs`: chunked writes, paged reads,
//! retention).
//!
//! One SQLite file, `<data_dir>/usersync.db`, in WAL mode with foreign keys on, migrated at open
//! from `migrations/sqlite/`. The SQL sticks to what PostgreSQL also accepts (`$n`
//! placeholders, `ON CONFLICT … DO UPDATE`, `RETURNING`), except `BEGIN IMMEDIATE` for write
//! transactions and the `PRAGMA`s SQLite is opened with.
//!
//! Crash consistency: every journal step ([`StoreJournal`]) is its own short transaction,
//! committed before the call returns, so a process killed at any point leaves the links either
//! before or after that step, never in between; a create or rename in flight is visible as a
//! pending link, which lets the next plan find the account under either name. The database
//! runs with `synchronous = NORMAL`: in WAL mode that is safe against a killed process; a power
//! cut may lose the last few committed steps but never corrupts the file.

mod crypto;
mod error;
mod journal;
mod runs;
mod target_state;

pub use crypto::{MASTER_KEY_ENV, MasterKey};
pub use error::StoreError;
pub use journal::StoreJournal;
pub use runs::{CHUNK_ROWS, ItemFilter, Retention, RunView};

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row as _, SqlitePool};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use usersync_core::link::{GroupLink, LinkTable, UserLink};
use usersync_core::plan::{OpOutcome, Operation};
use usersync_core::ports::SourceSyncState;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "usersync.db";
/// File name of the master key inside the data directory.
pub const KEY_FILE: &str = "master.key";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Milliseconds since the Unix epoch, for bookkeeping timestamps.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The state store. Cheap to clone (shares one connection pool).
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    key: Arc<MasterKey>,
    /// Serialises this process's write transactions (SQLite has one writer at a time anyway;
    /// queuing here avoids busy-timeout errors under the engine's concurrent apply).
    write_lock: Arc<tokio::sync::Mutex<()>>,
    /// Database path for messages (`:memory:` for in-memory stores).
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A connector (one source→target pair) and its non-secret settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorRecord {
    /// Unique name; also the pair name used for links and runs.
    pub name: String,
    /// Connector kind (e.g. `"entra-jira"`).
    pub kind: String,
    /// Settings as given to [`Store::upsert_connector`].
    pub settings: serde_json::Value,
    /// When first stored (unix ms).
    pub created_ms: i64,
    /// When last changed (unix ms).
    pub updated_ms: i64,
}

pub use usersync_core::run::{RunMode, RunStatus};

/// The status of one operation in a run.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum OpStatus {
    /// Its write began and no outcome was recorded (the process may have died mid-write).
    Started,
    /// Applied.
    Applied,
    /// Failed.
    Failed,
    /// Not attempted.
    Skipped,
}

/// Parses a stored enum name, reporting an unknown value as corrupt data.
fn parse_stored<T: FromStr>(what: &'static str, s: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|_| StoreError::corrupt(what, format!("unknown value {s:?}")))
}

impl OpStatus {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The status an outcome records.
    pub fn of(outcome: &OpOutcome) -> Self {
        match outcome {
            OpOutcome::Applied { .. } => OpStatus::Applied,
            OpOutcome::Failed { .. } => OpStatus::Failed,
            OpOutcome::Skipped { .. } => OpStatus::Skipped,
        }
    }
}

/// A run, without its plan, report and operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Run ID.
    pub id: i64,
    /// Pair (connector) name.
    pub pair: String,
    /// Simulate or sync.
    pub mode: RunMode,
    /// Status.
    pub status: RunStatus,
    /// Start (unix ms).
    pub started_ms: i64,
    /// End (unix ms), once finished or marked interrupted.
    pub finished_ms: Option<i64>,
    /// Why it failed, for a run that ended before a report could be made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The process that ran it (`host:pid:nonce`), for runs started under a lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The approval this run applied, if it was started with `--approve`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// An admin's approval of a held run's removals, recorded on the run that applied them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The held run whose listed removals were approved.
    pub held_run: i64,
    /// Who approved (`--approved-by`, else the OS user).
    pub approved_by: String,
    /// When (unix ms).
    pub approved_ms: i64,
}

/// A pair's lease, as held by this process: proof that no other run of the pair is in
/// progress until `expires_ms`. `token` is the fencing token (it grows on each acquisition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The connector–target pair.
    pub pair: String,
    /// The holder (`host:pid:nonce`).
    pub owner: String,
    /// Fencing token of this acquisition.
    pub token: i64,
    /// Expiry (unix ms) unless renewed.
    pub expires_ms: i64,
}

/// One operation's record in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOpRecord {
    /// The operation's `seq` in the plan.
    pub seq: u32,
    /// The operation.
    pub op: Operation,
    /// Where it got to.
    pub status: OpStatus,
    /// The outcome, once recorded.
    pub outcome: Option<OpOutcome>,
    /// When its write began (unix ms), if the journal saw it begin.
    pub started_ms: Option<i64>,
    /// When its outcome was recorded (unix ms).
    pub finished_ms: Option<i64>,
}

/// A run with everything recorded about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The summary.
    pub summary: RunSummary,
    /// The plan document of a run recorded before runs were stored as rows.
    pub plan: Option<serde_json::Value>,
    /// The report document of a run recorded before runs were stored as rows.
    pub report: Option<serde_json::Value>,
    /// Per-operation records of the operations the journal saw, by `seq`.
    pub ops: Vec<RunOpRecord>,
}

/// Figures about a stored source state, for status pages and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStateInfo {
    /// Bytes stored for the snapshot (compressed).
    pub stored_bytes: i64,
    /// Bytes of the snapshot's JSON before compression.
    pub raw_bytes: i64,
    /// When saved (unix ms).
    pub saved_ms: i64,
}

const SNAPSHOT_ZLIB: &str = "json+zlib";
const SNAPSHOT_NONE: &str = "none";

impl Store {
    /// Opens (creating if needed) `<data_dir>/usersync.db` in WAL mode with foreign keys on and
    /// a busy timeout, and applies pending migrations. Creates `data_dir` (mode 0700) if
    /// missing. The master key comes from `USERSYNC_MASTER_KEY` (base64 of 32 bytes) when set,
    /// else from `<data_dir>/master.key` (32 raw bytes, created with mode 0600 on first open).
    ///
    /// Refuses a database file that exists but is empty ([`StoreError::EmptyDatabase`]; see
    /// [`Store::initialise`]) or that holds another application's tables
    /// ([`StoreError::ForeignDatabase`]). A missing file is a new store.
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Self::open_inner(data_dir, Self::env_key()?, false).await
    }

    /// Like [`Store::open`], but an existing empty database file is initialised as a new
    /// store (the admin said so: `--init-store`). A foreign database is still refused.
    pub async fn initialise(data_dir: &Path) -> Result<Store, StoreError> {
        Self::open_inner(data_dir, Self::env_key()?, true).await
    }

    /// [`Store::initialise`] with the master key given.
    pub async fn initialise_with_key(data_dir: &Path, key: MasterKey) -> Result<Store, StoreError> {
        Self::open_inner(data_dir, Some(key), true).await
    }

    fn env_key() -> Result<Option<MasterKey>, StoreError> {
        let env_key = match std::env::var(MASTER_KEY_ENV) {
            Ok(v) => Some(MasterKey::from_base64(&v)?),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(StoreError::MasterKeyEnv {
                    reason: "not valid UTF-8".into(),
                });
            }
        };
        Ok(env_key)
    }

    /// Like [`Store::open`] but with the master key given, ignoring the environment and the
    /// key file (for tests, and for callers that fetch the key from elsewhere).
    pub async fn open_with_key(data_dir: &Path, key: MasterKey) -> Result<Store, StoreError> {
        Self::open_inner(data_dir, Some(key), false).await
    }

    async fn open_inner(
        data_dir: &Path,
        key: Option<MasterKey>,
        initialise: bool,
    ) -> Result<Store, StoreError> {
        create_data_dir(data_dir)?;
        let path = data_dir.join(DB_FILE);
        // An empty file is not a new store: it is a lost or truncated one (a new store would
        // make every account unmanaged). Checked before SQLite writes its header into it.
        let len = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len())
        };
        let wal = data_dir.join(format!("{DB_FILE}-wal"));
        if !initialise && len(&path) == Some(0) && len(&wal).unwrap_or(0) == 0 {
            return Err(StoreError::EmptyDatabase { path });
        }
        precreate_db_file(&path)?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::open(&path, &e))?;
        refuse_foreign(&pool, &path).await?;
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::Migrate {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let key = match key {
            Some(k) => k,
            None => {
                let key_path = data_dir.join(KEY_FILE);
                match MasterKey::read_file(&key_path)? {
                    Some(k) => k,
                    None => {
                        let secrets: i64 = sqlx::query("SELECT COUNT(*) FROM connector_secrets")
                            .fetch_one(&pool)
                            .await
                            .and_then(|r| r.try_get(0))
                            .map_err(StoreError::db("counting secrets"))?;
                        if secrets > 0 {
                            return Err(StoreError::MasterKeyMissing { path: key_path });
                        }
                        let k = MasterKey::generate();
                        k.write_new_file(&key_path)?;
                        tracing::info!(path = %key_path.display(), "created a new master key file; back it up with the database");
                        k
                    }
                }
            }
        };
        tracing::debug!(path = %path.display(), "opened state store");
        Ok(Store {
            pool,
            key: Arc::new(key),
            write_lock: Arc::default(),
            path,
        })
    }

    /// An in-memory store with a random master key, for tests.
    pub async fn open_in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(":memory:");
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| StoreError::open(&path, &e))?
            .foreign_keys(true);
        // One connection that never closes: each SQLite in-memory connection is its own database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::open(&path, &e))?;
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::Migrate {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Store {
            pool,
            key: Arc::new(MasterKey::generate()),
            write_lock: Arc::default(),
            path,
        })
    }

    /// Closes the pool, checkpointing the WAL. Dropping the store without closing is safe too.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The database path (`:memory:` for in-memory stores).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Begins a write transaction, holding this process's write lock for its duration.
    /// `BEGIN IMMEDIATE` takes SQLite's write lock up front, so a read-then-write transaction
    /// cannot fail half-way on a lock upgrade (PostgreSQL: plain `BEGIN`).
    pub(crate) async fn write_tx(&self, context: &'static str) -> Result<WriteTx, StoreError> {
        let guard = Arc::clone(&self.write_lock).lock_owned().await;
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::db(context))?;
        Ok(WriteTx { tx, _guard: guard })
    }

    // ---- connectors & secrets -------------------------------------------------------------

    /// Creates or replaces a connector's kind and settings. Settings must not contain secrets;
    /// use [`Store::put_secret`] for those.
    pub async fn upsert_connector(
        &self,
        name: &str,
        kind: &str,
        settings: &serde_json::Value,
    ) -> Result<(), StoreError> {
        if name.is_empty() {
            return Err(StoreError::Invalid(
                "connector name must not be empty".into(),
            ));
        }
        let now = now_ms();
        let _guard = self.write_lock.lock().await;
        sqlx::query(
            "INSERT INTO connectors (name, kind, settings, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, settings = excluded.settings, updated_ms = excluded.updated_ms",
        )
        .bind(name)
        .bind(kind)
        .bind(settings.to_string())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(StoreError::db("saving a connector"))?;
        Ok(())
    }

    /// All connectors, by name.
    pub async fn connectors(&self) -> Result<Vec<ConnectorRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, kind, settings, created_ms, updated_ms FROM connectors ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db("listing connectors"))?;
        rows.iter()
            .map(|r| {
                let name: String = r
                    .try_get("name")
                    .map_err(StoreError::db("reading connectors"))?;
                let settings: String = r
                    .try_get("settings")
                    .map_err(StoreError::db("reading connectors"))?;
                let settings = serde_json::from_str(&settings).map_err(|e| {
                    StoreError::corrupt(format!("settings of connector {name:?}"), e)
                })?;
                Ok(ConnectorRecord {
                    kind: r
                        .try_get("kind")
                        .map_err(StoreError::db("reading connectors"))?,
                    created_ms: r
                        .try_get("created_ms")
                        .map_err(StoreError::db("reading connectors"))?,
                    updated_ms: r
                        .try_get("updated_ms")
                        .map_err(StoreError::db("reading connectors"))?,
                    settings,
                    name,
                })
            })
            .collect()
    }

    /// Stores a secret for a connector, encrypted with the master key (AES-256-GCM, random
    /// nonce, connector and name bound as associated data). Replaces any previous value.
    pub async fn put_secret(
        &self,
        connector: &str,
        name: &str,
        secret: &str,
    ) -> Result<(), StoreError> {
        let sealed = crypto::seal(&self.key, connector, name, secret);
        let _guard = self.write_lock.lock().await;
        sqlx::query(
            "INSERT INTO connector_secrets (connector, name, sealed, updated_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (connector, name) DO UPDATE SET sealed = excluded.sealed, updated_ms = excluded.updated_ms",
        )
        .bind(connector)
        .bind(name)
        .bind(sealed)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(StoreError::db("saving a secret"))?;
        Ok(())
    }

    /// Reads and decrypts a secret; `None` if it was never stored.
    pub async fn get_secret(
        &self,
        connector: &str,
        name: &str,
    ) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT sealed FROM connector_secrets WHERE connector = $1 AND name = $2")
                .bind(connector)
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::db("reading a secret"))?;
        let Some(row) = row else { return Ok(None) };
        let sealed: Vec<u8> = row
            .try_get("sealed")
            .map_err(StoreError::db("reading a secret"))?;
        crypto::open(&self.key, connector, name, &sealed).map(Some)
    }

    /// Deletes a secret; returns whether one existed.
    pub async fn delete_secret(&self, connector: &str, name: &str) -> Result<bool, StoreError> {
        let _guard = self.write_lock.lock().await;
        let done = sqlx::query("DELETE FROM connector_secrets WHERE connector = $1 AND name = $2")
            .bind(connector)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("deleting a secret"))?;
        Ok(done.rows_affected() > 0)
    }

    // ---- links ---------------------------------------------------------------------------

    /// The link table of a pair.
    pub async fn links(&self, pair: &str) -> Result<LinkTable, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::db("reading links"))?;
        let mut links = LinkTable::default();
        // One row of JSON instead of 300k rows: the driver's per-row cost dominates otherwise
        // (about 10x slower). PostgreSQL: json_agg(json_build_array(...)).
        let users: Option<String> = sqlx::query(
            "SELECT json_group_array(json_array(source_id, username, target_key, pending_username,
                                                deactivated_at_ms, photo_tag))
             FROM user_links WHERE pair = $1",
        )
        .bind(pair)
        .fetch_one(&mut *conn)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(StoreError::db("reading links"))?;
        type UserRow = (
            String,
            String,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<String>,
        );
        let users: Vec<UserRow> = serde_json::from_str(users.as_deref().unwrap_or("[]"))
            .map_err(|e| StoreError::corrupt(format!("links of {pair:?}"), e))?;
        for (source_id, username, target_key, pending_username, deactivated_at_ms, photo_tag) in
            users
        {
            links.users.insert(
                source_id.clone(),
                UserLink {
                    source_id,
                    username,
                    target_key,
                    pending_username,
                    deactivated_at_ms,
                    photo_tag,
                },
            );
        }
        let groups =
            sqlx::query("SELECT source_id, name, pending FROM group_links WHERE pair = $1")
                .bind(pair)
                .fetch_all(&mut *conn)
                .await
                .map_err(StoreError::db("reading links"))?;
        for r in &groups {
            let link = group_link_from_row(r)?;
            links.groups.insert(link.source_id.clone(), link);
        }
        Ok(links)
    }

    /// A journal for one apply of `pair` in run `run_id`. Each `before`/`after` is its own
    /// committed transaction that updates the links and the run's per-operation record;
    /// `now_ms` stamps deactivations.
    pub fn journal(&self, pair: &str, run_id: i64, now_ms: i64) -> StoreJournal {
        StoreJournal::new(self.clone(), pair.to_string(), run_id, now_ms)
    }

    // ---- source sync state ---------------------------------------------------------------

    /// The saved sync state of a source connector, if any.
    pub async fn source_state(
        &self,
        connector: &str,
    ) -> Result<Option<SourceSyncState>, StoreError> {
        let row = sqlx::query(
            "SELECT cursor, snapshot_encoding, snapshot FROM source_state WHERE connector = $1",
        )
        .bind(connector)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::db("reading source sync state"))?;
        let Some(row) = row else { return Ok(None) };
        let what = format!("source sync state of connector {connector:?}");
        let cursor: String = row
            .try_get("cursor")
            .map_err(StoreError::db("reading source sync state"))?;
        let cursor =
            serde_json::from_str(&cursor).map_err(|e| StoreError::corrupt(what.clone(), e))?;
        let encoding: String = row
            .try_get("snapshot_encoding")
            .map_err(StoreError::db("reading source sync state"))?;
        let blob: Option<Vec<u8>> = row
            .try_get("snapshot")
            .map_err(StoreError::db("reading source sync state"))?;
        let snapshot = match (encoding.as_str(), blob) {
            (SNAPSHOT_NONE, _) | (_, None) => None,
            (SNAPSHOT_ZLIB, Some(blob)) => {
                let what2 = what.clone();
                // Decoded as a stream: the JSON (several times the blob) is never held whole.
                let snap = tokio::task::spawn_blocking(move || {
                    let json = std::io::BufReader::with_capacity(
                        1 << 16,
                        flate2::read::ZlibDecoder::new(blob.as_slice()),
                    );
                    serde_json::from_reader(json)
                        .map(Arc::new)
                        .map_err(|e| StoreError::corrupt(what2, e))
                })
                .await
                .map_err(|e| StoreError::Internal {
                    context: "decoding source sync state",
                    reason: e.to_string(),
                })??;
                Some(snap)
            }
            (other, Some(_)) => {
                return Err(StoreError::corrupt(
                    what,
                    format!("unknown encoding {other:?}"),
                ));
            }
        };
        Ok(Some(SourceSyncState { cursor, snapshot }))
    }

    /// Saves a source connector's sync state, replacing the previous one atomically (one
    /// statement). The snapshot is serialised straight into a zlib stream (never one whole
    /// JSON string in memory).
    pub async fn save_source_state(
        &self,
        connector: &str,
        state: &SourceSyncState,
    ) -> Result<(), StoreError> {
        let cursor = state.cursor.to_string();
        let (encoding, blob, raw) = match &state.snapshot {
            None => (SNAPSHOT_NONE, None, None),
            Some(snapshot) => {
                // Shared, not copied: the run plans from the same snapshot.
                let snapshot = Arc::clone(snapshot);
                let (blob, raw) = tokio::task::spawn_blocking(move || encode_snapshot(&snapshot))
                    .await
                    .map_err(|e| StoreError::Internal {
                        context: "encoding source sync state",
                        reason: e.to_string(),
                    })??;
                (SNAPSHOT_ZLIB, Some(blob), Some(raw))
            }
        };
        let _guard = self.write_lock.lock().await;
        sqlx::query(
            "INSERT INTO source_state (connector, cursor, snapshot_encoding, snapshot, snapshot_raw_bytes, saved_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (connector) DO UPDATE SET cursor = excluded.cursor,
                snapshot_encoding = excluded.snapshot_encoding, snapshot = excluded.snapshot,
                snapshot_raw_bytes = excluded.snapshot_raw_bytes, saved_ms = excluded.saved_ms",
        )
        .bind(connector)
        .bind(cursor)
        .bind(encoding)
        .bind(blob)
        .bind(raw)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(StoreError::db("saving source sync state"))?;
        Ok(())
    }

    /// Sizes of a stored source state, without decoding it.
    pub async fn source_state_info(
        &self,
        connector: &str,
    ) -> Result<Option<SourceStateInfo>, StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(LENGTH(snapshot), 0) AS stored, COALESCE(snapshot_raw_bytes, 0) AS raw, saved_ms
             FROM source_state WHERE connector = $1",
        )
        .bind(connector)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::db("reading source sync state"))?;
        row.map(|r| {
            Ok(SourceStateInfo {
                stored_bytes: r
                    .try_get("stored")
                    .map_err(StoreError::db("reading source sync state"))?,
                raw_bytes: r
                    .try_get("raw")
                    .map_err(StoreError::db("reading source sync state"))?,
                saved_ms: r
                    .try_get("saved_ms")
                    .map_err(StoreError::db("reading source sync state"))?,
            })
        })
        .transpose()
    }

    /// Forgets a source connector's sync state, so the next read is a full read.
    pub async fn clear_source_state(&self, connector: &str) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        sqlx::query("DELETE FROM source_state WHERE connector = $1")
            .bind(connector)
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("clearing source sync state"))?;
        Ok(())
    }

    // ---- runs ----------------------------------------------------------------------------

    /// Records the start of a run; returns its ID.
    pub async fn start_run(
        &self,
        pair: &str,
        mode: RunMode,
        started_ms: i64,
    ) -> Result<i64, StoreError> {
        let _guard = self.write_lock.lock().await;
        let row = sqlx::query("INSERT INTO runs (pair, mode, status, started_ms) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(pair)
            .bind(mode.as_str())
            .bind(RunStatus::Running.as_str())
            .bind(started_ms)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::db("starting a run"))?;
        row.try_get("id").map_err(StoreError::db("starting a run"))
    }

    // ---- leases --------------------------------------------------------------------------

    /// Takes the pair's lease for `ttl_ms` from `now_ms`, unless another owner holds a lease
    /// that has not expired ([`StoreError::LeaseHeld`], naming its run). Each acquisition
    /// increments the fencing token. The same owner re-acquiring is refused too: one run per
    /// pair at a time.
    pub async fn acquire_lease(
        &self,
        pair: &str,
        owner: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<Lease, StoreError> {
        const CTX: &str = "acquiring a lease";
        let mut w = self.write_tx(CTX).await?;
        let held =
            sqlx::query("SELECT owner, token, expires_ms, run_id FROM leases WHERE pair = $1")
                .bind(pair)
                .fetch_optional(&mut *w.tx)
                .await
                .map_err(StoreError::db(CTX))?;
        let token = match held {
            Some(r) => {
                let e = || StoreError::db(CTX);
                let expires_ms: i64 = r.try_get("expires_ms").map_err(e())?;
                if expires_ms > now_ms {
                    return Err(StoreError::LeaseHeld {
                        pair: pair.to_string(),
                        owner: r.try_get("owner").map_err(e())?,
                        run_id: r.try_get("run_id").map_err(e())?,
                        expires_ms,
                    });
                }
                r.try_get::<i64, _>("token").map_err(e())? + 1
            }
            None => 1,
        };
        let expires_ms = now_ms.saturating_add(ttl_ms);
        sqlx::query(
            "INSERT INTO leases (pair, owner, token, acquired_ms, expires_ms, run_id) VALUES ($1, $2, $3, $4, $5, NULL)
             ON CONFLICT (pair) DO UPDATE SET owner = excluded.owner, token = excluded.token,
                acquired_ms = excluded.acquired_ms, expires_ms = excluded.expires_ms, run_id = NULL",
        )
        .bind(pair)
        .bind(owner)
        .bind(token)
        .bind(now_ms)
        .bind(expires_ms)
        .execute(&mut *w.tx)
        .await
        .map_err(StoreError::db(CTX))?;
        w.tx.commit().await.map_err(StoreError::db(CTX))?;
        Ok(Lease {
            pair: pair.to_string(),
            owner: owner.to_string(),
            token,
            expires_ms,
        })
    }

    /// Extends a held lease to `now_ms + ttl_ms`. [`StoreError::LeaseLost`] when another owner
    /// has acquired it since (the token moved on).
    pub async fn renew_lease(
        &self,
        lease: &Lease,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<Lease, StoreError> {
        let expires_ms = now_ms.saturating_add(ttl_ms);
        let _guard = self.write_lock.lock().await;
        let done = sqlx::query("UPDATE leases SET expires_ms = $1 WHERE pair = $2 AND token = $3")
            .bind(expires_ms)
            .bind(&lease.pair)
            .bind(lease.token)
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("renewing a lease"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::LeaseLost {
                pair: lease.pair.clone(),
                token: lease.token,
            });
        }
        Ok(Lease {
            expires_ms,
            ..lease.clone()
        })
    }

    /// Gives a lease up (the pair is free at once). A lease already taken over is left alone.
    pub async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        sqlx::query("UPDATE leases SET expires_ms = 0 WHERE pair = $1 AND token = $2")
            .bind(&lease.pair)
            .bind(lease.token)
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("releasing a lease"))?;
        Ok(())
    }

    /// Records the start of a run under `lease` (fenced: refused with
    /// [`StoreError::LeaseLost`] if the lease was taken over); returns its ID. The lease then
    /// names the run, so a refused second run can say which run is in progress.
    pub async fn start_leased_run(
        &self,
        lease: &Lease,
        mode: RunMode,
        started_ms: i64,
    ) -> Result<i64, StoreError> {
        const CTX: &str = "starting a run";
        let mut w = self.write_tx(CTX).await?;
        let row = sqlx::query(
            "INSERT INTO runs (pair, mode, status, started_ms, owner, lease_token) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(&lease.pair)
        .bind(mode.as_str())
        .bind(RunStatus::Running.as_str())
        .bind(started_ms)
        .bind(&lease.owner)
        .bind(lease.token)
        .fetch_one(&mut *w.tx)
        .await
        .map_err(StoreError::db(CTX))?;
        let id: i64 = row.try_get("id").map_err(StoreError::db(CTX))?;
        let done = sqlx::query("UPDATE leases SET run_id = $1 WHERE pair = $2 AND token = $3")
            .bind(id)
            .bind(&lease.pair)
            .bind(lease.token)
            .execute(&mut *w.tx)
            .await
            .map_err(StoreError::db(CTX))?;
        if done.rows_affected() == 0 {
            // Rolled back on drop: no run row without its lease.
            return Err(StoreError::LeaseLost {
                pair: lease.pair.clone(),
                token: lease.token,
            });
        }
        w.tx.commit().await.map_err(StoreError::db(CTX))?;
        Ok(id)
    }

    /// Ends a run that failed before a report could be made, keeping the reason.
    pub async fn fail_run(
        &self,
        run_id: i64,
        error: &str,
        finished_ms: i64,
    ) -> Result<(), StoreError> {
        self.end_run(run_id, RunStatus::Failed, None, Some(error), finished_ms)
            .await
    }

    /// Records on `run_id` that it applies the removals held run `held_run` listed, approved
    /// by `approved_by` at `approved_ms` (the audit trail of `--approve`).
    pub async fn record_approval(
        &self,
        run_id: i64,
        held_run: i64,
        approved_by: &str,
        approved_ms: i64,
    ) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        let done = sqlx::query(
            "UPDATE runs SET approved_run = $1, approved_by = $2, approved_ms = $3 WHERE id = $4",
        )
        .bind(held_run)
        .bind(approved_by)
        .bind(approved_ms)
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(StoreError::db("recording an approval"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: format!("run {run_id}"),
            });
        }
        Ok(())
    }

    async fn end_run(
        &self,
        run_id: i64,
        status: RunStatus,
        summary: Option<&usersync_core::report::ReportSummary>,
        error: Option<&str>,
        finished_ms: i64,
    ) -> Result<(), StoreError> {
        const CTX: &str = "finishing a run";
        if status == RunStatus::Running {
            return Err(StoreError::Invalid(
                "finish_run needs a final status, not `running`".into(),
            ));
        }
        let mut w = self.write_tx(CTX).await?;
        let row = sqlx::query(
            "SELECT r.pair, r.lease_token, l.token AS current FROM runs r LEFT JOIN leases l ON l.pair = r.pair WHERE r.id = $1",
        )
        .bind(run_id)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(StoreError::db(CTX))?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                what: format!("run {run_id}"),
            });
        };
        let e = || StoreError::db(CTX);
        let token: Option<i64> = row.try_get("lease_token").map_err(e())?;
        let current: Option<i64> = row.try_get("current").map_err(e())?;
        // Fencing: only the lease's current holder may write the run's outcome.
        if let Some(token) = token
            && current != Some(token)
        {
            return Err(StoreError::LeaseLost {
                pair: row.try_get("pair").map_err(e())?,
                token,
            });
        }
        sqlx::query(
            "UPDATE runs SET status = $1, summary = COALESCE($2, summary), error = $3, finished_ms = $4 WHERE id = $5",
        )
        .bind(status.as_str())
        .bind(
            summary
                .map(|s| {
                    serde_json::to_string(s).map_err(|e| {
                        StoreError::Invalid(format!("a run summary cannot be serialised: {e}"))
                    })
                })
                .transpose()?,
        )
        .bind(error)
        .bind(finished_ms)
        .bind(run_id)
        .execute(&mut *w.tx)
        .await
        .map_err(StoreError::db(CTX))?;
        w.tx.commit().await.map_err(StoreError::db(CTX))?;
        Ok(())
    }

    /// The latest runs, newest first, of one pair or of all.
    pub async fn runs(
        &self,
        pair: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, pair, mode, status, started_ms, finished_ms, error, owner, approved_run, approved_by, approved_ms FROM runs
             WHERE ($1 IS NULL OR pair = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(pair)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db("listing runs"))?;
        rows.iter().map(run_summary_from_row).collect()
    }

    /// One run with its per-operation results (the operations the journal recorded), and
    /// for runs recorded before rows, their plan and report documents. Loads everything: for
    /// tests and small runs; views page with [`Store::run_view`] and [`Store::run_items`].
    pub async fn run(&self, run_id: i64) -> Result<Option<RunRecord>, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::db("reading a run"))?;
        let row = sqlx::query("SELECT id, pair, mode, status, started_ms, finished_ms, error, owner, approved_run, approved_by, approved_ms, plan, report FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(StoreError::db("reading a run"))?;
        let Some(row) = row else { return Ok(None) };
        let summary = run_summary_from_row(&row)?;
        let json = |col: &str| -> Result<Option<serde_json::Value>, StoreError> {
            let text: Option<String> = row.try_get(col).map_err(StoreError::db("reading a run"))?;
            text.map(|t| {
                serde_json::from_str(&t)
                    .map_err(|e| StoreError::corrupt(format!("{col} of run {run_id}"), e))
            })
            .transpose()
        };
        let plan = json("plan")?;
        let report = json("report")?;
        let op_rows = sqlx::query(
            "SELECT seq, op, status, outcome, started_ms, finished_ms FROM run_ops WHERE run_id = $1 ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::db("reading a run's operations"))?;
        let ops = op_rows
            .iter()
            .map(|r| {
                let err = StoreError::db("reading a run's operations");
                let seq: i64 = r.try_get("seq").map_err(err)?;
                let what = || format!("operation {seq} of run {run_id}");
                let op: String = r
                    .try_get("op")
                    .map_err(StoreError::db("reading a run's operations"))?;
                let status: String = r
                    .try_get("status")
                    .map_err(StoreError::db("reading a run's operations"))?;
                let outcome: Option<String> = r
                    .try_get("outcome")
                    .map_err(StoreError::db("reading a run's operations"))?;
                Ok(RunOpRecord {
                    seq: u32::try_from(seq).map_err(|e| StoreError::corrupt(what(), e))?,
                    op: serde_json::from_str(&op).map_err(|e| StoreError::corrupt(what(), e))?,
                    status: parse_stored("operation status", &status)?,
                    outcome: outcome
                        .map(|o| {
                            serde_json::from_str(&o).map_err(|e| StoreError::corrupt(what(), e))
                        })
                        .transpose()?,
                    started_ms: r
                        .try_get("started_ms")
                        .map_err(StoreError::db("reading a run's operations"))?,
                    finished_ms: r
                        .try_get("finished_ms")
                        .map_err(StoreError::db("reading a run's operations"))?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        drop(conn);
        let ops = if ops.is_empty() {
            self.journaled_ops(run_id).await?
        } else {
            ops
        };
        Ok(Some(RunRecord {
            summary,
            plan,
            report,
            ops,
        }))
    }

    /// Marks runs still `running` whose owner is gone as `interrupted`: those whose lease has
    /// expired or moved on (and those started without a lease). A run whose owner still holds
    /// its lease is left alone, so reading the history during a live run is harmless. Safe to
    /// call at any time; returns how many runs were marked (and logs it once).
    pub async fn mark_interrupted_runs(&self) -> Result<u64, StoreError> {
        self.mark_interrupted_runs_at(now_ms()).await
    }

    /// [`Store::mark_interrupted_runs`] with the clock given (for tests).
    pub async fn mark_interrupted_runs_at(&self, now_ms: i64) -> Result<u64, StoreError> {
        let _guard = self.write_lock.lock().await;
        let done = sqlx::query(
            "UPDATE runs SET status = $1, finished_ms = $2 WHERE status = $3
             AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.pair = runs.pair
                             AND l.token = runs.lease_token AND l.expires_ms > $2)",
        )
        .bind(RunStatus::Interrupted.as_str())
        .bind(now_ms)
        .bind(RunStatus::Running.as_str())
        .execute(&self.pool)
        .await
        .map_err(StoreError::db("marking interrupted runs"))?;
        let n = done.rows_affected();
        if n > 0 {
            tracing::warn!(
                runs = n,
                "marked runs whose process stopped (lease expired) as interrupted"
            );
        }
        Ok(n)
    }
}

/// Refuses a SQLite file that has tables but no usersync migrations table: some other
/// application's database, which migrating would graft usersync's tables onto.
async fn refuse_foreign(pool: &SqlitePool, path: &Path) -> Result<(), StoreError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| StoreError::open(path, &e))?;
    if !names.is_empty() && !names.iter().any(|n| n == "_sqlx_migrations") {
        return Err(StoreError::ForeignDatabase {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// A write transaction plus the process-wide write lock.
pub(crate) struct WriteTx {
    pub(crate) tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

fn create_data_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| StoreError::DataDir {
        path: dir.to_path_buf(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(dir)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %dir.display(),
                "data directory is accessible to other users; run `chmod 700` on it"
            );
        }
    }
    Ok(())
}

/// Creates the database file with mode 0600 (SQLite would use the umask, typically 0644);
/// SQLite gives its WAL and shared-memory files the same mode.
fn precreate_db_file(path: &Path) -> Result<(), StoreError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(StoreError::Open {
            path: path.to_path_buf(),
            reason: format!("{e} — permission denied: check the data directory's owner"),
        }),
        Err(e) => Err(StoreError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Counts bytes passing through to the inner writer.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: std::io::Write> std::io::Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Serialises a snapshot straight into a zlib stream; returns the blob and the JSON size.
fn encode_snapshot(
    snapshot: &usersync_core::model::SourceSnapshot,
) -> Result<(Vec<u8>, i64), StoreError> {
    let encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut writer = Counting {
        inner: std::io::BufWriter::with_capacity(1 << 16, encoder),
        count: 0,
    };
    let fail = |e: &dyn std::fmt::Display| StoreError::Internal {
        context: "encoding source sync state",
        reason: e.to_string(),
    };
    serde_json::to_writer(&mut writer, snapshot).map_err(|e| fail(&e))?;
    writer.flush().map_err(|e| fail(&e))?;
    let raw = i64::try_from(writer.count).unwrap_or(i64::MAX);
    let encoder = writer
        .inner
        .into_inner()
        .map_err(|e| fail(&e.error().to_string()))?;
    let blob = encoder.finish().map_err(|e| fail(&e))?;
    Ok((blob, raw))
}

pub(crate) fn user_link_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<UserLink, StoreError> {
    let e = || StoreError::db("reading links");
    Ok(UserLink {
        source_id: r.try_get("source_id").map_err(e())?,
        username: r.try_get("username").map_err(e())?,
        target_key: r.try_get("target_key").map_err(e())?,
        pending_username: r.try_get("pending_username").map_err(e())?,
        deactivated_at_ms: r.try_get("deactivated_at_ms").map_err(e())?,
        photo_tag: r.try_get("photo_tag").map_err(e())?,
    })
}

pub(crate) fn group_link_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<GroupLink, StoreError> {
    let e = || StoreError::db("reading links");
    Ok(GroupLink {
        source_id: r.try_get("source_id").map_err(e())?,
        name: r.try_get("name").map_err(e())?,
        pending: r.try_get("pending").map_err(e())?,
    })
}

pub(crate) fn run_summary_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<RunSummary, StoreError> {
    let e = || StoreError::db("reading runs");
    let mode: String = r.try_get("mode").map_err(e())?;
    let status: String = r.try_get("status").map_err(e())?;
    let approved_run: Option<i64> = r.try_get("approved_run").map_err(e())?;
    let approval = match approved_run {
        Some(held_run) => Some(Approval {
            held_run,
            approved_by: r
                .try_get::<Option<String>, _>("approved_by")
                .map_err(e())?
                .unwrap_or_default(),
            approved_ms: r
                .try_get::<Option<i64>, _>("approved_ms")
                .map_err(e())?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(RunSummary {
        id: r.try_get("id").map_err(e())?,
        pair: r.try_get("pair").map_err(e())?,
        mode: parse_stored("run mode", &mode)?,
        status: parse_stored("run status", &status)?,
        started_ms: r.try_get("started_ms").map_err(e())?,
        finished_ms: r.try_get("finished_ms").map_err(e())?,
        error: r.try_get("error").map_err(e())?,
        owner: r.try_get("owner").map_err(e())?,
        approval,
    })
}
