//! Directory reads: initial delta read, incremental changes, expiry fallback, scope, photos.

use crate::common::{assert_matches_tenant, config, start};
use usersync_connectors::graph::GraphSource;
use usersync_connectors::graph::delta::Cursor;
use usersync_core::ports::SourceDirectory;
use usersync_emulators::graph::{GraphConfig, GroupFields, TenantSize, UserFields};

#[tokio::test]
async fn initial_read_of_s_tenant_matches_and_uses_delta() {
    let emu = start(GraphConfig::sized(TenantSize::S, 7)).await;
    let src = GraphSource::new(config(&emu)).unwrap();
    let r = src.read(None).await.unwrap();
    assert!(r.snapshot.complete, "{:?}", r.snapshot.warnings);
    assert_eq!(r.stats.mode.to_string(), "full");
    assert_matches_tenant(&r.snapshot, &emu);
    assert_eq!(r.snapshot.users.len(), 1000);
    assert_eq!(r.snapshot.groups.len(), 100);
    let st = emu.stats();
    // Only delta endpoints (no per-group member listing).
    assert!(st.get("users.delta") >= 1);
    assert!(st.get("groups.delta") >= 1);
    assert_eq!(
        st.get("members") + st.get("transitiveMembers") + st.get("users") + st.get("groups"),
        0
    );
    let cursor = Cursor::from_value(&r.next_state.cursor).unwrap();
    assert!(cursor.users_delta_link.unwrap().contains("deltatoken"));
    assert!(cursor.last_full_read.is_some());
    assert_eq!(r.next_state.snapshot.as_ref(), Some(&r.snapshot));
}

#[tokio::test]
async fn second_run_reads_only_changes_and_patches() {
    let emu = start(GraphConfig::tiny()).await;
    let src = GraphSource::new(config(&emu)).unwrap();
    let first = src.read(None).await.unwrap();
    assert!(first.snapshot.complete);
    let t = emu.tenant();
    let ids = t.user_ids();
    let groups = t.group_ids();
    // Changes: add, rename, disable, soft delete, hard delete, membership add/remove.
    let new_id = t
        .add_user(UserFields {
            user_principal_name: Some("new.person@contoso.onmicrosoft.com".into()),
            display_name: Some("New Person".into()),
            given_name: Some("New".into()),
            surname: Some("Person".into()),
            account_enabled: Some(true),
            ..Default::default()
        })
        .unwrap();
    t.update_user(
        &ids[0],
        UserFields {
            display_name: Some("Renamed Person".into()),
            ..Default::default()
        },
    )
    .unwrap();
    t.set_account_enabled(&ids[1], false).unwrap();
    t.delete_user(&ids[2], false).unwrap();
    t.delete_user(&ids[3], true).unwrap();
    t.add_member(&groups[0], &new_id).unwrap();
    let old_member = t
        .group_member_ids(&groups[1])
        .unwrap()
        .into_iter()
        .find(|m| ids.contains(m) && m != &ids[2] && m != &ids[3]);
    if let Some(m) = &old_member {
        t.remove_member(&groups[1], m).unwrap();
    }
    let new_group = t
        .add_group(GroupFields {
            display_name: Some("Fresh Group".into()),
            ..Default::default()
        })
        .unwrap();
    t.add_member(&new_group, &ids[0]).unwrap();
    emu.reset_stats();

    let second = src.read(Some(first.next_state.clone())).await.unwrap();
    assert!(second.snapshot.complete, "{:?}", second.snapshot.warnings);
    assert_eq!(second.stats.mode.to_string(), "delta");
    let st = emu.stats();
    assert_eq!(st.get("users.delta"), 1, "{st:?}");
    assert_eq!(st.get("groups.delta"), 1, "{st:?}");
    assert_eq!(st.get("token"), 0, "token is cached");
    assert_eq!(st.total(), 2, "{st:?}");
    assert_matches_tenant(&second.snapshot, &emu);
    let by_id = |id: &str| second.snapshot.users.iter().find(|u| u.id == id).cloned();
    assert_eq!(
        by_id(&ids[0]).unwrap().display_name.as_deref(),
        Some("Renamed Person")
    );
    assert!(!by_id(&ids[1]).unwrap().enabled);
    assert!(by_id(&ids[2]).is_none() && by_id(&ids[3]).is_none());
    assert_eq!(
        by_id(&new_id).unwrap().upn,
        "new.person@contoso.onmicrosoft.com"
    );
    let g = second
        .snapshot
        .groups
        .iter()
        .find(|g| g.id == new_group)
        .unwrap();
    assert_eq!(g.display_name, "Fresh Group");
    assert!(g.member_users.contains(&ids[0]));

    // Nothing changed: one request per delta link, same snapshot.
    emu.reset_stats();
    let third = src.read(Some(second.next_state.clone())).await.unwrap();
    assert_eq!(emu.stats().total(), 2);
    assert_eq!(third.snapshot, second.snapshot);

    // A restored user comes back under the same id.
    t.restore_user(&ids[2]).unwrap();
    let fourth = src.read(Some(third.next_state)).await.unwrap();
    assert!(fourth.snapshot.users.iter().any(|u| u.id == ids[2]));
    assert_matches_tenant(&fourth.snapshot, &emu);
}

#[tokio::test]
async fn split_groups_over_pages_merge() {
    let mut cfg = GraphConfig::sized(TenantSize::S, 3);
    cfg.delta_page_size = 7;
    cfg.delta_members_per_page = 5;
    let emu = start(cfg).await;
    let src = GraphSource::new(config(&emu)).unwrap();
    let r = src.read(None).await.unwrap();
    assert!(r.snapshot.complete);
    assert_matches_tenant(&r.snapshot, &emu);
}

#[tokio::test]
async fn expired_delta_state_falls_back_to_full_read() {
    let emu = start(GraphConfig::tiny()).await;
    let src = GraphSource::new(config(&emu)).unwrap();
    let first = src.read(None).await.unwrap();
    let t = emu.tenant();
    t.invalidate_delta_tokens();
    let ids = t.user_ids();
    t.delete_user(&ids[5], true).unwrap();
    let second = src.read(Some(first.next_state)).await.unwrap();
    assert_eq!(second.stats.mode.to_string(), "full (delta state expired)");
    assert!(second.snapshot.complete);
    assert_matches_tenant(&second.snapshot, &emu);
    // And the new state works as a delta again.
    let third = src.read(Some(second.next_state)).await.unwrap();
    assert_eq!(third.stats.mode.to_string(), "delta");
}

#[tokio::test]
async fn delta_token_ttl_expiry_falls_back() {
    let emu = start(GraphConfig::tiny()).await;
    let src = GraphSource::new(config(&emu)).unwrap();
    let first = src.read(None).await.unwrap();
    emu.tenant().advance_clock(8 * 24 * 3600);
    let second = src.read(Some(first.next_state)).await.unwrap();
    assert_eq!(second.stats.mode.to_string(), "full (delta state expired)");
    assert!(second.snapshot.complete);
}

#[tokio::test]
async fn force_full_and_periodic_reconcile() {
    let emu = start(GraphConfig::tiny()).await;
    let mut cfg = config(&emu);
    let src = GraphSource::new(cfg.clone()).unwrap();
    let first = src.read(None).await.unwrap();
    cfg.force_full = true;
    let forced = GraphSource::new(cfg.clone())
        .unwrap()
        .read(Some(first.next_state.clone()))
        .await
        .unwrap();
    assert_eq!(forced.stats.mode.to_string(), "full (forced)");
    // A cursor whose last full read is old triggers the reconcile.
    cfg.force_full = false;
    let mut state = first.next_state.clone();
    let mut c = Cursor::from_value(&state.cursor).unwrap();
    c.last_full_read = Some("2020-01-01T00:00:00Z".into());
    state.cursor = c.to_value();
    let r = GraphSource::new(cfg)
        .unwrap()
        .read(Some(state))
        .await
        .unwrap();
    assert_eq!(r.stats.mode.to_string(), "full (periodic reconcile)");
    assert_matches_tenant(&r.snapshot, &emu);
}

#[tokio::test]
async fn scoped_groups_read_only_their_members() {
    let emu = start(GraphConfig::sized(TenantSize::S, 11)).await;
    let t = emu.tenant();
    let gids = t.group_ids();
    let named = t
        .add_group(GroupFields {
            display_name: Some("Jira Users".into()),
            ..Default::default()
        })
        .unwrap();
    let uids = t.user_ids();
    for u in &uids[..30] {
        t.add_member(&named, u).unwrap();
    }
    let mut cfg = config(&emu);
    cfg.scope_group_ids = vec![gids[0].clone()];
    cfg.scope_group_names = vec!["Jira Users".into()];
    emu.reset_stats();
    let r = GraphSource::new(cfg).unwrap().read(None).await.unwrap();
    assert!(r.snapshot.complete, "{:?}", r.snapshot.warnings);
    assert_eq!(r.snapshot.groups.len(), 2);
    let jira = r.snapshot.groups.iter().find(|g| g.id == named).unwrap();
    assert_eq!(jira.member_users.len(), 30);
    assert_eq!(jira.display_name, "Jira Users");
    let st = emu.stats();
    assert_eq!(
        st.get("users.delta") + st.get("groups.delta"),
        0,
        "no tenant-wide read: {st:?}"
    );
    assert!(r.snapshot.users.len() < 1000);
    assert!(
        r.snapshot.users.iter().all(|u| !u.upn.is_empty()),
        "member users carry their properties"
    );
    assert!(r.stats.mode.to_string().contains("scoped"));
}

#[tokio::test]
async fn photos_tags_by_batch_and_download() {
    let emu = start(GraphConfig::tiny()).await;
    let mut cfg = config(&emu);
    cfg.read_photos = true;
    let src = GraphSource::new(cfg).unwrap();
    let r = src.read(None).await.unwrap();
    assert!(r.snapshot.complete);
    let n = r.snapshot.users.len() as u64;
    let st = emu.stats();
    assert_eq!(st.get("batch"), n.div_ceil(20), "{st:?}");
    let t = emu.tenant();
    let with = r
        .snapshot
        .users
        .iter()
        .find(|u| u.photo.is_some())
        .expect("some users have photos");
    let without = r
        .snapshot
        .users
        .iter()
        .find(|u| u.photo.is_none())
        .expect("some users have none");
    assert_eq!(t.user_has_photo(&with.id), Some(true));
    assert_eq!(t.user_has_photo(&without.id), Some(false));
    let p = src.photo(&with.id).await.unwrap().unwrap();
    assert!(p.content_type == "image/jpeg" || p.content_type == "image/png");
    assert_eq!(p.tag, with.photo.as_ref().unwrap().tag);
    assert!(src.photo(&without.id).await.unwrap().is_none());
    // Users without a photo answer the documented 200 placeholder (1x1 GIF, empty ETag):
    // "no photo", not a failure.
    assert!(
        r.snapshot.warnings.iter().all(|w| !w.contains("picture")),
        "{:?}",
        r.snapshot.warnings
    );

    // A delta run fetches tags only for changed users.
    t.set_photo(&without.id, true).unwrap();
    t.update_user(
        &without.id,
        UserFields {
            display_name: Some("Now With Photo".into()),
            ..Default::default()
        },
    )
    .unwrap();
    emu.reset_stats();
    let r2 = src.read(Some(r.next_state)).await.unwrap();
    assert_eq!(emu.stats().get("batch"), 1);
    assert_eq!(emu.stats().get("batch.item"), 1);
    assert!(
        r2.snapshot
            .users
            .iter()
            .find(|u| u.id == without.id)
            .unwrap()
            .photo
            .is_some()
    );
}

#[tokio::test]
async fn photos_without_user_read_all_are_skipped_with_one_warning() {
    let emu = start(GraphConfig::tiny()).await;
    emu.tenant()
        .set_roles(
            usersync_emulators::graph::DEFAULT_CLIENT_ID,
            vec!["Directory.Read.All".into()],
        )
        .unwrap();
    let mut cfg = config(&emu);
    cfg.read_photos = true;
    let r = GraphSource::new(cfg).unwrap().read(None).await.unwrap();
    assert!(r.snapshot.complete);
    assert_eq!(r.snapshot.warnings.len(), 1, "{:?}", r.snapshot.warnings);
    assert!(r.snapshot.warnings[0].contains("User.Read.All"));
    assert!(r.snapshot.users.iter().all(|u| u.photo.is_none()));
    assert_eq!(emu.stats().get("batch"), 0);
}

#[tokio::test]
async fn certificate_credential_reads() {
    let emu = start(GraphConfig::tiny()).await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/graph");
    let cert = std::fs::read_to_string(format!("{dir}/test_client_cert.pem")).unwrap();
    let key = std::fs::read_to_string(format!("{dir}/test_client_key.pem")).unwrap();
    emu.tenant()
        .add_certificate(usersync_emulators::graph::DEFAULT_CLIENT_ID, &cert)
        .unwrap();
    for alg in [
        usersync_connectors::graph::AssertionAlgorithm::PS256,
        usersync_connectors::graph::AssertionAlgorithm::RS256,
    ] {
        let mut cfg = config(&emu);
        cfg.credential = usersync_connectors::graph::GraphCredential::Certificate {
            cert_pem: cert.clone(),
            key_pem: key.clone().into(),
            algorithm: alg,
        };
        let r = GraphSource::new(cfg.clone())
            .unwrap()
            .read(None)
            .await
            .unwrap();
        assert!(r.snapshot.complete);
        assert_matches_tenant(&r.snapshot, &emu);
        let report = usersync_connectors::graph::test_connection(&cfg).await;
        assert!(report.ok(), "{report:#?}");
    }
}

#[tokio::test]
async fn token_is_cached_and_refreshed_before_expiry() {
    let emu = start(GraphConfig::tiny()).await;
    emu.tenant().set_token_lifetime(2);
    let src = GraphSource::new(config(&emu)).unwrap();
    let first = src.read(None).await.unwrap();
    assert_eq!(emu.stats().get("token"), 1);
    let again = src.read(Some(first.next_state.clone())).await.unwrap();
    assert_eq!(again.stats.mode.to_string(), "delta");
    assert_eq!(emu.stats().get("token"), 1, "cached");
    // Refreshed at half-life for short-lived tokens (5 minutes early for normal ones).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    src.read(Some(first.next_state)).await.unwrap();
    assert_eq!(emu.stats().get("token"), 2);
    assert_eq!(emu.stats().get("unauthorized"), 0);
}

#[tokio::test]
async fn rejected_delta_link_falls_back_to_full_read() {
    let emu = start(GraphConfig::tiny()).await;
    let src = GraphSource::new(config(&emu)).unwrap();
    let first = src.read(None).await.unwrap();
    let mut state = first.next_state;
    let mut c = Cursor::from_value(&state.cursor).unwrap();
    let link = c.users_delta_link.take().unwrap();
    let cut = link.find("deltatoken=").unwrap() + "deltatoken=".len();
    c.users_delta_link = Some(format!("{}garbage", &link[..cut]));
    state.cursor = c.to_value();
    let r = src.read(Some(state)).await.unwrap();
    assert_eq!(r.stats.mode.to_string(), "full (delta state invalid)");
    assert!(r.snapshot.complete);
    assert_matches_tenant(&r.snapshot, &emu);
}

#[tokio::test]
async fn delta_links_saved_before_a_select_change_force_a_full_read() {
    // Issue 7 item 23: a deltaLink keeps the `$select` it was started with, so state saved by a
    // version that selected fewer properties must not be followed after an upgrade.
    let emu = start(GraphConfig::tiny()).await;
    let src = GraphSource::new(config(&emu)).unwrap();
    let first = src.read(None).await.unwrap();
    let mut state = first.next_state.clone();
    let mut c = Cursor::from_value(&state.cursor).unwrap();
    // The fingerprint as versions without the select in it wrote it.
    c.fingerprint = format!("graph={};ids=;names=;photos=false", emu.graph_url());
    state.cursor = c.to_value();
    let r = src.read(Some(state)).await.unwrap();
    assert_eq!(r.stats.mode.to_string(), "full (configuration changed)");
    assert!(r.snapshot.complete);
    // The fresh cursor names the selects, and is followed as a delta next time.
    let fp = Cursor::from_value(&r.next_state.cursor)
        .unwrap()
        .fingerprint;
    assert!(
        fp.contains("userPrincipalName") && fp.contains("members"),
        "{fp}"
    );
    let again = src.read(Some(r.next_state)).await.unwrap();
    assert_eq!(again.stats.mode.to_string(), "delta");
}
