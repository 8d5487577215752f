//! Save and Test Connection: every failure recognised and explained.

use crate::common::{config, fast_retry, start};
use secrecy::SecretString;
use std::time::Duration;
use usersync_connectors::graph::{GraphCloud, GraphCredential, test_connection};
use usersync_core::check::{ConnectionReport, Verdict};
use usersync_emulators::graph::{DEFAULT_CLIENT_ID, DEFAULT_SECRET_KEY_ID, GraphConfig};

fn verdict(r: &ConnectionReport, id: &str) -> Verdict {
    r.checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id} in {r:#?}"))
        .verdict
}

fn check<'a>(r: &'a ConnectionReport, id: &str) -> &'a usersync_core::check::Check {
    r.checks.iter().find(|c| c.id == id).unwrap()
}

#[tokio::test]
async fn healthy_configuration_passes_everything() {
    let emu = start(GraphConfig::tiny()).await;
    let mut cfg = config(&emu);
    cfg.read_photos = true;
    let r = test_connection(&cfg).await;
    assert!(r.ok(), "{r:#?}");
    assert!(
        r.checks.iter().all(|c| c.verdict == Verdict::Pass),
        "{r:#?}"
    );
    assert_eq!(r.checks.len(), 10);
}

#[tokio::test]
async fn unknown_tenant_app_and_bad_secret() {
    let emu = start(GraphConfig::tiny()).await;
    let mut cfg = config(&emu);
    cfg.tenant_id = "nosuchtenant.onmicrosoft.com".into();
    let r = test_connection(&cfg).await;
    assert_eq!(verdict(&r, "login_endpoint"), Verdict::Pass);
    assert_eq!(verdict(&r, "tenant"), Verdict::Fail, "{r:#?}");
    assert!(check(&r, "tenant").detail.contains("90002"));
    assert_eq!(verdict(&r, "graph.users"), Verdict::Skipped);

    let mut cfg = config(&emu);
    cfg.client_id = "00000000-1111-2222-3333-444444444444".into();
    let r = test_connection(&cfg).await;
    assert_eq!(verdict(&r, "tenant"), Verdict::Pass);
    assert_eq!(verdict(&r, "application"), Verdict::Fail, "{r:#?}");
    assert!(check(&r, "application").detail.contains("700016"));

    let mut cfg = config(&emu);
    cfg.credential = GraphCredential::Secret(SecretString::from(DEFAULT_SECRET_KEY_ID));
    let r = test_connection(&cfg).await;
    assert_eq!(verdict(&r, "application"), Verdict::Pass);
    assert_eq!(verdict(&r, "credentials"), Verdict::Fail, "{r:#?}");
    let c = check(&r, "credentials");
    assert!(c.detail.contains("7000215"));
    assert!(c.fix.as_ref().unwrap().contains("Value"));
}

#[tokio::test]
async fn expired_secret_is_explained() {
    let emu = start(GraphConfig::tiny()).await;
    emu.tenant().expire_secrets(DEFAULT_CLIENT_ID).unwrap();
    let r = test_connection(&config(&emu)).await;
    assert_eq!(verdict(&r, "credentials"), Verdict::Fail, "{r:#?}");
    let c = check(&r, "credentials");
    assert!(c.detail.contains("7000222"));
    assert!(c.fix.as_ref().unwrap().contains("Certificates & secrets"));
}

#[tokio::test]
async fn no_consent_means_no_roles() {
    let emu = start(GraphConfig::tiny()).await;
    emu.tenant()
        .set_admin_consent(DEFAULT_CLIENT_ID, false)
        .unwrap();
    let r = test_connection(&config(&emu)).await;
    assert_eq!(verdict(&r, "credentials"), Verdict::Pass);
    assert_eq!(verdict(&r, "admin_consent"), Verdict::Fail, "{r:#?}");
    assert!(
        check(&r, "admin_consent")
            .fix
            .as_ref()
            .unwrap()
            .contains("Grant admin consent")
    );
    assert_eq!(verdict(&r, "graph.users"), Verdict::Fail);
    assert!(
        check(&r, "graph.users")
            .detail
            .contains("Authorization_RequestDenied")
    );
}

#[tokio::test]
async fn missing_permissions() {
    let emu = start(GraphConfig::tiny()).await;
    emu.tenant()
        .set_roles(DEFAULT_CLIENT_ID, vec!["User.Read.All".into()])
        .unwrap();
    let r = test_connection(&config(&emu)).await;
    assert_eq!(verdict(&r, "permission.sync"), Verdict::Fail, "{r:#?}");
    assert!(
        check(&r, "permission.sync")
            .fix
            .as_ref()
            .unwrap()
            .contains("Directory.Read.All")
    );
    assert_eq!(verdict(&r, "graph.groups"), Verdict::Fail);

    emu.tenant()
        .set_roles(DEFAULT_CLIENT_ID, vec!["Directory.Read.All".into()])
        .unwrap();
    let mut cfg = config(&emu);
    cfg.read_photos = true;
    let r = test_connection(&cfg).await;
    assert_eq!(verdict(&r, "permission.sync"), Verdict::Pass);
    assert_eq!(verdict(&r, "permission.photos"), Verdict::Warn, "{r:#?}");
    assert!(r.ok());

    // Least-privilege equivalent set.
    emu.tenant()
        .set_roles(
            DEFAULT_CLIENT_ID,
            vec!["User.Read.All".into(), "GroupMember.Read.All".into()],
        )
        .unwrap();
    let r = test_connection(&cfg).await;
    assert_eq!(verdict(&r, "permission.sync"), Verdict::Pass, "{r:#?}");
    assert_eq!(verdict(&r, "permission.photos"), Verdict::Pass);
    assert_eq!(verdict(&r, "credential_expiry"), Verdict::Skipped);
}

#[tokio::test]
async fn secret_expiring_soon_warns() {
    let emu = start(GraphConfig::tiny()).await;
    let end = jiff::Timestamp::now().as_second() + 10 * 86_400;
    emu.tenant()
        .set_secret_expiry(DEFAULT_CLIENT_ID, DEFAULT_SECRET_KEY_ID, end)
        .unwrap();
    let r = test_connection(&config(&emu)).await;
    assert_eq!(verdict(&r, "credential_expiry"), Verdict::Warn, "{r:#?}");
    let c = check(&r, "credential_expiry");
    assert!(c.detail.contains("days"));
    assert!(c.fix.as_ref().unwrap().contains("Certificates & secrets"));
}

#[tokio::test]
async fn unreachable_endpoints() {
    let emu = start(GraphConfig::tiny()).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut quick = fast_retry();
    quick.max_attempts = 2;
    quick.max_total_wait = Duration::from_millis(100);
    let mut cfg = config(&emu);
    cfg.retry = quick.clone();
    cfg.cloud = GraphCloud::Custom {
        login_url: emu.login_url(),
        graph_url: format!("http://{closed}/v1.0"),
        scope: None,
    };
    let r = test_connection(&cfg).await;
    assert_eq!(verdict(&r, "credentials"), Verdict::Pass);
    assert_eq!(verdict(&r, "graph.users"), Verdict::Fail, "{r:#?}");
    assert!(
        check(&r, "graph.users")
            .fix
            .as_ref()
            .unwrap()
            .contains("firewall")
    );

    cfg.cloud = GraphCloud::Custom {
        login_url: format!("http://{closed}"),
        graph_url: emu.graph_url(),
        scope: None,
    };
    let r = test_connection(&cfg).await;
    assert_eq!(verdict(&r, "login_endpoint"), Verdict::Fail, "{r:#?}");
    assert!(!r.ok());
}

/// A 403 on a probe while the token carries the permission does not tell the admin to add the
/// permission that the check above says is granted.
#[tokio::test]
async fn forbidden_with_the_permission_granted_is_explained() {
    use usersync_emulators::graph::{FaultConfig, UrlFault};
    let emu = start(GraphConfig::tiny()).await;
    emu.tenant()
        .set_roles(DEFAULT_CLIENT_ID, vec!["Directory.Read.All".into()])
        .unwrap();
    emu.tenant().set_faults(FaultConfig {
        fail_urls: vec![UrlFault {
            contains: "groups?".into(),
            status: 403,
            times: 0,
        }],
        ..FaultConfig::default()
    });
    let r = test_connection(&config(&emu)).await;
    assert_eq!(verdict(&r, "permission.sync"), Verdict::Pass, "{r:#?}");
    assert_eq!(verdict(&r, "graph.groups"), Verdict::Fail, "{r:#?}");
    let c = check(&r, "graph.groups");
    assert!(c.detail.contains("carries"), "{c:?}");
    assert!(!c.fix.as_deref().unwrap_or("").contains("add the"), "{c:?}");
    assert!(
        !c.fix
            .as_deref()
            .unwrap_or("")
            .contains("Directory.Read.All"),
        "{c:?}"
    );
}
