//! Product-specific behaviour: avatars, batch membership, licences, paging, name rules.

use crate::common::*;
use usersync_connectors::atlassian::{Product, build_target};
use usersync_core::ports::{ErrorKind, Photo};
use usersync_emulators::atlassian::{AtlassianConfig, SeedUser};

fn photo() -> Photo {
    Photo {
        content_type: "image/png".into(),
        bytes: png(),
        tag: "t1".into(),
    }
}

#[tokio::test]
async fn jira_avatar_three_steps() {
    let emu = start(Product::Jira).await;
    let t = target(Product::Jira, &emu);
    t.create_user(&spec("avatar.user", "Avatar User"))
        .await
        .unwrap();
    emu.reset_stats();
    t.set_avatar("Avatar.User", &photo()).await.expect("avatar");
    let s = emu.stats();
    assert_eq!(s.get("POST /rest/api/2/user/avatar/temporary"), 1, "{s:?}");
    assert_eq!(s.get("POST /rest/api/2/user/avatar"), 1, "{s:?}");
    assert_eq!(s.get("PUT /rest/api/2/user/avatar"), 1, "{s:?}");
    assert!(emu.handle().user("avatar.user").unwrap().avatar.is_some());
}

#[tokio::test]
async fn bitbucket_avatar_upload() {
    let emu = start(Product::Bitbucket).await;
    let t = target(Product::Bitbucket, &emu);
    t.create_user(&spec("avatar.user", "Avatar User"))
        .await
        .unwrap();
    t.set_avatar("AVATAR.USER", &photo()).await.expect("avatar");
    assert!(emu.handle().user("avatar.user").unwrap().avatar.is_some());
}

#[tokio::test]
async fn avatars_unsupported_where_the_api_has_none() {
    for p in [Product::Confluence, Product::Crowd] {
        let emu = start(p).await;
        let t = target(p, &emu);
        assert!(!t.capabilities().avatars);
        assert_eq!(
            t.set_avatar("admin", &photo()).await.unwrap_err().kind,
            ErrorKind::Unsupported
        );
        assert_eq!(emu.stats().writes(), 0);
    }
}

#[tokio::test]
async fn bitbucket_batch_membership_is_one_request() {
    let emu = start(Product::Bitbucket).await;
    let t = target(Product::Bitbucket, &emu);
    assert!(t.capabilities().batch_membership);
    assert!(!t.capabilities().deactivate);
    t.create_group("devs").await.unwrap();
    let names: Vec<String> = (1..=3).map(|i| format!("dev{i}")).collect();
    for n in &names {
        t.create_user(&spec(n, n)).await.unwrap();
    }
    emu.reset_stats();
    t.add_members("DEVS", &names).await.expect("batch add");
    assert_eq!(
        emu.stats().get("POST /rest/api/1.0/admin/groups/add-users"),
        1,
        "{:?}",
        emu.stats()
    );
    assert_eq!(emu.handle().members("devs"), names);
}

#[tokio::test]
async fn bitbucket_create_does_not_use_the_default_group_unless_configured() {
    let emu = start(Product::Bitbucket).await;
    let t = target(Product::Bitbucket, &emu);
    t.create_user(&spec("nolicence", "No Licence"))
        .await
        .unwrap();
    assert!(emu.handle().groups_of("nolicence").is_empty());
    let mut cfg = config(Product::Bitbucket, &emu);
    cfg.bitbucket_add_to_default_group = true;
    let t = build_target(&cfg).unwrap();
    t.create_user(&spec("licensed", "Licensed")).await.unwrap();
    assert_eq!(
        emu.handle().groups_of("licensed"),
        vec!["stash-users".to_string()]
    );
}

#[tokio::test]
async fn jira_application_keys_are_configurable() {
    let emu = start(Product::Jira).await;
    let t = target(Product::Jira, &emu);
    t.create_user(&spec("noaccess", "No Access")).await.unwrap();
    assert!(
        emu.handle().groups_of("noaccess").is_empty(),
        "{:?}",
        emu.handle().groups_of("noaccess")
    );
    let mut cfg = config(Product::Jira, &emu);
    cfg.jira_application_keys = vec!["jira-software".into()];
    build_target(&cfg)
        .unwrap()
        .create_user(&spec("software", "Software"))
        .await
        .unwrap();
    assert_eq!(
        emu.handle().groups_of("software"),
        vec!["jira-software-users".to_string()]
    );
}

#[tokio::test]
async fn confluence_licence_full_is_licence_full() {
    let emu = start(Product::Confluence).await;
    emu.handle().set_licence_seats(Some(1));
    let t = target(Product::Confluence, &emu);
    let e = t
        .create_user(&spec("onetoomany", "One Too Many"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::LicenceFull, "{}", e.message);
    assert_eq!(e.status, Some(402));
}

#[tokio::test]
async fn bitbucket_licence_full_on_licence_group() {
    let emu = start(Product::Bitbucket).await;
    emu.handle().set_licence_seats(Some(1));
    let mut cfg = config(Product::Bitbucket, &emu);
    cfg.bitbucket_add_to_default_group = true;
    let e = build_target(&cfg)
        .unwrap()
        .create_user(&spec("onetoomany", "One Too Many"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::LicenceFull, "{}", e.message);
    assert_eq!(e.status, Some(403));
}

#[tokio::test]
async fn confluence_rejects_upper_case_usernames() {
    let emu = start(Product::Confluence).await;
    let t = target(Product::Confluence, &emu);
    assert!(t.capabilities().lowercase_usernames_only);
    assert!(!t.capabilities().rename);
    let e = t.create_user(&spec("JDoe", "J Doe")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid, "{}", e.message);
    assert!(emu.handle().user("jdoe").is_none());
}

/// More users than one page everywhere (Jira /user/list 1000, Confluence 200, Bitbucket and
/// Crowd 1000 per request).
#[tokio::test]
async fn reads_are_complete_across_pages() {
    for p in ALL {
        let emu = start_with(AtlassianConfig::new(emu_product(p)).with_seed_users(1030)).await;
        let t = target(p, &emu);
        emu.reset_stats();
        let snap = t.read().await.expect("read");
        let h = emu.handle();
        assert_eq!(snap.accounts.len(), h.users().len(), "{p:?}");
        assert_eq!(emu.stats().writes(), 0);
        let licensed: Vec<String> = h
            .groups()
            .into_iter()
            .map(|g| g.name)
            .filter(|g| h.members(g).len() > 1000)
            .collect();
        for g in licensed {
            let n = snap
                .accounts
                .iter()
                .filter(|a| a.groups.contains(&g))
                .count();
            assert_eq!(n, h.members(&g).len(), "{p:?}: members of {g}");
        }
    }
}

/// Jira before 10.3 (no /user/list) falls back to /user/search; reaching its 1000-user cap
/// (JRASERVER-65089) fails the read instead of returning a partial directory.
#[tokio::test]
async fn jira_search_cap_fails_instead_of_truncating() {
    let emu =
        start_with(AtlassianConfig::new(emu_product(Product::Jira)).with_seed_users(1030)).await;
    emu.handle()
        .add_fail_rule(usersync_emulators::atlassian::FailRule::every(
            "GET",
            "/rest/api/2/user/list",
            404,
        ));
    let e = target(Product::Jira, &emu)
        .read()
        .await
        .expect_err("capped listing must fail");
    assert!(e.message.contains("10.3"), "{}", e.message);
    // Below the cap the fallback is complete.
    let emu =
        start_with(AtlassianConfig::new(emu_product(Product::Jira)).with_seed_users(30)).await;
    emu.handle()
        .add_fail_rule(usersync_emulators::atlassian::FailRule::every(
            "GET",
            "/rest/api/2/user/list",
            404,
        ));
    let snap = target(Product::Jira, &emu).read().await.expect("read");
    assert_eq!(snap.accounts.len(), 31);
}

#[tokio::test]
async fn seeded_unmanaged_accounts_are_only_read() {
    for p in ALL {
        let emu = start(p).await;
        let mut s = SeedUser::new("someone.else");
        s.groups = vec!["other-team".into()];
        emu.handle().seed_user(s);
        let before = emu.handle().snapshot();
        let t = target(p, &emu);
        emu.reset_stats();
        let snap = t.read().await.unwrap();
        let a = snap
            .accounts
            .iter()
            .find(|a| a.username == "someone.else")
            .expect("seeded read");
        assert!(a.groups.contains("other-team"));
        assert_eq!(emu.stats().writes(), 0);
        let after = emu.handle().snapshot();
        assert_eq!(after.users, before.users);
        assert_eq!(after.memberships, before.memberships);
    }
}

/// Issue 8: updates / (de)activations reuse the entities the read returned instead of a
/// `GET /user` before each `PUT`; and the read's paging cost: a short page is not trusted
/// to be the last (issue 11 item 11), so the first listing of each endpoint ends with one
/// empty page.
#[tokio::test]
async fn crowd_reads_without_extra_pages_or_read_before_write() {
    let base = start(Product::Crowd).await.handle().users().len();
    let emu =
        start_with(AtlassianConfig::new(emu_product(Product::Crowd)).with_seed_users(1000 - base))
            .await;
    assert_eq!(emu.handle().users().len(), 1000);
    let t = target(Product::Crowd, &emu);
    emu.reset_stats();
    let snap = t.read().await.expect("read");
    assert_eq!(snap.accounts.len(), 1000);
    let s = emu.stats();
    assert_eq!(
        s.get("GET /rest/usermanagement/1/search"),
        4,
        "users: a full page and an empty one; groups: a short page and an empty one: {s:?}"
    );
    let name = snap
        .accounts
        .iter()
        .find(|a| a.username != "admin")
        .unwrap()
        .username
        .clone();
    emu.reset_stats();
    t.update_user(
        &name,
        &[usersync_core::plan::FieldChange {
            field: usersync_core::plan::Field::DisplayName,
            before: String::new(),
            after: "New Name".into(),
        }],
    )
    .await
    .expect("update");
    t.set_active(&name, false).await.expect("deactivate");
    let s = emu.stats();
    assert_eq!(s.get("GET /rest/usermanagement/1/user"), 0, "{s:?}");
    assert_eq!(s.get("PUT /rest/usermanagement/1/user"), 2, "{s:?}");
    let u = emu.handle().user(&name).unwrap();
    assert_eq!((u.display_name.as_str(), u.active), ("New Name", false));
}

/// Issue 11 item 11: a server-side cap below the client's page size (300 < 1,000) makes every
/// page short. The read must still return every user, group and membership: it used to stop
/// at the first short page and return 300 users.
#[tokio::test]
async fn crowd_read_is_complete_under_a_lower_server_page_cap() {
    let mut cfg = AtlassianConfig::new(emu_product(Product::Crowd)).with_seed_users(1000);
    cfg.crowd_results_cap = Some(300);
    let emu = start_with(cfg).await;
    let h = emu.handle();
    h.seed_group("big");
    for u in h.users().iter().take(700) {
        h.add_member("big", &u.name);
    }
    for g in 0..320 {
        h.seed_group(&format!("g{g:03}"));
    }
    let users = h.users().len();
    let groups = h.groups().len();
    assert!(users >= 1000 && groups > 320);
    let t = target(Product::Crowd, &emu);
    let snap = t.read().await.expect("read");
    assert_eq!(snap.accounts.len(), users);
    assert_eq!(snap.groups.len(), groups);
    let in_big = snap
        .accounts
        .iter()
        .filter(|a| a.groups.contains("big"))
        .count();
    assert_eq!(in_big, 700);
    // Paging cost under the cap: "big" is 300 + 300 + 100 (its short last page ends it: the
    // endpoint already returned 300); the empty groups are one empty page each.
    let s = emu.stats();
    assert_eq!(
        s.get("GET /rest/usermanagement/1/group/user/direct"),
        groups as u64 + 2,
        "{s:?}"
    );
}

/// Issue 11 item 11: a Confluence listing that leaves `status` out must not read as "active"
/// (every past leaver would be deactivated again on every run). Each such account is read
/// again alone with `expand=status`.
#[tokio::test]
async fn confluence_missing_status_is_read_again_not_guessed() {
    let mut cfg = AtlassianConfig::new(emu_product(Product::Confluence));
    cfg.confluence_list_status = false;
    let emu = start_with(cfg).await;
    let h = emu.handle();
    h.seed_user(SeedUser::new("gone.user"));
    h.seed_user(SeedUser::new("here.user"));
    h.set_active("gone.user", false);
    let t = target(Product::Confluence, &emu);
    emu.reset_stats();
    let snap = t.read().await.expect("read");
    let active = |n: &str| {
        snap.accounts
            .iter()
            .find(|a| a.username == n)
            .map(|a| a.active)
    };
    assert_eq!(active("gone.user"), Some(false));
    assert_eq!(active("here.user"), Some(true));
    let s = emu.stats();
    assert_eq!(
        s.get("GET /rest/api/user"),
        snap.accounts.len() as u64,
        "one status read per account the listing left unknown: {s:?}"
    );
}

/// When not even the single-user read says, the read fails (naming the accounts) instead of
/// guessing; nothing can be planned from it.
#[tokio::test]
async fn confluence_status_unknown_everywhere_fails_the_read() {
    let mut cfg = AtlassianConfig::new(emu_product(Product::Confluence));
    cfg.confluence_list_status = false;
    cfg.confluence_user_status = false;
    let emu = start_with(cfg).await;
    emu.handle().seed_user(SeedUser::new("gone.user"));
    let t = target(Product::Confluence, &emu);
    let e = t.read().await.expect_err("must not guess");
    assert!(e.message.contains("status"), "{}", e.message);
    assert!(e.message.contains("gone.user"), "{}", e.message);
    assert_eq!(emu.stats().writes(), 0);
}
