//! The engine re-reads the object of every destructive write (deactivate, delete, remove
//! membership, delete group) just before writing, so a plan made from a stale target state
//! (an incremental run's stored state, or an admin's change since the read) is skipped instead
//! of removing the wrong thing.

mod common;

use common::*;
use usersync_core::plan::{OpKind, OpOutcome};
use usersync_core::testkit::FakeTarget;

fn outcome_of(report: &usersync_core::report::Report, pred: impl Fn(&OpKind) -> bool) -> OpOutcome {
    let r = report
        .operations
        .iter()
        .find(|r| pred(&r.op.kind))
        .expect("op planned");
    r.outcome.clone().expect("op applied")
}

#[test]
fn destructive_writes_on_a_stale_state_are_re_read_and_skipped() {
    // Source: bob left (disabled), alice left group Eng; dave stays in Eng.
    let src = source(
        vec![
            su("a", "alice@example.com", "Alice"),
            disabled(su("b", "bob@example.com", "Bob")),
            su("d", "dave@example.com", "Dave"),
        ],
        vec![sg("g1", "Eng", &["d"], &[])],
    );
    let lt = links(
        vec![
            ul("a", "alice@example.com"),
            ul("b", "bob@example.com"),
            ul("d", "dave@example.com"),
        ],
        vec![gl("g1", "Eng")],
    );
    // What the plan believes (a stored state from the last reconcile).
    let stale = target(
        vec![
            ta(
                "alice@example.com",
                "Alice",
                "alice@example.com",
                true,
                &["Eng"],
            ),
            ta("bob@example.com", "Bob", "bob@example.com", true, &["Eng"]),
            ta(
                "dave@example.com",
                "Dave",
                "dave@example.com",
                true,
                &["Eng"],
            ),
        ],
        &["Eng"],
    );
    let p = make_plan(&src, &stale, &lt, &settings(), &caps(), NOW);
    assert!(p.ops.iter().any(|o| matches!(&o.kind,
        OpKind::RemoveMember { username, .. } if username == "alice@example.com")));
    assert!(p.ops.iter().any(|o| matches!(&o.kind,
        OpKind::DeactivateUser { username, .. } if username == "bob@example.com")));

    // What the target holds now: an admin already took alice out of Eng, and bob's account
    // was deleted and his name given to someone else (another key).
    let mut other_bob = ta("bob@example.com", "Other Bob", "ob@example.com", true, &[]);
    other_bob.key = Some("key-someone-else".into());
    let fake = FakeTarget::new(
        caps(),
        target(
            vec![
                ta("alice@example.com", "Alice", "alice@example.com", true, &[]),
                other_bob,
                ta(
                    "dave@example.com",
                    "Dave",
                    "dave@example.com",
                    true,
                    &["Eng"],
                ),
            ],
            &["Eng"],
        ),
    );
    let (report, _links) = apply_to(&p, &fake, &src, &lt, NOW);

    let remove = outcome_of(&report, |k| matches!(k, OpKind::RemoveMember { .. }));
    assert!(
        matches!(&remove, OpOutcome::Skipped { reason } if reason.contains("re-read") && reason.contains("not a member")),
        "{remove:?}"
    );
    let deact = outcome_of(&report, |k| matches!(k, OpKind::DeactivateUser { .. }));
    assert!(
        matches!(&deact, OpOutcome::Skipped { reason } if reason.contains("key-someone-else")),
        "{deact:?}"
    );
    // Nothing was written, and the other bob is untouched.
    assert_eq!(fake.writes(), 0);
    assert!(
        fake.single_reads() >= 2,
        "each destructive op re-read first"
    );
    let now = fake.snapshot();
    let bob = now
        .accounts
        .iter()
        .find(|a| a.username == "bob@example.com")
        .unwrap();
    assert!(bob.active);
}

#[test]
fn destructive_writes_go_ahead_when_the_target_agrees() {
    let src = source(
        vec![
            su("a", "alice@example.com", "Alice"),
            disabled(su("b", "bob@example.com", "Bob")),
        ],
        vec![sg("g1", "Eng", &[], &[])],
    );
    let lt = links(
        vec![ul("a", "alice@example.com"), ul("b", "bob@example.com")],
        vec![gl("g1", "Eng")],
    );
    let tgt = target(
        vec![
            ta(
                "alice@example.com",
                "Alice",
                "alice@example.com",
                true,
                &["Eng"],
            ),
            ta("bob@example.com", "Bob", "bob@example.com", true, &[]),
        ],
        &["Eng"],
    );
    let p = make_plan(&src, &tgt, &lt, &settings(), &caps(), NOW);
    let fake = FakeTarget::new(caps(), tgt);
    let (report, links) = apply_to(&p, &fake, &src, &lt, NOW);
    assert_eq!(report.outcomes.skipped, 0, "{:?}", report.operations);
    let now = fake.snapshot();
    assert!(now.accounts.iter().all(|a| a.groups.is_empty()));
    assert!(!now.accounts[1].active);
    assert!(links.users["b"].deactivated_at_ms.is_some());
}

#[test]
fn an_account_already_inactive_is_recorded_without_a_write() {
    // The plan saw bob active; an admin deactivated him since. No write, but the journal
    // records the deactivation so the delete grace period starts.
    let src = source(vec![disabled(su("b", "bob@example.com", "Bob"))], vec![]);
    let lt = links(vec![ul("b", "bob@example.com")], vec![]);
    let stale = target(
        vec![ta("bob@example.com", "Bob", "bob@example.com", true, &[])],
        &[],
    );
    let p = make_plan(&src, &stale, &lt, &settings(), &caps(), NOW);
    let fake = FakeTarget::new(
        caps(),
        target(
            vec![ta("bob@example.com", "Bob", "bob@example.com", false, &[])],
            &[],
        ),
    );
    let (report, links) = apply_to(&p, &fake, &src, &lt, NOW);
    assert_eq!(report.outcomes.applied, 1);
    assert_eq!(fake.writes(), 0);
    assert_eq!(links.users["b"].deactivated_at_ms, Some(NOW));
}
