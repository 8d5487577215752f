//! Approving a held run: an admin reviews the removals a held run listed and approves that run
//! by its id. The next run applies them only if its freshly computed plan removes nothing
//! beyond them; otherwise it is held again, naming the removals nobody approved. Pure: the
//! caller loads the held run's plan and records who approved.

use super::{HoldReason, OpKind, Plan};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What a removal does. Everything the mass-removal guard counts is here: an approval that
/// covered only accounts would let unreviewed group deletions or membership removals through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalOp {
    /// An account deactivated (disabled).
    Deactivate,
    /// An account deleted.
    Delete,
    /// A managed group deleted.
    DeleteGroup,
    /// An account removed from a group.
    RemoveMember,
}

/// One removal a plan lists, identified by what it does to which object: the source object ID
/// for accounts and groups (a renamed account is still the same removal), the
/// (case-insensitive) group and username for a membership.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Removal {
    /// What is removed.
    pub kind: RemovalOp,
    /// Source object ID (accounts and groups), or `group/username` for a membership.
    pub subject: String,
    /// Human-readable name (for messages).
    pub name: String,
}

impl Removal {
    fn key(&self) -> (RemovalOp, &str) {
        (self.kind, &self.subject)
    }
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            RemovalOp::Deactivate => write!(f, "deactivate {} ({})", self.name, self.subject),
            RemovalOp::Delete => write!(f, "delete {} ({})", self.name, self.subject),
            RemovalOp::DeleteGroup => write!(f, "delete group {} ({})", self.name, self.subject),
            RemovalOp::RemoveMember => write!(f, "remove membership {}", self.name),
        }
    }
}

/// The removals (account deactivations and deletions, group deletions, membership removals:
/// what the mass-removal guard counts) a plan lists, in plan order.
pub fn removals(plan: &Plan) -> Vec<Removal> {
    plan.ops
        .iter()
        .filter_map(|op| match &op.kind {
            OpKind::DeactivateUser {
                source_id,
                username,
                ..
            } => Some(Removal {
                kind: RemovalOp::Deactivate,
                subject: source_id.clone(),
                name: username.clone(),
            }),
            OpKind::DeleteUser {
                source_id,
                username,
                ..
            } => Some(Removal {
                kind: RemovalOp::Delete,
                subject: source_id.clone(),
                name: username.clone(),
            }),
            OpKind::DeleteGroup { source_id, name } => Some(Removal {
                kind: RemovalOp::DeleteGroup,
                subject: source_id.clone(),
                name: name.clone(),
            }),
            OpKind::RemoveMember { group, username } => Some(Removal {
                kind: RemovalOp::RemoveMember,
                subject: format!(
                    "{}/{}",
                    crate::model::name_key(group),
                    crate::model::name_key(username)
                ),
                name: format!("{username} from {group}"),
            }),
            _ => None,
        })
        .collect()
}

/// Entries named in a re-hold message; the rest are counted.
const NAMED: usize = 20;

/// Applies an approval of held run `held_run`, which listed `approved`, to a freshly computed
/// `plan`:
/// - held for a reason other than the mass-removal guard (e.g. a configuration error): left
///   held — an approval covers removals, nothing else;
/// - every removal in the plan was approved: un-held (with a warning saying so);
/// - otherwise held again ([`HoldReason::NotApproved`]), naming the removals the held run did
///   not list, so the admin reviews this run and approves it instead.
pub fn apply_approval(mut plan: Plan, held_run: i64, approved: &[Removal]) -> Plan {
    if plan.held.as_ref().is_some_and(|h| !h.is_removal_hold()) {
        return plan;
    }
    let ok: BTreeSet<(RemovalOp, &str)> = approved.iter().map(Removal::key).collect();
    let listed = removals(&plan);
    let unapproved: Vec<&Removal> = listed.iter().filter(|r| !ok.contains(&r.key())).collect();
    if unapproved.is_empty() {
        if plan.held.take().is_some() || !listed.is_empty() {
            plan.warnings.push(format!(
                "mass-removal guard: {} removal(s) applied as approved in held run {held_run}",
                listed.len()
            ));
        }
        return plan;
    }
    let mut names: Vec<String> = unapproved
        .iter()
        .take(NAMED)
        .map(|r| r.to_string())
        .collect();
    if unapproved.len() > NAMED {
        names.push(format!("… and {} more", unapproved.len() - NAMED));
    }
    plan.held = Some(HoldReason::NotApproved {
        held_run,
        unapproved: unapproved.len(),
        listed: listed.len(),
        names,
    });
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{HoldReason, Operation};

    fn op(seq: u32, kind: OpKind) -> Operation {
        Operation {
            seq,
            kind,
            reason: "left the source".into(),
        }
    }

    fn deact(seq: u32, id: &str) -> Operation {
        op(
            seq,
            OpKind::DeactivateUser {
                source_id: id.into(),
                username: format!("u-{id}"),
                target_key: None,
            },
        )
    }

    fn held_plan(ids: &[&str]) -> Plan {
        Plan {
            ops: ids
                .iter()
                .enumerate()
                .map(|(i, id)| deact(i as u32, id))
                .collect(),
            held: Some(HoldReason::Other {
                message: "held by the mass-removal guard: many".into(),
            }),
            source_complete: true,
            ..Plan::default()
        }
    }

    #[test]
    fn every_removal_approved_unholds() {
        let held = held_plan(&["a", "b", "c"]);
        let approved = removals(&held);
        // The fresh plan removes fewer (one came back): still fine.
        let p = apply_approval(held_plan(&["a", "c"]), 7, &approved);
        assert_eq!(p.held, None);
        assert!(p.warnings.iter().any(|w| w.contains("held run 7")));
        assert_eq!(p.ops.len(), 2);
    }

    #[test]
    fn an_unapproved_removal_holds_again_naming_it() {
        let approved = removals(&held_plan(&["a", "b"]));
        let p = apply_approval(held_plan(&["a", "b", "z"]), 7, &approved);
        let h = p.held.unwrap().to_string();
        assert!(
            h.contains("1 of 3 removal(s) were not approved in held run 7"),
            "{h}"
        );
        assert!(h.contains("deactivate u-z (z)"), "{h}");
        assert!(!h.contains("u-a"), "{h}");
    }

    #[test]
    fn a_deactivation_does_not_approve_a_deletion() {
        let approved = removals(&held_plan(&["a"]));
        let fresh = Plan {
            ops: vec![op(
                0,
                OpKind::DeleteUser {
                    source_id: "a".into(),
                    username: "u-a".into(),
                    target_key: None,
                },
            )],
            ..Plan::default()
        };
        let p = apply_approval(fresh, 1, &approved);
        assert!(p.held.unwrap().to_string().contains("delete u-a (a)"));
    }

    #[test]
    fn group_and_membership_removals_need_their_own_approval() {
        let approved = removals(&held_plan(&["a"]));
        let fresh = Plan {
            ops: vec![
                deact(0, "a"),
                op(
                    1,
                    OpKind::RemoveMember {
                        group: "Sales".into(),
                        username: "u-b".into(),
                    },
                ),
                op(
                    2,
                    OpKind::DeleteGroup {
                        source_id: "g1".into(),
                        name: "Sales".into(),
                    },
                ),
            ],
            ..Plan::default()
        };
        let h = apply_approval(fresh.clone(), 3, &approved)
            .held
            .expect("held again")
            .to_string();
        assert!(h.contains("remove membership u-b from Sales"), "{h}");
        assert!(h.contains("delete group Sales (g1)"), "{h}");
        // Approving the run that listed them (membership names compared case-insensitively).
        let mut listed = removals(&fresh);
        listed[1].subject = listed[1].subject.to_uppercase().to_lowercase();
        assert_eq!(apply_approval(fresh, 4, &listed).held, None);
    }

    #[test]
    fn removals_below_the_guard_are_still_checked_and_other_holds_stay() {
        let approved = removals(&held_plan(&["a"]));
        let mut fresh = held_plan(&["b"]);
        fresh.held = None;
        assert!(apply_approval(fresh, 1, &approved).held.is_some());
        let cfg = Plan {
            held: Some(HoldReason::Configuration {
                error: "bad regex".into(),
            }),
            ..Plan::default()
        };
        assert_eq!(apply_approval(cfg.clone(), 1, &approved).held, cfg.held);
        // Nothing to remove and not held: unchanged.
        let empty = Plan::default();
        assert_eq!(apply_approval(empty.clone(), 1, &approved), empty);
    }
}
