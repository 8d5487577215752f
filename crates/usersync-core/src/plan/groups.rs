//! Step 2: groups — access groups that exist, managed groups to confirm, create, adopt, take
//! over or delete.

use super::build::{MGroup, Planner};
use super::{Conflict, ConflictKind, OpKind};
use crate::config::AdoptMode;
use crate::model::name_key;
use std::collections::{HashMap, HashSet};

/// The groups whose memberships the plan maintains.
pub(super) struct GroupPlan<'a> {
    /// Managed groups (existing, adopted, taken over or created by this plan).
    pub managed: Vec<MGroup<'a>>,
    /// Configured access groups that exist in the target (target case).
    pub access: Vec<String>,
    /// Managed groups found in the target (linked, adopted or taken over): the guard's base.
    pub managed_existing: usize,
    /// Existing managed groups this plan deletes.
    pub deleted: usize,
}

/// Plans group creates, adoptions, takeovers and deletions.
pub(super) fn plan_groups<'a>(p: &mut Planner<'a>) -> GroupPlan<'a> {
    let input = p.input;
    let desired = p.desired;
    let caps = input.capabilities;
    let policy = &input.settings.policy;
    let complete = input.source.complete;
    let tgroups = &input.target.groups;
    let mut gby_name: HashMap<String, usize> = HashMap::with_capacity(tgroups.len());
    for (i, g) in tgroups.iter().enumerate() {
        gby_name.insert(name_key(&g.name), i);
    }
    // Access groups that exist in the target.
    let mut access: Vec<String> = Vec::new();
    let mut access_keys: HashSet<String> = HashSet::new();
    for a in &policy.access_groups {
        let k = name_key(a.trim());
        match gby_name.get(&k) {
            Some(&i) => {
                if access_keys.insert(k) {
                    access.push(tgroups[i].name.clone());
                }
            }
            None => p.warnings.push(format!(
                "access group {a:?} does not exist in {}; create it there (usersync never creates \
                 access groups), users are not added to it until then",
                caps.product
            )),
        }
    }
    // Target groups owned by a group link.
    let mut gowner: HashMap<usize, &str> = HashMap::new();
    for (sid, gl) in &input.links.groups {
        if let Some(&i) = gby_name.get(&name_key(&gl.name)) {
            gowner.entry(i).or_insert(sid.as_str());
        }
    }
    let mut mgroups: Vec<MGroup<'_>> = Vec::with_capacity(desired.groups.len());
    // Managed target groups to delete (target index, source id, reason).
    let mut group_deletes: Vec<(usize, &str, &str)> = Vec::new();
    // Target groups a new source group took over (or claims) from a departed one: not deleted.
    let mut taken_over: HashSet<usize> = HashSet::new();
    for (sid, dg) in &desired.groups {
        let key = name_key(&dg.name);
        let link = input.links.groups.get(sid);
        if let Some(gl) = link {
            if let Some(&i) = gby_name.get(&name_key(&gl.name)) {
                if gl.pending {
                    p.push(
                        OpKind::AdoptGroup {
                            source_id: sid.clone(),
                            name: tgroups[i].name.clone(),
                        },
                        "confirms a group create an earlier run did not record: the group exists",
                    );
                }
                // Atlassian groups cannot be renamed and permission schemes refer to them by
                // name, so a group renamed at the source keeps its target name.
                if name_key(&gl.name) != key {
                    p.warnings.push(format!(
                        "source group {sid} was renamed to {:?}; the target group keeps its name {:?} \
                         (groups are not renamed, permissions refer to them by name)",
                        dg.name, tgroups[i].name
                    ));
                }
                mgroups.push(MGroup {
                    name: tgroups[i].name.clone(),
                    members: &dg.members,
                });
                continue;
            }
            if name_key(&gl.name) == key {
                let why = if gl.pending {
                    "re-issues a group create that an earlier run did not confirm"
                } else {
                    "the managed group is missing from the target (deleted outside usersync?); it is created again"
                };
                p.push(
                    OpKind::CreateGroup {
                        source_id: sid.clone(),
                        name: dg.name.clone(),
                    },
                    why,
                );
                mgroups.push(MGroup {
                    name: dg.name.clone(),
                    members: &dg.members,
                });
                continue;
            }
        }
        if access_keys.contains(&key) {
            p.conflicts.push(Conflict {
                kind: ConflictKind::GroupNameTaken,
                name: dg.name.clone(),
                source_ids: vec![sid.clone()],
                detail:
                    "the source group has the name of a configured access group; it is not synced"
                        .into(),
            });
            continue;
        }
        match gby_name.get(&key) {
            Some(&i) => {
                let owner = gowner.get(&i).copied().filter(|o| *o != sid.as_str());
                let departed = owner.filter(|o| {
                    !desired.groups.contains_key(*o) && !desired.blocked_groups.contains(*o)
                });
                if let Some(old) = departed.filter(|_| policy.adopt_existing == AdoptMode::Never) {
                    // Display names are not unique in Entra: taking a group over by name is an
                    // adoption, so it needs adoption on. The group is kept meanwhile (not
                    // deleted for the departed source group), so its permissions survive.
                    p.conflicts.push(Conflict {
                        kind: ConflictKind::UnmanagedGroup,
                        name: tgroups[i].name.clone(),
                        source_ids: vec![sid.clone()],
                        detail: format!(
                            "the target group was managed for source group {old}, which left the \
                             source or the scope; set policy.adopt_existing to let this source \
                             group take it over, or rename one of the groups (the target group is \
                             kept meanwhile)"
                        ),
                    });
                    taken_over.insert(i);
                } else if let Some(old) = departed {
                    // The group's previous source group left (e.g. deleted and recreated in
                    // Entra): the new one takes the target group over instead of a delete and
                    // a re-create, which would lose the permissions granted to it.
                    p.push(
                        OpKind::AdoptGroup { source_id: sid.clone(), name: tgroups[i].name.clone() },
                        format!("takes over the managed group of source group {old}, which left the source or the scope"),
                    );
                    gowner.insert(i, sid.as_str());
                    taken_over.insert(i);
                    mgroups.push(MGroup {
                        name: tgroups[i].name.clone(),
                        members: &dg.members,
                    });
                } else if let Some(other) = owner {
                    p.conflicts.push(Conflict {
                        kind: ConflictKind::GroupNameTaken,
                        name: dg.name.clone(),
                        source_ids: vec![sid.clone()],
                        detail: format!(
                            "the target group {:?} is managed for source group {other}",
                            tgroups[i].name
                        ),
                    });
                } else if policy.adopt_existing != AdoptMode::Never {
                    p.push(
                        OpKind::AdoptGroup {
                            source_id: sid.clone(),
                            name: tgroups[i].name.clone(),
                        },
                        "an existing target group has the source group's name and adoption is on",
                    );
                    gowner.insert(i, sid.as_str());
                    mgroups.push(MGroup {
                        name: tgroups[i].name.clone(),
                        members: &dg.members,
                    });
                } else {
                    p.conflicts.push(Conflict {
                        kind: ConflictKind::UnmanagedGroup,
                        name: tgroups[i].name.clone(),
                        source_ids: vec![sid.clone()],
                        detail:
                            "a target group with this name exists but was not created by usersync; \
                                 set policy.adopt_existing to adopt it, or rename one of the groups"
                                .into(),
                    });
                }
            }
            None => {
                let why = if link.is_some() {
                    "the managed group is missing from the target; it is created under the source's current name"
                } else {
                    "new group in the source scope"
                };
                p.push(
                    OpKind::CreateGroup {
                        source_id: sid.clone(),
                        name: dg.name.clone(),
                    },
                    why,
                );
                mgroups.push(MGroup {
                    name: dg.name.clone(),
                    members: &dg.members,
                });
            }
        }
    }
    for (sid, gl) in &input.links.groups {
        if desired.groups.contains_key(sid) || desired.blocked_groups.contains(sid) {
            continue;
        }
        let why = if desired.source_group_ids.contains(sid) {
            "the source group is no longer in scope"
        } else {
            "the source group was deleted"
        };
        match gby_name.get(&name_key(&gl.name)) {
            Some(&i) if taken_over.contains(&i) => {}
            Some(&i) => group_deletes.push((i, sid.as_str(), why)),
            // Already gone (an interrupted run deleted it): drop the link via an idempotent delete.
            None if complete && policy.delete_groups => p.push(
                OpKind::DeleteGroup { source_id: sid.clone(), name: gl.name.clone() },
                format!("{why}; the group is already gone from the target, so only usersync's link is removed"),
            ),
            None => {}
        }
    }
    let mut deleted = 0;
    for (i, sid, why) in group_deletes {
        let name = &tgroups[i].name;
        if access_keys.contains(&name_key(name)) {
            continue;
        }
        if !complete {
            p.withheld += 1;
        } else if policy.delete_groups {
            deleted += 1;
            p.push(
                OpKind::DeleteGroup {
                    source_id: sid.to_string(),
                    name: name.clone(),
                },
                why,
            );
        } else {
            p.warnings.push(format!(
                "managed group {name:?} is kept although {why} (policy.delete_groups is off)"
            ));
        }
    }

    GroupPlan {
        managed: mgroups,
        access,
        managed_existing: gowner.len(),
        deleted,
    }
}
