//! An apply killed part way converges on the next run to the same target state as an
//! uninterrupted apply, without duplicate accounts: (a) the target fails systemically after N
//! writes; (b) the process "dies" right after the N-th write, before the journal confirms it.

mod common;

use async_trait::async_trait;
use common::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use usersync_core::config::{LeaverAction, SyncSettings};
use usersync_core::engine::{ApplyOptions, MemoryJournal, apply};
use usersync_core::link::LinkTable;
use usersync_core::model::{SourceSnapshot, TargetSnapshot};
use usersync_core::plan::{OpOutcome, Operation};
use usersync_core::ports::{ApplyJournal, JournalError};
use usersync_core::testkit::{Failures, FakeSource, FakeTarget};

/// A journal that loses everything once the target has seen `limit` writes (the process died
/// right after that write).
struct CrashJournal {
    inner: MemoryJournal,
    fake: Arc<FakeTarget>,
    limit: usize,
}

#[async_trait]
impl ApplyJournal for CrashJournal {
    async fn before(&self, op: &Operation) -> Result<(), JournalError> {
        if self.fake.writes() >= self.limit {
            return Ok(());
        }
        self.inner.before(op).await
    }
    async fn after(&self, op: &Operation, outcome: &OpOutcome) -> Result<(), JournalError> {
        if self.fake.writes() >= self.limit {
            return Ok(());
        }
        self.inner.after(op, outcome).await
    }
    async fn links(&self) -> Result<LinkTable, JournalError> {
        self.inner.links().await
    }
}

fn world() -> (SourceSnapshot, SourceSnapshot) {
    // Run 1 creates everything; run 2 renames, updates, drops leavers and changes groups.
    let users1: Vec<_> = (0..8)
        .map(|i| {
            su(
                &format!("u{i}"),
                &format!("user{i}@example.com"),
                &format!("User {i}"),
            )
        })
        .collect();
    let groups1 = vec![
        sg("g1", "Eng", &["u0", "u1", "u2", "u3"], &[]),
        sg("g2", "Ops", &["u4", "u5", "u6"], &[]),
        sg("g3", "All", &[], &["g1", "g2"]),
    ];
    let mut users2 = users1.clone();
    users2.truncate(6); // u6, u7 leave
    users2[0].upn = "user0.renamed@example.com".into();
    users2[1].display_name = Some("User One".into());
    users2[2].enabled = false;
    users2.push(su("u8", "user8@example.com", "User 8"));
    let groups2 = vec![
        sg("g1", "Eng", &["u0", "u8"], &[]),
        sg("g2", "Operations", &["u4", "u5", "u1"], &[]),
    ];
    (source(users1, groups1), source(users2, groups2))
}

fn settings_for_test() -> SyncSettings {
    let mut s = settings();
    s.scope.flatten_nested = true;
    s.policy.leaver_action = LeaverAction::Delete;
    s.policy.delete_grace_days = 0;
    s.policy.access_groups = vec!["jira-users".into()];
    s.policy.guard.allow_mass_removal = true;
    s
}

/// Runs plan+apply with no failures until the plan is empty; returns the final state.
fn converge(
    src: &SourceSnapshot,
    mut tgt: TargetSnapshot,
    mut lt: LinkTable,
) -> (TargetSnapshot, LinkTable) {
    let s = settings_for_test();
    for _ in 0..3 {
        let fake = FakeTarget::new(caps(), tgt.clone());
        let p = plan_fake(src, &fake, &lt, &s, NOW);
        if p.is_empty() {
            return (tgt, lt);
        }
        let (_, l) = apply_to(&p, &fake, src, &lt, NOW);
        tgt = fake.snapshot();
        lt = l;
    }
    let fake = FakeTarget::new(caps(), tgt.clone());
    let p = plan_fake(src, &fake, &lt, &s, NOW);
    assert!(p.is_empty(), "did not converge: {:#?}", p.ops);
    (tgt, lt)
}

/// Applies the plan for `src` to `(tgt, lt)`, crashing after `limit` writes.
fn crashed_run(
    src: &SourceSnapshot,
    tgt: &TargetSnapshot,
    lt: &LinkTable,
    limit: usize,
    lose_journal: bool,
) -> (TargetSnapshot, LinkTable, usize) {
    let s = settings_for_test();
    let fake = Arc::new(
        FakeTarget::new(caps(), tgt.clone()).with_failures(Failures {
            systemic_after_writes: Some(limit),
            ..Failures::default()
        }),
    );
    let p = plan_fake(src, &fake, lt, &s, NOW);
    let opts = ApplyOptions { max_concurrency: 1 };
    let source = FakeSource {
        snapshot: src.clone(),
    };
    let links = if lose_journal {
        let j = CrashJournal {
            inner: MemoryJournal::new(lt.clone(), NOW),
            fake: fake.clone(),
            limit,
        };
        block_on(apply(&p, fake.as_ref(), &source, &j, &opts, &()));
        j.inner.link_table()
    } else {
        let j = MemoryJournal::new(lt.clone(), NOW);
        let report = block_on(apply(&p, fake.as_ref(), &source, &j, &opts, &()));
        if fake.writes() >= limit && report.outcomes.planned > report.outcomes.applied {
            assert!(report.stopped.is_some(), "systemic error must stop the run");
        }
        j.link_table()
    };
    (fake.snapshot(), links, fake.writes())
}

fn assert_no_duplicates(t: &TargetSnapshot) {
    let emails: Vec<String> = t.accounts.iter().map(|a| a.email.to_lowercase()).collect();
    let unique: BTreeSet<&String> = emails.iter().collect();
    assert_eq!(emails.len(), unique.len(), "duplicate accounts: {emails:?}");
}

fn check_scenario(src: &SourceSnapshot, start_t: &TargetSnapshot, start_l: &LinkTable) {
    let (reference_t, reference_l) = converge(src, start_t.clone(), start_l.clone());
    let total_writes = {
        let (_, _, w) = crashed_run(src, start_t, start_l, usize::MAX, false);
        w
    };
    assert!(total_writes > 3);
    for lose_journal in [false, true] {
        for limit in 0..=total_writes {
            let (t, l, _) = crashed_run(src, start_t, start_l, limit, lose_journal);
            assert_no_duplicates(&t);
            let (final_t, final_l) = converge(src, t, l);
            assert_no_duplicates(&final_t);
            assert_eq!(
                final_t, reference_t,
                "limit {limit}, lose_journal {lose_journal}"
            );
            // Links may differ only in pending flags (none remain) and keys: compare usernames.
            let names = |lt: &LinkTable| -> Vec<(String, String)> {
                lt.users
                    .values()
                    .map(|u| (u.source_id.clone(), u.username.clone()))
                    .collect()
            };
            assert_eq!(
                names(&final_l),
                names(&reference_l),
                "limit {limit}, lose_journal {lose_journal}"
            );
            assert!(final_l.users.values().all(|u| u.pending_username.is_none()));
            assert!(final_l.groups.values().all(|g| !g.pending));
            assert_eq!(final_l.groups.len(), reference_l.groups.len());
        }
    }
}

#[test]
fn interrupted_initial_sync_converges() {
    let (src1, _) = world();
    let start = target(vec![], &["jira-users"]);
    check_scenario(&src1, &start, &LinkTable::default());
}

#[test]
fn interrupted_change_sync_converges() {
    let (src1, src2) = world();
    let (t1, l1) = converge(&src1, target(vec![], &["jira-users"]), LinkTable::default());
    check_scenario(&src2, &t1, &l1);
}
