//! The mass-removal guard against independent, hand-computed examples: accounts, group
//! deletions and membership removals each have their own limits; group takeover follows
//! `adopt_existing`.

mod common;

use common::*;
use usersync_core::config::AdoptMode;
use usersync_core::link::LinkTable;
use usersync_core::model::{SourceSnapshot, TargetSnapshot};
use usersync_core::plan::{ConflictKind, GuardLimit, HoldReason, OpKind, Plan, RemovalKind};

fn users(
    n: usize,
) -> (
    Vec<usersync_core::model::SourceUser>,
    Vec<usersync_core::model::TargetAccount>,
    Vec<usersync_core::link::UserLink>,
) {
    let mut s = Vec::new();
    let mut t = Vec::new();
    let mut l = Vec::new();
    for i in 0..n {
        let name = format!("user{i:05}@example.com");
        s.push(su(&format!("u{i:05}"), &name, &format!("User {i}")));
        t.push(ta(&name, &format!("User {i}"), &name, true, &[]));
        l.push(ul(&format!("u{i:05}"), &name));
    }
    (s, t, l)
}

/// `managed` linked accounts of which the first `leaving` left the source.
fn leavers_plan(managed: usize, leaving: usize) -> Plan {
    let (mut s, t, l) = users(managed);
    s.drain(..leaving);
    let src = source(s, vec![]);
    let tgt = target(t, &[]);
    make_plan(&src, &tgt, &links(l, vec![]), &settings(), &caps(), NOW)
}

#[test]
fn account_guard_examples() {
    // Defaults: more than 100 accounts, or more than 10% once at least 5 are affected, or all.
    // (managed, leaving, held)
    for (managed, leaving, held) in [
        (10, 1, false),     // 10%, under the floor of 5
        (10, 4, false),     // 40%, still under the floor
        (10, 6, true),      // 60% with 6 >= 5
        (100, 5, false),    // exactly 5%
        (40, 5, true),      // 12.5%
        (50, 5, false),     // exactly 10% is not more than 10%
        (2, 2, true),       // every managed account
        (1, 1, false),      // a single account is not a wipe-out
        (2000, 100, false), // 5%, exactly 100
        (2000, 101, true),  // 101 > 100
    ] {
        let p = leavers_plan(managed, leaving);
        assert_eq!(
            p.held.is_some(),
            held,
            "{leaving} of {managed} leaving: held = {:?}",
            p.held
        );
    }
}

/// `n` managed groups, each with `members` of `users` linked users.
fn groups_world(
    n: usize,
    nusers: usize,
    keep_groups: bool,
) -> (SourceSnapshot, TargetSnapshot, LinkTable) {
    let (s, mut t, l) = users(nusers);
    let names: Vec<String> = (0..n).map(|g| format!("team-{g:02}")).collect();
    for a in &mut t {
        a.groups = names.iter().cloned().collect();
    }
    let member_ids: Vec<String> = s.iter().map(|u| u.id.clone()).collect();
    let member_refs: Vec<&str> = member_ids.iter().map(String::as_str).collect();
    let sgroups = if keep_groups {
        names
            .iter()
            .enumerate()
            .map(|(g, name)| sg(&format!("g{g:02}"), name, &member_refs, &[]))
            .collect()
    } else {
        vec![]
    };
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let tgt = target(t, &name_refs);
    let glinks = names
        .iter()
        .enumerate()
        .map(|(g, name)| gl(&format!("g{g:02}"), name))
        .collect();
    (source(s, sgroups), tgt, links(l, glinks))
}

/// Every Entra group deleted: 30 groups and all their memberships would go. Held.
#[test]
fn deleting_every_group_is_held() {
    let (src, tgt, lt) = groups_world(30, 48, false);
    let mut s = settings();
    s.policy.delete_groups = true;
    let p = make_plan(&src, &tgt, &lt, &s, &caps(), NOW);
    assert_eq!(p.counts.groups_deleted, 30);
    assert_eq!(
        p.held,
        Some(HoldReason::Guard {
            what: RemovalKind::Groups,
            limit: GuardLimit::Count { max: 10 },
            count: 30,
            base: 30,
        }),
        "30 group deletions were not held"
    );
}

/// Three of 30 groups deleted is routine (10%, three groups): not held.
#[test]
fn a_few_group_deletions_are_not_held() {
    let (mut src, tgt, lt) = groups_world(30, 4, true);
    src.groups.truncate(27);
    let mut s = settings();
    s.policy.delete_groups = true;
    let p = make_plan(&src, &tgt, &lt, &s, &caps(), NOW);
    assert_eq!(p.counts.groups_deleted, 3);
    assert!(p.held.is_none(), "{:?}", p.held);
}

/// Groups kept (delete_groups off) but emptied at the source: 1,440 membership removals. Held.
#[test]
fn mass_membership_removal_is_held() {
    let (mut src, tgt, lt) = groups_world(30, 48, true);
    for g in &mut src.groups {
        g.member_users.clear();
    }
    let p = make_plan(&src, &tgt, &lt, &settings(), &caps(), NOW);
    assert_eq!(p.counts.memberships_removed, 30 * 48);
    assert_eq!(
        p.held,
        Some(HoldReason::Guard {
            what: RemovalKind::Memberships,
            limit: GuardLimit::Count { max: 500 },
            count: 1440,
            base: 1440,
        }),
        "1,440 membership removals were not held"
    );
    let text = p.held.unwrap().to_string();
    assert!(text.contains("membership_max_count = 500"), "{text}");
}

/// A new source group with the name of a departed one takes its target group over only when
/// adoption is on (display names are not unique in Entra); otherwise it is a conflict and the
/// group is kept.
#[test]
fn group_takeover_follows_adopt_existing() {
    let src = source(
        vec![su("u1", "alice@example.com", "Alice")],
        vec![sg("g-new", "Engineering", &["u1"], &[])],
    );
    let tgt = target(
        vec![ta(
            "alice@example.com",
            "Alice",
            "alice@example.com",
            true,
            &["Engineering"],
        )],
        &["Engineering"],
    );
    let lt = links(
        vec![ul("u1", "alice@example.com")],
        vec![gl("g-old", "Engineering")],
    );
    let mut s = settings();
    s.policy.delete_groups = true;
    s.policy.adopt_existing = AdoptMode::Never;
    let p = make_plan(&src, &tgt, &lt, &s, &caps(), NOW);
    assert!(
        !p.ops.iter().any(|o| matches!(
            o.kind,
            OpKind::AdoptGroup { .. } | OpKind::DeleteGroup { .. }
        )),
        "{:?}",
        p.ops
    );
    assert!(
        p.conflicts
            .iter()
            .any(|c| c.kind == ConflictKind::UnmanagedGroup && c.source_ids == ["g-new"]),
        "{:?}",
        p.conflicts
    );
    s.policy.adopt_existing = AdoptMode::ByUsername;
    let p = make_plan(&src, &tgt, &lt, &s, &caps(), NOW);
    assert!(
        p.ops
            .iter()
            .any(|o| matches!(o.kind, OpKind::AdoptGroup { .. })),
        "{:?}",
        p.ops
    );
    assert!(
        !p.ops
            .iter()
            .any(|o| matches!(o.kind, OpKind::DeleteGroup { .. }))
    );
}

/// Plans stored by older versions carry the hold reason as text; they still load.
#[test]
fn legacy_text_hold_reason_loads() {
    let mut v = serde_json::to_value(Plan::default()).unwrap();
    v["held"] = serde_json::Value::String("held by the mass-removal guard: 6 accounts".into());
    let p: Plan = serde_json::from_value(v).unwrap();
    assert_eq!(
        p.held,
        Some(HoldReason::Other {
            message: "held by the mass-removal guard: 6 accounts".into()
        })
    );
    // And the structured form round-trips.
    let h = HoldReason::Guard {
        what: RemovalKind::Accounts,
        limit: GuardLimit::Percent {
            max_percent: 10.0,
            floor: 5,
        },
        count: 6,
        base: 10,
    };
    let p = Plan {
        held: Some(h.clone()),
        ..Plan::default()
    };
    let back: Plan = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
    assert_eq!(back.held, Some(h));
}
