//! Step 4: leavers — linked users no longer synced: keep, deactivate or delete (grace period).

use super::OpKind;
use super::build::{DAY_MS, MUser, Mode, Planner, action_name};
use super::links::ResolvedLinks;
use crate::config::LeaverAction;
use crate::model::name_key;

/// Plans the linked users that left the source or the scope; returns them for the membership
/// step.
pub(super) fn plan_leavers<'a>(p: &mut Planner<'a>, links: &ResolvedLinks<'a>) -> Vec<MUser<'a>> {
    let input = p.input;
    let desired = p.desired;
    let caps = input.capabilities;
    let policy = &input.settings.policy;
    let complete = input.source.complete;
    let accounts = input.target.accounts.as_slice();
    let mut leavers = Vec::new();
    for (sid, link) in &input.links.users {
        if desired.users.contains_key(sid) || desired.blocked_users.contains(sid) {
            continue;
        }
        let why = if desired.source_user_ids.contains(sid) {
            "no longer in the sync scope"
        } else {
            "deleted in the source"
        };
        let Some(&i) = links.account_of.get(sid.as_str()) else {
            // The account is gone (e.g. a delete whose confirmation an interrupted run never
            // recorded): with the delete policy, re-issue the delete so the link is dropped.
            let delete_due = policy.leaver_action == LeaverAction::Delete
                && caps.delete_user
                && (policy.delete_grace_days == 0
                    || link.deactivated_at_ms.is_some_and(|t| {
                        input.now_ms - t >= i64::from(policy.delete_grace_days) * DAY_MS
                    }));
            // Deletes go by username: if an account holds the name now, it is not this
            // leaver's (theirs would have resolved), so deleting by name would hit it.
            let name_reused = p.by_name.contains_key(&name_key(&link.username));
            if delete_due && complete && name_reused {
                p.warnings.push(format!(
                    "the account of leaver {sid} ({}) is gone, and another account now has that \
                     username; usersync does not delete by name, so the link is kept",
                    link.username
                ));
            } else if delete_due && complete && !p.is_protected(&link.username) {
                p.push(
                    OpKind::DeleteUser { source_id: sid.clone(), username: link.username.clone(), target_key: link.target_key.clone() },
                    format!("{why}; the account is already gone from the target, so only usersync's link is removed"),
                );
            }
            continue;
        };
        let a = &accounts[i];
        let mut mu = MUser {
            source_id: sid,
            name: a.username.clone(),
            account: Some(i),
            mode: Mode::Frozen,
            protected: p.is_protected(&a.username),
            why: why.to_string(),
            synced: false,
        };
        let active = p.is_active(a, Some(link));
        if mu.protected {
            p.warnings.push(format!(
                "protected account {} is {why} but is left as it is",
                a.username
            ));
        } else if !complete {
            if active && policy.leaver_action != LeaverAction::Keep {
                p.withheld += 1;
            }
        } else {
            let deact_mode = if caps.deactivate {
                Mode::Leaver
            } else {
                Mode::Fallback
            };
            let mut action = policy.leaver_action;
            if action == LeaverAction::Delete && !caps.delete_user {
                p.warnings.push(format!(
                    "{} cannot delete accounts: leaver {} is deactivated instead",
                    caps.product, a.username
                ));
                action = LeaverAction::Deactivate;
            }
            let grace = i64::from(policy.delete_grace_days);
            let deactivate = |p: &mut Planner<'_>, extra: &str| {
                let mut reason = format!(
                    "{why}; policy leaver_action = {}{extra}",
                    action_name(action)
                );
                if !caps.deactivate {
                    reason.push_str(&p.fallback_note());
                }
                p.push(
                    OpKind::DeactivateUser {
                        source_id: sid.clone(),
                        username: a.username.clone(),
                        target_key: a.key.clone(),
                    },
                    reason,
                );
            };
            match action {
                LeaverAction::Keep => {}
                LeaverAction::Deactivate => {
                    if active {
                        deactivate(p, "");
                    }
                    mu.mode = deact_mode;
                }
                LeaverAction::Delete if grace == 0 => {
                    p.push(
                        OpKind::DeleteUser {
                            source_id: sid.clone(),
                            username: a.username.clone(),
                            target_key: a.key.clone(),
                        },
                        format!("{why}; policy leaver_action = delete with no grace period"),
                    );
                }
                LeaverAction::Delete => {
                    mu.mode = deact_mode;
                    if active {
                        deactivate(p, &format!("; the account is deleted after {grace} days"));
                    } else {
                        match link.deactivated_at_ms {
                            Some(t) if input.now_ms - t >= grace * DAY_MS => {
                                p.push(
                                    OpKind::DeleteUser { source_id: sid.clone(), username: a.username.clone(), target_key: a.key.clone() },
                                    format!("{why}; deactivated {} days ago, the {grace}-day grace period is over", (input.now_ms - t) / DAY_MS),
                                );
                                mu.mode = Mode::Frozen;
                            }
                            Some(_) => {}
                            None => deactivate(
                                p,
                                &format!(
                                    "; already inactive, this records the time so the account is deleted after {grace} days"
                                ),
                            ),
                        }
                    }
                }
            }
        }
        leavers.push(mu);
    }

    leavers
}
