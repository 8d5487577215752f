//! The planner proper: compares the desired state with the target and the link table and emits
//! operations in dependency order. Internal indexes are hash maps for speed; everything that
//! reaches the plan is sorted, so the output is deterministic.

use super::{
    Conflict, ConflictKind, Field, FieldChange, OpKind, Operation, Phase, Plan, PlanCounts,
    PlanInput, SkippedUser,
};
use crate::config::{AdoptMode, LeaverAction};
use crate::desired::DesiredState;
use crate::link::UserLink;
use crate::model::{TargetAccount, name_key};
use std::collections::{BTreeSet, HashMap, HashSet};

const DAY_MS: i64 = 86_400_000;

/// How the membership step treats a managed user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// In scope and enabled: managed groups per the source, plus every access group.
    Active,
    /// Disabled at the source: managed groups per the source, access groups left alone.
    Disabled,
    /// Leaver being / already deactivated: removed from managed groups, access left alone.
    Leaver,
    /// Deactivation fallback: removed from every managed and access group.
    Fallback,
    /// Memberships untouched (kept leaver, protected, deleted, incomplete read).
    Frozen,
}

/// A user whose memberships the planner maintains.
struct MUser<'a> {
    source_id: &'a str,
    /// Username once this plan's renames are done.
    name: String,
    /// Existing account, if any (None for accounts created by this plan).
    account: Option<usize>,
    mode: Mode,
    protected: bool,
    /// Why the user is leaving (for removal reasons).
    why: String,
    /// In the desired state (false for leavers).
    synced: bool,
}

/// A group target memberships are kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum GRef {
    Managed(usize),
    Access(usize),
}

struct MGroup<'a> {
    /// Target name (existing case, or the name it will be created with).
    name: String,
    members: &'a BTreeSet<String>,
}

struct Planner<'a> {
    input: &'a PlanInput<'a>,
    by_name: HashMap<String, usize>,
    by_key: HashMap<&'a str, usize>,
    owner: HashMap<usize, &'a str>,
    protected: HashSet<String>,
    ops: Vec<(OpKind, String)>,
    touched: HashSet<String>,
    conflicts: Vec<Conflict>,
    conflict_accounts: HashSet<usize>,
    skipped: Vec<SkippedUser>,
    warnings: Vec<String>,
    withheld: usize,
}

impl<'a> Planner<'a> {
    fn push(&mut self, kind: OpKind, reason: impl Into<String>) {
        // Only user ops mark a user as touched; group ops carry group IDs.
        if let Some(sid) = kind.source_id().filter(|_| kind.is_user_op()) {
            self.touched.insert(sid.to_string());
        }
        self.ops.push((kind, reason.into()));
    }

    fn is_protected(&self, username: &str) -> bool {
        self.protected.contains(&name_key(username))
    }

    /// Finds a linked account: by target key, then the pending name, then the known name.
    fn find(&self, link: &UserLink) -> Option<usize> {
        if let Some(i) = link.target_key.as_deref().and_then(|k| self.by_key.get(k)) {
            return Some(*i);
        }
        if let Some(i) = link
            .pending_username
            .as_deref()
            .and_then(|p| self.by_name.get(&name_key(p)))
        {
            return Some(*i);
        }
        self.by_name.get(&name_key(&link.username)).copied()
    }

    fn is_active(&self, account: &TargetAccount, link: Option<&UserLink>) -> bool {
        if self.input.capabilities.deactivate {
            account.active
        } else {
            // Without deactivation the link records usersync's fallback deactivation.
            link.is_none_or(|l| l.deactivated_at_ms.is_none())
        }
    }

    fn fallback_note(&self) -> String {
        format!(
            "; {} cannot deactivate accounts, so the account is removed from every managed and \
             access group instead",
            self.input.capabilities.product
        )
    }
}

/// Plans from an already computed desired state (lets callers time mapping/scope separately).
pub fn plan_desired(input: &PlanInput<'_>, desired: &DesiredState) -> Plan {
    let caps = input.capabilities;
    let policy = &input.settings.policy;
    let complete = input.source.complete;
    let accounts = input.target.accounts.as_slice();

    let mut p = Planner {
        input,
        by_name: HashMap::with_capacity(accounts.len()),
        by_key: HashMap::with_capacity(accounts.len()),
        owner: HashMap::with_capacity(input.links.users.len()),
        protected: policy
            .protected_accounts
            .iter()
            .map(|n| name_key(n.trim()))
            .collect(),
        ops: Vec::new(),
        touched: HashSet::new(),
        conflicts: desired.conflicts.clone(),
        conflict_accounts: HashSet::new(),
        skipped: desired.skipped.clone(),
        warnings: input.source.warnings.clone(),
        withheld: 0,
    };
    for (i, a) in accounts.iter().enumerate() {
        p.by_name.insert(name_key(&a.username), i);
        if let Some(k) = a.key.as_deref() {
            p.by_key.insert(k, i);
        }
    }
    if !complete {
        p.warnings.push(
            "the source read was incomplete (some pages failed), so this run removes nothing: no \
             deactivations, deletions, group deletions or membership removals"
                .into(),
        );
    }

    // Resolve user links to target accounts.
    let mut resolved: HashMap<&str, usize> = HashMap::with_capacity(input.links.users.len());
    for (sid, link) in &input.links.users {
        if let Some(i) = p.find(link) {
            if let Some(other) = p.owner.get(&i) {
                p.warnings.push(format!(
                    "links of source users {other} and {sid} both point at account {}; {sid} is ignored",
                    accounts[i].username
                ));
                continue;
            }
            p.owner.insert(i, sid.as_str());
            resolved.insert(sid.as_str(), i);
        }
    }
    let managed_accounts = resolved.len();

    // ---- Groups ----
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
    // Target groups a new source group took over from a departed one.
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
                if let Some(old) = owner.filter(|o| {
                    !desired.groups.contains_key(*o) && !desired.blocked_groups.contains(*o)
                }) {
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
    for (i, sid, why) in group_deletes {
        let name = &tgroups[i].name;
        if access_keys.contains(&name_key(name)) {
            continue;
        }
        if !complete {
            p.withheld += 1;
        } else if policy.delete_groups {
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

    // ---- Users in scope ----
    let mut by_email: HashMap<String, Vec<usize>> = HashMap::new();
    if policy.adopt_existing == AdoptMode::ByUsernameOrEmail {
        for (i, a) in accounts.iter().enumerate() {
            if !p.owner.contains_key(&i) && !a.email.trim().is_empty() {
                by_email
                    .entry(a.email.trim().to_lowercase())
                    .or_default()
                    .push(i);
            }
        }
    }
    let sync_avatars = policy.sync_avatars && caps.avatars;
    let mut musers: Vec<MUser<'_>> =
        Vec::with_capacity(desired.users.len() + input.links.users.len());
    for (sid, d) in &desired.users {
        let link = input.links.users.get(sid);
        let mut acct = resolved.get(sid.as_str()).copied();
        let mut adopted = false;
        if acct.is_none() {
            if !d.enabled {
                p.skipped.push(SkippedUser {
                    source_id: sid.clone(),
                    upn: d.upn.clone(),
                    username: Some(d.account.username.clone()),
                    reason:
                        "disabled in the source and has no account in the target; none is created"
                            .into(),
                });
                continue;
            }
            if let Some(&i) = p.by_name.get(&name_key(&d.account.username)) {
                if let Some(other) = p.owner.get(&i) {
                    p.conflicts.push(Conflict {
                        kind: ConflictKind::ManagedByOther,
                        name: accounts[i].username.clone(),
                        source_ids: vec![sid.clone()],
                        detail: format!(
                            "the username is held by the account usersync manages for source user {other}; \
                             this user is synced once that account is renamed or removed"
                        ),
                    });
                    continue;
                }
                if policy.adopt_existing == AdoptMode::Never {
                    p.conflict_accounts.insert(i);
                    p.conflicts.push(Conflict {
                        kind: ConflictKind::UnmanagedAccount,
                        name: accounts[i].username.clone(),
                        source_ids: vec![sid.clone()],
                        detail: "an account with this username exists but was not created by usersync; set \
                                 policy.adopt_existing = \"by_username\" to adopt it, or rename/remove it"
                            .into(),
                    });
                    continue;
                }
                p.push(
                    OpKind::AdoptUser {
                        source_id: sid.clone(),
                        username: accounts[i].username.clone(),
                        target_key: accounts[i].key.clone(),
                    },
                    "an existing account has the same username and adoption is on",
                );
                acct = Some(i);
            } else if policy.adopt_existing == AdoptMode::ByUsernameOrEmail {
                let email = d.account.email.trim().to_lowercase();
                let candidates: Vec<usize> = by_email
                    .get(&email)
                    .map(|v| {
                        v.iter()
                            .copied()
                            .filter(|i| !p.owner.contains_key(i))
                            .collect()
                    })
                    .unwrap_or_default();
                match candidates.as_slice() {
                    [i] => {
                        let i = *i;
                        p.push(
                            OpKind::AdoptUser { source_id: sid.clone(), username: accounts[i].username.clone(), target_key: accounts[i].key.clone() },
                            format!("an existing account has the same e-mail ({}) and adoption by e-mail is on", d.account.email),
                        );
                        acct = Some(i);
                    }
                    [] => {}
                    many => p.warnings.push(format!(
                        "{} accounts have the e-mail {}, so {} is not adopted by e-mail and a new account is created",
                        many.len(),
                        d.account.email,
                        d.upn
                    )),
                }
            }
            if let Some(i) = acct {
                p.owner.insert(i, sid.as_str());
                adopted = true;
            } else {
                let why = match link {
                    Some(l) if l.pending_username.is_some() => {
                        "re-issues a create that an earlier run did not confirm (no account exists under the pending name)"
                    }
                    Some(_) => {
                        "the managed account is missing from the target (deleted outside usersync?); it is created again"
                    }
                    None => "new user in the source scope",
                };
                p.push(
                    OpKind::CreateUser {
                        source_id: sid.clone(),
                        account: d.account.clone(),
                    },
                    why,
                );
                if let Some(tag) = d.photo_tag.as_ref().filter(|_| sync_avatars) {
                    p.push(
                        OpKind::SetAvatar {
                            source_id: sid.clone(),
                            username: d.account.username.clone(),
                            photo_tag: tag.clone(),
                        },
                        "the new account gets the source profile picture",
                    );
                }
                musers.push(MUser {
                    source_id: sid,
                    name: d.account.username.clone(),
                    account: None,
                    mode: Mode::Active,
                    protected: p.is_protected(&d.account.username),
                    why: String::new(),
                    synced: true,
                });
                continue;
            }
        }
        let i = acct.expect("account resolved above");
        let a = &accounts[i];
        if !adopted && link.is_some_and(|l| l.pending_username.is_some()) {
            p.push(
                OpKind::AdoptUser { source_id: sid.clone(), username: a.username.clone(), target_key: a.key.clone() },
                format!("confirms a create or rename an earlier run did not record: the account exists as {}", a.username),
            );
        }
        let want = &d.account.username;
        // Protected under its current or its new name.
        let protected = p.is_protected(&a.username) || p.is_protected(want);
        let mut name = a.username.clone();
        if name_key(want) != name_key(&name) {
            if protected {
                p.warnings
                    .push(format!("protected account {name} is not renamed to {want}"));
            } else if !caps.rename {
                p.warnings.push(format!(
                    "{} cannot rename accounts: {name} keeps its login name although the source now maps \
                     to {want}; display name and e-mail still follow the source",
                    caps.product
                ));
            } else if let Some(&j) = p.by_name.get(&name_key(want)).filter(|&&j| j != i) {
                p.conflicts.push(Conflict {
                    kind: ConflictKind::RenameTargetTaken,
                    name: want.clone(),
                    source_ids: vec![sid.clone()],
                    detail: format!(
                        "{name} should be renamed to {want}, but the account {} already exists; the rename \
                         waits until it is renamed or removed",
                        accounts[j].username
                    ),
                });
            } else {
                p.push(
                    OpKind::RenameUser {
                        source_id: sid.clone(),
                        from: name.clone(),
                        to: want.clone(),
                    },
                    format!("the source username changed (UPN now {})", d.upn),
                );
                name = want.clone();
            }
        }
        let active = p.is_active(a, link);
        let mut mode = Mode::Active;
        if d.enabled {
            if !active {
                p.push(
                    OpKind::ReactivateUser {
                        source_id: sid.clone(),
                        username: name.clone(),
                    },
                    "returning user: enabled and in scope in the source again",
                );
            }
        } else {
            mode = if caps.deactivate {
                Mode::Disabled
            } else {
                Mode::Fallback
            };
            if active {
                if protected {
                    p.warnings.push(format!(
                        "protected account {name} is disabled in the source but is not deactivated"
                    ));
                    mode = Mode::Frozen;
                } else if !complete {
                    p.withheld += 1;
                    mode = Mode::Frozen;
                } else {
                    let mut why = "disabled in the source (accountEnabled = false)".to_string();
                    if !caps.deactivate {
                        why.push_str(&p.fallback_note());
                    }
                    p.push(
                        OpKind::DeactivateUser {
                            source_id: sid.clone(),
                            username: name.clone(),
                        },
                        why,
                    );
                }
            } else if !complete {
                mode = Mode::Frozen;
            }
        }
        let mut changes = Vec::new();
        if a.display_name != d.account.display_name {
            changes.push(FieldChange {
                field: Field::DisplayName,
                before: a.display_name.clone(),
                after: d.account.display_name.clone(),
            });
        }
        if !a.email.trim().eq_ignore_ascii_case(d.account.email.trim()) {
            changes.push(FieldChange {
                field: Field::Email,
                before: a.email.clone(),
                after: d.account.email.clone(),
            });
        }
        if !changes.is_empty() {
            let fields: Vec<&str> = changes
                .iter()
                .map(|c| {
                    if c.field == Field::DisplayName {
                        "display name"
                    } else {
                        "e-mail"
                    }
                })
                .collect();
            p.push(
                OpKind::UpdateUser {
                    source_id: sid.clone(),
                    username: name.clone(),
                    changes,
                },
                format!("the source {} changed", fields.join(" and ")),
            );
        }
        let uploaded = link.and_then(|l| l.photo_tag.as_ref());
        if let Some(tag) = d
            .photo_tag
            .as_ref()
            .filter(|t| sync_avatars && d.enabled && uploaded != Some(*t))
        {
            p.push(
                OpKind::SetAvatar {
                    source_id: sid.clone(),
                    username: name.clone(),
                    photo_tag: tag.clone(),
                },
                "the source profile picture changed",
            );
        }
        musers.push(MUser {
            source_id: sid,
            name,
            account: Some(i),
            mode,
            protected,
            why: String::new(),
            synced: true,
        });
    }

    // ---- Leavers: linked users no longer synced ----
    for (sid, link) in &input.links.users {
        if desired.users.contains_key(sid) || desired.blocked_users.contains(sid) {
            continue;
        }
        let why = if desired.source_user_ids.contains(sid) {
            "no longer in the sync scope"
        } else {
            "deleted in the source"
        };
        let Some(&i) = resolved.get(sid.as_str()) else {
            // The account is gone (e.g. a delete whose confirmation an interrupted run never
            // recorded): with the delete policy, re-issue the delete so the link is dropped.
            let delete_due = policy.leaver_action == LeaverAction::Delete
                && caps.delete_user
                && (policy.delete_grace_days == 0
                    || link.deactivated_at_ms.is_some_and(|t| {
                        input.now_ms - t >= i64::from(policy.delete_grace_days) * DAY_MS
                    }));
            if delete_due && complete && !p.is_protected(&link.username) {
                p.push(
                    OpKind::DeleteUser { source_id: sid.clone(), username: link.username.clone() },
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
                    },
                    reason,
                );
            };
            match action {
                LeaverAction::Keep => {}
                LeaverAction::Deactivate => {
                    if active {
                        deactivate(&mut p, "");
                    }
                    mu.mode = deact_mode;
                }
                LeaverAction::Delete if grace == 0 => {
                    p.push(
                        OpKind::DeleteUser {
                            source_id: sid.clone(),
                            username: a.username.clone(),
                        },
                        format!("{why}; policy leaver_action = delete with no grace period"),
                    );
                }
                LeaverAction::Delete => {
                    mu.mode = deact_mode;
                    if active {
                        deactivate(
                            &mut p,
                            &format!("; the account is deleted after {grace} days"),
                        );
                    } else {
                        match link.deactivated_at_ms {
                            Some(t) if input.now_ms - t >= grace * DAY_MS => {
                                p.push(
                                    OpKind::DeleteUser { source_id: sid.clone(), username: a.username.clone() },
                                    format!("{why}; deactivated {} days ago, the {grace}-day grace period is over", (input.now_ms - t) / DAY_MS),
                                );
                                mu.mode = Mode::Frozen;
                            }
                            Some(_) => {}
                            None => deactivate(
                                &mut p,
                                &format!(
                                    "; already inactive, this records the time so the account is deleted after {grace} days"
                                ),
                            ),
                        }
                    }
                }
            }
        }
        musers.push(mu);
    }

    // ---- Memberships ----
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
        for m in g.members {
            want.entry(m.as_str()).or_default().push(gi);
        }
    }
    let gname = |r: GRef| -> &str {
        match r {
            GRef::Managed(i) => &mgroups[i].name,
            GRef::Access(i) => &access[i],
        }
    };
    let mut adds: HashMap<GRef, Vec<String>> = HashMap::new();
    let mut removes: Vec<(GRef, String, String)> = Vec::new();
    for mu in &musers {
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

    // ---- Guard, lists, order ----
    let removals = p
        .ops
        .iter()
        .filter(|(k, _)| matches!(k, OpKind::DeactivateUser { .. } | OpKind::DeleteUser { .. }))
        .count();
    let g = &policy.guard;
    let pct = if managed_accounts == 0 {
        100.0
    } else {
        removals as f64 * 100.0 / managed_accounts as f64
    };
    // Removing every managed account is held however small the tenant: it is what an empty
    // (but "complete") source answer or a wrong scope looks like, and never routine.
    let wipes_all = removals >= 2 && removals >= managed_accounts;
    let over = removals > g.max_count
        || (removals >= g.percent_floor && removals > 0 && pct > g.max_percent)
        || wipes_all;
    let mut held = None;
    if over {
        let what = format!(
            "{removals} accounts would be deactivated or deleted ({pct:.1}% of {managed_accounts} managed \
             accounts; limits: {} accounts, or {}% once at least {} are affected{})",
            g.max_count,
            g.max_percent,
            g.percent_floor,
            if wipes_all {
                ", and never every managed account at once"
            } else {
                ""
            }
        );
        if g.allow_mass_removal {
            p.warnings.push(format!(
                "mass-removal guard overridden (allow_mass_removal): {what}"
            ));
        } else {
            held = Some(format!(
                "held by the mass-removal guard: {what}. Review the plan; if it is intended, run again \
                 with --allow-mass-removal"
            ));
        }
    }

    let unchanged = {
        let mut v: Vec<&MUser<'_>> = musers
            .iter()
            .filter(|m| m.account.is_some() && m.synced && !p.touched.contains(m.source_id))
            .collect();
        v.sort_by_cached_key(|m| (name_key(&m.name), m.source_id));
        v.into_iter().map(|m| m.name.clone()).collect::<Vec<_>>()
    };
    let mut target_only: Vec<&TargetAccount> = accounts
        .iter()
        .enumerate()
        .filter(|(i, _)| !p.owner.contains_key(i) && !p.conflict_accounts.contains(i))
        .map(|(_, a)| a)
        .collect();
    target_only.sort_by_cached_key(|a| (name_key(&a.username), a.username.clone()));
    let target_only: Vec<String> = target_only
        .into_iter()
        .map(|a| a.username.clone())
        .collect();

    let mut keyed: Vec<((Phase, String, String), OpKind, String)> = p
        .ops
        .drain(..)
        .map(|(k, r)| {
            (
                (
                    k.phase(),
                    k.sort_name(),
                    k.source_id().unwrap_or_default().to_string(),
                ),
                k,
                r,
            )
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let ops: Vec<Operation> = keyed
        .into_iter()
        .enumerate()
        .map(|(seq, (_, kind, reason))| Operation {
            seq: seq as u32,
            kind,
            reason,
        })
        .collect();

    let mut conflicts = p.conflicts;
    conflicts.sort();
    let mut skipped = p.skipped;
    skipped.sort();
    let mut counts = PlanCounts {
        source_users: input.source.users.len(),
        source_groups: input.source.groups.len(),
        users_in_scope: desired.users.len() + desired.blocked_users.len(),
        groups_in_scope: desired.groups.len() + desired.blocked_groups.len(),
        target_accounts: accounts.len(),
        managed_accounts,
        users_unchanged: unchanged.len(),
        conflicts: conflicts.len(),
        skipped: skipped.len(),
        target_only: target_only.len(),
        removals_withheld: p.withheld,
        guarded_removals: removals,
        ..PlanCounts::default()
    };
    for op in &ops {
        match &op.kind {
            OpKind::CreateUser { .. } => counts.users_created += 1,
            OpKind::AdoptUser { .. } => counts.users_adopted += 1,
            OpKind::RenameUser { .. } => counts.users_renamed += 1,
            OpKind::UpdateUser { .. } => counts.users_updated += 1,
            OpKind::ReactivateUser { .. } => counts.users_reactivated += 1,
            OpKind::DeactivateUser { .. } => counts.users_deactivated += 1,
            OpKind::DeleteUser { .. } => counts.users_deleted += 1,
            OpKind::CreateGroup { .. } => counts.groups_created += 1,
            OpKind::AdoptGroup { .. } => counts.groups_adopted += 1,
            OpKind::DeleteGroup { .. } => counts.groups_deleted += 1,
            OpKind::AddMembers { usernames, .. } => counts.memberships_added += usernames.len(),
            OpKind::RemoveMember { .. } => counts.memberships_removed += 1,
            OpKind::SetAvatar { .. } => counts.avatars_set += 1,
        }
    }
    if !caps.deactivate && counts.users_deactivated > 0 {
        p.warnings.push(format!(
            "{} cannot deactivate accounts: {} deactivation(s) fall back to removing the account from \
             every managed and access group; the account can still log in if other groups grant access",
            caps.product, counts.users_deactivated
        ));
    }
    if counts.removals_withheld > 0 {
        p.warnings.push(format!(
            "{} removal(s) withheld because the source read was incomplete",
            counts.removals_withheld
        ));
    }
    Plan {
        ops,
        held,
        source_complete: complete,
        product: caps.product.clone(),
        unchanged,
        conflicts,
        skipped,
        target_only,
        warnings: p.warnings,
        counts,
    }
}

fn action_name(a: LeaverAction) -> &'static str {
    match a {
        LeaverAction::Deactivate => "deactivate",
        LeaverAction::Delete => "delete",
        LeaverAction::Keep => "keep",
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
