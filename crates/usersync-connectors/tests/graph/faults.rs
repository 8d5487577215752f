//! Throttling storms, 5xx and failing pages.

use crate::common::{assert_matches_tenant, config, start};
use usersync_connectors::graph::GraphSource;
use usersync_core::ports::SourceDirectory;
use usersync_emulators::graph::{FaultConfig, GraphConfig, TenantSize, ThrottleBudget, UrlFault};

#[tokio::test]
async fn throttling_storm_with_decimal_retry_after_ends_correct() {
    let mut gc = GraphConfig::sized(TenantSize::S, 5);
    gc.delta_page_size = 50;
    gc.faults = FaultConfig {
        seed: 9,
        throttle_rate: 0.3,
        retry_after_secs: 0.05,
        decimal_retry_after: true,
        unavailable_rate: 0.1,
        gateway_timeout_rate: 0.05,
        ..FaultConfig::default()
    };
    let emu = start(gc).await;
    let mut cfg = config(&emu);
    cfg.read_photos = true;
    let src = GraphSource::new(cfg).unwrap();
    let r = src.read(None).await.unwrap();
    assert!(r.snapshot.complete, "{:?}", r.snapshot.warnings);
    assert!(r.stats.throttled > 0);
    let st = emu.stats();
    assert!(st.get("throttled") > 0 && st.get("faults") > 0, "{st:?}");
    emu.tenant().clear_faults();
    assert_matches_tenant(&r.snapshot, &emu);
    // Every user's photo state was settled despite per-item 429s inside $batch.
    let t = emu.tenant();
    for u in &r.snapshot.users {
        assert_eq!(
            u.photo.is_some(),
            t.user_has_photo(&u.id).unwrap(),
            "photo of {}",
            u.id
        );
    }
}

#[tokio::test]
async fn resource_unit_budget_is_waited_out() {
    let mut gc = GraphConfig::sized(TenantSize::S, 5);
    gc.delta_page_size = 20;
    gc.faults = FaultConfig {
        budget: Some(ThrottleBudget {
            resource_units: 15,
            window_secs: 0.5,
            per_request: false,
        }),
        retry_after_secs: 0.2,
        ..FaultConfig::default()
    };
    let emu = start(gc).await;
    let r = GraphSource::new(config(&emu))
        .unwrap()
        .read(None)
        .await
        .unwrap();
    assert!(r.snapshot.complete, "{:?}", r.snapshot.warnings);
    assert!(r.stats.throttled > 0, "budget should have throttled");
    emu.tenant().clear_faults();
    assert_matches_tenant(&r.snapshot, &emu);
}

#[tokio::test]
async fn failing_page_gives_incomplete_snapshot_and_keeps_state() {
    let mut gc = GraphConfig::sized(TenantSize::S, 5);
    gc.delta_page_size = 100;
    let emu = start(gc).await;
    // Few attempts: the 503 below never clears.
    let mut cfg = config(&emu);
    cfg.retry.max_attempts = 3;
    let src = GraphSource::new(cfg).unwrap();
    let first = src.read(None).await.unwrap();
    assert!(first.snapshot.complete);

    // A full read whose second users page always fails with 500.
    emu.tenant().set_faults(FaultConfig {
        fail_urls: vec![UrlFault {
            contains: "skiptoken".into(),
            status: 500,
            times: 0,
        }],
        ..FaultConfig::default()
    });
    let r = src.read(None).await.unwrap();
    assert!(!r.snapshot.complete);
    assert!(
        r.snapshot
            .warnings
            .iter()
            .any(|w| w.contains("page 2") && w.contains("skiptoken")),
        "{:?}",
        r.snapshot.warnings
    );
    assert_eq!(r.next_state, Default::default(), "state not advanced");

    // A delta read that fails keeps the old delta links.
    emu.tenant().set_faults(FaultConfig {
        fail_urls: vec![UrlFault {
            contains: "deltatoken".into(),
            status: 503,
            times: 0,
        }],
        retry_after_secs: 0.01,
        ..FaultConfig::default()
    });
    let r = src.read(Some(first.next_state.clone())).await.unwrap();
    assert!(!r.snapshot.complete);
    assert_eq!(
        r.next_state.cursor, first.next_state.cursor,
        "delta links not advanced"
    );
}

#[tokio::test]
async fn revoked_permission_is_an_error_not_a_partial_read() {
    let emu = start(GraphConfig::tiny()).await;
    emu.tenant()
        .set_roles(
            usersync_emulators::graph::DEFAULT_CLIENT_ID,
            vec!["User.Read.All".into()],
        )
        .unwrap();
    let err = GraphSource::new(config(&emu))
        .unwrap()
        .read(None)
        .await
        .unwrap_err();
    assert!(err.kind.is_systemic(), "{err:?}");
    assert!(
        err.message.contains("Authorization_RequestDenied") || err.message.contains("permission"),
        "{}",
        err.message
    );
}
