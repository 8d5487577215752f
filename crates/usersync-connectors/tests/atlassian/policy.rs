//! The HTTP policy as the targets see it: no re-sent creates after an ambiguous failure, no
//! "applied" writes that never reached the product, no echoed credentials, no retried
//! certificate failures.

use crate::common::*;
use secrecy::SecretString;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use usersync_connectors::atlassian::{AtlassianAuth, AtlassianTargetConfig, Product, build_target};
use usersync_core::ports::ErrorKind;

/// A 502 after the product created the user: the POST is not sent again (which would answer
/// "already exists"), and the error says the outcome is unknown.
#[tokio::test]
async fn create_is_not_resent_after_a_502() {
    for p in ALL {
        let emu = start(p).await;
        let t = target(p, &emu);
        emu.handle()
            .update_faults(|f| f.bad_gateway_after_write = 1);
        let before = emu.stats().writes();
        let e = t
            .create_user(&spec("ambiguous", "Ambiguous Answer"))
            .await
            .expect_err("a 502 is not a success");
        assert_eq!(emu.stats().writes() - before, 1, "{p:?}: POST re-sent");
        assert_ne!(e.kind, ErrorKind::Conflict, "{p:?}: {}", e.message);
        assert_eq!(e.status, Some(502), "{p:?}: {}", e.message);
        // The product did create it: the next read sees it.
        assert!(emu.handle().users().iter().any(|u| u.name == "ambiguous"));
    }
}

/// A 502 on an idempotent read is still retried.
#[tokio::test]
async fn read_is_retried_after_a_502() {
    let emu = start(Product::Jira).await;
    emu.handle()
        .add_fail_rule(usersync_emulators::atlassian::FailRule::nth_request(1, 502));
    target(Product::Jira, &emu)
        .read()
        .await
        .expect("read through one 502");
}

/// A proxy's HTML login page answered with 200 is not a applied write.
#[tokio::test]
async fn html_200_is_not_an_applied_write() {
    for p in ALL {
        let emu = start(p).await;
        let t = target(p, &emu);
        emu.handle().update_faults(|f| f.html_login_page = true);
        let e = t
            .create_user(&spec("proxied", "Proxied User"))
            .await
            .expect_err(&format!("{p:?}: an HTML page is not the product's answer"));
        assert!(
            e.message.contains("HTML") || e.message.contains("text/html"),
            "{p:?}: {}",
            e.message
        );
        let e = t
            .create_group("proxied-group")
            .await
            .expect_err(&format!("{p:?}: group create through a login page"));
        assert!(e.message.contains("text/html"), "{p:?}: {}", e.message);
        let e = t
            .add_members("jira-software-users", &["admin".into()])
            .await
            .expect_err(&format!("{p:?}: add member through a login page"));
        assert!(e.message.contains("text/html"), "{p:?}: {}", e.message);
        emu.handle().update_faults(|f| f.html_login_page = false);
        assert!(!emu.handle().users().iter().any(|u| u.name == "proxied"));
    }
}

/// A 401 body that reflects the Authorization header is not passed on with the credential.
#[tokio::test]
async fn reflected_credentials_are_redacted() {
    for (p, auth, secret) in [
        (
            Product::Jira,
            AtlassianAuth::Bearer {
                token: SecretString::from("NjM4OTk1-pat-token-value"),
            },
            "NjM4OTk1-pat-token-value",
        ),
        (
            Product::Confluence,
            AtlassianAuth::Basic {
                username: "admin".into(),
                password: SecretString::from("s3cret-password"),
            },
            // base64("admin:s3cret-password")
            "YWRtaW46czNjcmV0LXBhc3N3b3Jk",
        ),
    ] {
        let emu = start(p).await;
        emu.handle()
            .update_faults(|f| f.reflect_authorization_401 = true);
        let mut cfg = config(p, &emu);
        cfg.auth = auth;
        let t = build_target(&cfg).unwrap();
        let e = t.read().await.expect_err("401");
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(!e.message.contains(secret), "{p:?}: {}", e.message);
        assert!(e.message.contains("[redacted]"), "{p:?}: {}", e.message);
        let r = usersync_connectors::atlassian::test_connection(&cfg).await;
        let text = format!("{r:?}");
        assert!(!text.contains(secret), "{p:?}: {text}");
    }
}

/// An HTTPS server whose certificate no configured CA trusts; counts TLS connections.
fn untrusted_server() -> (u16, Arc<AtomicUsize>) {
    use rcgen::{CertificateParams, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use std::io::Read;
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let server = Arc::new(server);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let conn = rustls::ServerConnection::new(server.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut buf = [0u8; 1024];
            let _ = tls.read(&mut buf);
        }
    });
    (port, count)
}

/// A certificate failure is reported at once, not retried.
#[tokio::test]
async fn certificate_failure_is_not_retried() {
    let (port, connections) = untrusted_server();
    let mut cfg = AtlassianTargetConfig::new(
        Product::Jira,
        format!("https://127.0.0.1:{port}/jira"),
        admin_auth(Product::Jira),
    );
    cfg.retry = quick_retry();
    let t = build_target(&cfg).unwrap();
    let e = t.read().await.expect_err("untrusted certificate");
    assert_eq!(e.kind, ErrorKind::Unreachable);
    assert!(e.message.contains("ca_bundle"), "{}", e.message);
    assert_eq!(connections.load(Ordering::SeqCst), 1, "{}", e.message);
}

/// A permission probe answered 404 means the endpoint is missing, not the rights.
#[tokio::test]
async fn probe_404_says_the_endpoint_is_missing() {
    use usersync_core::check::Verdict;
    for (p, route) in [
        (Product::Jira, "/rest/api/2/mypermissions"),
        (Product::Confluence, "/rest/api/user/list"),
        (Product::Bitbucket, "/rest/api/1.0/admin/permissions/users"),
    ] {
        let emu = start(p).await;
        emu.handle()
            .add_fail_rule(usersync_emulators::atlassian::FailRule::every(
                "GET", route, 404,
            ));
        let r = usersync_connectors::atlassian::test_connection(&config(p, &emu)).await;
        let c = r.checks.iter().find(|c| c.id == "admin_rights").unwrap();
        assert_eq!(c.verdict, Verdict::Fail, "{p:?}: {r:#?}");
        assert!(c.detail.contains("not there"), "{p:?}: {}", c.detail);
        assert!(!c.detail.contains("lacks"), "{p:?}: {}", c.detail);
        assert!(
            c.fix.as_deref().unwrap_or("").contains("context path"),
            "{p:?}: {c:?}"
        );
    }
}

/// A login page answering 200 fails the credentials check.
#[tokio::test]
async fn html_login_page_fails_the_credentials_check() {
    use usersync_core::check::Verdict;
    let emu = start(Product::Jira).await;
    emu.handle().update_faults(|f| f.html_login_page = true);
    let r = usersync_connectors::atlassian::test_connection(&config(Product::Jira, &emu)).await;
    assert!(!r.ok(), "{r:#?}");
    let c = r.checks.iter().find(|c| c.id == "credentials").unwrap();
    assert_eq!(c.verdict, Verdict::Fail, "{r:#?}");
    assert!(c.detail.contains("HTML"), "{}", c.detail);
}
