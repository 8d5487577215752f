//! A run as rows: one [`RunItem`] per operation subject (a user, a group, or one membership of
//! a batched add) plus one per user or group the plan did not change (unchanged, conflict,
//! skipped, target-only). The store keeps runs this way so a run of any size is written in
//! chunks and read by page; this module only converts between the plan and the rows (pure).
//!
//! Numbering: an operation's rows carry its `seq` (and `sub`, the position of the username in
//! an `add_members` batch, else 0); the other subjects follow the last operation, in the order
//! unchanged, conflicts, skipped, target-only.

use crate::plan::{AccountSpec, ConflictKind, FieldChange, OpKind, OpOutcome, Operation, Plan};
use serde::{Deserialize, Serialize};

/// What a row is about. Stored as [`ItemKind::code`] (a small integer keeps the rows short);
/// shown and filtered by the snake_case name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ItemKind {
    /// An account created.
    Create,
    /// An existing account linked (adoption, or an interrupted create confirmed).
    Adopt,
    /// Display name / e-mail updated.
    Update,
    /// Renamed (`detail.from` is the old username).
    Rename,
    /// Reactivated.
    Reactivate,
    /// Deactivated.
    Deactivate,
    /// Deleted.
    Delete,
    /// A group created.
    CreateGroup,
    /// An existing group linked.
    AdoptGroup,
    /// A managed group deleted.
    DeleteGroup,
    /// One membership added (`group` says where).
    AddMember,
    /// One membership removed.
    RemoveMember,
    /// Avatar uploaded.
    Avatar,
    /// A synced user with nothing to change.
    Unchanged,
    /// A user or group not synced because of a conflict.
    Conflict,
    /// A source user not synced (e.g. no usable username).
    Skipped,
    /// An unmanaged target account matching no source user (left alone).
    TargetOnly,
}

impl ItemKind {
    /// Every kind, in code order.
    pub const ALL: [ItemKind; 17] = [
        Self::Create,
        Self::Adopt,
        Self::Update,
        Self::Rename,
        Self::Reactivate,
        Self::Deactivate,
        Self::Delete,
        Self::CreateGroup,
        Self::AdoptGroup,
        Self::DeleteGroup,
        Self::AddMember,
        Self::RemoveMember,
        Self::Avatar,
        Self::Unchanged,
        Self::Conflict,
        Self::Skipped,
        Self::TargetOnly,
    ];

    /// The stored code (1-based position in [`ItemKind::ALL`]; never renumbered).
    pub fn code(self) -> i64 {
        Self::ALL
            .iter()
            .position(|k| *k == self)
            .map_or(0, |i| i as i64 + 1)
    }

    /// The kind of a stored code.
    pub fn from_code(code: i64) -> Option<Self> {
        usize::try_from(code - 1)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Is this a planned operation (as opposed to a subject the plan leaves alone)?
    pub fn is_op(self) -> bool {
        !matches!(
            self,
            Self::Unchanged | Self::Conflict | Self::Skipped | Self::TargetOnly
        )
    }

    /// The removal kinds: what a held run's approval covers.
    pub const REMOVALS: [ItemKind; 4] = [
        Self::Deactivate,
        Self::Delete,
        Self::DeleteGroup,
        Self::RemoveMember,
    ];
}

/// Where a row's operation got to. Stored as [`ItemStatus::code`].
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ItemStatus {
    /// Planned, not (yet) applied; every row of a simulation, and rows that are no operation.
    Pending,
    /// Its write began and no outcome was recorded (the process may have died mid-write).
    Started,
    /// Applied.
    Applied,
    /// Failed (`outcome` has the error).
    Failed,
    /// Not attempted (`outcome` says why).
    Skipped,
}

impl ItemStatus {
    /// The stored code.
    pub fn code(self) -> i64 {
        match self {
            Self::Pending => 0,
            Self::Started => 1,
            Self::Applied => 2,
            Self::Failed => 3,
            Self::Skipped => 4,
        }
    }

    /// The status of a stored code.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => Self::Pending,
            1 => Self::Started,
            2 => Self::Applied,
            3 => Self::Failed,
            4 => Self::Skipped,
            _ => return None,
        })
    }

    /// The status an outcome records.
    pub fn of(outcome: &OpOutcome) -> Self {
        match outcome {
            OpOutcome::Applied { .. } => Self::Applied,
            OpOutcome::Failed { .. } => Self::Failed,
            OpOutcome::Skipped { .. } => Self::Skipped,
        }
    }

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The parts of a row that only some kinds have; stored as compact JSON, and only when a field
/// is set (most rows have none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDetail {
    /// Create: the display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Create: the e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Rename: the old username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Update: before → after per field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// The account's target key, when the plan knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key: Option<String>,
    /// Avatar: the picture's change tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_tag: Option<String>,
    /// Skipped: the source UPN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    /// Conflict: its kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<ConflictKind>,
    /// Conflict: every source ID involved (the row's `source_id` is the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ids: Vec<String>,
    /// Add member: the batch had this many usernames (rows `sub` 0..n-1), when more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
}

impl ItemDetail {
    /// True when no field is set (nothing to store).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One row of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunItem {
    /// The operation's `seq`; for the other subjects, a number after the last operation.
    pub seq: u32,
    /// Position in an `add_members` batch (0 otherwise).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sub: u32,
    /// What it is about.
    pub kind: ItemKind,
    /// The subject: username (after the operation) or group name; the conflicting name.
    pub name: String,
    /// The group of a membership row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Source object ID, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// Why, in words an admin understands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Kind-specific details (field diffs before → after, the old name of a rename, …).
    #[serde(default, skip_serializing_if = "ItemDetail::is_empty")]
    pub detail: ItemDetail,
    /// Apply status.
    pub status: ItemStatus,
    /// The outcome, when it says more than the status (an error, a skip reason, a new key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<OpOutcome>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl RunItem {
    fn new(seq: u32, kind: ItemKind, name: &str) -> Self {
        RunItem {
            seq,
            sub: 0,
            kind,
            name: name.to_string(),
            group: None,
            source_id: None,
            reason: None,
            detail: ItemDetail::default(),
            status: ItemStatus::Pending,
            outcome: None,
        }
    }

    /// The rows of one operation: one, or one per username of an `add_members` batch.
    pub fn of_op(op: &Operation) -> Vec<RunItem> {
        let it = |kind: ItemKind, name: &str, sid: Option<&str>, detail: ItemDetail| {
            let mut r = RunItem::new(op.seq, kind, name);
            r.source_id = sid.map(str::to_string);
            r.reason = Some(op.reason.clone());
            r.detail = detail;
            vec![r]
        };
        let key = |k: &Option<String>| ItemDetail {
            target_key: k.clone(),
            ..ItemDetail::default()
        };
        match &op.kind {
            OpKind::CreateUser { source_id, account } => it(
                ItemKind::Create,
                &account.username,
                Some(source_id),
                ItemDetail {
                    display_name: Some(account.display_name.clone()),
                    email: Some(account.email.clone()),
                    ..ItemDetail::default()
                },
            ),
            OpKind::AdoptUser {
                source_id,
                username,
                target_key,
            } => it(ItemKind::Adopt, username, Some(source_id), key(target_key)),
            OpKind::AdoptGroup { source_id, name } => it(
                ItemKind::AdoptGroup,
                name,
                Some(source_id),
                ItemDetail::default(),
            ),
            OpKind::RenameUser {
                source_id,
                from,
                to,
            } => it(
                ItemKind::Rename,
                to,
                Some(source_id),
                ItemDetail {
                    from: Some(from.clone()),
                    ..ItemDetail::default()
                },
            ),
            OpKind::UpdateUser {
                source_id,
                username,
                changes,
                target_key,
            } => it(
                ItemKind::Update,
                username,
                Some(source_id),
                ItemDetail {
                    changes: changes.clone(),
                    target_key: target_key.clone(),
                    ..ItemDetail::default()
                },
            ),
            OpKind::ReactivateUser {
                source_id,
                username,
                target_key,
            } => it(
                ItemKind::Reactivate,
                username,
                Some(source_id),
                key(target_key),
            ),
            OpKind::DeactivateUser {
                source_id,
                username,
                target_key,
            } => it(
                ItemKind::Deactivate,
                username,
                Some(source_id),
                key(target_key),
            ),
            OpKind::DeleteUser {
                source_id,
                username,
                target_key,
            } => it(ItemKind::Delete, username, Some(source_id), key(target_key)),
            OpKind::CreateGroup { source_id, name } => it(
                ItemKind::CreateGroup,
                name,
                Some(source_id),
                ItemDetail::default(),
            ),
            OpKind::DeleteGroup { source_id, name } => it(
                ItemKind::DeleteGroup,
                name,
                Some(source_id),
                ItemDetail::default(),
            ),
            OpKind::AddMembers { group, usernames } => {
                let batch = (usernames.len() != 1)
                    .then(|| u32::try_from(usernames.len()).unwrap_or(u32::MAX));
                usernames
                    .iter()
                    .enumerate()
                    .map(|(i, u)| {
                        let mut r = RunItem::new(op.seq, ItemKind::AddMember, u);
                        r.sub = u32::try_from(i).unwrap_or(u32::MAX);
                        r.group = Some(group.clone());
                        r.reason = Some(op.reason.clone());
                        r.detail.batch = batch;
                        r
                    })
                    .collect()
            }
            OpKind::RemoveMember { group, username } => {
                let mut r = it(
                    ItemKind::RemoveMember,
                    username,
                    None,
                    ItemDetail::default(),
                );
                r[0].group = Some(group.clone());
                r
            }
            OpKind::SetAvatar {
                source_id,
                username,
                photo_tag,
            } => it(
                ItemKind::Avatar,
                username,
                Some(source_id),
                ItemDetail {
                    photo_tag: Some(photo_tag.clone()),
                    ..ItemDetail::default()
                },
            ),
        }
    }

    /// The operation these rows (all of one `seq`, in `sub` order) were made from; `None` for
    /// rows that are no operation or do not fit together.
    pub fn to_op(rows: &[RunItem]) -> Option<Operation> {
        let first = rows.first()?;
        let sid = || first.source_id.clone();
        let name = first.name.clone();
        let d = &first.detail;
        let kind = match first.kind {
            ItemKind::Create => OpKind::CreateUser {
                source_id: sid()?,
                account: AccountSpec {
                    username: name,
                    display_name: d.display_name.clone().unwrap_or_default(),
                    email: d.email.clone().unwrap_or_default(),
                },
            },
            ItemKind::Adopt => OpKind::AdoptUser {
                source_id: sid()?,
                username: name,
                target_key: d.target_key.clone(),
            },
            ItemKind::AdoptGroup => OpKind::AdoptGroup {
                source_id: sid()?,
                name,
            },
            ItemKind::Rename => OpKind::RenameUser {
                source_id: sid()?,
                from: d.from.clone()?,
                to: name,
            },
            ItemKind::Update => OpKind::UpdateUser {
                source_id: sid()?,
                username: name,
                changes: d.changes.clone(),
                target_key: d.target_key.clone(),
            },
            ItemKind::Reactivate => OpKind::ReactivateUser {
                source_id: sid()?,
                username: name,
                target_key: d.target_key.clone(),
            },
            ItemKind::Deactivate => OpKind::DeactivateUser {
                source_id: sid()?,
                username: name,
                target_key: d.target_key.clone(),
            },
            ItemKind::Delete => OpKind::DeleteUser {
                source_id: sid()?,
                username: name,
                target_key: d.target_key.clone(),
            },
            ItemKind::CreateGroup => OpKind::CreateGroup {
                source_id: sid()?,
                name,
            },
            ItemKind::DeleteGroup => OpKind::DeleteGroup {
                source_id: sid()?,
                name,
            },
            ItemKind::AddMember => OpKind::AddMembers {
                group: first.group.clone()?,
                usernames: rows.iter().map(|r| r.name.clone()).collect(),
            },
            ItemKind::RemoveMember => OpKind::RemoveMember {
                group: first.group.clone()?,
                username: name,
            },
            ItemKind::Avatar => OpKind::SetAvatar {
                source_id: sid()?,
                username: name,
                photo_tag: d.photo_tag.clone().unwrap_or_default(),
            },
            ItemKind::Unchanged | ItemKind::Conflict | ItemKind::Skipped | ItemKind::TargetOnly => {
                return None;
            }
        };
        Some(Operation {
            seq: first.seq,
            kind,
            reason: first.reason.clone().unwrap_or_default(),
        })
    }
}

/// Every row of a plan, in order (operations, then unchanged, conflicts, skipped,
/// target-only), made one at a time so a caller can write them in chunks without holding
/// them all.
pub fn plan_items(plan: &Plan) -> impl Iterator<Item = RunItem> + '_ {
    let base = plan
        .ops
        .iter()
        .map(|o| o.seq.saturating_add(1))
        .max()
        .unwrap_or(0);
    let unchanged = plan
        .unchanged
        .iter()
        .map(|u| RunItem::new(0, ItemKind::Unchanged, u));
    let conflicts = plan.conflicts.iter().map(|c| {
        let mut r = RunItem::new(0, ItemKind::Conflict, &c.name);
        r.source_id = c.source_ids.first().cloned();
        r.reason = Some(c.detail.clone());
        r.detail.conflict = Some(c.kind);
        if c.source_ids.len() > 1 {
            r.detail.source_ids = c.source_ids.clone();
        }
        r
    });
    let skipped = plan.skipped.iter().map(|k| {
        let mut r = RunItem::new(
            0,
            ItemKind::Skipped,
            k.username.as_deref().unwrap_or(&k.upn),
        );
        r.source_id = Some(k.source_id.clone());
        r.reason = Some(k.reason.clone());
        r.detail.upn = Some(k.upn.clone());
        r
    });
    let target_only = plan
        .target_only
        .iter()
        .map(|t| RunItem::new(0, ItemKind::TargetOnly, t));
    let others = unchanged
        .chain(conflicts)
        .chain(skipped)
        .chain(target_only)
        .zip(base..)
        .map(|(mut r, seq)| {
            r.seq = seq;
            r
        });
    plan.ops.iter().flat_map(RunItem::of_op).chain(others)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Field;

    fn op(seq: u32, kind: OpKind) -> Operation {
        Operation {
            seq,
            kind,
            reason: format!("reason {seq}"),
        }
    }

    #[test]
    fn codes_are_stable_and_round_trip() {
        // Stored in the database: never renumbered.
        assert_eq!(ItemKind::Create.code(), 1);
        assert_eq!(ItemKind::AddMember.code(), 11);
        assert_eq!(ItemKind::TargetOnly.code(), 17);
        for k in ItemKind::ALL {
            assert_eq!(ItemKind::from_code(k.code()), Some(k));
            assert_eq!(k.as_str().parse::<ItemKind>().ok(), Some(k));
        }
        assert_eq!(ItemKind::from_code(0), None);
        assert_eq!(ItemKind::from_code(18), None);
        for c in 0..5 {
            assert_eq!(ItemStatus::from_code(c).map(ItemStatus::code), Some(c));
        }
    }

    #[test]
    fn every_operation_comes_back_from_its_rows() {
        let key = Some("K1".to_string());
        let kinds = vec![
            OpKind::CreateUser {
                source_id: "s".into(),
                account: AccountSpec {
                    username: "Ann".into(),
                    display_name: "Ann A".into(),
                    email: "ann@x".into(),
                },
            },
            OpKind::AdoptUser {
                source_id: "s".into(),
                username: "ann".into(),
                target_key: key.clone(),
            },
            OpKind::AdoptGroup {
                source_id: "g".into(),
                name: "G".into(),
            },
            OpKind::RenameUser {
                source_id: "s".into(),
                from: "a".into(),
                to: "b".into(),
            },
            OpKind::UpdateUser {
                source_id: "s".into(),
                username: "ann".into(),
                changes: vec![FieldChange {
                    field: Field::Email,
                    before: "o@x".into(),
                    after: "n@x".into(),
                }],
                target_key: key.clone(),
            },
            OpKind::ReactivateUser {
                source_id: "s".into(),
                username: "ann".into(),
                target_key: None,
            },
            OpKind::DeactivateUser {
                source_id: "s".into(),
                username: "ann".into(),
                target_key: key.clone(),
            },
            OpKind::DeleteUser {
                source_id: "s".into(),
                username: "ann".into(),
                target_key: None,
            },
            OpKind::CreateGroup {
                source_id: "g".into(),
                name: "G".into(),
            },
            OpKind::DeleteGroup {
                source_id: "g".into(),
                name: "G".into(),
            },
            OpKind::AddMembers {
                group: "G".into(),
                usernames: vec!["a".into(), "b".into()],
            },
            OpKind::AddMembers {
                group: "G".into(),
                usernames: vec!["c".into()],
            },
            OpKind::RemoveMember {
                group: "G".into(),
                username: "a".into(),
            },
            OpKind::SetAvatar {
                source_id: "s".into(),
                username: "ann".into(),
                photo_tag: "t".into(),
            },
        ];
        for (i, kind) in kinds.into_iter().enumerate() {
            let o = op(i as u32, kind);
            let rows = RunItem::of_op(&o);
            assert!(rows.iter().all(|r| r.seq == o.seq && r.kind.is_op()));
            assert_eq!(RunItem::to_op(&rows), Some(o));
        }
    }

    #[test]
    fn plan_subjects_follow_the_operations() {
        let plan = Plan {
            ops: vec![op(
                0,
                OpKind::AddMembers {
                    group: "G".into(),
                    usernames: vec!["a".into(), "b".into()],
                },
            )],
            unchanged: vec!["u".into()],
            target_only: vec!["t".into()],
            ..Plan::default()
        };
        let rows: Vec<(u32, u32, ItemKind)> =
            plan_items(&plan).map(|r| (r.seq, r.sub, r.kind)).collect();
        assert_eq!(
            rows,
            vec![
                (0, 0, ItemKind::AddMember),
                (0, 1, ItemKind::AddMember),
                (1, 0, ItemKind::Unchanged),
                (2, 0, ItemKind::TargetOnly)
            ]
        );
    }
}
