//! Throttling, maintenance, failing writes and bad credentials.

use crate::common::*;
use secrecy::SecretString;
use usersync_connectors::atlassian::{AtlassianAuth, Product, build_target};
use usersync_core::ports::ErrorKind;
use usersync_emulators::atlassian::{FailRule, RateLimit};

/// A storm of 429s (short Retry-After) ends with the right state.
#[tokio::test]
async fn storm_of_429_ends_with_the_correct_state() {
    for p in ALL {
        let emu = start(p).await;
        let t = target(p, &emu);
        emu.handle().inject_429(5, 0);
        t.create_group("storm")
            .await
            .expect("create group through 429s");
        emu.handle().inject_429(3, 1);
        t.create_user(&spec("stormy", "Stormy Weather"))
            .await
            .expect("create user through 429s");
        emu.handle().inject_429(4, 0);
        t.add_members("storm", &["stormy".into()])
            .await
            .expect("add member through 429s");
        let h = emu.handle();
        assert_eq!(h.members("storm"), vec!["stormy".to_string()], "{p:?}");
        // Exactly one user was created despite the retries of a non-idempotent POST.
        assert_eq!(h.users().iter().filter(|u| u.name == "stormy").count(), 1);
        let snap = t.read().await.unwrap();
        assert!(
            snap.accounts
                .iter()
                .any(|a| a.username == "stormy" && a.groups.contains("storm"))
        );
    }
}

/// A token-bucket rate limit (Jira DC style) with concurrent writes still converges.
#[tokio::test]
async fn rate_limited_bulk_add_converges() {
    let emu = start(Product::Jira).await;
    emu.handle().set_rate_limit(Some(RateLimit {
        capacity: 5,
        fill_rate: 20,
        interval_secs: 1,
    }));
    let t = target(Product::Jira, &emu);
    t.create_group("bulk").await.unwrap();
    let names: Vec<String> = (0..12).map(|i| format!("bulk{i:02}")).collect();
    for n in &names {
        emu.handle()
            .seed_user(usersync_emulators::atlassian::SeedUser::new(n));
    }
    t.add_members("bulk", &names)
        .await
        .expect("bulk add under rate limit");
    assert_eq!(emu.handle().members("bulk").len(), 12);
}

/// Maintenance (503) is retried; when it outlasts the policy, the error is reported.
#[tokio::test]
async fn maintenance_503_is_retried_then_reported() {
    let emu = start(Product::Confluence).await;
    let h = emu.handle();
    h.set_maintenance(true);
    let mut cfg = config(Product::Confluence, &emu);
    cfg.retry.max_attempts = 3;
    let t = build_target(&cfg).unwrap();
    let e = t.read().await.unwrap_err();
    assert_eq!(e.status, Some(503), "{}", e.message);
    h.set_maintenance(false);
    t.read().await.expect("read after maintenance");
}

/// A failing write returns the product's own message and the right kind.
#[tokio::test]
async fn failing_write_carries_the_products_message() {
    for p in ALL {
        let emu = start(p).await;
        emu.handle().fail_writes_for_user(
            "rejected",
            400,
            "The username contains a forbidden character",
        );
        let t = target(p, &emu);
        let e = t
            .create_user(&spec("rejected", "Rejected"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid, "{p:?}: {}", e.message);
        assert!(
            e.message
                .contains("The username contains a forbidden character"),
            "{p:?}: {}",
            e.message
        );
        assert_eq!(e.status, Some(400));
    }
}

#[tokio::test]
async fn duplicate_create_is_conflict() {
    for p in ALL {
        let emu = start(p).await;
        let t = target(p, &emu);
        t.create_user(&spec("twice", "Twice")).await.unwrap();
        let e = t.create_user(&spec("TWICE", "Twice")).await.unwrap_err();
        // Confluence rejects upper case before checking duplicates.
        let want = if p == Product::Confluence {
            [ErrorKind::Conflict, ErrorKind::Invalid]
        } else {
            [ErrorKind::Conflict; 2]
        };
        assert!(want.contains(&e.kind), "{p:?}: {:?} {}", e.kind, e.message);
        t.create_group("dup").await.unwrap();
        let e = t.create_group("DUP").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Conflict, "{p:?}: {}", e.message);
    }
}

#[tokio::test]
async fn injected_server_error_on_one_route() {
    let emu = start(Product::Jira).await;
    let mut rule = FailRule::every("POST", "/rest/api/2/group", 500);
    rule.message = "Group could not be created because of another error".into();
    emu.handle().add_fail_rule(rule);
    let e = target(Product::Jira, &emu)
        .create_group("x")
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Other);
    assert!(
        e.message.contains("Group could not be created"),
        "{}",
        e.message
    );
}

/// Bad credentials → Auth, for Basic, Bearer and Crowd application credentials.
#[tokio::test]
async fn bad_credentials_are_auth_errors() {
    for p in ALL {
        let emu = start(p).await;
        let auths = match p {
            Product::Crowd => vec![AtlassianAuth::CrowdApp {
                name: "usersync".into(),
                password: SecretString::from("pw-3f9x-bad"),
            }],
            _ => vec![
                AtlassianAuth::Basic {
                    username: "admin".into(),
                    password: SecretString::from("pw-3f9x-bad"),
                },
                AtlassianAuth::Bearer {
                    token: SecretString::from("not-a-token"),
                },
            ],
        };
        for auth in auths {
            let mut cfg = config(p, &emu);
            cfg.auth = auth;
            let e = build_target(&cfg).unwrap().read().await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Auth, "{p:?}: {}", e.message);
            assert_eq!(e.status, Some(401));
            assert!(
                !e.message.contains("pw-3f9x-bad") && !e.message.contains("not-a-token"),
                "secret leaked: {}",
                e.message
            );
        }
    }
}

#[tokio::test]
async fn personal_access_token_works() {
    for p in [Product::Jira, Product::Confluence, Product::Bitbucket] {
        let emu = start(p).await;
        let mut cfg = config(p, &emu);
        cfg.auth = AtlassianAuth::Bearer {
            token: SecretString::from("emulator-pat"),
        };
        build_target(&cfg).unwrap().read().await.expect("PAT read");
    }
}

#[tokio::test]
async fn crowd_credentials_only_for_crowd() {
    let emu = start(Product::Jira).await;
    let mut cfg = config(Product::Jira, &emu);
    cfg.auth = admin_auth(Product::Crowd);
    assert_eq!(build_target(&cfg).err().unwrap().kind, ErrorKind::Invalid);
}

/// Concurrency per target is bounded by `max_concurrency` (and reported in capabilities).
#[tokio::test]
async fn concurrency_is_bounded() {
    use std::time::{Duration, Instant};
    let emu = start(Product::Jira).await;
    let names: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
    for n in &names {
        emu.handle()
            .seed_user(usersync_emulators::atlassian::SeedUser::new(n));
    }
    emu.handle().seed_group("g1");
    emu.handle().seed_group("g2");
    emu.handle().set_latency(Duration::from_millis(100));
    let mut cfg = config(Product::Jira, &emu);
    cfg.max_concurrency = 2;
    let t = build_target(&cfg).unwrap();
    assert_eq!(t.capabilities().max_concurrency, 2);
    let started = Instant::now();
    t.add_members("g1", &names).await.unwrap();
    let serialised = started.elapsed();
    // 8 requests, 2 at a time, 100 ms each: at least 4 rounds.
    assert!(serialised >= Duration::from_millis(390), "{serialised:?}");
    cfg.max_concurrency = 8;
    let t = build_target(&cfg).unwrap();
    let started = Instant::now();
    t.add_members("g2", &names).await.unwrap();
    assert!(
        started.elapsed() < serialised,
        "{:?} vs {serialised:?}",
        started.elapsed()
    );
    assert_eq!(emu.handle().members("g1").len(), 8);
    assert_eq!(emu.handle().members("g2").len(), 8);
}

/// The per-request timeout is configurable; a slow server ends in Unreachable ("timed out").
#[tokio::test]
async fn timeout_is_configurable() {
    use std::time::Duration;
    let emu = start(Product::Bitbucket).await;
    emu.handle().set_latency(Duration::from_millis(800));
    let mut cfg = config(Product::Bitbucket, &emu);
    cfg.timeout = Duration::from_millis(100);
    cfg.retry.max_attempts = 2;
    let e = build_target(&cfg).unwrap().read().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{}", e.message);
    assert!(e.message.contains("timed out"), "{}", e.message);
}
