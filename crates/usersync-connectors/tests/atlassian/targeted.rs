//! Single-object reads (incremental runs and the engine's re-reads before removals): every
//! product reads one account with its groups, says "none" for a missing one, and checks a
//! group's existence, in a small constant number of requests, whatever the directory's size.

use crate::common::*;
use usersync_connectors::atlassian::Product;
use usersync_emulators::atlassian::SeedUser;

#[tokio::test]
async fn every_product_reads_one_account_and_one_group() {
    for p in [
        Product::Jira,
        Product::Confluence,
        Product::Bitbucket,
        Product::Crowd,
    ] {
        let emu = start(p).await;
        let h = emu.handle();
        h.seed_user(SeedUser::new("alice").in_groups(&["devs", "ops"]));
        let mut bob = SeedUser::new("bob");
        bob.active = false;
        h.seed_user(bob);
        for i in 0..30 {
            h.seed_user(SeedUser::new(&format!("filler{i}")).in_groups(&["devs"]));
        }
        let t = target(p, &emu);
        assert!(t.supports_targeted_reads(), "{p:?}");
        emu.reset_stats();

        let a = t
            .read_account("Alice")
            .await
            .unwrap()
            .expect("alice exists");
        assert_eq!(a.username, "alice", "{p:?}");
        let groups: Vec<&str> = a.groups.iter().map(String::as_str).collect();
        assert_eq!(groups, ["devs", "ops"], "{p:?}");
        assert!(a.active, "{p:?}");
        if p != Product::Bitbucket {
            // Bitbucket reports `active` as its directory does; it has no deactivation.
            let b = t.read_account("bob").await.unwrap().expect("bob exists");
            assert!(!b.active, "{p:?}");
        }
        assert!(t.read_account("nobody").await.unwrap().is_none(), "{p:?}");
        assert!(t.group_exists("DEVS").await.unwrap(), "{p:?}");
        assert!(!t.group_exists("nothing").await.unwrap(), "{p:?}");
        let s = emu.stats();
        assert_eq!(s.writes(), 0, "{p:?}");
        assert!(s.total() <= 8, "{p:?}: {s:?}");
    }
}

/// A plan made from a stale state (what an incremental run's stored state can be): every
/// destructive write re-reads its object first (request log) and is skipped when Jira
/// disagrees, written when it agrees.
#[tokio::test]
async fn jira_destructive_writes_re_read_first_and_skip_when_stale() {
    use usersync_core::engine::{ApplyOptions, MemoryJournal, apply};
    use usersync_core::link::LinkTable;
    use usersync_core::plan::{OpKind, OpOutcome, Operation, Plan};
    use usersync_core::testkit::FakeSource;

    let emu = start(Product::Jira).await;
    let h = emu.handle();
    // alice already left devs (an admin removed her); bob's name now belongs to another
    // account (the plan saw key JIRAUSER-OLD); carol really is in devs.
    h.seed_user(SeedUser::new("alice").in_groups(&["ops"]));
    h.seed_user(SeedUser::new("bob"));
    h.seed_user(SeedUser::new("carol").in_groups(&["devs"]));
    let op = |seq, kind| Operation {
        seq,
        kind,
        reason: "test".into(),
    };
    let p = Plan {
        ops: vec![
            op(
                0,
                OpKind::RemoveMember {
                    group: "devs".into(),
                    username: "alice".into(),
                },
            ),
            op(
                1,
                OpKind::RemoveMember {
                    group: "devs".into(),
                    username: "carol".into(),
                },
            ),
            op(
                2,
                OpKind::DeactivateUser {
                    source_id: "b".into(),
                    username: "bob".into(),
                    target_key: Some("JIRAUSER-OLD".into()),
                },
            ),
        ],
        source_complete: true,
        ..Plan::default()
    };
    let t = target(Product::Jira, &emu);
    let journal = MemoryJournal::new(LinkTable::default(), 0);
    emu.reset_stats();
    let report = apply(
        &p,
        t.as_ref(),
        &FakeSource::default(),
        &journal,
        &ApplyOptions { max_concurrency: 1 },
        &(),
    )
    .await;
    let out: Vec<OpOutcome> = journal.outcomes().into_iter().map(|(_, o)| o).collect();
    assert!(
        matches!(&out[0], OpOutcome::Skipped { reason } if reason.contains("not a member")),
        "{out:?}"
    );
    assert!(matches!(&out[1], OpOutcome::Applied { .. }), "{out:?}");
    assert!(
        matches!(&out[2], OpOutcome::Skipped { reason } if reason.contains("JIRAUSER-OLD")),
        "{out:?}"
    );
    assert_eq!(report.outcomes.applied, 1);
    let log = emu.stats().log;
    // Exactly one write (carol's removal), right after carol's re-read.
    let writes: Vec<&String> = log.iter().filter(|l| !l.starts_with("GET ")).collect();
    assert_eq!(writes.len(), 1, "{log:?}");
    let w = log
        .iter()
        .position(|l| l.starts_with("DELETE /rest/api/2/group/user"))
        .expect("carol's removal");
    assert!(log[w].contains("carol"), "{log:?}");
    assert!(
        log[w - 1].starts_with("GET /rest/api/2/user?username=carol"),
        "{log:?}"
    );
    for name in ["alice", "bob"] {
        assert!(
            log.iter()
                .any(|l| l.starts_with(&format!("GET /rest/api/2/user?username={name}"))),
            "{name} re-read: {log:?}"
        );
    }
    assert!(h.user("bob").unwrap().active);
    assert!(h.members("devs").is_empty());
}
