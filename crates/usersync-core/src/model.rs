//! The data usersync moves: what the source (Entra ID) says, and what a target (an Atlassian
//! product) holds. Plain data, no behaviour beyond normalisation helpers.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Lower-cases a username or group name for comparison. Atlassian products compare names
/// case-insensitively (Crowd uses `equalsIgnoreCase`), so every map keyed by a target name uses
/// this form.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// A reference to a source user's profile picture. `tag` changes whenever the picture changes
/// (Graph's photo ETag, or a SHA-256 of the bytes), so the planner can skip unchanged pictures
/// without downloading them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PhotoRef {
    /// Opaque change tag (ETag or content hash).
    pub tag: String,
}

/// A user as read from the source directory (Entra ID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceUser {
    /// Immutable object ID (Entra `id`). The only stable key: UPNs and mails change.
    pub id: String,
    /// `userPrincipalName`.
    pub upn: String,
    /// `mail`, if set.
    pub mail: Option<String>,
    /// `givenName`.
    pub given_name: Option<String>,
    /// `surname`.
    pub surname: Option<String>,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `accountEnabled`. A disabled source user is deactivated in the target.
    pub enabled: bool,
    /// `onPremisesSamAccountName` (hybrid tenants only).
    pub sam_account_name: Option<String>,
    /// `employeeId`.
    pub employee_id: Option<String>,
    /// Profile picture, if the source has one and pictures are read. `None` means "no picture".
    pub photo: Option<PhotoRef>,
}

/// A group as read from the source directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceGroup {
    /// Immutable object ID.
    pub id: String,
    /// `displayName`; becomes the target group name.
    pub display_name: String,
    /// `description`.
    pub description: Option<String>,
    /// Object IDs of direct member users.
    pub member_users: BTreeSet<String>,
    /// Object IDs of direct member groups (nesting).
    pub member_groups: BTreeSet<String>,
}

/// Everything read from the source in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSnapshot {
    /// All users in the read (before scoping).
    pub users: Vec<SourceUser>,
    /// All groups in the read.
    pub groups: Vec<SourceGroup>,
    /// True only if every page of every listing succeeded. The planner removes nothing when
    /// this is false.
    pub complete: bool,
    /// Why the read is incomplete, or other things the reader wants reported.
    pub warnings: Vec<String>,
}

/// An account as it exists in a target product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetAccount {
    /// Login name (case preserved as the product stores it).
    pub username: String,
    /// The product's immutable key for the account (Jira `key`, Confluence `userKey`,
    /// Bitbucket `id`, Crowd `key`), when it has one. Lets renames made outside usersync be
    /// followed.
    pub key: Option<String>,
    /// Full / display name.
    pub display_name: String,
    /// E-mail address.
    pub email: String,
    /// Active (can log in, consumes a licence if in a licensed group).
    pub active: bool,
    /// Names of the groups the account is a direct member of.
    pub groups: BTreeSet<String>,
}

/// A group as it exists in a target product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroup {
    /// Group name (case preserved).
    pub name: String,
}

/// Everything read from a target in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSnapshot {
    /// All accounts.
    pub accounts: Vec<TargetAccount>,
    /// All groups.
    pub groups: Vec<TargetGroup>,
}
