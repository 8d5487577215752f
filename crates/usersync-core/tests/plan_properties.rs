//! Property tests of the planner: deterministic; apply-then-plan is empty; never touches
//! unmanaged or protected accounts; removes nothing on an incomplete read; renames keep the
//! account; the mass-removal guard holds above its threshold.

mod common;

use common::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use usersync_core::config::{AdoptMode, LeaverAction, SyncSettings};
use usersync_core::link::LinkTable;
use usersync_core::model::{SourceSnapshot, TargetAccount, TargetGroup, TargetSnapshot, name_key};
use usersync_core::plan::{ConflictKind, GuardLimit, HoldReason, OpKind, Plan, RemovalKind};
use usersync_core::ports::TargetCapabilities;
use usersync_core::testkit::FakeTarget;

/// (name variant, enabled, display variant, photo)
type UserGen = (u8, bool, u8, Option<u8>);
/// (name variant, member users, member groups)
type GroupGen = (u8, Vec<u8>, Vec<u8>);

#[derive(Debug, Clone)]
struct World {
    users: BTreeMap<u8, UserGen>,
    groups: BTreeMap<u8, GroupGen>,
    /// Extra source user duplicating user 0's username (a conflict).
    duplicate: bool,
}

fn world() -> impl Strategy<Value = World> {
    let user = (
        0u8..2,
        prop::bool::weighted(0.8),
        0u8..2,
        prop::option::of(0u8..2),
    );
    let group = (
        0u8..3,
        prop::collection::vec(0u8..10, 0..6),
        prop::collection::vec(0u8..4, 0..2),
    );
    (
        prop::collection::btree_map(0u8..10, user, 0..9),
        prop::collection::btree_map(0u8..4, group, 0..4),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(users, groups, duplicate)| World {
            users,
            groups,
            duplicate,
        })
}

fn build_source(w: &World, complete: bool) -> SourceSnapshot {
    let mut users: Vec<_> = w
        .users
        .iter()
        .map(|(id, (nv, enabled, dv, photo))| {
            let upn = if *nv == 0 {
                format!("user{id}@ex.com")
            } else {
                format!("user{id}.new@ex.com")
            };
            let mut u = su(&format!("u{id}"), &upn, &format!("User {id} v{dv}"));
            u.enabled = *enabled;
            if let Some(p) = photo {
                u = with_photo(u, &format!("photo{id}-{p}"));
            }
            u
        })
        .collect();
    if w.duplicate {
        users.push(su("dup", "USER0@ex.com", "Duplicate"));
    }
    let groups = w
        .groups
        .iter()
        .map(|(id, (nv, members, nested))| {
            // Variant 2 collides with group 0 ignoring case.
            let name = match nv {
                0 => format!("Group{id}"),
                1 => format!("Team{id}"),
                _ => "group0".to_string(),
            };
            let m: Vec<String> = members.iter().map(|m| format!("u{m}")).collect();
            let n: Vec<String> = nested.iter().map(|g| format!("g{g}")).collect();
            let m: Vec<&str> = m.iter().map(String::as_str).collect();
            let n: Vec<&str> = n.iter().map(String::as_str).collect();
            sg(&format!("g{id}"), &name, &m, &n)
        })
        .collect();
    SourceSnapshot {
        users,
        groups,
        complete,
        warnings: vec![],
    }
}

#[derive(Debug, Clone)]
struct Knobs {
    leaver: LeaverAction,
    grace: u32,
    adopt: AdoptMode,
    deactivate: bool,
    rename: bool,
    batch: bool,
    flatten: bool,
    delete_groups: bool,
    access: bool,
}

fn knobs() -> impl Strategy<Value = Knobs> {
    (
        prop_oneof![
            Just(LeaverAction::Deactivate),
            Just(LeaverAction::Delete),
            Just(LeaverAction::Keep)
        ],
        prop_oneof![Just(0u32), Just(30u32)],
        prop_oneof![
            Just(AdoptMode::Never),
            Just(AdoptMode::ByUsername),
            Just(AdoptMode::ByUsernameOrEmail)
        ],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(leaver, grace, adopt, deactivate, rename, batch, flatten, delete_groups, access)| {
                Knobs {
                    leaver,
                    grace,
                    adopt,
                    deactivate,
                    rename,
                    batch,
                    flatten,
                    delete_groups,
                    access,
                }
            },
        )
}

fn settings_from(k: &Knobs) -> SyncSettings {
    let mut s = settings();
    s.policy.leaver_action = k.leaver;
    s.policy.delete_grace_days = k.grace;
    s.policy.adopt_existing = k.adopt;
    s.policy.delete_groups = k.delete_groups;
    s.policy.protected_accounts = vec!["admin".into(), "USER1@ex.com".into()];
    s.policy.guard.allow_mass_removal = true;
    if k.access {
        s.policy.access_groups = vec!["jira-users".into()];
    }
    s.scope.flatten_nested = k.flatten;
    s
}

fn caps_from(k: &Knobs) -> TargetCapabilities {
    let mut c = caps();
    c.deactivate = k.deactivate;
    c.rename = k.rename;
    c.batch_membership = k.batch;
    c
}

/// Manual changes made in the target between runs, plus unmanaged accounts and groups.
#[derive(Debug, Clone)]
struct Drift {
    /// Unmanaged accounts `user{n}@ex.com` (created only when the name is free).
    unmanaged: BTreeSet<u8>,
    /// Managed accounts an admin deactivated by hand.
    deactivated: BTreeSet<u8>,
    /// An unmanaged "admin" account put into every group.
    admin_everywhere: bool,
    /// Unmanaged groups `Team{n}`.
    unmanaged_groups: BTreeSet<u8>,
}

fn drift() -> impl Strategy<Value = Drift> {
    (
        prop::collection::btree_set(0u8..10, 0..3),
        prop::collection::btree_set(0u8..10, 0..3),
        any::<bool>(),
        prop::collection::btree_set(0u8..4, 0..2),
    )
        .prop_map(
            |(unmanaged, deactivated, admin_everywhere, unmanaged_groups)| Drift {
                unmanaged,
                deactivated,
                admin_everywhere,
                unmanaged_groups,
            },
        )
}

/// The state before the run under test: an earlier world synced from empty, then drift.
fn prior_state(old: &World, k: &Knobs, d: &Drift) -> (TargetSnapshot, LinkTable) {
    let s = settings_from(k);
    let c = caps_from(k);
    let src = build_source(old, true);
    let fake = FakeTarget::new(c.clone(), target(vec![], &["jira-users"]));
    let p = plan_fake(&src, &fake, &LinkTable::default(), &s, NOW - 40 * DAY);
    let (_, lt) = apply_to(&p, &fake, &src, &LinkTable::default(), NOW - 40 * DAY);
    let mut t = fake.snapshot();
    for a in &mut t.accounts {
        for n in &d.deactivated {
            if a.username == format!("user{n}@ex.com") {
                a.active = false;
            }
        }
    }
    for n in &d.unmanaged {
        let name = format!("user{n}@ex.com");
        if !t
            .accounts
            .iter()
            .any(|a| name_key(&a.username) == name_key(&name))
        {
            t.accounts
                .push(ta(&name, "Someone", &format!("user{n}@ex.com"), true, &[]));
        }
    }
    for n in &d.unmanaged_groups {
        let name = format!("Team{n}");
        if !t
            .groups
            .iter()
            .any(|g| name_key(&g.name) == name_key(&name))
        {
            t.groups.push(TargetGroup { name });
        }
    }
    if d.admin_everywhere {
        let groups: Vec<String> = t.groups.iter().map(|g| g.name.clone()).collect();
        let g: Vec<&str> = groups.iter().map(String::as_str).collect();
        let mut admin: TargetAccount = ta("admin", "Admin", "admin@ex.com", true, &g);
        admin.key = Some("admin-key".into());
        t.accounts.push(admin);
    }
    (t, lt)
}

fn plan_of(src: &SourceSnapshot, t: &TargetSnapshot, lt: &LinkTable, k: &Knobs) -> Plan {
    make_plan(src, t, lt, &settings_from(k), &caps_from(k), NOW)
}

/// Usernames (keys) of target accounts no link points at.
fn unmanaged_names(t: &TargetSnapshot, lt: &LinkTable) -> BTreeSet<String> {
    let mut linked: BTreeSet<String> = BTreeSet::new();
    let mut keys: BTreeSet<String> = BTreeSet::new();
    for l in lt.users.values() {
        linked.insert(name_key(&l.username));
        if let Some(p) = &l.pending_username {
            linked.insert(name_key(p));
        }
        if let Some(k) = &l.target_key {
            keys.insert(k.clone());
        }
    }
    t.accounts
        .iter()
        .filter(|a| {
            !linked.contains(&name_key(&a.username))
                && !a.key.as_ref().is_some_and(|k| keys.contains(k))
        })
        .map(|a| name_key(&a.username))
        .collect()
}

fn op_usernames(k: &OpKind) -> Vec<String> {
    match k {
        OpKind::RenameUser { from, .. } => vec![from.clone()],
        OpKind::UpdateUser { username, .. }
        | OpKind::ReactivateUser { username, .. }
        | OpKind::DeactivateUser { username, .. }
        | OpKind::DeleteUser { username, .. }
        | OpKind::SetAvatar { username, .. }
        | OpKind::RemoveMember { username, .. } => vec![username.clone()],
        OpKind::AddMembers { usernames, .. } => usernames.clone(),
        _ => vec![],
    }
}

proptest! {
    // 96 cases keep the suite at well under a second; PROPTEST_CASES=5000 for a deep run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    #[test]
    fn deterministic(old in world(), new in world(), k in knobs(), d in drift()) {
        let (t, lt) = prior_state(&old, &k, &d);
        let src = build_source(&new, true);
        let a = plan_of(&src, &t, &lt, &k);
        let b = plan_of(&src, &t, &lt, &k);
        prop_assert_eq!(&a, &b);
        // Input order does not matter.
        let mut src_r = src.clone();
        src_r.users.reverse();
        src_r.groups.reverse();
        let mut t_r = t.clone();
        t_r.accounts.reverse();
        t_r.groups.reverse();
        let c = plan_of(&src_r, &t_r, &lt, &k);
        prop_assert_eq!(&a, &c);
        for (i, op) in a.ops.iter().enumerate() {
            prop_assert_eq!(op.seq as usize, i);
        }
    }

    #[test]
    fn apply_then_plan_is_empty(old in world(), new in world(), k in knobs(), d in drift(), complete in prop::bool::weighted(0.8)) {
        let (t, lt) = prior_state(&old, &k, &d);
        let src = build_source(&new, complete);
        let p = plan_of(&src, &t, &lt, &k);
        prop_assert!(p.held.is_none());
        let fake = FakeTarget::new(caps_from(&k), t);
        let (report, lt2) = apply_to(&p, &fake, &src, &lt, NOW);
        prop_assert_eq!(report.outcomes.failed, 0, "{:#?}", report.operations);
        let mut again = plan_fake(&src, &fake, &lt2, &settings_from(&k), NOW);
        // A username freed in this run (delete / rename of another managed account) can only
        // be reused by the next run, because creates and renames run before deletes. The
        // first plan reports that as a conflict; one more run then reaches the fixpoint.
        let freed_later = p.conflicts.iter().any(|c| matches!(c.kind, ConflictKind::ManagedByOther | ConflictKind::RenameTargetTaken));
        if freed_later && !again.is_empty() {
            let (report, lt3) = apply_to(&again, &fake, &src, &lt2, NOW);
            prop_assert_eq!(report.outcomes.failed, 0);
            again = plan_fake(&src, &fake, &lt3, &settings_from(&k), NOW);
        }
        prop_assert!(again.is_empty(), "first plan: {:#?}\nsecond plan: {:#?}", p.ops, again.ops);
    }

    #[test]
    fn never_touches_unmanaged_or_protected(old in world(), new in world(), k in knobs(), d in drift(), complete in any::<bool>()) {
        let (t, lt) = prior_state(&old, &k, &d);
        let src = build_source(&new, complete);
        let p = plan_of(&src, &t, &lt, &k);
        let unmanaged = unmanaged_names(&t, &lt);
        let adopted: BTreeSet<String> = p.ops.iter().filter_map(|o| match &o.kind {
            OpKind::AdoptUser { username, .. } => Some(name_key(username)),
            _ => None,
        }).collect();
        let protected: BTreeSet<String> = ["admin", "user1@ex.com"].into_iter().map(String::from).collect();
        let group_links: BTreeSet<String> = lt.groups.values().map(|g| name_key(&g.name)).collect();
        for op in &p.ops {
            for u in op_usernames(&op.kind) {
                let u = name_key(&u);
                prop_assert!(!unmanaged.contains(&u) || adopted.contains(&u), "op on unmanaged {u}: {op:?}");
                if matches!(op.kind, OpKind::DeactivateUser { .. } | OpKind::DeleteUser { .. } | OpKind::RenameUser { .. } | OpKind::RemoveMember { .. }) {
                    prop_assert!(!protected.contains(&u), "op on protected {u}: {op:?}");
                }
            }
            if let OpKind::DeleteGroup { name, .. } = &op.kind {
                prop_assert!(group_links.contains(&name_key(name)), "deletes unmanaged group {name}");
            }
        }
    }

    #[test]
    fn incomplete_read_removes_nothing(old in world(), new in world(), k in knobs(), d in drift()) {
        let (t, lt) = prior_state(&old, &k, &d);
        let src = build_source(&new, false);
        let p = plan_of(&src, &t, &lt, &k);
        for op in &p.ops {
            prop_assert!(!op.kind.is_removal(), "removal on incomplete read: {op:?}");
        }
    }

    #[test]
    fn rename_keeps_the_account(old in world(), k in knobs(), d in drift()) {
        // Same world, every user's UPN changes variant: renames, never delete + create.
        let mut new = old.clone();
        for u in new.users.values_mut() {
            u.0 = 1 - u.0;
        }
        let (t, lt) = prior_state(&old, &k, &d);
        let src = build_source(&new, true);
        let p = plan_of(&src, &t, &lt, &k);
        let fake = FakeTarget::new(caps_from(&k), t.clone());
        let (_, lt2) = apply_to(&p, &fake, &src, &lt, NOW);
        let after = fake.snapshot();
        // Without a rename this case checks nothing: draw another.
        prop_assume!(p.ops.iter().any(|o| matches!(o.kind, OpKind::RenameUser { .. })));
        for op in &p.ops {
            if let OpKind::RenameUser { source_id, from, to } = &op.kind {
                let recreated = p.ops.iter().any(|o| matches!(&o.kind,
                    OpKind::CreateUser { source_id: s, .. } | OpKind::DeleteUser { source_id: s, .. } if s == source_id));
                prop_assert!(!recreated, "renamed user is also created or deleted");
                let before_key = t.accounts.iter().find(|a| name_key(&a.username) == name_key(from)).and_then(|a| a.key.clone());
                let after_acc = after.accounts.iter().find(|a| name_key(&a.username) == name_key(to));
                prop_assert!(after_acc.is_some(), "renamed account missing");
                prop_assert_eq!(after_acc.and_then(|a| a.key.clone()), before_key);
                prop_assert_eq!(lt2.users.get(source_id).map(|l| name_key(&l.username)), Some(name_key(to)));
            }
        }
        // A managed user whose name changed is never deleted or recreated.
        for op in &p.ops {
            if let OpKind::CreateUser { source_id, .. } = &op.kind {
                let had_account = t.accounts.iter().any(|a|
                    lt.users.get(source_id).is_some_and(|l| name_key(&l.username) == name_key(&a.username)));
                prop_assert!(!had_account, "a linked account with an existing account is recreated");
            }
        }
    }

    #[test]
    fn guard_holds_above_threshold(old in world(), new in world(), k in knobs(), d in drift(), max in 0usize..3) {
        let (t, lt) = prior_state(&old, &k, &d);
        let src = build_source(&new, true);
        let mut s = settings_from(&k);
        s.policy.guard.allow_mass_removal = false;
        s.policy.guard.max_count = max;
        s.policy.guard.max_percent = 100.0;
        // Only the account limit is under test here (the others have their own tests).
        s.policy.guard.group_max_count = usize::MAX;
        s.policy.guard.group_max_percent = 100.0;
        s.policy.guard.membership_max_count = usize::MAX;
        s.policy.guard.membership_max_percent = 100.0;
        let p = make_plan(&src, &t, &lt, &s, &caps_from(&k), NOW);
        let removals = p.ops.iter().filter(|o| matches!(o.kind, OpKind::DeactivateUser { .. } | OpKind::DeleteUser { .. })).count();
        // The limits themselves are checked against hand-computed examples in tests/guard.rs;
        // here: an unheld plan never exceeds the count, and a hold states the plan's figures.
        if p.held.is_none() {
            prop_assert!(removals <= max, "{} removals passed a limit of {}", removals, max);
        }
        if let Some(h) = &p.held {
            match h {
                HoldReason::Guard { what: RemovalKind::Accounts, count, base, .. } => {
                    prop_assert_eq!(*count, removals);
                    prop_assert_eq!(*base, p.counts.managed_accounts);
                }
                // Deleting every managed group is always held, whatever the limits.
                HoldReason::Guard { what: RemovalKind::Groups, limit: GuardLimit::Everything, count, .. } => {
                    prop_assert!(*count >= 2 && *count <= p.counts.groups_deleted);
                }
                other => prop_assert!(false, "unexpected hold: {other:?}"),
            }
        }
        if p.held.is_some() {
            let fake = FakeTarget::new(caps_from(&k), t.clone());
            let (report, lt2) = apply_to(&p, &fake, &src, &lt, NOW);
            prop_assert_eq!(fake.writes(), 0);
            prop_assert_eq!(fake.snapshot(), FakeTarget::new(caps_from(&k), t).snapshot());
            prop_assert_eq!(lt2, lt);
            prop_assert_eq!(report.outcomes.applied, 0);
        }
    }
}

/// One link of the link-safety property: (username index, key choice, stamp days ago, in source).
/// Key choice: 0 = the key of the account with that name (if any), 1 = a stale key, 2 = none.
type LinkGen = (u8, u8, Option<u8>, bool);

proptest! {
    /// Link tables with reused usernames, key mismatches and external reactivations: no account
    /// is deactivated or deleted unless its own link says so (same key where both are known),
    /// and never an account another link owns by key.
    #[test]
    fn removals_follow_the_accounts_own_link(
        accounts in prop::collection::btree_map(0u8..6, (any::<bool>(), any::<bool>()), 0..6),
        link_gens in prop::collection::btree_map(0u8..8, (0u8..6, 0u8..3, prop::option::of(0u8..60), prop::bool::weighted(0.4)), 0..8),
        delete in any::<bool>(),
        grace in prop::sample::select(vec![0u32, 30]),
    ) {
        // Accounts: name index → (active, has key). Keys are unique per account.
        let t = TargetSnapshot {
            accounts: accounts.iter().map(|(n, (active, keyed))| TargetAccount {
                username: format!("user{n}"),
                key: keyed.then(|| format!("K{n}")),
                display_name: format!("User {n}"),
                email: format!("user{n}@ex.com"),
                active: *active,
                groups: BTreeSet::new(),
            }).collect(),
            groups: vec![],
        };
        let mut lt = LinkTable::default();
        let mut in_source = Vec::new();
        for (id, (n, kc, stamp, keep)) in &link_gens {
            let lg: &LinkGen = &(*n, *kc, *stamp, *keep);
            let sid = format!("s{id}");
            let key = match lg.1 {
                0 => accounts.get(n).and_then(|(_, keyed)| keyed.then(|| format!("K{n}"))),
                1 => Some(format!("stale-{id}")),
                _ => None,
            };
            lt.users.insert(sid.clone(), usersync_core::link::UserLink {
                source_id: sid.clone(),
                username: format!("user{n}"),
                target_key: key,
                pending_username: None,
                deactivated_at_ms: lg.2.map(|d| NOW - i64::from(d) * DAY),
                photo_tag: None,
            });
            if lg.3 {
                in_source.push(su(&sid, &format!("user{n}"), &format!("User {n}")));
            }
        }
        let src = source(in_source, vec![]);
        let mut s = SyncSettings::default();
        s.mapping.username_transforms.clear();
        s.mapping.username_fallback = None;
        s.policy.leaver_action = if delete { LeaverAction::Delete } else { LeaverAction::Deactivate };
        s.policy.delete_grace_days = grace;
        s.policy.guard.allow_mass_removal = true;
        let caps = usersync_core::testkit::full_capabilities();
        let p = make_plan(&src, &t, &lt, &s, &caps, NOW);
        let key_owner: BTreeSet<&str> = lt.users.values()
            .filter_map(|l| l.target_key.as_deref())
            .collect();
        for op in &p.ops {
            let (sid, username) = match &op.kind {
                OpKind::DeactivateUser { source_id, username, .. } | OpKind::DeleteUser { source_id, username, .. } => (source_id, username),
                _ => continue,
            };
            let link = lt.users.get(sid);
            prop_assert!(link.is_some(), "removal without a link: {op:?}");
            let link = link.unwrap();
            prop_assert!(name_key(&link.username) == name_key(username), "removal of another name than the link's: {op:?}");
            if let Some(acc) = t.accounts.iter().find(|a| name_key(&a.username) == name_key(username)) {
                if let (Some(lk), Some(ak)) = (link.target_key.as_deref(), acc.key.as_deref()) {
                    prop_assert_eq!(lk, ak, "removal of an account with another key: {:?}", op);
                }
                // A link without a key never removes an account another link holds by key.
                if link.target_key.is_none() {
                    let claimed = acc.key.as_deref().and_then(|k| key_owner.get(k));
                    prop_assert!(claimed.is_none(), "removal of an account another link owns by key: {:?}", op);
                }
            }
        }
    }
}
