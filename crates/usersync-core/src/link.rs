//! The link table: which target accounts and groups usersync manages, keyed by the source's
//! immutable object ID. Persisted by the store; the planner reads it, the engine's journal
//! updates it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// usersync's record of one managed target account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLink {
    /// Source object ID (the key).
    pub source_id: String,
    /// The target username as usersync last knew it.
    pub username: String,
    /// The target's immutable key, if the product has one.
    pub target_key: Option<String>,
    /// Set while a create or rename is in flight: the username usersync is writing. If the
    /// process dies mid-write, the next plan finds the account under either name, so an
    /// interrupted apply never produces a duplicate account.
    pub pending_username: Option<String>,
    /// When usersync deactivated the account (unix ms), for the delete grace period.
    pub deactivated_at_ms: Option<i64>,
    /// Change tag of the last profile picture uploaded.
    pub photo_tag: Option<String>,
}

/// usersync's record of one managed target group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLink {
    /// Source group object ID (the key).
    pub source_id: String,
    /// Target group name.
    pub name: String,
    /// Set while a create is in flight (see [`UserLink::pending_username`]).
    pub pending: bool,
}

/// All links for one connector→target pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkTable {
    /// User links by source object ID.
    pub users: BTreeMap<String, UserLink>,
    /// Group links by source object ID.
    pub groups: BTreeMap<String, GroupLink>,
}
