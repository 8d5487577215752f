//! Plan data types: operations with reasons and before→after values, and the plan itself.

use serde::{Deserialize, Serialize};

/// The account to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSpec {
    /// Target username.
    pub username: String,
    /// Display / full name.
    pub display_name: String,
    /// E-mail.
    pub email: String,
}

/// A field of a target account that usersync maintains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// Display / full name.
    DisplayName,
    /// E-mail address.
    Email,
}

/// One changed field, before → after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Which field.
    pub field: Field,
    /// Value in the target now.
    pub before: String,
    /// Value after the update.
    pub after: String,
}

/// What an operation does. Users are identified by target username as it is when the operation
/// runs (after earlier renames in the same plan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpKind {
    /// Create a managed account for a source user.
    CreateUser {
        /// Source object ID.
        source_id: String,
        /// What to create.
        account: AccountSpec,
    },
    /// Link an existing unmanaged account (adoption opt-in); no write to the target.
    AdoptUser {
        /// Source object ID.
        source_id: String,
        /// Existing target username.
        username: String,
        /// Existing target key.
        target_key: Option<String>,
    },
    /// Link an existing unmanaged target group with the same name as a source group (adoption
    /// opt-in); no write to the target.
    AdoptGroup {
        /// Source group object ID.
        source_id: String,
        /// Existing target group name.
        name: String,
    },
    /// Rename an account (UPN changed at the source).
    RenameUser {
        /// Source object ID.
        source_id: String,
        /// Current username.
        from: String,
        /// New username.
        to: String,
    },
    /// Update display name / e-mail.
    UpdateUser {
        /// Source object ID.
        source_id: String,
        /// Target username.
        username: String,
        /// Field changes.
        changes: Vec<FieldChange>,
        /// The account's immutable target key, when the target snapshot had one: products that
        /// address accounts by key (Jira) are written by it, so a username reassigned between
        /// the read and the write cannot redirect the write to another account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_key: Option<String>,
    },
    /// Reactivate a returning user.
    ReactivateUser {
        /// Source object ID.
        source_id: String,
        /// Target username.
        username: String,
        /// The account's immutable target key, when the target snapshot had one: products that
        /// address accounts by key (Jira) are written by it, so a username reassigned between
        /// the read and the write cannot redirect the write to another account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_key: Option<String>,
    },
    /// Deactivate a leaver or a user disabled at the source.
    DeactivateUser {
        /// Source object ID.
        source_id: String,
        /// Target username.
        username: String,
        /// The account's immutable target key, when the target snapshot had one: products that
        /// address accounts by key (Jira) are written by it, so a username reassigned between
        /// the read and the write cannot redirect the write to another account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_key: Option<String>,
    },
    /// Delete a leaver (policy `delete`, grace period over).
    DeleteUser {
        /// Source object ID.
        source_id: String,
        /// Target username.
        username: String,
        /// The account's immutable target key, when the target snapshot had one: products that
        /// address accounts by key (Jira) are written by it, so a username reassigned between
        /// the read and the write cannot redirect the write to another account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_key: Option<String>,
    },
    /// Create a managed group.
    CreateGroup {
        /// Source group object ID.
        source_id: String,
        /// Group name.
        name: String,
    },
    /// Delete a managed group that left the source or the scope.
    DeleteGroup {
        /// Source group object ID.
        source_id: String,
        /// Group name.
        name: String,
    },
    /// Add accounts to a group.
    AddMembers {
        /// Group name.
        group: String,
        /// Usernames (sorted).
        usernames: Vec<String>,
    },
    /// Remove an account from a group.
    RemoveMember {
        /// Group name.
        group: String,
        /// Username.
        username: String,
    },
    /// Upload the source profile picture as the account's avatar.
    SetAvatar {
        /// Source object ID.
        source_id: String,
        /// Target username.
        username: String,
        /// Change tag of the picture to upload.
        photo_tag: String,
    },
}

/// One planned operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Position in the plan (0-based); stable for a given input.
    pub seq: u32,
    /// What to do.
    #[serde(flatten)]
    pub kind: OpKind,
    /// Why, in words an admin understands.
    pub reason: String,
}

/// The result of applying one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OpOutcome {
    /// Done.
    Applied {
        /// Target key of a created account, when returned.
        #[serde(skip_serializing_if = "Option::is_none")]
        target_key: Option<String>,
    },
    /// Failed; the run went on.
    Failed {
        /// The error kind.
        kind: crate::ports::ErrorKind,
        /// The product's message.
        message: String,
    },
    /// Not attempted (the apply stopped on a systemic error, or a dependency failed).
    Skipped {
        /// Why.
        reason: String,
    },
}

/// Apply phases, in dependency order: two operations on the same user, username or group run in
/// phase order; unrelated operations overlap (the engine schedules by dependency, not by barrier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Create groups.
    CreateGroups,
    /// Adopt (link) existing accounts and groups.
    Adopt,
    /// Create accounts.
    CreateUsers,
    /// Rename accounts.
    Rename,
    /// Reactivate accounts.
    Reactivate,
    /// Update display name / e-mail.
    Update,
    /// Add memberships.
    AddMembers,
    /// Upload avatars.
    SetAvatars,
    /// Remove memberships.
    RemoveMembers,
    /// Deactivate accounts.
    Deactivate,
    /// Delete accounts.
    DeleteUsers,
    /// Delete groups.
    DeleteGroups,
}

impl OpKind {
    /// The phase this operation runs in.
    pub fn phase(&self) -> Phase {
        match self {
            OpKind::CreateGroup { .. } => Phase::CreateGroups,
            OpKind::AdoptUser { .. } | OpKind::AdoptGroup { .. } => Phase::Adopt,
            OpKind::CreateUser { .. } => Phase::CreateUsers,
            OpKind::RenameUser { .. } => Phase::Rename,
            OpKind::ReactivateUser { .. } => Phase::Reactivate,
            OpKind::UpdateUser { .. } => Phase::Update,
            OpKind::AddMembers { .. } => Phase::AddMembers,
            OpKind::SetAvatar { .. } => Phase::SetAvatars,
            OpKind::RemoveMember { .. } => Phase::RemoveMembers,
            OpKind::DeactivateUser { .. } => Phase::Deactivate,
            OpKind::DeleteUser { .. } => Phase::DeleteUsers,
            OpKind::DeleteGroup { .. } => Phase::DeleteGroups,
        }
    }

    /// The source user or group ID the operation is about, if any.
    pub fn source_id(&self) -> Option<&str> {
        match self {
            OpKind::CreateUser { source_id, .. }
            | OpKind::AdoptUser { source_id, .. }
            | OpKind::AdoptGroup { source_id, .. }
            | OpKind::RenameUser { source_id, .. }
            | OpKind::UpdateUser { source_id, .. }
            | OpKind::ReactivateUser { source_id, .. }
            | OpKind::DeactivateUser { source_id, .. }
            | OpKind::DeleteUser { source_id, .. }
            | OpKind::CreateGroup { source_id, .. }
            | OpKind::DeleteGroup { source_id, .. }
            | OpKind::SetAvatar { source_id, .. } => Some(source_id),
            OpKind::AddMembers { .. } | OpKind::RemoveMember { .. } => None,
        }
    }

    /// True for operations that are about a user account (not a group or membership).
    pub fn is_user_op(&self) -> bool {
        !matches!(
            self,
            OpKind::CreateGroup { .. }
                | OpKind::AdoptGroup { .. }
                | OpKind::DeleteGroup { .. }
                | OpKind::AddMembers { .. }
                | OpKind::RemoveMember { .. }
        )
    }

    /// The name the operation sorts by within its phase: the username (after the operation),
    /// or the group name (then the username for memberships).
    pub fn sort_name(&self) -> String {
        match self {
            OpKind::CreateUser { account, .. } => account.username.to_lowercase(),
            OpKind::AdoptUser { username, .. }
            | OpKind::UpdateUser { username, .. }
            | OpKind::ReactivateUser { username, .. }
            | OpKind::DeactivateUser { username, .. }
            | OpKind::DeleteUser { username, .. }
            | OpKind::SetAvatar { username, .. } => username.to_lowercase(),
            OpKind::RenameUser { from, .. } => from.to_lowercase(),
            OpKind::AdoptGroup { name, .. }
            | OpKind::CreateGroup { name, .. }
            | OpKind::DeleteGroup { name, .. } => name.to_lowercase(),
            OpKind::AddMembers { group, usernames } => {
                format!(
                    "{}\u{0}{}",
                    group.to_lowercase(),
                    usernames
                        .first()
                        .map(|u| u.to_lowercase())
                        .unwrap_or_default()
                )
            }
            OpKind::RemoveMember { group, username } => {
                format!("{}\u{0}{}", group.to_lowercase(), username.to_lowercase())
            }
        }
    }

    /// Is this a removal that an incomplete source read must never produce?
    pub fn is_removal(&self) -> bool {
        matches!(
            self,
            OpKind::DeactivateUser { .. }
                | OpKind::DeleteUser { .. }
                | OpKind::DeleteGroup { .. }
                | OpKind::RemoveMember { .. }
        )
    }
}

/// What kind of conflict stopped a user or group from being synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// Several source users map to the same username (case-insensitive).
    DuplicateUsername,
    /// An unmanaged target account already has the username and adoption is off.
    UnmanagedAccount,
    /// The username is held by an account usersync manages for another source user.
    ManagedByOther,
    /// A rename is impossible because an account with the new name exists.
    RenameTargetTaken,
    /// Several source groups have names equal ignoring case.
    DuplicateGroupName,
    /// An unmanaged target group has the name and adoption is off.
    UnmanagedGroup,
    /// The group name is used by another managed group or an access group.
    GroupNameTaken,
    /// The source group's name is unusable (empty).
    InvalidGroupName,
}

/// A conflict: reported, and the subject is not synced (existing accounts left untouched).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Conflict {
    /// Kind.
    pub kind: ConflictKind,
    /// The username or group name in conflict.
    pub name: String,
    /// The source user or group IDs involved (sorted).
    pub source_ids: Vec<String>,
    /// What happened and how to fix it.
    pub detail: String,
}

/// A source user that is not synced, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SkippedUser {
    /// Source object ID.
    pub source_id: String,
    /// Source UPN.
    pub upn: String,
    /// The mapped username, when one was derived.
    pub username: Option<String>,
    /// Why.
    pub reason: String,
}

/// Figures about a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCounts {
    /// Source users read.
    pub source_users: usize,
    /// Source groups read.
    pub source_groups: usize,
    /// Users in scope (synced, conflicting or skipped).
    pub users_in_scope: usize,
    /// Groups in scope.
    pub groups_in_scope: usize,
    /// Target accounts read.
    pub target_accounts: usize,
    /// Target accounts usersync manages (linked and found).
    pub managed_accounts: usize,
    /// Accounts to create.
    pub users_created: usize,
    /// Accounts to adopt.
    pub users_adopted: usize,
    /// Accounts to rename.
    pub users_renamed: usize,
    /// Accounts to update.
    pub users_updated: usize,
    /// Accounts to reactivate.
    pub users_reactivated: usize,
    /// Accounts to deactivate.
    pub users_deactivated: usize,
    /// Accounts to delete.
    pub users_deleted: usize,
    /// Users with nothing to change.
    pub users_unchanged: usize,
    /// Groups to create.
    pub groups_created: usize,
    /// Groups to adopt.
    pub groups_adopted: usize,
    /// Groups to delete.
    pub groups_deleted: usize,
    /// Memberships to add (one per user and group).
    pub memberships_added: usize,
    /// Memberships to remove.
    pub memberships_removed: usize,
    /// Avatars to upload.
    pub avatars_set: usize,
    /// Conflicts.
    pub conflicts: usize,
    /// Skipped users.
    pub skipped: usize,
    /// Unmanaged target accounts matching no source user.
    pub target_only: usize,
    /// Removals not planned because the source read was incomplete.
    pub removals_withheld: usize,
    /// Deactivations + deletions counted by the mass-removal guard.
    pub guarded_removals: usize,
}

/// What a guard limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalKind {
    /// Account deactivations and deletions.
    Accounts,
    /// Managed group deletions.
    Groups,
    /// Membership removals.
    Memberships,
}

impl RemovalKind {
    fn noun(self) -> (&'static str, &'static str) {
        match self {
            Self::Accounts => (
                "accounts would be deactivated or deleted",
                "managed accounts",
            ),
            Self::Groups => ("managed groups would be deleted", "managed groups"),
            Self::Memberships => ("memberships would be removed", "maintained memberships"),
        }
    }

    /// The config keys of this kind's limits (count, percent, floor), for messages.
    pub fn config_keys(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Accounts => ("max_count", "max_percent", "percent_floor"),
            Self::Groups => (
                "group_max_count",
                "group_max_percent",
                "group_percent_floor",
            ),
            Self::Memberships => (
                "membership_max_count",
                "membership_max_percent",
                "membership_percent_floor",
            ),
        }
    }
}

/// Which limit a guard hold crossed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "limit", rename_all = "snake_case")]
pub enum GuardLimit {
    /// More than `max` removals.
    Count {
        /// The configured maximum.
        max: usize,
    },
    /// More than `max_percent` of the base, with at least `floor` removals.
    Percent {
        /// The configured maximum percentage.
        max_percent: f64,
        /// The configured floor.
        floor: usize,
    },
    /// Every managed object (two or more) at once: always held.
    Everything,
}

/// Why a plan is held: nothing may be written until someone reviews it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HoldReason {
    /// The configuration could not be applied (e.g. a scope regex that does not compile).
    Configuration {
        /// The error, naming the field and the fix.
        error: String,
    },
    /// A mass-removal guard limit was crossed.
    Guard {
        /// What the limit counts.
        what: RemovalKind,
        /// The limit crossed (the first one, in the order count, percent, everything).
        limit: GuardLimit,
        /// Removals planned.
        count: usize,
        /// The base of the percentage (managed accounts, groups or maintained memberships).
        base: usize,
    },
    /// An approved run's fresh plan removes more than the held run listed: held again.
    NotApproved {
        /// The held run whose approval was applied.
        held_run: i64,
        /// Removals in this plan the held run did not list.
        unapproved: usize,
        /// Removals in this plan.
        listed: usize,
        /// The first unapproved removals, for the message.
        names: Vec<String>,
    },
    /// A reason recorded as text by an older version (read back from stored plans).
    Other {
        /// The reason.
        message: String,
    },
}

// The only floats are validated configuration limits (never NaN), so equality is total.
impl Eq for HoldReason {}

impl HoldReason {
    /// Whether an approval of a reviewed run may lift this hold: the guard's (and an older
    /// version's guard text), never a configuration error.
    pub fn is_removal_hold(&self) -> bool {
        match self {
            Self::Guard { .. } | Self::NotApproved { .. } => true,
            Self::Configuration { .. } => false,
            Self::Other { message } => !message.starts_with("configuration error"),
        }
    }

    /// The guard's figures as one sentence (without the advice), also used for override
    /// warnings.
    pub fn figures(&self) -> String {
        match self {
            Self::Guard {
                what,
                limit,
                count,
                base,
            } => {
                let (removed, of) = what.noun();
                let pct = if *base == 0 {
                    100.0
                } else {
                    *count as f64 * 100.0 / *base as f64
                };
                let (kc, kp, kf) = what.config_keys();
                let crossed = match limit {
                    GuardLimit::Count { max } => format!("more than {kc} = {max}"),
                    GuardLimit::Percent { max_percent, floor } => {
                        format!("more than {kp} = {max_percent}% with at least {kf} = {floor}")
                    }
                    GuardLimit::Everything => {
                        "every managed object at once, which is always held".to_string()
                    }
                };
                format!("{count} {removed} ({pct:.1}% of {base} {of}; limit crossed: {crossed})")
            }
            Self::NotApproved {
                held_run,
                unapproved,
                listed,
                ..
            } => format!(
                "{unapproved} of {listed} removal(s) were not approved in held run {held_run}"
            ),
            Self::Configuration { error } => error.clone(),
            Self::Other { message } => message.clone(),
        }
    }
}

impl std::fmt::Display for HoldReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Guard { .. } => write!(
                f,
                "held by the mass-removal guard: {}. Review the plan (`usersync runs --show \
                 <run id>`); if it is intended, approve this run with `usersync sync --approve \
                 <run id>`",
                self.figures()
            ),
            Self::NotApproved { names, .. } => write!(
                f,
                "held again: {}: {}. Review this run; if it is intended, approve it with \
                 `usersync sync --approve <this run's id>`",
                self.figures(),
                names.join("; ")
            ),
            Self::Configuration { error } => {
                write!(f, "configuration error, nothing planned: {error}")
            }
            Self::Other { message } => f.write_str(message),
        }
    }
}

/// Reads `Plan::held` as a [`HoldReason`] or, from plans stored by older versions, as text.
pub(crate) fn held_compat<'de, D>(d: D) -> Result<Option<HoldReason>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Reason(HoldReason),
        Text(String),
    }
    Ok(Option::<Either>::deserialize(d)?.map(|e| match e {
        Either::Reason(r) => r,
        Either::Text(message) => HoldReason::Other { message },
    }))
}
