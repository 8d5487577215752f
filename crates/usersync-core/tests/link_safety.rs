//! Link-table safety: stale links never capture a reused username, journal outcomes keep what
//! the next plan needs (pending links on a create conflict, fresh deactivation stamps), and
//! rename reasons say what changed.

mod common;

use common::*;
use usersync_core::config::{LeaverAction, UsernameSource};
use usersync_core::journal::apply_outcome_to_links;
use usersync_core::journal::record_intent;
use usersync_core::plan::{AccountSpec, OpKind, OpOutcome, Operation};
use usersync_core::ports::ErrorKind;

fn op(kind: OpKind) -> Operation {
    Operation {
        seq: 0,
        kind,
        reason: String::new(),
    }
}

fn create_bob() -> Operation {
    op(OpKind::CreateUser {
        source_id: "x".into(),
        account: AccountSpec {
            username: "bob@example.com".into(),
            display_name: "Bob".into(),
            email: "bob@example.com".into(),
        },
    })
}

fn failed(kind: ErrorKind) -> OpOutcome {
    OpOutcome::Failed {
        kind,
        message: "refused".into(),
    }
}

/// Leaver Y was linked to `bob` (key K1); `bob` was deleted by an admin and a new hire X got a
/// new `bob` (K2). Y's link must not resolve to X's account by name.
#[test]
fn stale_link_does_not_capture_a_reused_username() {
    let src = source(vec![su("x", "bob@example.com", "Bob New")], vec![]);
    let mut new_bob = ta("bob@example.com", "Bob New", "bob@example.com", true, &[]);
    new_bob.key = Some("K2".into());
    let tgt = target(vec![new_bob], &[]);
    let mut y = ul("y", "bob@example.com");
    y.target_key = Some("K1".into());
    let mut x = ul("x", "bob@example.com");
    x.target_key = Some("K2".into());
    for action in [LeaverAction::Deactivate, LeaverAction::Delete] {
        let mut s = settings();
        s.policy.leaver_action = action;
        s.policy.delete_grace_days = 0;
        // Both GUID orders: the stale link sorting first or last.
        for (ysid, lt) in [
            (
                "a-y",
                links(vec![UserLinkId::with("a-y", &y), x.clone()], vec![]),
            ),
            (
                "z-y",
                links(vec![UserLinkId::with("z-y", &y), x.clone()], vec![]),
            ),
        ] {
            let p = make_plan(&src, &tgt, &lt, &s, &caps(), NOW);
            for o in &p.ops {
                assert!(
                    !matches!(
                        o.kind,
                        OpKind::DeactivateUser { .. } | OpKind::DeleteUser { .. }
                    ),
                    "{action:?}/{ysid}: the new hire's account is removed: {:?}",
                    o
                );
            }
        }
    }
}

struct UserLinkId;
impl UserLinkId {
    fn with(sid: &str, l: &usersync_core::link::UserLink) -> usersync_core::link::UserLink {
        let mut l = l.clone();
        l.source_id = sid.into();
        l
    }
}

/// A create refused with Conflict means an account exists under the name (often our own
/// earlier, ambiguous POST): keep the pending link so the next plan adopts it as a confirmation.
#[test]
fn create_conflict_keeps_the_pending_link() {
    let mut lt = links(vec![], vec![]);
    let c = create_bob();
    record_intent(&mut lt, &c);
    apply_outcome_to_links(&mut lt, &c, &failed(ErrorKind::Conflict), NOW);
    let l = lt.users.get("x").expect("the pending link is kept");
    assert_eq!(l.pending_username.as_deref(), Some("bob@example.com"));

    // The next plan finds the account under the pending name and confirms it (no create).
    let src = source(vec![su("x", "bob@example.com", "Bob")], vec![]);
    let tgt = target(
        vec![ta("bob@example.com", "Bob", "bob@example.com", true, &[])],
        &[],
    );
    let p = make_plan(&src, &tgt, &lt, &settings(), &caps(), NOW);
    assert!(
        p.ops
            .iter()
            .any(|o| matches!(o.kind, OpKind::AdoptUser { .. })),
        "{:?}",
        p.ops
    );
    assert!(
        !p.ops
            .iter()
            .any(|o| matches!(o.kind, OpKind::CreateUser { .. }))
    );
}

/// A re-create of a missing account that the target refuses must not drop the existing link
/// with its key, deactivation stamp and photo tag.
#[test]
fn refused_recreate_keeps_the_existing_link() {
    for kind in [ErrorKind::Conflict, ErrorKind::Invalid] {
        let mut existing = ul("x", "bob@example.com");
        existing.deactivated_at_ms = Some(NOW - DAY);
        existing.photo_tag = Some("p1".into());
        let mut lt = links(vec![existing.clone()], vec![]);
        let c = create_bob();
        record_intent(&mut lt, &c);
        apply_outcome_to_links(&mut lt, &c, &failed(kind), NOW);
        let l = lt.users.get("x").expect("the existing link is kept");
        assert_eq!(l.target_key, existing.target_key, "{kind:?}");
        assert_eq!(l.deactivated_at_ms, existing.deactivated_at_ms, "{kind:?}");
        assert_eq!(l.photo_tag, existing.photo_tag, "{kind:?}");
    }
}

/// A fresh create refused as invalid leaves no link behind (nothing exists in the target).
#[test]
fn refused_fresh_create_leaves_no_link() {
    let mut lt = links(vec![], vec![]);
    let c = create_bob();
    record_intent(&mut lt, &c);
    apply_outcome_to_links(&mut lt, &c, &failed(ErrorKind::Invalid), NOW);
    assert!(lt.users.is_empty());
}

/// A stamp from an earlier deactivation is replaced when the account (reactivated by an admin
/// since) is deactivated again, so the grace period runs from the new deactivation.
#[test]
fn redeactivation_restarts_the_grace_period() {
    let year_ago = NOW - 365 * DAY;
    let mut l = ul("y", "bob@example.com");
    l.deactivated_at_ms = Some(year_ago);
    let mut lt = links(vec![l], vec![]);
    // An admin reactivated the account; the user leaves again: the planner deactivates.
    let src = source(vec![], vec![]);
    let tgt = target(
        vec![
            ta("bob@example.com", "Bob", "bob@example.com", true, &[]),
            ta("keep@example.com", "K", "keep@example.com", true, &[]),
        ],
        &[],
    );
    let mut s = settings();
    s.policy.leaver_action = LeaverAction::Delete;
    s.policy.delete_grace_days = 30;
    s.policy.guard.allow_mass_removal = true;
    let p = make_plan(&src, &tgt, &lt, &s, &caps(), NOW);
    let deact = p
        .ops
        .iter()
        .find(|o| matches!(o.kind, OpKind::DeactivateUser { .. }))
        .expect("the active leaver is deactivated first")
        .clone();
    assert!(
        !p.ops
            .iter()
            .any(|o| matches!(o.kind, OpKind::DeleteUser { .. }))
    );
    apply_outcome_to_links(
        &mut lt,
        &deact,
        &OpOutcome::Applied { target_key: None },
        NOW,
    );
    assert_eq!(lt.users["y"].deactivated_at_ms, Some(NOW));
    // The next day the account is inactive: not deleted before the grace period is over.
    let tgt2 = target(
        vec![
            ta("bob@example.com", "Bob", "bob@example.com", false, &[]),
            ta("keep@example.com", "K", "keep@example.com", true, &[]),
        ],
        &[],
    );
    let p2 = make_plan(&src, &tgt2, &lt, &s, &caps(), NOW + DAY);
    assert!(
        !p2.ops
            .iter()
            .any(|o| matches!(o.kind, OpKind::DeleteUser { .. })),
        "deleted a day after deactivation: {:?}",
        p2.ops
    );
}

/// The rename reason says whether the source attribute or the mapping changed.
#[test]
fn rename_reason_names_what_changed() {
    let tgt = target(
        vec![ta(
            "alice@example.com",
            "Alice",
            "alice@example.com",
            true,
            &[],
        )],
        &[],
    );
    let lt = links(vec![ul("u1", "alice@example.com")], vec![]);
    // The UPN changed.
    let src = source(vec![su("u1", "alice.smith@example.com", "Alice")], vec![]);
    let p = make_plan(&src, &tgt, &lt, &settings(), &caps(), NOW);
    let r = rename_reason(&p);
    assert!(r.contains("user_principal_name changed"), "{r}");
    // The mapping changed: same UPN, now the local part.
    let src = source(vec![su("u1", "alice@example.com", "Alice")], vec![]);
    let mut s = settings();
    s.mapping.username_source = UsernameSource::UpnLocalPart;
    let p = make_plan(&src, &tgt, &lt, &s, &caps(), NOW);
    let r = rename_reason(&p);
    assert!(r.contains("mapping changed"), "{r}");
    assert!(!r.contains("UPN now"), "{r}");
}

fn rename_reason(p: &usersync_core::plan::Plan) -> String {
    p.ops
        .iter()
        .find(|o| matches!(o.kind, OpKind::RenameUser { .. }))
        .map(|o| o.reason.clone())
        .unwrap_or_else(|| panic!("no rename: {:?}", p.ops))
}
