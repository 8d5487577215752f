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

        let a = t.read_account("Alice").await.unwrap().expect("alice exists");
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
