//! Test Connection verdicts.

use crate::common::*;
use secrecy::SecretString;
use usersync_connectors::atlassian::{
    AtlassianAuth, AtlassianTargetConfig, Product, test_connection,
};
use usersync_core::check::Verdict;
use usersync_emulators::atlassian::SeedUser;

fn verdict(r: &usersync_core::check::ConnectionReport, id: &str) -> Verdict {
    r.checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("check {id} in {r:#?}"))
        .verdict
}

#[tokio::test]
async fn admin_passes_everywhere() {
    for p in ALL {
        let emu = start(p).await;
        let r = test_connection(&config(p, &emu)).await;
        assert!(r.ok(), "{p:?}: {r:#?}");
        assert_eq!(verdict(&r, "admin_rights"), Verdict::Pass, "{r:#?}");
        assert_eq!(emu.stats().writes(), 0);
    }
}

#[tokio::test]
async fn non_admin_is_told_which_right_is_missing() {
    for p in [Product::Jira, Product::Confluence, Product::Bitbucket] {
        let emu = start(p).await;
        let mut s = SeedUser::new("plain");
        s.password = "plain-pw".into();
        emu.handle().seed_user(s);
        let mut cfg = config(p, &emu);
        cfg.auth = AtlassianAuth::Basic {
            username: "plain".into(),
            password: SecretString::from("plain-pw"),
        };
        let r = test_connection(&cfg).await;
        assert_eq!(verdict(&r, "credentials"), Verdict::Pass, "{p:?}: {r:#?}");
        assert_eq!(verdict(&r, "admin_rights"), Verdict::Fail, "{p:?}: {r:#?}");
        let c = r.checks.iter().find(|c| c.id == "admin_rights").unwrap();
        let text = format!("{} {}", c.detail, c.fix.clone().unwrap_or_default());
        let right = match p {
            Product::Jira => "ADMINISTER",
            Product::Confluence => "Confluence Administrator",
            _ => "ADMIN",
        };
        assert!(text.contains(right), "{p:?}: {text}");
    }
}

#[tokio::test]
async fn bad_credentials_fail_the_credentials_check() {
    for p in ALL {
        let emu = start(p).await;
        let mut cfg = config(p, &emu);
        cfg.auth = match p {
            Product::Crowd => AtlassianAuth::CrowdApp {
                name: "usersync".into(),
                password: SecretString::from("nope"),
            },
            _ => AtlassianAuth::Basic {
                username: "admin".into(),
                password: SecretString::from("nope"),
            },
        };
        let r = test_connection(&cfg).await;
        assert_eq!(verdict(&r, "reachable"), Verdict::Pass, "{p:?}: {r:#?}");
        assert_eq!(verdict(&r, "credentials"), Verdict::Fail, "{p:?}: {r:#?}");
        assert_eq!(verdict(&r, "admin_rights"), Verdict::Skipped);
    }
}

#[tokio::test]
async fn unreachable_and_wrong_path() {
    // Nothing listens on port 9 of localhost.
    let cfg = AtlassianTargetConfig::new(
        Product::Jira,
        "http://127.0.0.1:9/jira",
        admin_auth(Product::Jira),
    );
    let mut cfg = cfg;
    cfg.retry = quick_retry();
    cfg.retry.max_attempts = 1;
    let r = test_connection(&cfg).await;
    assert_eq!(verdict(&r, "reachable"), Verdict::Fail, "{r:#?}");
    assert_eq!(verdict(&r, "credentials"), Verdict::Skipped);

    let emu = start(Product::Jira).await;
    let mut cfg = config(Product::Jira, &emu);
    cfg.base_url = emu.base_url().trim_end_matches("/jira").to_string() + "/wrong";
    let r = test_connection(&cfg).await;
    assert_eq!(verdict(&r, "reachable"), Verdict::Fail, "{r:#?}");
    assert!(
        r.checks[0]
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("context path")
    );
}

#[tokio::test]
async fn bad_ca_bundle_is_a_configuration_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, "not a certificate").unwrap();
    let mut cfg = AtlassianTargetConfig::new(
        Product::Jira,
        "https://jira.example.com",
        admin_auth(Product::Jira),
    );
    cfg.ca_bundle = Some(path);
    let r = test_connection(&cfg).await;
    assert_eq!(verdict(&r, "configuration"), Verdict::Fail, "{r:#?}");
    assert_eq!(verdict(&r, "reachable"), Verdict::Skipped);
}

/// A minimal HTTPS server (one thread, one response per connection) whose certificate is
/// issued by a freshly generated internal CA. Returns the port and the CA's PEM.
fn internal_pki_server() -> (u16, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use std::io::{Read, Write};
    use std::sync::Arc;

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "usersync test internal CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec()), ca.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let server = Arc::new(server);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let conn = rustls::ServerConnection::new(server.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            if seen.is_empty() {
                continue; // the client rejected the certificate
            }
            let body = r#"{"version":"10.3.0"}"#;
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (port, ca.pem())
}

/// TLS to a server with an internal-PKI certificate: without ca_bundle the check fails with the
/// ca_bundle hint; with the CA in ca_bundle the TLS step passes.
#[tokio::test]
async fn tls_error_suggests_ca_bundle() {
    let (port, ca_pem) = internal_pki_server();
    let mut cfg = AtlassianTargetConfig::new(
        Product::Jira,
        format!("https://127.0.0.1:{port}/jira"),
        admin_auth(Product::Jira),
    );
    cfg.retry = quick_retry();
    cfg.retry.max_attempts = 1;
    let r = test_connection(&cfg).await;
    assert_eq!(verdict(&r, "reachable"), Verdict::Fail, "{r:#?}");
    let fix = r.checks[0].fix.clone().unwrap_or_default();
    assert!(fix.contains("ca_bundle"), "{r:#?}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("internal-ca.pem");
    std::fs::write(&path, ca_pem).unwrap();
    cfg.ca_bundle = Some(path);
    let r = test_connection(&cfg).await;
    assert_eq!(verdict(&r, "reachable"), Verdict::Pass, "{r:#?}");
}
