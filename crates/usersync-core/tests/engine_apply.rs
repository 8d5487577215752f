//! Engine behaviour around failures: per-item errors do not stop the run, systemic ones do
//! (the rest is skipped), dependants of a failed op are skipped, a vanished photo skips the
//! avatar, and the journal sees every op.

mod common;

use common::*;
use usersync_core::engine::{ApplyOptions, MemoryJournal, apply};
use usersync_core::link::LinkTable;
use usersync_core::model::{SourceSnapshot, TargetSnapshot};
use usersync_core::plan::{AccountSpec, FieldChange, OpKind, OpOutcome};
use usersync_core::ports::{
    ConnectorError, Created, ErrorKind, Photo, TargetCapabilities, TargetDirectory,
};
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

// --- Dependency order (no phase barriers) -------------------------------------------------

/// A target call as the recording target saw it: `(start?, call)`.
type Event = (bool, String);

/// Wraps a [`FakeTarget`]: records when each call starts and finishes, and yields to the
/// executor a varying number of times in between, so concurrent calls finish out of order.
struct Recording {
    inner: FakeTarget,
    events: std::sync::Mutex<Vec<Event>>,
    calls: std::sync::atomic::AtomicUsize,
}

/// Returns `Pending` `n` times (waking itself), then `Ready`: runtime-agnostic yielding.
struct YieldN(usize);

impl std::future::Future for YieldN {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 == 0 {
            return std::task::Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

impl Recording {
    fn new(inner: FakeTarget) -> Self {
        Self {
            inner,
            events: std::sync::Mutex::new(Vec::new()),
            calls: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    async fn call<T>(
        &self,
        label: String,
        f: impl std::future::Future<Output = Result<T, ConnectorError>>,
    ) -> Result<T, ConnectorError> {
        self.events
            .lock()
            .expect("lock")
            .push((true, label.clone()));
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // The last creates in plan order are slow, so a scheduler ignoring dependencies would
        // start their membership adds early.
        let slow = label.starts_with("create_user user8") || label.starts_with("create_user user9");
        YieldN(if slow { 60 } else { (n * 7) % 5 + 1 }).await;
        let r = f.await;
        self.events.lock().expect("lock").push((false, label));
        r
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().expect("lock").clone()
    }
}

#[async_trait::async_trait]
impl TargetDirectory for Recording {
    fn capabilities(&self) -> TargetCapabilities {
        self.inner.capabilities()
    }
    async fn read(&self) -> Result<TargetSnapshot, ConnectorError> {
        self.inner.read().await
    }
    async fn create_user(&self, spec: &AccountSpec) -> Result<Created, ConnectorError> {
        let label = format!("create_user {}", spec.username);
        self.call(label, self.inner.create_user(spec)).await
    }
    async fn update_user(&self, u: &str, changes: &[FieldChange]) -> Result<(), ConnectorError> {
        self.call(
            format!("update_user {u}"),
            self.inner.update_user(u, changes),
        )
        .await
    }
    async fn rename_user(&self, from: &str, to: &str) -> Result<(), ConnectorError> {
        let label = format!("rename_user {from} {to}");
        self.call(label, self.inner.rename_user(from, to)).await
    }
    async fn set_active(&self, u: &str, active: bool) -> Result<(), ConnectorError> {
        let label = format!("set_active {u} {active}");
        self.call(label, self.inner.set_active(u, active)).await
    }
    async fn delete_user(&self, u: &str) -> Result<(), ConnectorError> {
        self.call(format!("delete_user {u}"), self.inner.delete_user(u))
            .await
    }
    async fn create_group(&self, name: &str) -> Result<(), ConnectorError> {
        self.call(
            format!("create_group {name}"),
            self.inner.create_group(name),
        )
        .await
    }
    async fn delete_group(&self, name: &str) -> Result<(), ConnectorError> {
        self.call(
            format!("delete_group {name}"),
            self.inner.delete_group(name),
        )
        .await
    }
    async fn add_members(&self, group: &str, users: &[String]) -> Result<(), ConnectorError> {
        let label = format!("add_members {group} {}", users.join(","));
        self.call(label, self.inner.add_members(group, users)).await
    }
    async fn remove_member(&self, group: &str, u: &str) -> Result<(), ConnectorError> {
        let label = format!("remove_member {group} {u}");
        self.call(label, self.inner.remove_member(group, u)).await
    }
    async fn set_avatar(&self, u: &str, photo: &Photo) -> Result<(), ConnectorError> {
        self.call(format!("set_avatar {u}"), self.inner.set_avatar(u, photo))
            .await
    }
}

/// Position of the first event `(start, label)`.
fn at(events: &[Event], start: bool, label: &str) -> usize {
    events
        .iter()
        .position(|(s, l)| *s == start && l == label)
        .unwrap_or_else(|| {
            panic!(
                "no {} of `{label}` in {events:#?}",
                ["finish", "start"][start as usize]
            )
        })
}

/// Labels of the calls that started, with their start positions.
fn starts<'e>(events: &'e [Event], prefix: &str) -> Vec<(usize, &'e str)> {
    events
        .iter()
        .enumerate()
        .filter(|(_, (s, l))| *s && l.starts_with(prefix))
        .map(|(i, (_, l))| (i, l.as_str()))
        .collect()
}

fn apply_recording(
    p: &usersync_core::plan::Plan,
    target: &Recording,
    src: &SourceSnapshot,
    lt: &LinkTable,
    concurrency: usize,
) -> usersync_core::report::Report {
    let journal = MemoryJournal::new(lt.clone(), NOW);
    block_on(apply(
        p,
        target,
        &FakeSource {
            snapshot: src.clone(),
        },
        &journal,
        &ApplyOptions {
            max_concurrency: concurrency,
        },
        &(),
    ))
}

/// An initial apply: a membership add never starts before its group's and its user's creates
/// have finished, nor an avatar before its account's create; and there is no phase barrier —
/// membership adds start while other accounts are still being created.
#[test]
fn initial_apply_runs_in_dependency_order_without_phase_barriers() {
    let users: Vec<_> = (0..16)
        .map(|i| {
            with_photo(
                su(
                    &format!("u{i}"),
                    &format!("user{i}@example.com"),
                    &format!("User {i}"),
                ),
                "t",
            )
        })
        .collect();
    let groups = vec![
        sg("g1", "Eng", &["u0", "u1", "u2", "u3", "u4", "u5"], &[]),
        sg("g2", "Ops", &["u6", "u7", "u8", "u9", "u10"], &[]),
        sg(
            "g3",
            "All",
            &["u11", "u12", "u13", "u14", "u15"],
            &["g1", "g2"],
        ),
    ];
    let src = source(users, groups);
    let mut c = caps();
    c.batch_membership = false;
    let lt = LinkTable::default();
    let p = make_plan(&src, &target(vec![], &[]), &lt, &settings(), &c, NOW);
    let rec = Recording::new(FakeTarget::new(c.clone(), target(vec![], &[])));
    let report = apply_recording(&p, &rec, &src, &lt, 4);
    assert_eq!(
        report.outcomes.applied,
        p.ops.len(),
        "{:?}",
        report.outcomes
    );
    let ev = rec.events();

    let adds = starts(&ev, "add_members ");
    assert!(adds.len() >= 16, "{adds:?}");
    for (i, label) in &adds {
        let mut parts = label.split(' ').skip(1);
        let group = parts.next().expect("group");
        assert!(
            at(&ev, false, &format!("create_group {group}")) < *i,
            "`{label}` started before its group was created"
        );
        for u in parts.next().expect("users").split(',') {
            assert!(
                at(&ev, false, &format!("create_user {u}")) < *i,
                "`{label}` started before {u} was created"
            );
        }
    }
    for (i, label) in starts(&ev, "set_avatar ") {
        let u = label.trim_start_matches("set_avatar ");
        assert!(at(&ev, false, &format!("create_user {u}")) < i, "{label}");
    }
    // No barrier: with phases, every create finished before the first add started.
    let last_create = ev
        .iter()
        .rposition(|(s, l)| !*s && l.starts_with("create_user "))
        .expect("creates");
    assert!(
        adds[0].0 < last_create,
        "the first membership add waited for every account create (a phase barrier): {ev:#?}"
    );
}

/// Removals: a group is deleted only after its membership removals have finished, and a
/// leaver is deactivated only after its removals from managed groups.
#[test]
fn removals_finish_before_deactivation_and_group_deletion() {
    let mut s = settings();
    s.policy.delete_groups = true;
    let mut c = caps();
    c.batch_membership = false;
    let names: Vec<String> = (0..6).map(|i| format!("user{i}@example.com")).collect();
    let accounts: Vec<_> = names
        .iter()
        .map(|n| ta(n, n, n, true, &["Eng", "Ops"]))
        .collect();
    let tgt = target(accounts, &["Eng", "Ops"]);
    let lt = links(
        (0..6).map(|i| ul(&format!("u{i}"), &names[i])).collect(),
        vec![gl("g1", "Eng"), gl("g2", "Ops")],
    );
    // u4 and u5 left; group Ops left the source.
    let users: Vec<_> = (0..4)
        .map(|i| su(&format!("u{i}"), &names[i], &names[i]))
        .collect();
    let src = source(users, vec![sg("g1", "Eng", &["u0", "u1", "u2", "u3"], &[])]);
    let p = make_plan(&src, &tgt, &lt, &s, &c, NOW);
    assert!(p.held.is_none(), "{:?}", p.held);
    let rec = Recording::new(FakeTarget::new(c.clone(), tgt.clone()));
    let report = apply_recording(&p, &rec, &src, &lt, 4);
    assert_eq!(
        report.outcomes.applied,
        p.ops.len(),
        "{:?}",
        report.outcomes
    );
    let ev = rec.events();

    let removals = starts(&ev, "remove_member ");
    assert!(!removals.is_empty());
    let deleted = at(&ev, true, "delete_group Ops");
    let deactivations = starts(&ev, "set_active ");
    assert_eq!(deactivations.len(), 2, "{ev:#?}");
    for (_, label) in &removals {
        let mut parts = label.split(' ').skip(1);
        let (group, user) = (parts.next().expect("group"), parts.next().expect("user"));
        let finished = at(&ev, false, label);
        if group == "Ops" {
            assert!(finished < deleted, "`{label}` after the group's deletion");
        }
        if let Some((i, d)) = deactivations
            .iter()
            .find(|(_, d)| d.starts_with(&format!("set_active {user} ")))
        {
            assert!(finished < *i, "`{d}` started before `{label}` finished");
        }
    }
}

/// With several writes in flight, a systemic error still stops the run: no target call
/// starts after the failing call returned, and the journal still sees every operation.
#[test]
fn systemic_error_stops_new_starts_under_concurrency() {
    let users: Vec<_> = (0..12)
        .map(|i| {
            su(
                &format!("u{i}"),
                &format!("user{i}@example.com"),
                &format!("User {i}"),
            )
        })
        .collect();
    let all: Vec<String> = (0..12).map(|i| format!("u{i}")).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let src = source(users, vec![sg("g1", "Eng", &all, &[])]);
    let mut c = caps();
    c.batch_membership = false;
    let lt = LinkTable::default();
    let p = make_plan(&src, &target(vec![], &[]), &lt, &settings(), &c, NOW);
    let rec = Recording::new(
        FakeTarget::new(c.clone(), target(vec![], &[])).with_failures(Failures {
            systemic_after_writes: Some(6),
            ..Failures::default()
        }),
    );
    let journal = MemoryJournal::new(lt.clone(), NOW);
    let report = block_on(apply(
        &p,
        &rec,
        &FakeSource {
            snapshot: src.clone(),
        },
        &journal,
        &ApplyOptions { max_concurrency: 4 },
        &(),
    ));
    assert!(report.stopped.is_some());
    assert_eq!(report.outcomes.applied, 6, "{:?}", report.outcomes);
    assert!(report.outcomes.skipped > 0);
    assert_eq!(journal.outcomes().len(), p.ops.len());
    let ev = rec.events();
    // The first failing call is the first one to finish after the sixth success.
    let first_failure = ev
        .iter()
        .enumerate()
        .filter(|(_, (s, _))| !*s)
        .nth(6)
        .map(|(i, _)| i)
        .expect("a seventh call finished");
    assert!(
        ev[first_failure + 1..].iter().all(|(s, _)| !*s),
        "a call started after the systemic error: {ev:#?}"
    );
}
