//! The store's error type. Every message says what went wrong and what to do about it; none
//! contains a secret value or key material.

use std::path::{Path, PathBuf};

/// An error from the state store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory could not be created or secured.
    #[error(
        "cannot create data directory {}: {source} — check that its parent exists and is writable by the user running usersync",
        path.display()
    )]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database file could not be opened.
    #[error("cannot open database {}: {reason}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What went wrong, with the fix.
        reason: String,
    },
    /// Migrations could not be applied.
    #[error(
        "cannot migrate database {}: {reason} — if it was written by a newer usersync, run that version or restore a backup",
        path.display()
    )]
    Migrate {
        /// The database file (`:memory:` for in-memory stores).
        path: PathBuf,
        /// The migrator's message.
        reason: String,
    },
    /// `USERSYNC_MASTER_KEY` is set but unusable.
    #[error(
        "master key in USERSYNC_MASTER_KEY is not 32 bytes of base64 ({reason}) — generate one with `head -c 32 /dev/urandom | base64`, or unset it to use the key file in the data directory"
    )]
    MasterKeyEnv {
        /// What is wrong with it (never the value).
        reason: String,
    },
    /// The master key file is unreadable or malformed.
    #[error("master key file {}: {reason}", path.display())]
    MasterKeyFile {
        /// The key file.
        path: PathBuf,
        /// What went wrong, with the fix.
        reason: String,
    },
    /// The master key file is gone but the database holds secrets encrypted with it.
    #[error(
        "master key file {} is missing but the database holds encrypted secrets — restore the key file from backup or set USERSYNC_MASTER_KEY to the old key; if the key is lost, delete the secrets' rows and enter the secrets again",
        path.display()
    )]
    MasterKeyMissing {
        /// Where the key file was expected.
        path: PathBuf,
    },
    /// A secret failed authentication under the current master key.
    #[error(
        "secret {name:?} for connector {connector:?} cannot be decrypted: the master key changed (or the stored value was altered) — restore the previous master key (master.key or USERSYNC_MASTER_KEY) or enter the secret again"
    )]
    SecretUndecryptable {
        /// Connector name.
        connector: String,
        /// Secret name.
        name: String,
    },
    /// A secret was sealed in a format this version does not know.
    #[error(
        "secret {name:?} for connector {connector:?} uses key version {version}, which this usersync does not know — run the usersync version that wrote it"
    )]
    SecretFormat {
        /// Connector name.
        connector: String,
        /// Secret name.
        name: String,
        /// The key-version byte found.
        version: u8,
    },
    /// Something stored could not be decoded.
    #[error(
        "stored {what} is unreadable: {reason} — the database may have been edited by hand or written by an incompatible usersync version"
    )]
    Corrupt {
        /// What was being read.
        what: String,
        /// Decoder message.
        reason: String,
    },
    /// A referenced row does not exist.
    #[error("{what} does not exist")]
    NotFound {
        /// What was looked for ("run 42").
        what: String,
    },
    /// The database file exists but is empty (zero bytes): a new store there would treat every
    /// account as unmanaged, so it is never initialised silently.
    #[error(
        "database {} is empty (0 bytes) — if it was lost or truncated, restore it from a backup; to start a new store there (every existing account becomes unmanaged), run again with --init-store",
        path.display()
    )]
    EmptyDatabase {
        /// The database file.
        path: PathBuf,
    },
    /// The database file is a SQLite database written by something else.
    #[error(
        "database {} is not a usersync database (it has tables but no usersync migrations) — point data_dir at usersync's data directory, or move the file away",
        path.display()
    )]
    ForeignDatabase {
        /// The database file.
        path: PathBuf,
    },
    /// Another run holds the pair's lease.
    #[error(
        "another usersync run is in progress for {pair}: {} (owner {owner}, lease until {}) — wait for it to finish; if its process was killed, the lease expires by itself",
        run_id.map(|r| format!("run {r}")).unwrap_or_else(|| "starting".into()),
        fmt_ms(*expires_ms)
    )]
    LeaseHeld {
        /// The pair.
        pair: String,
        /// Who holds it (`host:pid:nonce`).
        owner: String,
        /// The run it is running, once started.
        run_id: Option<i64>,
        /// When the lease expires unless renewed (unix ms).
        expires_ms: i64,
    },
    /// This process's lease was taken over (it expired and another owner acquired it), so its
    /// writes are refused (fencing).
    #[error(
        "the lease on {pair} (token {token}) was lost — another process took over after it expired; this run stops writing"
    )]
    LeaseLost {
        /// The pair.
        pair: String,
        /// The token this process held.
        token: i64,
    },
    /// A caller passed an unusable argument.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The database is locked by another process for longer than the busy timeout.
    #[error(
        "database is locked while {context} — is another usersync process using the same data directory? ({source})"
    )]
    Busy {
        /// What the store was doing.
        context: &'static str,
        /// The driver error.
        source: sqlx::Error,
    },
    /// Any other database error.
    #[error("database error while {context}: {source}")]
    Database {
        /// What the store was doing.
        context: &'static str,
        /// The driver error.
        source: sqlx::Error,
    },
    /// A background task failed (panicked or was cancelled).
    #[error("internal error while {context}: {reason}")]
    Internal {
        /// What the store was doing.
        context: &'static str,
        /// The join error.
        reason: String,
    },
}

/// A unix-ms instant as RFC 3339 (UTC), for messages.
fn fmt_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

impl StoreError {
    /// Wraps a driver error with what the store was doing, recognising "database is locked".
    pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| {
            let busy = source
                .as_database_error()
                .and_then(|e| e.code())
                .and_then(|c| c.parse::<i32>().ok())
                .is_some_and(|c| matches!(c & 0xff, 5 | 6));
            if busy {
                StoreError::Busy { context, source }
            } else {
                StoreError::Database { context, source }
            }
        }
    }

    /// Builds an [`StoreError::Open`] from a driver error on connect.
    pub(crate) fn open(path: &Path, err: &sqlx::Error) -> StoreError {
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.to_string());
        let reason = match code.as_deref() {
            Some("14") => format!(
                "{err} — the file or its directory is not accessible: check the data directory's owner and permissions"
            ),
            Some("8") => format!("{err} — the file is read-only: check its owner and permissions"),
            Some("26") => format!(
                "{err} — the file is not a SQLite database: point --data-dir at usersync's data directory"
            ),
            Some("11") => format!("{err} — the database is corrupt: restore it from a backup"),
            Some("5") => format!(
                "{err} — the database is locked: is another usersync process using the same data directory?"
            ),
            _ => match err {
                sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                    format!("{io} — permission denied: check the data directory's owner")
                }
                _ => err.to_string(),
            },
        };
        StoreError::Open {
            path: path.to_path_buf(),
            reason,
        }
    }

    /// Builds a [`StoreError::Corrupt`].
    pub(crate) fn corrupt(what: impl Into<String>, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
