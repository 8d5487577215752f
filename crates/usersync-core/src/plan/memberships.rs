//! Step 5: memberships of managed users in managed and access groups.

use super::OpKind;
use super::build::{GRef, MUser, Mode, Planner, plural};
use super::groups::GroupPlan;
use crate::model::name_key;
use std::collections::HashMap;

/// Plans membership adds (batched per group where the target can) and removals; returns how
/// many memberships usersync maintains now (the guard's base).
pub(super) fn plan_memberships(
    p: &mut Planner<'_>,
    groups: &GroupPlan<'_>,
    musers: &[MUser<'_>],
) -> usize {
    let input = p.input;
    let caps = input.capabilities;
    let complete = input.source.complete;
    let accounts = input.target.accounts.as_slice();
    let mgroups = &groups.managed;
    let access = &groups.access;
    let mut gindex: HashMap<String, GRef> = HashMap::with_capacity(mgroups.len() + access.len());
    for (gi, g) in mgroups.iter().enumerate() {
        gindex.insert(name_key(&g.name), GRef::Managed(gi));
    }
    for (ai, a) in access.iter().enumerate() {
        gindex.insert(name_key(a), GRef::Access(ai));
    }
    let mut gexact: HashMap<&str, GRef> = HashMap::with_capacity(gindex.len());
    for (gi, g) in mgroups.iter().enumerate() {
        gexact.insert(g.name.as_str(), GRef::Managed(gi));
    }
    for (ai, a) in access.iter().enumerate() {
        gexact.insert(a.as_str(), GRef::Access(ai));
    }
    let mut want: HashMap<&str, Vec<usize>> = HashMap::with_capacity(musers.len());
    for (gi, g) in mgroups.iter().enumerate() {
        for &m in g.members {
            let id = input.source.users[m as usize].id.as_str();
            want.entry(id).or_default().push(gi);
        }
    }
    let gname = |r: GRef| -> &str {
        match r {
            GRef::Managed(i) => &mgroups[i].name,
            GRef::Access(i) => &access[i],
        }
    };
    let mut adds: HashMap<GRef, Vec<String>> = HashMap::new();
    let mut maintained = 0;
    let mut removes: Vec<(GRef, String, String)> = Vec::new();
    for mu in musers {
        if mu.mode == Mode::Frozen {
            continue;
        }
        // Sorted, de-duplicated vectors: far cheaper than a tree set per user at scale.
        let mut current: Vec<GRef> = mu
            .account
            .map(|i| {
                accounts[i]
                    .groups
                    .iter()
                    // Exact-case hit first: avoids lower-casing millions of names.
                    .filter_map(|g| {
                        gexact
                            .get(g.as_str())
                            .or_else(|| gindex.get(&name_key(g)))
                            .copied()
                    })
                    .collect()
            })
            .unwrap_or_default();
        current.sort_unstable();
        current.dedup();
        maintained += current.len();
        let wanted_managed = || {
            want.get(mu.source_id)
                .into_iter()
                .flatten()
                .map(|&gi| GRef::Managed(gi))
        };
        let access_all = || (0..access.len()).map(GRef::Access);
        let current_access = || {
            current
                .iter()
                .copied()
                .filter(|r| matches!(r, GRef::Access(_)))
        };
        let mut target: Vec<GRef> = match mu.mode {
            Mode::Active => wanted_managed().chain(access_all()).collect(),
            Mode::Disabled => wanted_managed().chain(current_access()).collect(),
            Mode::Leaver => current_access().collect(),
            Mode::Fallback | Mode::Frozen => Vec::new(),
        };
        target.sort_unstable();
        target.dedup();
        let mut changed = false;
        for r in target.iter().filter(|r| current.binary_search(r).is_err()) {
            adds.entry(*r).or_default().push(mu.name.clone());
            changed = true;
        }
        for r in current.iter().filter(|r| target.binary_search(r).is_err()) {
            if mu.protected {
                continue;
            }
            if !complete {
                p.withheld += 1;
                continue;
            }
            let reason = match mu.mode {
                Mode::Fallback => format!(
                    "deactivation fallback: {} cannot deactivate accounts",
                    caps.product
                ),
                Mode::Leaver => format!(
                    "{} is {}; leavers are removed from managed groups",
                    mu.name, mu.why
                ),
                _ => format!("{} is no longer a member of the source group", mu.name),
            };
            removes.push((*r, mu.name.clone(), reason));
            changed = true;
        }
        if changed {
            p.touched.insert(mu.source_id.to_string());
        }
    }
    let mut add_list: Vec<(GRef, Vec<String>)> = adds.into_iter().collect();
    add_list.sort_unstable_by_key(|a| a.0);
    for (r, mut users) in add_list {
        users.sort_by_cached_key(|u| name_key(u));
        let group = gname(r).to_string();
        let what = match r {
            GRef::Managed(_) => "members of the source group",
            GRef::Access(_) => "access group: every active synced user is a member",
        };
        if caps.batch_membership {
            let reason = format!("{} {what}", plural(users.len(), "user", "users"));
            p.push(
                OpKind::AddMembers {
                    group,
                    usernames: users,
                },
                reason,
            );
        } else {
            for u in users {
                p.push(
                    OpKind::AddMembers {
                        group: group.clone(),
                        usernames: vec![u],
                    },
                    what,
                );
            }
        }
    }
    for (r, username, reason) in removes {
        p.push(
            OpKind::RemoveMember {
                group: gname(r).to_string(),
                username,
            },
            reason,
        );
    }
    maintained
}
