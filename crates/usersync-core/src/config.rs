//! Sync settings the engine needs: how source users map to target accounts, which users are in
//! scope, and what happens to leavers. Deserialisable from the TOML config file; the
//! binary validates it on load with errors that name the field and the fix.

use serde::{Deserialize, Serialize};

/// Which source attribute becomes the target username.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UsernameSource {
    /// `userPrincipalName` (default).
    #[default]
    UserPrincipalName,
    /// `mail`.
    Mail,
    /// `onPremisesSamAccountName`.
    SamAccountName,
    /// The part of the UPN before `@`.
    UpnLocalPart,
    /// `employeeId`.
    EmployeeId,
}

/// A transform applied to the chosen attribute, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsernameTransform {
    /// Lower-case the name (Confluence rejects upper-case usernames).
    Lowercase,
    /// Drop everything from the first `@`.
    StripDomain,
    /// Turn a guest UPN `first.last_example.com#EXT#@tenant.onmicrosoft.com` into the original
    /// address `first.last@example.com`.
    GuestOriginalAddress,
}

/// How target usernames are derived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MappingSettings {
    /// Primary attribute.
    pub username_source: UsernameSource,
    /// Used when the primary attribute is empty.
    pub username_fallback: Option<UsernameSource>,
    /// Transforms, applied in order.
    pub username_transforms: Vec<UsernameTransform>,
}

impl Default for MappingSettings {
    fn default() -> Self {
        Self {
            username_source: UsernameSource::UserPrincipalName,
            username_fallback: Some(UsernameSource::Mail),
            username_transforms: vec![
                UsernameTransform::GuestOriginalAddress,
                UsernameTransform::Lowercase,
            ],
        }
    }
}

/// Selects groups by exact display name, regular expression on the display name, or object ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupSelector {
    /// Exact display name (case-insensitive).
    Name(String),
    /// Regular expression on the display name.
    Regex(String),
    /// Entra object ID.
    Id(String),
}

/// Which source users and groups are synced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ScopeSettings {
    /// When non-empty, only members of these groups (and the groups themselves) are synced.
    pub include_groups: Vec<GroupSelector>,
    /// Groups never synced; their members are excluded unless also reached via an included
    /// group that is not excluded.
    pub exclude_groups: Vec<GroupSelector>,
    /// Flatten nested groups: a group's members include the members of its member groups,
    /// transitively (cycle-safe). Needed for Jira, Confluence and Bitbucket, which cannot nest.
    pub flatten_nested: bool,
}

/// What happens to a managed account whose source user left (deleted, out of scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LeaverAction {
    /// Deactivate (keeps history, frees the licence). Default.
    #[default]
    Deactivate,
    /// Delete, after `delete_grace_days` of being deactivated.
    Delete,
    /// Leave the account as it is.
    Keep,
}

/// Adopting existing, unlinked target accounts that match a source user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AdoptMode {
    /// Never adopt: a matching unmanaged account is a conflict. Default.
    #[default]
    Never,
    /// Adopt an unmanaged account with the same username (case-insensitive).
    ByUsername,
    /// Adopt by username, else by e-mail (only when exactly one account has that e-mail).
    ByUsernameOrEmail,
}

/// The mass-removal guard: account deactivations and deletions, group deletions and
/// membership removals each have a count and a percentage limit. Independently of these
/// limits, a run that would deactivate or delete every managed account, or delete every managed
/// group (two or more), is always held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemovalGuard {
    /// Hold the run when more accounts than this would be deactivated or deleted.
    pub max_count: usize,
    /// Hold the run when more than this percentage of managed accounts would be deactivated or
    /// deleted (only checked once at least `percent_floor` accounts are affected, so a tenant
    /// of ten people can lose one).
    pub max_percent: f64,
    /// Minimum removals before the percentage applies.
    pub percent_floor: usize,
    /// Hold the run when more managed groups than this would be deleted.
    pub group_max_count: usize,
    /// Hold the run when more than this percentage of managed groups would be deleted (once at
    /// least `group_percent_floor` are).
    pub group_max_percent: f64,
    /// Minimum group deletions before `group_max_percent` applies.
    pub group_percent_floor: usize,
    /// Hold the run when more memberships than this would be removed.
    pub membership_max_count: usize,
    /// Hold the run when more than this percentage of the memberships usersync maintains
    /// would be removed (once at least `membership_percent_floor` are).
    pub membership_max_percent: f64,
    /// Minimum membership removals before `membership_max_percent` applies.
    pub membership_percent_floor: usize,
    /// Override for library callers and tests. Refused in the CLI's configuration file: an
    /// approval belongs to one reviewed run (`usersync sync --approve RUN`, see
    /// [`crate::plan::approval`]).
    pub allow_mass_removal: bool,
}

impl Default for RemovalGuard {
    fn default() -> Self {
        Self {
            max_count: 100,
            max_percent: 10.0,
            percent_floor: 5,
            group_max_count: 10,
            group_max_percent: 25.0,
            group_percent_floor: 3,
            membership_max_count: 500,
            membership_max_percent: 25.0,
            membership_percent_floor: 50,
            allow_mass_removal: false,
        }
    }
}

/// Leavers, adoption, protection and safety.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySettings {
    /// What happens to leavers. Disabled source users are always deactivated.
    pub leaver_action: LeaverAction,
    /// Days a leaver stays deactivated before `delete` removes the account.
    pub delete_grace_days: u32,
    /// Adopt existing target accounts (opt-in).
    pub adopt_existing: AdoptMode,
    /// Usernames never deactivated, deleted or removed from groups (case-insensitive).
    pub protected_accounts: Vec<String>,
    /// Groups that grant product access (licence groups). Every active synced user is put in
    /// them; a target that cannot deactivate removes leavers from them instead.
    pub access_groups: Vec<String>,
    /// Delete managed target groups whose source group is gone or out of scope.
    pub delete_groups: bool,
    /// Sync profile pictures where the target supports avatars.
    pub sync_avatars: bool,
    /// The mass-removal guard.
    pub guard: RemovalGuard,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            leaver_action: LeaverAction::Deactivate,
            delete_grace_days: 30,
            adopt_existing: AdoptMode::Never,
            protected_accounts: vec!["admin".into()],
            access_groups: vec![],
            delete_groups: true,
            sync_avatars: true,
            guard: RemovalGuard::default(),
        }
    }
}

/// All engine settings for one connector→target pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SyncSettings {
    /// Username mapping.
    pub mapping: MappingSettings,
    /// Scope.
    pub scope: ScopeSettings,
    /// Policy.
    pub policy: PolicySettings,
}
