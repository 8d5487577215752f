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
    // Wanted managed groups by source user index: members are indexes, so no hashing per
    // membership (millions at scale).
    let mut want: Vec<Vec<u32>> = vec![Vec::new(); input.source.users.len()];
    for (gi, g) in mgroups.iter().enumerate() {
        for &m in g.members {
            want[m as usize].push(gi as u32);
        }
    }
    let uidx = crate::scope::user_indexes(input.source);
    let gname = |r: GRef| -> &str {
        match r {
            GRef::Managed(i) => &mgroups[i].name,
            GRef::Access(i) => &access[i],
        }
    };
    // Adds by group slot (managed groups, then access groups: the order of `GRef`), as indexes
    // into `musers`, pushed in `musers` order.
    let slot = |r: GRef| match r {
        GRef::Managed(i) => i,
        GRef::Access(i) => mgroups.len() + i,
    };
    let mut adds: Vec<Vec<u32>> = vec![Vec::new(); mgroups.len() + access.len()];
    let mut maintained = 0;
    let mut removes: Vec<(GRef, String, String)> = Vec::new();
    for (ui, mu) in musers.iter().enumerate() {
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
            uidx.get(mu.source_id)
                .map(|&i| want[i as usize].as_slice())
                .unwrap_or_default()
                .iter()
                .map(|&gi| GRef::Managed(gi as usize))
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
            adds[slot(*r)].push(ui as u32);
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
    drop((want, uidx));
    // Usernames sort case-insensitively within a group (ties keep `musers` order): one rank per
    // user, computed once, instead of a lower-cased copy per membership.
    let rank = name_ranks(musers);
    for (k, mut users) in adds.into_iter().enumerate() {
        if users.is_empty() {
            continue;
        }
        let r = if k < mgroups.len() {
            GRef::Managed(k)
        } else {
            GRef::Access(k - mgroups.len())
        };
        users.sort_unstable_by_key(|&ui| (rank[ui as usize], ui));
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
                    usernames: users
                        .iter()
                        .map(|&ui| musers[ui as usize].name.clone())
                        .collect(),
                },
                reason,
            );
        } else {
            for ui in users {
                p.push(
                    OpKind::AddMembers {
                        group: group.clone(),
                        usernames: vec![musers[ui as usize].name.clone()],
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

/// Rank of each user's lower-cased name (equal names, equal ranks).
fn name_ranks(musers: &[MUser<'_>]) -> Vec<u32> {
    let keys: Vec<String> = musers.iter().map(|m| name_key(&m.name)).collect();
    let mut order: Vec<u32> = (0..musers.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| keys[a as usize].cmp(&keys[b as usize]));
    let mut rank = vec![0u32; musers.len()];
    let mut r = 0u32;
    for (n, &i) in order.iter().enumerate() {
        if n > 0 && keys[i as usize] != keys[order[n - 1] as usize] {
            r += 1;
        }
        rank[i as usize] = r;
    }
    rank
}
