//! The traits the engine drives: a source directory (Entra ID) and a target directory (an
//! Atlassian product), plus the journal through which the engine records what it did. Adapters
//! live in `usersync-connectors` and `usersync-store`; this crate never does I/O itself.

use crate::link::LinkTable;
use crate::model::{SourceSnapshot, TargetAccount, TargetSnapshot};
use crate::plan::{AccountSpec, FieldChange, OpOutcome, Operation};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a source read starts from and returns: opaque incremental state (Graph delta links),
/// owned by the connector, persisted by the store between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSyncState {
    /// Connector-specific cursor (e.g. Graph `@odata.deltaLink`s and reconcile timestamps).
    pub cursor: serde_json::Value,
    /// The last complete snapshot, which a delta read patches. `None` forces a full read.
    /// Shared with [`SourceRead::snapshot`], so a run holds one copy of the tenant, not two.
    #[serde(with = "shared_snapshot")]
    pub snapshot: Option<Arc<SourceSnapshot>>,
}

/// Serde for `Option<Arc<SourceSnapshot>>` as a plain optional snapshot (no `rc` feature).
mod shared_snapshot {
    use super::SourceSnapshot;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::sync::Arc;

    pub(super) fn serialize<S: Serializer>(
        v: &Option<Arc<SourceSnapshot>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.as_deref().serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Arc<SourceSnapshot>>, D::Error> {
        Ok(Option::<SourceSnapshot>::deserialize(d)?.map(Arc::new))
    }
}

/// Result of reading a source.
#[derive(Debug, Clone)]
pub struct SourceRead {
    /// The full (possibly delta-patched) snapshot. `complete == false` if any page failed.
    pub snapshot: Arc<SourceSnapshot>,
    /// State to persist for the next run. Only saved when the snapshot is complete.
    pub next_state: SourceSyncState,
    /// How the read went (full or delta, requests made), for the report.
    pub stats: ReadStats,
}

/// Why a source read was full rather than incremental.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum FullReason {
    /// Nothing usable was saved (first read), or the mode keeps no delta state.
    #[default]
    Plain,
    /// The configuration asked for it (`force_full`, `sync --full`).
    Forced,
    /// What the saved state was read with (endpoint, scope, pictures, selected properties)
    /// differs from the configuration now.
    ConfigChanged,
    /// The periodic full reconcile was due.
    PeriodicReconcile,
    /// The service said the saved delta state expired or was reset.
    DeltaExpired,
    /// The service rejected the saved delta link.
    DeltaInvalid,
}

impl FullReason {
    /// The text in brackets after "full", if any.
    fn note(self) -> Option<&'static str> {
        match self {
            FullReason::Plain => None,
            FullReason::Forced => Some("forced"),
            FullReason::ConfigChanged => Some("configuration changed"),
            FullReason::PeriodicReconcile => Some("periodic reconcile"),
            FullReason::DeltaExpired => Some("delta state expired"),
            FullReason::DeltaInvalid => Some("delta state invalid"),
        }
    }

    const ALL: [FullReason; 6] = [
        FullReason::Plain,
        FullReason::Forced,
        FullReason::ConfigChanged,
        FullReason::PeriodicReconcile,
        FullReason::DeltaExpired,
        FullReason::DeltaInvalid,
    ];
}

/// How a source read was done ([`ReadStats::mode`]). Serialized as the text reports have always
/// carried (`"full"`, `"delta"`, `"full (delta state expired)"`, `"full (forced) (scoped
/// groups)"`, …), so reports stored before this type existed still load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadMode {
    /// Everything was read.
    Full(FullReason),
    /// Only changes since the saved delta state were read and patched into the saved snapshot.
    Delta,
    /// Only the configured groups and their members were read (always in full).
    Scoped(FullReason),
}

impl Default for ReadMode {
    fn default() -> Self {
        ReadMode::Full(FullReason::Plain)
    }
}

impl ReadMode {
    /// True for reads that did not start from saved delta state.
    pub fn is_full(self) -> bool {
        !matches!(self, ReadMode::Delta)
    }
}

impl std::fmt::Display for ReadMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (reason, scoped) = match *self {
            ReadMode::Delta => return f.write_str("delta"),
            ReadMode::Full(r) => (r, false),
            ReadMode::Scoped(r) => (r, true),
        };
        f.write_str("full")?;
        if let Some(n) = reason.note() {
            write!(f, " ({n})")?;
        }
        if scoped {
            f.write_str(" (scoped groups)")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ReadMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "delta" {
            return Ok(ReadMode::Delta);
        }
        let (rest, scoped) = match s.strip_suffix(" (scoped groups)") {
            Some(r) => (r, true),
            None => (s, false),
        };
        for r in FullReason::ALL {
            let m = if scoped {
                ReadMode::Scoped(r)
            } else {
                ReadMode::Full(r)
            };
            let text = match r.note() {
                None => "full".to_string(),
                Some(n) => format!("full ({n})"),
            };
            if rest == text {
                return Ok(m);
            }
        }
        Err(format!(
            "unknown source read mode '{s}' (expected \"delta\", \"full\" or \"full (reason)\")"
        ))
    }
}

impl Serialize for ReadMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ReadMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Figures about one source read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadStats {
    /// Full (and why) or delta; text in the report (e.g. `"full (delta state expired)"`).
    pub mode: ReadMode,
    /// HTTP requests made.
    pub requests: u64,
    /// Requests answered with 429 and retried.
    pub throttled: u64,
}

/// Classification of connector errors, so the engine can tell per-item failures from systemic
/// ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Credentials rejected (401). Systemic.
    Auth,
    /// Authenticated but lacks a permission (403). Systemic for reads; during an apply the
    /// engine fails only the item unless several writes in a row are refused (see
    /// `engine::FORBIDDEN_STREAK_STOPS`).
    Forbidden,
    /// Host unreachable, TLS failure, timeouts after retries. Systemic.
    Unreachable,
    /// Still throttled after the retry budget. Systemic.
    Throttled,
    /// The item does not exist.
    NotFound,
    /// The item already exists / conflicts.
    Conflict,
    /// The product rejected the input (validation).
    Invalid,
    /// Licence limit reached (Confluence 402, Bitbucket 403 on create).
    LicenceFull,
    /// The product does not support the operation.
    Unsupported,
    /// Anything else (5xx after retries, unexpected payloads).
    Other,
}

impl ErrorKind {
    /// Systemic errors stop an apply: carrying on would fail every remaining item.
    pub fn is_systemic(self) -> bool {
        matches!(
            self,
            ErrorKind::Auth | ErrorKind::Forbidden | ErrorKind::Unreachable | ErrorKind::Throttled
        )
    }
}

/// An error from a connector, with a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
pub struct ConnectorError {
    /// Classification.
    pub kind: ErrorKind,
    /// Human message, including the product's own error text and the fix where known.
    pub message: String,
    /// HTTP status, when there was one.
    pub status: Option<u16>,
}

impl ConnectorError {
    /// Builds an error.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: None,
        }
    }
}

/// A source directory (Entra ID over Graph).
#[async_trait]
pub trait SourceDirectory: Send + Sync {
    /// Reads users, groups and memberships, incrementally from `state` where possible.
    /// Must set `snapshot.complete = false` (never return a silently partial snapshot) when any
    /// page failed.
    async fn read(&self, state: Option<SourceSyncState>) -> Result<SourceRead, ConnectorError>;

    /// Downloads a user's profile picture, validated as JPEG or PNG. `Ok(None)` when the user
    /// has none.
    async fn photo(&self, source_id: &str) -> Result<Option<Photo>, ConnectorError>;
}

/// A validated profile picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    /// `image/jpeg` or `image/png`.
    pub content_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Change tag (matches the user's [`crate::model::PhotoRef::tag`]).
    pub tag: String,
}

/// What a target product can do over REST. The planner plans within these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetCapabilities {
    /// Product name for reports ("Jira Data Center").
    pub product: String,
    /// Can set an account inactive / active. Without it, deactivation falls back to removing
    /// the account from every managed and access group.
    pub deactivate: bool,
    /// Can rename an account in place. Without it, a changed username keeps the old login name
    /// and only display name and e-mail follow (reported).
    pub rename: bool,
    /// Can delete accounts.
    pub delete_user: bool,
    /// Can set avatars.
    pub avatars: bool,
    /// Can add many users to a group in one request.
    pub batch_membership: bool,
    /// Usernames must be lower-case (Confluence).
    pub lowercase_usernames_only: bool,
    /// Maximum concurrent write requests the engine should issue.
    pub max_concurrency: usize,
}

/// Result of creating an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// The product's immutable key for the new account, if it has one.
    pub key: Option<String>,
}

/// The account a write is meant for: its username and, when the target snapshot had one, its
/// immutable key. Products that can address accounts by key are written by it (see
/// [`TargetDirectory::set_active_ref`]), so a username reassigned between the read and the write
/// makes the write fail as "not found" instead of landing on the new holder of the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountRef<'a> {
    /// Username as the plan saw it.
    pub username: &'a str,
    /// Target key as the plan saw it.
    pub key: Option<&'a str>,
}

/// A target directory (an Atlassian product).
#[async_trait]
pub trait TargetDirectory: Send + Sync {
    /// What this product supports.
    fn capabilities(&self) -> TargetCapabilities;
    /// Reads all accounts, groups and memberships. Complete or an error, never partial.
    async fn read(&self) -> Result<TargetSnapshot, ConnectorError>;
    /// Creates an account (active, with the given groups not yet applied).
    async fn create_user(&self, spec: &AccountSpec) -> Result<Created, ConnectorError>;
    /// Changes display name and/or e-mail.
    async fn update_user(
        &self,
        username: &str,
        changes: &[FieldChange],
    ) -> Result<(), ConnectorError>;
    /// Renames an account (only called when `capabilities().rename`).
    async fn rename_user(&self, from: &str, to: &str) -> Result<(), ConnectorError>;
    /// Sets the account active or inactive (only called when `capabilities().deactivate`).
    async fn set_active(&self, username: &str, active: bool) -> Result<(), ConnectorError>;
    /// Deletes an account.
    async fn delete_user(&self, username: &str) -> Result<(), ConnectorError>;
    /// Changes display name and/or e-mail of the account `account` names. Products that
    /// address accounts by key override this to write by `account.key`; the default writes by
    /// username.
    async fn update_user_ref(
        &self,
        account: AccountRef<'_>,
        changes: &[FieldChange],
    ) -> Result<(), ConnectorError> {
        self.update_user(account.username, changes).await
    }
    /// Sets the account active or inactive, by key where the product allows it (override);
    /// the default writes by username.
    async fn set_active_ref(
        &self,
        account: AccountRef<'_>,
        active: bool,
    ) -> Result<(), ConnectorError> {
        self.set_active(account.username, active).await
    }
    /// Deletes an account, by key where the product allows it (override); the default deletes
    /// by username.
    async fn delete_user_ref(&self, account: AccountRef<'_>) -> Result<(), ConnectorError> {
        self.delete_user(account.username).await
    }
    /// Creates a group.
    async fn create_group(&self, name: &str) -> Result<(), ConnectorError>;
    /// Deletes a group.
    async fn delete_group(&self, name: &str) -> Result<(), ConnectorError>;
    /// Adds accounts to a group (one request when `batch_membership`, else one per user).
    async fn add_members(&self, group: &str, usernames: &[String]) -> Result<(), ConnectorError>;
    /// Removes an account from a group.
    async fn remove_member(&self, group: &str, username: &str) -> Result<(), ConnectorError>;
    /// Sets an account's avatar (only called when `capabilities().avatars`).
    async fn set_avatar(&self, username: &str, photo: &Photo) -> Result<(), ConnectorError>;

    /// True when [`TargetDirectory::read_account`] and [`TargetDirectory::group_exists`] are
    /// implemented, so a run may read only what changed (an incremental run) instead of the
    /// whole directory. The default (false) makes every run a full read.
    fn supports_targeted_reads(&self) -> bool {
        false
    }
    /// Reads one account by username (case-insensitive, as the products match names), with
    /// its direct groups. `Ok(None)` when no account has that name. The default answers
    /// `Unsupported`.
    async fn read_account(&self, username: &str) -> Result<Option<TargetAccount>, ConnectorError> {
        let _ = username;
        Err(ConnectorError::new(
            ErrorKind::Unsupported,
            "this target cannot read a single account",
        ))
    }
    /// Whether a group of that name exists (one request). The default answers `Unsupported`.
    async fn group_exists(&self, name: &str) -> Result<bool, ConnectorError> {
        let _ = name;
        Err(ConnectorError::new(
            ErrorKind::Unsupported,
            "this target cannot read a single group",
        ))
    }
    /// Reads several accounts by username, `max_concurrency` at a time: the accounts found
    /// (an absent name is simply missing from the result).
    async fn read_accounts(
        &self,
        usernames: &[String],
    ) -> Result<Vec<TargetAccount>, ConnectorError> {
        use futures::StreamExt;
        let limit = self.capabilities().max_concurrency.max(1);
        let found: Vec<Result<Option<TargetAccount>, ConnectorError>> =
            futures::stream::iter(usernames.iter().cloned())
                .map(|u| async move { self.read_account(&u).await })
                .buffered(limit)
                .collect()
                .await;
        let mut out = Vec::new();
        for r in found {
            if let Some(a) = r? {
                out.push(a);
            }
        }
        Ok(out)
    }
}

/// Where the engine records intents and results during an apply, so that an apply killed at
/// any point leaves a consistent store and the next run converges. The store implements it;
/// tests use [`crate::engine::MemoryJournal`].
#[async_trait]
pub trait ApplyJournal: Send + Sync {
    /// Called before an operation's write (records pending links).
    async fn before(&self, op: &Operation) -> Result<(), JournalError>;
    /// Called after an operation (confirms or clears links, stores the outcome).
    async fn after(&self, op: &Operation, outcome: &OpOutcome) -> Result<(), JournalError>;
    /// The link table as it stands now.
    async fn links(&self) -> Result<LinkTable, JournalError>;
}

/// The journal (usersync's own state store) could not record an operation. Its own type, not a
/// [`ConnectorError`]: it says nothing about the target, has no [`ErrorKind`] to classify, and
/// is always systemic — the engine stops the apply on the first one, because a write whose
/// intent or result was not recorded could be repeated or lost by the next run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JournalError {
    /// What failed, for the operator (the store's own error text, secrets never included).
    pub message: String,
}

impl JournalError {
    /// Builds a journal error.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod read_mode_tests {
    use super::*;

    #[test]
    fn read_mode_keeps_the_stored_text() {
        // Every text reports have carried so far loads, and writes back unchanged.
        for text in [
            "full",
            "delta",
            "full (forced)",
            "full (configuration changed)",
            "full (periodic reconcile)",
            "full (delta state expired)",
            "full (delta state invalid)",
            "full (scoped groups)",
            "full (forced) (scoped groups)",
            "full (periodic reconcile) (scoped groups)",
        ] {
            let json = format!(r#"{{"mode":"{text}","requests":3,"throttled":0}}"#);
            let rs: ReadStats = serde_json::from_str(&json).unwrap();
            assert_eq!(rs.mode.to_string(), text);
            assert_eq!(serde_json::to_string(&rs).unwrap(), json);
        }
        assert_eq!(
            "full (delta state expired)".parse::<ReadMode>(),
            Ok(ReadMode::Full(FullReason::DeltaExpired))
        );
        assert!(!ReadMode::Delta.is_full());
        let err =
            serde_json::from_str::<ReadStats>(r#"{"mode":"sideways","requests":0,"throttled":0}"#)
                .unwrap_err();
        assert!(err.to_string().contains("sideways"), "{err}");
    }
}
