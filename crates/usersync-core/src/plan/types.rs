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
    },
    /// Reactivate a returning user.
    ReactivateUser {
        /// Source object ID.
        source_id: String,
        /// Target username.
        username: String,
    },
    /// Deactivate a leaver or a user disabled at the source.
    DeactivateUser {
        /// Source object ID.
        source_id: String,
        /// Target username.
        username: String,
    },
    /// Delete a leaver (policy `delete`, grace period over).
    DeleteUser {
        /// Source object ID.
        source_id: String,
        /// Target username.
        username: String,
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
