//! Approving a held run: an admin reviews the removals a held run listed and approves that run
//! by its id. The next run applies them only if its freshly computed plan removes nothing
//! beyond them; otherwise it is held again, naming the removals nobody approved. Pure: the
//! caller loads the held run's plan and records who approved.

use super::{OpKind, Plan};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How an account is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalKind {
    /// Deactivated (disabled).
    Deactivate,
    /// Deleted.
    Delete,
}

/// One removal a plan lists, identified by what it does to which source user (the username is
/// for messages only: a renamed account is still the same removal).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Removal {
    /// Deactivate or delete.
    pub kind: RemovalKind,
    /// Source object ID of the account's user.
    pub source_id: String,
    /// Target username (for messages).
    pub username: String,
}

impl Removal {
    fn key(&self) -> (RemovalKind, &str) {
        (self.kind, &self.source_id)
    }
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = match self.kind {
            RemovalKind::Deactivate => "deactivate",
            RemovalKind::Delete => "delete",
        };
        write!(f, "{verb} {} ({})", self.username, self.source_id)
    }
}

/// The removals (account deactivations and deletions: what the mass-removal guard counts) a
/// plan lists, in plan order.
pub fn removals(plan: &Plan) -> Vec<Removal> {
    plan.ops
        .iter()
        .filter_map(|op| match &op.kind {
            OpKind::DeactivateUser {
                source_id,
                username,
            } => Some(Removal {
                kind: RemovalKind::Deactivate,
                source_id: source_id.clone(),
                username: username.clone(),
            }),
            OpKind::DeleteUser {
                source_id,
                username,
            } => Some(Removal {
                kind: RemovalKind::Delete,
                source_id: source_id.clone(),
                username: username.clone(),
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
/// - otherwise held again, naming the removals the held run did not list, so the admin reviews
///   this run and approves it instead.
pub fn apply_approval(mut plan: Plan, held_run: i64, approved: &[Removal]) -> Plan {
    if plan.held.as_deref().is_some_and(|h| !is_guard_hold(h)) {
        return plan;
    }
    let ok: BTreeSet<(RemovalKind, &str)> = approved.iter().map(Removal::key).collect();
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
    plan.held = Some(format!(
        "held again: {} of {} removal(s) were not approved in held run {held_run}: {}. Review \
         this run; if it is intended, approve it with `usersync sync --approve <this run's id>`",
        unapproved.len(),
        listed.len(),
        names.join("; ")
    ));
    plan
}

/// Whether a hold is the mass-removal guard's (which an approval may lift). Holds are text
/// today; other holds (a configuration error) start with "configuration error".
// When `Plan.held` becomes a `HoldReason` enum this is a `matches!` on the guard's variant.
fn is_guard_hold(reason: &str) -> bool {
    !reason.starts_with("configuration error")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Operation;

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
            held: Some("held by the mass-removal guard: many".into()),
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
        let h = p.held.unwrap();
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
                },
            )],
            ..Plan::default()
        };
        let p = apply_approval(fresh, 1, &approved);
        assert!(p.held.unwrap().contains("delete u-a (a)"));
    }

    #[test]
    fn removals_below_the_guard_are_still_checked_and_other_holds_stay() {
        let approved = removals(&held_plan(&["a"]));
        let mut fresh = held_plan(&["b"]);
        fresh.held = None;
        assert!(apply_approval(fresh, 1, &approved).held.is_some());
        let cfg = Plan {
            held: Some("configuration error, nothing planned: bad regex".into()),
            ..Plan::default()
        };
        assert_eq!(apply_approval(cfg.clone(), 1, &approved).held, cfg.held);
        // Nothing to remove and not held: unchanged.
        let empty = Plan::default();
        assert_eq!(apply_approval(empty.clone(), 1, &approved), empty);
    }
}
