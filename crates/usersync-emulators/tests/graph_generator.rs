//! Deterministic tenant generation.

use std::time::Instant;

use usersync_emulators::graph::{DirectorySeed, GraphConfig, GraphEmulator, TenantSize};

#[tokio::test]
async fn same_seed_same_tenant() {
    let a = GraphEmulator::start(GraphConfig::sized(TenantSize::S, 42))
        .await
        .unwrap();
    let b = GraphEmulator::start(GraphConfig::sized(TenantSize::S, 42))
        .await
        .unwrap();
    let c = GraphEmulator::start(GraphConfig::sized(TenantSize::S, 43))
        .await
        .unwrap();
    assert_eq!(a.tenant().fingerprint(), b.tenant().fingerprint());
    assert_ne!(a.tenant().fingerprint(), c.tenant().fingerprint());
    assert_eq!(a.tenant().user_ids(), b.tenant().user_ids());
    assert_eq!(a.tenant().user_count(), 1000);
    assert_eq!(a.tenant().group_count(), 100);
    let m = a.tenant().membership_count();
    assert!((4000..=5010).contains(&m), "memberships {m}");
    for e in [a, b, c] {
        e.shutdown().await;
    }
}

#[tokio::test]
async fn fixture_directory() {
    let fx: usersync_emulators::graph::Fixture = serde_json::from_value(serde_json::json!({
        "users": [
            {"userPrincipalName": "ada@contoso.onmicrosoft.com", "displayName": "Ada", "hasPhoto": true},
            {"id": "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0", "userPrincipalName": "bob@contoso.onmicrosoft.com", "userType": "Guest"}
        ],
        "groups": [
            {"displayName": "Outer", "members": ["Inner", "ada@contoso.onmicrosoft.com"]},
            {"displayName": "Inner", "members": ["6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0"]}
        ]
    }))
    .unwrap();
    let cfg = GraphConfig {
        directory: DirectorySeed::Fixture(fx),
        ..GraphConfig::tiny()
    };
    let emu = GraphEmulator::start(cfg).await.unwrap();
    let t = emu.tenant();
    assert_eq!(
        (t.user_count(), t.group_count(), t.membership_count()),
        (2, 2, 3)
    );
    emu.shutdown().await;
}

/// M in debug takes a couple of seconds; L is ignored by default (run with --ignored).
#[tokio::test]
async fn m_size_generates_quickly() {
    let t0 = Instant::now();
    let emu = GraphEmulator::start(GraphConfig::sized(TenantSize::M, 1))
        .await
        .unwrap();
    assert_eq!(emu.tenant().user_count(), 50_000);
    eprintln!("M generated in {:?}", t0.elapsed());
    emu.shutdown().await;
}

#[tokio::test]
#[ignore = "L tenant: ~300k users / 3M memberships; run explicitly"]
async fn l_size_generates() {
    let t0 = Instant::now();
    let emu = GraphEmulator::start(GraphConfig::sized(TenantSize::L, 1))
        .await
        .unwrap();
    assert_eq!(emu.tenant().user_count(), 300_000);
    assert_eq!(emu.tenant().group_count(), 30_000);
    eprintln!("L generated in {:?}", t0.elapsed());
    emu.shutdown().await;
}
