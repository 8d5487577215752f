//! Engine behaviour around failures: per-item errors do not stop the run, systemic ones do
//! (the rest is skipped), dependants of a failed op are skipped, a vanished photo skips the
//! avatar, and the journal sees every op.

mod common;

use common::*;
use usersync_core::engine::{ApplyOptions, MemoryJournal, apply};
use usersync_core::link::LinkTable;
use usersync_core::plan::{OpKind, OpOutcome};
use usersync_core::ports::ErrorKind;
use usersync_core::testkit::{Failures, FakeSource, FakeTarget};

#[test]
fn per_item_errors_continue_systemic_errors_stop() {
    let users: Vec<_> = (0..6)
        .map(|i| {
            su(
                &format!("u{i}"),
                &format!("user{i}@example.com"),
                &format!("User {i}"),
            )
        })
        .collect();
    let src = source(
        users,
        vec![sg("g1", "Eng", &["u0", "u1", "u2", "u3", "u4", "u5"], &[])],
    );
    let mut c = caps();
    c.batch_membership = false;
    let lt = LinkTable::default();
    let p = make_plan(&src, &target(vec![], &[]), &lt, &settings(), &c, NOW);

    // Per-item: user1 fails, everything else is applied; user1's membership is skipped.
    let fake = FakeTarget::new(c.clone(), target(vec![], &[])).with_failures(Failures {
        fail_usernames: [("user1@example.com".to_string(), ErrorKind::Invalid)].into(),
        ..Failures::default()
    });
    let (report, links) = apply_to(&p, &fake, &src, &lt, NOW);
    assert_eq!(report.outcomes.failed, 1);
    assert_eq!(report.outcomes.skipped, 1);
    assert!(report.stopped.is_none());
    assert_eq!(fake.snapshot().accounts.len(), 5);
    assert!(
        !links.users.contains_key("u1"),
        "a refused create leaves no link"
    );

    // Systemic: after 3 writes the target is unreachable; the rest is skipped, not failed.
    let fake = FakeTarget::new(c.clone(), target(vec![], &[])).with_failures(Failures {
        systemic_after_writes: Some(3),
        ..Failures::default()
    });
    let journal = MemoryJournal::new(lt.clone(), NOW);
    let source = FakeSource {
        snapshot: src.clone(),
    };
    let report = block_on(apply(
        &p,
        &fake,
        &source,
        &journal,
        &ApplyOptions { max_concurrency: 1 },
        &(),
    ));
    assert!(
        report
            .stopped
            .as_deref()
            .is_some_and(|s| s.contains("Unreachable"))
    );
    assert_eq!(report.outcomes.applied, 3);
    assert_eq!(report.outcomes.failed, 1);
    assert_eq!(report.outcomes.skipped, p.ops.len() - 4);
    // The journal saw every operation.
    assert_eq!(journal.outcomes().len(), p.ops.len());
}

#[test]
fn avatar_skipped_when_photo_is_gone() {
    let src = source(
        vec![with_photo(su("u1", "a@example.com", "A"), "t1")],
        vec![],
    );
    let lt = LinkTable::default();
    let p = make_plan(&src, &target(vec![], &[]), &lt, &settings(), &caps(), NOW);
    assert!(
        p.ops
            .iter()
            .any(|o| matches!(o.kind, OpKind::SetAvatar { .. }))
    );
    // The photo disappeared between the read and the apply.
    let mut gone = src.clone();
    gone.users[0].photo = None;
    let fake = FakeTarget::new(caps(), target(vec![], &[]));
    let journal = MemoryJournal::new(lt, NOW);
    let report = block_on(apply(
        &p,
        &fake,
        &FakeSource { snapshot: gone },
        &journal,
        &ApplyOptions::default(),
        &(),
    ));
    let avatar = report
        .operations
        .iter()
        .find(|r| matches!(r.op.kind, OpKind::SetAvatar { .. }))
        .expect("avatar op");
    assert!(
        matches!(&avatar.outcome, Some(OpOutcome::Skipped { reason }) if reason.contains("no longer has a profile picture"))
    );
    assert!(journal.link_table().users["u1"].photo_tag.is_none());
}

#[test]
fn progress_sees_every_op() {
    let src = source(
        vec![
            su("u1", "a@example.com", "A"),
            su("u2", "b@example.com", "B"),
        ],
        vec![],
    );
    let lt = LinkTable::default();
    let p = make_plan(&src, &target(vec![], &[]), &lt, &settings(), &caps(), NOW);
    let seen = std::sync::Mutex::new(Vec::new());
    let progress =
        |_: &usersync_core::plan::Operation, _: &OpOutcome, done: usize, total: usize| {
            seen.lock().expect("lock").push((done, total));
        };
    let fake = FakeTarget::new(caps(), target(vec![], &[]));
    let journal = MemoryJournal::new(lt, NOW);
    block_on(apply(
        &p,
        &fake,
        &FakeSource { snapshot: src },
        &journal,
        &ApplyOptions::default(),
        &progress,
    ));
    let seen = seen.into_inner().expect("lock");
    assert_eq!(seen.len(), p.ops.len());
    assert!(seen.iter().any(|(d, t)| d == t));
}

/// `apply` must be spawnable on a multi-threaded runtime.
#[test]
fn apply_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let src = source(vec![], vec![]);
    let p = make_plan(
        &src,
        &target(vec![], &[]),
        &LinkTable::default(),
        &settings(),
        &caps(),
        NOW,
    );
    let fake = FakeTarget::new(caps(), target(vec![], &[]));
    let journal = MemoryJournal::new(LinkTable::default(), NOW);
    let source = FakeSource { snapshot: src };
    let opts = ApplyOptions::default();
    let fut = apply(&p, &fake, &source, &journal, &opts, &());
    assert_send(&fut);
    block_on(fut);
}

/// A 403 on one account (a protected or system account) fails that item only; 403s on every
/// write (credentials without the right) still stop the run.
#[test]
fn a_403_on_one_item_fails_that_item_only() {
    let users: Vec<_> = (0..6)
        .map(|i| {
            su(
                &format!("u{i}"),
                &format!("user{i}@example.com"),
                &format!("User {i}"),
            )
        })
        .collect();
    let src = source(users, vec![]);
    let c = caps();
    let lt = LinkTable::default();
    let p = make_plan(&src, &target(vec![], &[]), &lt, &settings(), &c, NOW);

    let fake = FakeTarget::new(c.clone(), target(vec![], &[])).with_failures(Failures {
        fail_usernames: [("user1@example.com".to_string(), ErrorKind::Forbidden)].into(),
        ..Failures::default()
    });
    let (report, _) = apply_to(&p, &fake, &src, &lt, NOW);
    assert!(report.stopped.is_none(), "{:?}", report.stopped);
    assert_eq!(report.outcomes.failed, 1);
    assert_eq!(fake.snapshot().accounts.len(), 5);

    let fake = FakeTarget::new(c.clone(), target(vec![], &[])).with_failures(Failures {
        fail_usernames: (0..6)
            .map(|i| (format!("user{i}@example.com"), ErrorKind::Forbidden))
            .collect(),
        ..Failures::default()
    });
    let (report, _) = apply_to(&p, &fake, &src, &lt, NOW);
    assert!(report.stopped.is_some(), "403 everywhere must stop the run");
    assert!(report.outcomes.failed < 6, "{:?}", report.outcomes);
}

/// A journal that refuses to record anything after `ok` operations (a full disk, a locked
/// database).
struct FailingJournal {
    inner: MemoryJournal,
    ok: usize,
    seen: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl usersync_core::ports::ApplyJournal for FailingJournal {
    async fn before(
        &self,
        op: &usersync_core::plan::Operation,
    ) -> Result<(), usersync_core::ports::JournalError> {
        let n = self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n >= self.ok {
            return Err(usersync_core::ports::JournalError::new(
                "state store: database or disk is full",
            ));
        }
        self.inner.before(op).await
    }
    async fn after(
        &self,
        op: &usersync_core::plan::Operation,
        outcome: &OpOutcome,
    ) -> Result<(), usersync_core::ports::JournalError> {
        self.inner.after(op, outcome).await
    }
    async fn links(&self) -> Result<LinkTable, usersync_core::ports::JournalError> {
        self.inner.links().await
    }
}

/// Issue 11 item 17: a journal failure (its own error type, not a target error) is systemic:
/// the op whose intent could not be recorded is not written, the apply stops, and the rest is
/// skipped.
#[test]
fn a_journal_failure_stops_the_apply() {
    let users: Vec<_> = (0..6)
        .map(|i| {
            su(
                &format!("u{i}"),
                &format!("user{i}@example.com"),
                &format!("User {i}"),
            )
        })
        .collect();
    let src = source(users, vec![]);
    let c = caps();
    let lt = LinkTable::default();
    let p = make_plan(&src, &target(vec![], &[]), &lt, &settings(), &c, NOW);
    assert!(p.ops.len() >= 6);
    let fake = FakeTarget::new(c.clone(), target(vec![], &[]));
    let journal = FailingJournal {
        inner: MemoryJournal::new(lt.clone(), NOW),
        ok: 2,
        seen: Default::default(),
    };
    let source = FakeSource {
        snapshot: src.clone(),
    };
    let report = block_on(apply(
        &p,
        &fake,
        &source,
        &journal,
        &ApplyOptions { max_concurrency: 1 },
        &(),
    ));
    let stopped = report.stopped.clone().unwrap_or_default();
    assert!(
        stopped.contains("journal") && stopped.contains("disk is full"),
        "{stopped}"
    );
    assert_eq!(report.outcomes.applied, 2);
    assert_eq!(report.outcomes.failed, 1);
    assert_eq!(report.outcomes.skipped, p.ops.len() - 3);
    assert_eq!(
        fake.snapshot().accounts.len(),
        2,
        "nothing written after the failure"
    );
}
