//! Token endpoint and Graph authentication/authorization checks.

mod graph_support;

use base64::Engine;
use graph_support::*;
use serde_json::{Value, json};
use usersync_emulators::graph::{
    AppRegistration, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_DOMAIN,
    DEFAULT_TENANT_ID, GraphConfig, GraphEmulator, Secret,
};

const SCOPE: &str = "https://graph.microsoft.com/.default";

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("b64");
    serde_json::from_slice(&bytes).expect("json")
}

fn assert_aad(v: &Value, code: u64) {
    assert_eq!(v["error_codes"][0].as_u64(), Some(code), "{v}");
    let d = v["error_description"].as_str().expect("description");
    assert!(d.starts_with(&format!("AADSTS{code}: ")), "{d}");
    for k in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(v[k].is_string(), "{k} missing in {v}");
    }
}

#[tokio::test]
async fn secret_token_success_and_claims() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let (st, v) = token_request(
        &emu,
        DEFAULT_TENANT_ID,
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        SCOPE,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3599);
    assert_eq!(v["ext_expires_in"], 3599);
    assert!(v.get("refresh_token").is_none());
    let c = claims(v["access_token"].as_str().unwrap());
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(c["tid"], DEFAULT_TENANT_ID);
    assert_eq!(c["appid"], DEFAULT_CLIENT_ID);
    assert_eq!(c["appidacr"], "1");
    assert_eq!(c["idtyp"], "app");
    let roles: Vec<&str> = c["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(roles.contains(&"User.Read.All") && roles.contains(&"Directory.Read.All"));
    // Tenant may also be addressed by its domain; Basic auth is accepted too.
    let r = client()
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            emu.login_url(),
            DEFAULT_TENANT_DOMAIN
        ))
        .basic_auth(DEFAULT_CLIENT_ID, Some(DEFAULT_CLIENT_SECRET))
        .form(&[("scope", SCOPE), ("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(emu.stats().get("token"), 2);
    emu.shutdown().await;
}

#[tokio::test]
async fn token_errors() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let (st, v) = token_request(
        &emu,
        "99999999-2222-3333-4444-555555555555",
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        SCOPE,
    )
    .await;
    assert_eq!((st, v["error"].as_str()), (400, Some("invalid_tenant")));
    assert_aad(&v, 90002);
    let (st, v) = token_request(
        &emu,
        "not a tenant!",
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        SCOPE,
    )
    .await;
    assert_eq!(st, 400);
    assert_aad(&v, 900023);
    let (st, v) = token_request(
        &emu,
        DEFAULT_TENANT_ID,
        "00000000-0000-0000-0000-000000000001",
        "x",
        SCOPE,
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    assert_aad(&v, 700016);
    let (st, v) = token_request(&emu, DEFAULT_TENANT_ID, DEFAULT_CLIENT_ID, "wrong", SCOPE).await;
    assert_eq!((st, v["error"].as_str()), (401, Some("invalid_client")));
    assert_aad(&v, 7000215);
    let (st, v) = token_request(
        &emu,
        DEFAULT_TENANT_ID,
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        "User.Read",
    )
    .await;
    assert_eq!((st, v["error"].as_str()), (400, Some("invalid_scope")));
    assert_aad(&v, 1002012);
    let (st, v) = token_request(
        &emu,
        DEFAULT_TENANT_ID,
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        "https://example.com/.default",
    )
    .await;
    assert_eq!((st, v["error"].as_str()), (400, Some("invalid_scope")));
    // Missing parameter.
    let r = client()
        .post(emu.token_url())
        .form(&[
            ("client_id", DEFAULT_CLIENT_ID),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_aad(&v, 900144);
    // Expired secret.
    emu.tenant().expire_secrets(DEFAULT_CLIENT_ID).unwrap();
    let (st, v) = token_request(
        &emu,
        DEFAULT_TENANT_ID,
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        SCOPE,
    )
    .await;
    assert_eq!((st, v["error"].as_str()), (401, Some("invalid_client")));
    assert_aad(&v, 7000222);
    // Rotation: a new secret works again.
    emu.tenant()
        .add_secret(
            DEFAULT_CLIENT_ID,
            Secret {
                key_id: "k2".into(),
                value: "new-secret".into(),
                end: 4_102_444_800,
            },
        )
        .unwrap();
    let (st, _) = token_request(
        &emu,
        DEFAULT_TENANT_ID,
        DEFAULT_CLIENT_ID,
        "new-secret",
        SCOPE,
    )
    .await;
    assert_eq!(st, 200);
    emu.shutdown().await;
}

#[tokio::test]
async fn consent_and_permissions() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let t = emu.tenant();
    t.set_admin_consent(DEFAULT_CLIENT_ID, false).unwrap();
    let tok = token(&emu).await;
    assert!(
        claims(&tok).get("roles").is_none(),
        "no roles without consent"
    );
    let (st, _, v) = get(&format!("{}/users", emu.graph_url()), &tok).await;
    assert_eq!(st, 403);
    assert_eq!(error_code(&v), "Authorization_RequestDenied");
    assert_eq!(
        v["error"]["message"],
        "Insufficient privileges to complete the operation."
    );
    // Only GroupMember.Read.All: groups, members and group delta OK; users denied.
    t.set_admin_consent(DEFAULT_CLIENT_ID, true).unwrap();
    t.set_roles(DEFAULT_CLIENT_ID, vec!["GroupMember.Read.All".into()])
        .unwrap();
    let tok = token(&emu).await;
    let g = &t.group_ids()[0];
    assert_eq!(
        get(&format!("{}/groups", emu.graph_url()), &tok).await.0,
        200
    );
    assert_eq!(
        get(&format!("{}/groups/{g}/members", emu.graph_url()), &tok)
            .await
            .0,
        200
    );
    assert_eq!(
        get(&format!("{}/users", emu.graph_url()), &tok).await.0,
        403
    );
    // Members that are users come back with limited information (id + @odata.type only).
    let (_, _, v) = get(
        &format!(
            "{}/groups/{g}/members/microsoft.graph.user?$select=id,displayName",
            emu.graph_url()
        ),
        &tok,
    )
    .await;
    let first = &v["value"][0];
    assert!(first["id"].is_string(), "{v}");
    assert!(first["displayName"].is_null(), "{v}");
    assert_eq!(
        get(&format!("{}/groups/delta", emu.graph_url()), &tok)
            .await
            .0,
        200
    );
    assert_eq!(
        get(&format!("{}/applications", emu.graph_url()), &tok)
            .await
            .0,
        403
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn bearer_validation() {
    let mut cfg = GraphConfig::tiny();
    cfg.token_lifetime_secs = 120;
    let emu = GraphEmulator::start(cfg).await.unwrap();
    let url = format!("{}/users", emu.graph_url());
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let v: Value = r.json().await.unwrap();
    assert_eq!(error_code(&v), "InvalidAuthenticationToken");
    assert_eq!(v["error"]["message"], "Access token is empty.");
    let (st, _, v) = get(&url, "garbage").await;
    assert_eq!(st, 401);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("CompactToken parsing failed")
    );
    let tok = token(&emu).await;
    // Tamper with the signature.
    let bad = format!("{}x", &tok[..tok.len() - 1]);
    assert_eq!(get(&url, &bad).await.0, 401);
    assert_eq!(get(&url, &tok).await.0, 200);
    emu.tenant().advance_clock(121);
    let (st, _, v) = get(&url, &tok).await;
    assert_eq!(st, 401);
    assert_eq!(
        v["error"]["message"],
        "Access token has expired or is not yet valid."
    );
    assert_eq!(emu.stats().get("unauthorized"), 4);
    emu.shutdown().await;
}

fn test_cert() -> (String, String) {
    let key_pem = include_str!("graph_test_client_key.pem");
    let kp =
        rcgen::KeyPair::from_pem_and_sign_algo(key_pem, &rcgen::PKCS_RSA_SHA256).expect("rsa key");
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "usersync test client");
    let cert = p.self_signed(&kp).unwrap();
    (cert.pem(), key_pem.to_string())
}

fn assertion(
    aud: &str,
    cert_der: &[u8],
    key_pem: &str,
    alg: jsonwebtoken::Algorithm,
    client_id: &str,
) -> String {
    use sha2::Digest;
    let mut h = jsonwebtoken::Header::new(alg);
    h.x5t_s256 = Some(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(cert_der)),
    );
    let now = jiff::Timestamp::now().as_second();
    let c = json!({"aud": aud, "iss": client_id, "sub": client_id, "jti": uuid::Uuid::new_v4().to_string(), "nbf": now, "iat": now, "exp": now + 600});
    jsonwebtoken::encode(
        &h,
        &c,
        &jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn certificate_client_assertion() {
    let (cert_pem, key_pem) = test_cert();
    let der = <rustls::pki_types::CertificateDer<'_> as rustls::pki_types::pem::PemObject>::from_pem_slice(
        cert_pem.as_bytes(),
    )
    .unwrap()
    .to_vec();
    let mut cfg = GraphConfig::tiny();
    let cid = "0b1c2d3e-0000-4000-8000-00000000c3e7";
    cfg.apps.push(AppRegistration {
        client_id: cid.into(),
        display_name: "cert app".into(),
        secrets: vec![],
        certificates: vec![cert_pem.clone()],
        granted_roles: vec!["User.Read.All".into()],
        admin_consent: true,
    });
    let emu = GraphEmulator::start(cfg).await.unwrap();
    let post = |a: String| {
        let url = emu.token_url();
        async move {
            let r = client()
                .post(url)
                .form(&[
                    ("client_id", cid),
                    ("scope", SCOPE),
                    ("grant_type", "client_credentials"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", a.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let aud = format!("https://login.microsoftonline.com/{DEFAULT_TENANT_ID}/oauth2/v2.0/token");
    for alg in [
        jsonwebtoken::Algorithm::PS256,
        jsonwebtoken::Algorithm::RS256,
    ] {
        let (st, v) = post(assertion(&aud, &der, &key_pem, alg, cid)).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(claims(v["access_token"].as_str().unwrap())["appidacr"], "2");
    }
    // Wrong audience, wrong issuer, tampered signature.
    let (st, _) = post(assertion(
        "https://example.com/token",
        &der,
        &key_pem,
        jsonwebtoken::Algorithm::RS256,
        cid,
    ))
    .await;
    assert_eq!(st, 400);
    let a = assertion(&aud, &der, &key_pem, jsonwebtoken::Algorithm::RS256, cid);
    let (head, _) = a.rsplit_once('.').unwrap();
    let (st, v) = post(format!("{head}.AAAA")).await;
    assert_eq!(st, 401);
    assert_aad(&v, 700027);
    // The application object lists the certificate.
    let tok = token(&emu).await;
    let (st, _, v) = get(
        &format!("{}/applications?$filter=appId eq '{cid}'", emu.graph_url()),
        &tok,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let kc = &v["value"][0]["keyCredentials"][0];
    assert_eq!(kc["type"], "AsymmetricX509Cert");
    assert_eq!(kc["displayName"], "CN=usersync test client");
    assert!(kc["endDateTime"].as_str().unwrap().ends_with('Z'));
    emu.shutdown().await;
}

#[tokio::test]
async fn applications_show_secret_expiry() {
    let emu = GraphEmulator::start(GraphConfig::tiny()).await.unwrap();
    let tok = token(&emu).await;
    let (st, _, v) = get(&format!("{}/applications?$filter=appId eq '{DEFAULT_CLIENT_ID}'&$select=appId,passwordCredentials", emu.graph_url()), &tok).await;
    assert_eq!(st, 200, "{v}");
    let apps = v["value"].as_array().unwrap();
    assert_eq!(apps.len(), 1);
    let pc = &apps[0]["passwordCredentials"][0];
    assert_eq!(pc["endDateTime"], "2100-01-01T00:00:00Z");
    assert!(pc["secretText"].is_null());
    assert!(apps[0].get("displayName").is_none());
    let (_, _, v) = get(
        &format!("{}/applications?$filter=appId eq 'nope'", emu.graph_url()),
        &tok,
    )
    .await;
    assert_eq!(v["value"].as_array().unwrap().len(), 0);
    let (st, _, v) = get(&format!("{}/organization", emu.graph_url()), &tok).await;
    assert_eq!(st, 200);
    assert_eq!(v["value"][0]["id"], DEFAULT_TENANT_ID);
    emu.shutdown().await;
}
