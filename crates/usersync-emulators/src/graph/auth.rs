//! Entra ID v2.0 token endpoint (client credentials with a secret or a certificate client
//! assertion), OpenID discovery documents, AADSTS error bodies, and Graph bearer-token checks.
//!
//! Sources:
//! - <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>
//! - <https://learn.microsoft.com/entra/identity-platform/certificate-credentials>
//! - <https://learn.microsoft.com/entra/identity-platform/reference-error-codes>
//! - <https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference>

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Shared;
use super::odata::GraphError;

/// Graph's resource (audience) URI and well-known application id.
pub const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// A client secret of an app registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// `keyId` (GUID) as shown in `passwordCredentials`.
    pub key_id: String,
    /// The secret value clients send as `client_secret`.
    pub value: String,
    /// Expiry, unix seconds (`endDateTime`).
    pub end: i64,
}

/// An app registration (application object + service principal in the tenant).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRegistration {
    /// `appId` / `client_id`.
    pub client_id: String,
    /// Display name of the application (`displayName`).
    pub display_name: String,
    /// Client secrets (`passwordCredentials`) accepted by the token endpoint.
    pub secrets: Vec<Secret>,
    /// PEM certificates whose public keys verify client assertions (`keyCredentials`).
    #[serde(default)]
    pub certificates: Vec<String>,
    /// Application permissions (app roles of Microsoft Graph) assigned to the app.
    #[serde(default)]
    pub granted_roles: Vec<String>,
    /// Whether an admin consented; without consent tokens carry no `roles` claim.
    #[serde(default)]
    pub admin_consent: bool,
}

/// Parsed X.509 certificate facts we need.
#[derive(Clone, Debug)]
pub struct CertInfo {
    pub x5t: String,
    pub x5t_s256: String,
    pub sha1_hex: String,
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub subject_cn: String,
    pub key_id: String,
}

/// An app plus derived state.
#[derive(Clone, Debug)]
pub struct AppState {
    pub reg: AppRegistration,
    pub object_id: String,
    pub sp_object_id: String,
    pub certs: Vec<CertInfo>,
}

impl AppState {
    pub fn new(reg: AppRegistration) -> anyhow::Result<Self> {
        let certs = reg
            .certificates
            .iter()
            .map(|p| parse_cert_pem(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let object_id = derived_uuid("app-object", &reg.client_id);
        let sp_object_id = derived_uuid("service-principal", &reg.client_id);
        Ok(AppState {
            reg,
            object_id,
            sp_object_id,
            certs,
        })
    }
}

/// A stable GUID derived from a label (so object ids do not change between runs).
pub fn derived_uuid(kind: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("{kind}:{key}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

// ---------------------------------------------------------------------------------------
// Minimal DER reading (certificate → RSA public key, validity, subject CN)
// ---------------------------------------------------------------------------------------

fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let l0 = *b.get(1)? as usize;
    let (len, hdr) = if l0 < 0x80 {
        (l0, 2)
    } else {
        let n = l0 & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    if end > b.len() {
        return None;
    }
    Some((tag, &b[hdr..end], &b[end..]))
}

fn der_time(tag: u8, c: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(c).ok()?;
    let s = s.strip_suffix('Z')?;
    let full = match tag {
        0x17 => {
            let yy: i32 = s.get(0..2)?.parse().ok()?;
            format!("{}{}", if yy >= 50 { 19 } else { 20 }, s)
        }
        0x18 => s.to_string(),
        _ => return None,
    };
    let f = |a: usize, b: usize| -> Option<i32> { full.get(a..b)?.parse().ok() };
    let dt = jiff::civil::DateTime::new(
        f(0, 4)? as i16,
        f(4, 6)? as i8,
        f(6, 8)? as i8,
        f(8, 10)? as i8,
        f(10, 12)? as i8,
        f(12, 14)? as i8,
        0,
    )
    .ok()?;
    Some(
        dt.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp()
            .as_second(),
    )
}

fn strip_int(b: &[u8]) -> Vec<u8> {
    let mut s = b;
    while s.len() > 1 && s[0] == 0 {
        s = &s[1..];
    }
    s.to_vec()
}

/// Parses an RSA `RSAPublicKey` (PKCS#1) DER into (n, e).
fn rsa_pub(b: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (_, seq, _) = der(b)?;
    let (_, n, rest) = der(seq)?;
    let (_, e, _) = der(rest)?;
    Some((strip_int(n), strip_int(e)))
}

/// Parses a PEM certificate.
pub fn parse_cert_pem(pem: &str) -> anyhow::Result<CertInfo> {
    use rustls::pki_types::{CertificateDer, pem::PemObject as _};
    use sha1::Digest as _;
    let der_bytes = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("no CERTIFICATE block in PEM: {e}"))?
        .to_vec();
    let bad = || anyhow::anyhow!("malformed certificate");
    let (_, cert, _) = der(&der_bytes).ok_or_else(bad)?;
    let (_, tbs, _) = der(cert).ok_or_else(bad)?;
    let mut rest = tbs;
    let (tag, _, r) = der(rest).ok_or_else(bad)?;
    if tag == 0xA0 {
        rest = r;
    }
    let (_, _serial, r) = der(rest).ok_or_else(bad)?;
    let (_, _sigalg, r) = der(r).ok_or_else(bad)?;
    let (_, _issuer, r) = der(r).ok_or_else(bad)?;
    let (_, validity, r) = der(r).ok_or_else(bad)?;
    let (_, subject, r) = der(r).ok_or_else(bad)?;
    let (_, spki, _) = der(r).ok_or_else(bad)?;
    let (t1, nb, vr) = der(validity).ok_or_else(bad)?;
    let (t2, na, _) = der(vr).ok_or_else(bad)?;
    let not_before = der_time(t1, nb).ok_or_else(bad)?;
    let not_after = der_time(t2, na).ok_or_else(bad)?;
    let (_, _alg, r) = der(spki).ok_or_else(bad)?;
    let (tag, bits, _) = der(r).ok_or_else(bad)?;
    anyhow::ensure!(
        tag == 0x03 && !bits.is_empty(),
        "certificate key is not a bit string"
    );
    let (n, e) =
        rsa_pub(&bits[1..]).ok_or_else(|| anyhow::anyhow!("certificate key is not RSA"))?;
    // CN: OID 2.5.4.3 = 06 03 55 04 03, followed by a string value.
    let cn_oid = [0x06, 0x03, 0x55, 0x04, 0x03];
    let subject_cn = subject
        .windows(5)
        .position(|w| w == cn_oid)
        .and_then(|p| der(&subject[p + 5..]))
        .and_then(|(_, v, _)| std::str::from_utf8(v).ok())
        .unwrap_or("")
        .to_string();
    let sha1 = sha1::Sha1::digest(&der_bytes);
    let sha256 = <sha2::Sha256 as sha2::Digest>::digest(&der_bytes);
    Ok(CertInfo {
        x5t: URL_SAFE_NO_PAD.encode(sha1),
        x5t_s256: URL_SAFE_NO_PAD.encode(sha256),
        sha1_hex: sha1.iter().map(|b| format!("{b:02X}")).collect(),
        n,
        e,
        not_before,
        not_after,
        subject_cn,
        key_id: derived_uuid("key", &URL_SAFE_NO_PAD.encode(sha256)),
    })
}

// ---------------------------------------------------------------------------------------
// Signing keys and tokens
// ---------------------------------------------------------------------------------------

/// The emulator's token-signing key (a fixed test key; clients must not validate Graph tokens
/// anyway: <https://learn.microsoft.com/entra/identity-platform/access-tokens>).
pub struct Keys {
    pub enc: EncodingKey,
    pub dec: DecodingKey,
    pub n: Vec<u8>,
    pub e: Vec<u8>,
}

pub const KEY_ID: &str = "usersync-emulator-key-1";

impl Keys {
    pub fn load() -> anyhow::Result<Keys> {
        let pem = include_str!("emulator_key.pem");
        let enc = EncodingKey::from_rsa_pem(pem.as_bytes())?;
        // PKCS#8 → PrivateKeyInfo { version, alg, OCTET STRING(RSAPrivateKey{v, n, e, …}) }.
        use rustls::pki_types::{PrivatePkcs8KeyDer, pem::PemObject as _};
        let der_bytes = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("no PKCS#8 key: {e}"))?;
        let bad = || anyhow::anyhow!("bad emulator key");
        let (_, pki, _) = der(der_bytes.secret_pkcs8_der()).ok_or_else(bad)?;
        let (_, _v, r) = der(pki).ok_or_else(bad)?;
        let (_, _alg, r) = der(r).ok_or_else(bad)?;
        let (_, octets, _) = der(r).ok_or_else(bad)?;
        let (_, rsa, _) = der(octets).ok_or_else(bad)?;
        let (_, _ver, r) = der(rsa).ok_or_else(bad)?;
        let (_, n, r) = der(r).ok_or_else(bad)?;
        let (_, e, _) = der(r).ok_or_else(bad)?;
        let (n, e) = (strip_int(n), strip_int(e));
        let dec = DecodingKey::from_rsa_raw_components(&n, &e);
        Ok(Keys { enc, dec, n, e })
    }
}

/// Claims of the access tokens we mint (v1.0 shape, as Graph receives).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub app_displayname: String,
    pub appid: String,
    pub appidacr: String,
    pub idp: String,
    pub idtyp: String,
    pub oid: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub roles: Option<Vec<String>>,
    pub sub: String,
    pub tid: String,
    pub uti: String,
    pub ver: String,
}

impl Claims {
    /// Whether any of `needed` is among the token's roles.
    pub fn has_any(&self, needed: &[&str]) -> bool {
        self.roles.as_ref().is_some_and(|r| {
            r.iter()
                .any(|x| needed.iter().any(|n| n.eq_ignore_ascii_case(x)))
        })
    }
}

// ---------------------------------------------------------------------------------------
// AADSTS errors
// ---------------------------------------------------------------------------------------

/// Entra error body: `{error, error_description, error_codes, timestamp, trace_id,
/// correlation_id, error_uri}`.
/// <https://learn.microsoft.com/entra/identity-platform/reference-error-codes>
pub fn aad_error(
    status: u16,
    error: &str,
    code: u32,
    message: &str,
    correlation: &str,
) -> Box<Response> {
    let now = jiff::Timestamp::now();
    let ts = now.strftime("%Y-%m-%d %H:%M:%SZ").to_string();
    let trace = uuid::Uuid::new_v4().to_string();
    let desc = format!(
        "AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {ts}"
    );
    let body = json!({
        "error": error,
        "error_description": desc,
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(body),
    )
        .into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store, no-cache"),
    );
    // Boxed: responses are large and travel in `Err` variants.
    Box::new(r)
}

/// Is `t` a DNS name or GUID (else AADSTS900023)?
fn tenant_syntax_ok(t: &str) -> bool {
    uuid::Uuid::parse_str(t).is_ok()
        || (t.contains('.')
            && t.split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')))
        || t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Resolves the `{tenant}` path segment to the tenant id, or an AADSTS error.
fn resolve_tenant(sh: &Shared, t: &str, corr: &str) -> Result<String, Box<Response>> {
    if t.eq_ignore_ascii_case(&sh.tenant_id) || t.eq_ignore_ascii_case(&sh.domain) {
        return Ok(sh.tenant_id.clone());
    }
    if ["common", "organizations", "consumers"].contains(&t.to_ascii_lowercase().as_str()) {
        // Client credentials needs a tenant-specific authority.
        // https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
        return Err(aad_error(
            400,
            "invalid_request",
            9001023,
            "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
            corr,
        ));
    }
    if !tenant_syntax_ok(t) {
        return Err(aad_error(
            400,
            "invalid_request",
            900023,
            &format!(
                "Specified tenant identifier '{t}' is neither a valid DNS name, nor a valid external domain."
            ),
            corr,
        ));
    }
    Err(aad_error(
        400,
        "invalid_tenant",
        90002,
        &format!(
            "Tenant '{t}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
        corr,
    ))
}

/// Scheme + host of the request (for self-referencing URLs behind any port).
pub(crate) fn base_url(sh: &Shared, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("{}://{}", if sh.tls { "https" } else { "http" }, host)
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration` (MSAL reads `token_endpoint` here).
/// <https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc>
pub(crate) async fn openid_configuration(
    State(sh): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    sh.count_request();
    sh.count("openid");
    let corr = uuid::Uuid::new_v4().to_string();
    // The multi-tenant authorities publish a document too (MSAL reads it for
    // `https://login.microsoftonline.com/organizations`): endpoints under the alias and an
    // issuer with the `{tenantid}` placeholder.
    // https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc ("Find your app's
    // OpenID configuration document URI": common, organizations, consumers, tenant).
    let alias = tenant.to_ascii_lowercase();
    let (tid, issuer_tid) = if ["common", "organizations", "consumers"].contains(&alias.as_str()) {
        (alias, "{tenantid}".to_string())
    } else {
        match resolve_tenant(&sh, &tenant, &corr) {
            Ok(t) => (t.clone(), t),
            Err(r) => return *r,
        }
    };
    let b = base_url(&sh, &headers);
    axum::Json(json!({
        "token_endpoint": format!("{b}/{tid}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{b}/{tid}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("https://login.microsoftonline.com/{issuer_tid}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{b}/{tid}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{b}/{tid}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{b}/{tid}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "oid", "roles"],
        "kerberos_endpoint": format!("{b}/{tid}/kerberos"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net"
    }))
    .into_response()
}

/// `GET /common/discovery/instance` (MSAL instance discovery), pointing at our own tenant
/// discovery endpoint.
pub(crate) async fn instance_discovery(
    State(sh): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    let b = base_url(&sh, &headers);
    let host = b.split("://").nth(1).unwrap_or("127.0.0.1").to_string();
    axum::Json(json!({
        "tenant_discovery_endpoint": format!("{b}/{}/v2.0/.well-known/openid-configuration", sh.tenant_id),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}]
    }))
    .into_response()
}

/// `GET /{tenant}/discovery/v2.0/keys`: the emulator's signing key as a JWKS.
pub(crate) async fn jwks(State(sh): State<Arc<Shared>>) -> Response {
    axum::Json(json!({"keys": [{
        "kty": "RSA", "use": "sig", "kid": KEY_ID,
        "n": URL_SAFE_NO_PAD.encode(&sh.keys.n), "e": URL_SAFE_NO_PAD.encode(&sh.keys.e)
    }]}))
    .into_response()
}

#[derive(Deserialize)]
struct AssertionClaims {
    #[serde(default)]
    aud: Value,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    // Numeric dates may be fractional (MSAL Python sends floats).
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    nbf: Option<f64>,
}

/// `POST /{tenant}/oauth2/v2.0/token` (client credentials).
/// <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>
pub(crate) async fn token(
    State(sh): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    sh.count_request();
    sh.count("token");
    let latency = sh.settings.read().map(|s| s.latency).unwrap_or_default();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let corr = headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    match token_inner(&sh, &tenant, &headers, &body, &corr) {
        Ok(r) => r,
        Err(r) => *r,
    }
}

fn missing(name: &str, corr: &str) -> Box<Response> {
    // AADSTS900144 https://learn.microsoft.com/entra/identity-platform/reference-error-codes
    aad_error(
        400,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{name}'."),
        corr,
    )
}

fn token_inner(
    sh: &Shared,
    tenant: &str,
    headers: &HeaderMap,
    body: &[u8],
    corr: &str,
) -> Result<Response, Box<Response>> {
    let tid = resolve_tenant(sh, tenant, corr)?;
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body).into_owned().collect();
    let grant = form
        .get("grant_type")
        .ok_or_else(|| missing("grant_type", corr))?;
    if grant != "client_credentials" {
        return Err(aad_error(
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
            corr,
        ));
    }
    // Client authentication may also be HTTP Basic (RFC 6749 §2.3.1).
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (u, p) = s.split_once(':')?;
            let dec = |x: &str| {
                percent_encoding::percent_decode_str(&x.replace('+', " "))
                    .decode_utf8_lossy()
                    .to_string()
            };
            Some((dec(u), dec(p)))
        });
    let client_id = form
        .get("client_id")
        .cloned()
        .or_else(|| basic.as_ref().map(|b| b.0.clone()))
        .ok_or_else(|| missing("client_id", corr))?;
    let scope = form.get("scope").ok_or_else(|| missing("scope", corr))?;
    check_scope(scope, corr)?;
    let now = sh.now();
    let app = {
        let apps = sh.apps.read().map_err(|_| missing("client_id", corr))?;
        apps.iter()
            .find(|a| a.reg.client_id.eq_ignore_ascii_case(&client_id))
            .cloned()
    };
    let Some(app) = app else {
        return Err(aad_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                sh.domain
            ),
            corr,
        ));
    };
    let acr;
    if let Some(assertion) = form.get("client_assertion") {
        let ty = form.get("client_assertion_type").map(String::as_str);
        if ty != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
            return Err(missing("client_assertion_type", corr));
        }
        verify_assertion(&app, assertion, tenant, &tid, now, corr)?;
        acr = "2";
    } else if let Some(secret) = form
        .get("client_secret")
        .cloned()
        .or_else(|| basic.as_ref().map(|b| b.1.clone()))
    {
        let matching: Vec<&Secret> = app
            .reg
            .secrets
            .iter()
            .filter(|s| s.value == secret)
            .collect();
        if !matching.iter().any(|s| s.end > now) {
            let all_expired =
                !app.reg.secrets.is_empty() && app.reg.secrets.iter().all(|s| s.end <= now);
            if !matching.is_empty() || all_expired {
                // AADSTS7000222 https://learn.microsoft.com/entra/identity-platform/reference-error-codes
                return Err(aad_error(
                    401,
                    "invalid_client",
                    7000222,
                    &format!(
                        "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
                    ),
                    corr,
                ));
            }
            // AADSTS7000215 https://learn.microsoft.com/entra/identity-platform/reference-error-codes
            return Err(aad_error(
                401,
                "invalid_client",
                7000215,
                &format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
                corr,
            ));
        }
        acr = "1";
    } else {
        return Err(aad_error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            corr,
        ));
    }
    let lifetime = sh
        .settings
        .read()
        .map(|s| s.token_lifetime_secs)
        .unwrap_or(3599) as i64;
    // No `roles` claim without admin consent; the token request still succeeds.
    // https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
    let roles = (app.reg.admin_consent && !app.reg.granted_roles.is_empty())
        .then(|| app.reg.granted_roles.clone());
    let claims = Claims {
        aud: GRAPH_AUDIENCE.into(),
        iss: format!("https://sts.windows.net/{tid}/"),
        iat: now,
        nbf: now,
        exp: now + lifetime,
        app_displayname: app.reg.display_name.clone(),
        appid: app.reg.client_id.clone(),
        appidacr: acr.into(),
        idp: format!("https://sts.windows.net/{tid}/"),
        idtyp: "app".into(),
        oid: app.sp_object_id.clone(),
        roles,
        sub: app.sp_object_id.clone(),
        tid: tid.clone(),
        uti: URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes()),
        ver: "1.0".into(),
    };
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(KEY_ID.into());
    h.typ = Some("JWT".into());
    let token = jsonwebtoken::encode(&h, &claims, &sh.keys.enc)
        .map_err(|_| aad_error(500, "server_error", 90012, "Token signing failed.", corr))?;
    let mut r = axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    }))
    .into_response();
    let hs = r.headers_mut();
    hs.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store, no-cache"),
    );
    hs.insert(header::PRAGMA, header::HeaderValue::from_static("no-cache"));
    hs.insert(header::EXPIRES, header::HeaderValue::from_static("-1"));
    Ok(r)
}

/// Client credentials need exactly one `{resource}/.default` scope for Graph.
fn check_scope(scope: &str, corr: &str) -> Result<(), Box<Response>> {
    let scopes: Vec<&str> = scope
        .split_whitespace()
        .filter(|s| !["openid", "profile", "offline_access"].contains(s))
        .collect();
    let graph = |s: &str| {
        let s = s.to_ascii_lowercase();
        s == "https://graph.microsoft.com/.default"
            || s == "https://graph.microsoft.com//.default"
            || s == format!("{GRAPH_APP_ID}/.default")
    };
    if scopes.len() == 1 && graph(scopes[0]) {
        return Ok(());
    }
    if let Some(bad) = scopes.iter().find(|s| !s.ends_with("/.default")) {
        // AADSTS1002012 (scope without /.default in client credentials).
        return Err(aad_error(
            400,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {bad} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
            corr,
        ));
    }
    if scopes.len() > 1 {
        return Err(aad_error(
            400,
            "invalid_scope",
            700022,
            "The provided value for the input parameter scope isn't valid because it contains more than one resource.",
            corr,
        ));
    }
    Err(aad_error(
        400,
        "invalid_scope",
        70011,
        &format!(
            "The provided value for the input parameter 'scope' isn't valid. The scope {scope} isn't valid."
        ),
        corr,
    ))
}

fn verify_assertion(
    app: &AppState,
    jwt: &str,
    tenant_seg: &str,
    tid: &str,
    now: i64,
    corr: &str,
) -> Result<(), Box<Response>> {
    // https://learn.microsoft.com/entra/identity-platform/certificate-credentials
    let malformed = |why: &str| {
        aad_error(
            400,
            "invalid_request",
            50027,
            &format!("JWT token is invalid or malformed. {why}"),
            corr,
        )
    };
    let hdr = jsonwebtoken::decode_header(jwt).map_err(|_| malformed("Header can't be parsed."))?;
    if !matches!(hdr.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(malformed("Unsupported signing algorithm."));
    }
    // Thumbprints are base64url; clients differ on padding (MSAL Python sends `=`).
    let norm = |t: &str| t.trim_end_matches('=').replace('+', "-").replace('/', "_");
    let (s256, s1) = (
        hdr.x5t_s256.as_deref().map(norm),
        hdr.x5t.as_deref().map(norm),
    );
    let cert = app.certs.iter().find(|c| {
        s256.as_deref() == Some(c.x5t_s256.as_str()) || s1.as_deref() == Some(c.x5t.as_str())
    });
    let Some(cert) = cert else {
        let thumb = hdr.x5t_s256.clone().or(hdr.x5t.clone()).unwrap_or_default();
        return Err(aad_error(
            401,
            "invalid_client",
            700027,
            &format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumb}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]",
                app.reg.client_id
            ),
            corr,
        ));
    };
    if cert.not_after <= now {
        return Err(aad_error(
            401,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. [Reason - The key used is expired.]",
            corr,
        ));
    }
    let key = DecodingKey::from_rsa_raw_components(&cert.n, &cert.e);
    let mut v = Validation::new(hdr.alg);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<AssertionClaims>(jwt, &key, &v).map_err(|_| {
        aad_error(
            401,
            "invalid_client",
            700027,
            "Client assertion failed signature validation.",
            corr,
        )
    })?;
    let c = data.claims;
    let auds: Vec<String> = match &c.aud {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    };
    // aud = the token endpoint of this tenant (any host: the emulator may sit behind any port).
    let aud_ok = auds.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        [tid, tenant_seg].iter().any(|t| {
            let t = t.to_ascii_lowercase();
            a.ends_with(&format!("/{t}/oauth2/v2.0/token"))
                || a.ends_with(&format!("/{t}/oauth2/token"))
        })
    });
    if !aud_ok {
        return Err(malformed(
            "The audience claim doesn't match the token endpoint.",
        ));
    }
    let cid = &app.reg.client_id;
    if !c
        .iss
        .as_deref()
        .is_some_and(|i| i.eq_ignore_ascii_case(cid))
        || !c
            .sub
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(cid))
    {
        return Err(malformed("The iss and sub claims must be the client id."));
    }
    let exp = c.exp.unwrap_or(0.0) as i64;
    if exp <= now || c.nbf.unwrap_or(0.0) as i64 > now + 300 {
        return Err(aad_error(
            401,
            "invalid_client",
            700024,
            &format!(
                "Client assertion is not within its valid time range. Current time: {now}, expiry time of assertion {exp}."
            ),
            corr,
        ));
    }
    Ok(())
}

/// Validates the Graph bearer token. Errors are Graph 401 `InvalidAuthenticationToken`.
/// <https://learn.microsoft.com/graph/resolve-auth-errors>
pub(crate) fn check_bearer(sh: &Shared, headers: &HeaderMap) -> Result<Claims, GraphError> {
    let unauth = |m: &str| {
        let mut e = GraphError::new(401, "InvalidAuthenticationToken", m);
        e.headers.push((
            "WWW-Authenticate".into(),
            format!("Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"{GRAPH_APP_ID}\""),
        ));
        e
    };
    let raw = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    let token = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .unwrap_or(if raw.is_empty() { "" } else { raw })
        .trim();
    if token.is_empty() {
        return Err(unauth("Access token is empty."));
    }
    let cached = sh
        .token_cache
        .lock()
        .ok()
        .and_then(|c| c.get(token).cloned());
    let claims = match cached {
        Some(c) => c,
        None => {
            if token.split('.').count() != 3 {
                return Err(unauth(
                    "CompactToken parsing failed with error code: 80049217",
                ));
            }
            let mut v = Validation::new(Algorithm::RS256);
            v.validate_exp = false;
            v.validate_aud = false;
            v.required_spec_claims.clear();
            let c = jsonwebtoken::decode::<Claims>(token, &sh.keys.dec, &v)
                .map_err(|_| unauth("Access token validation failure."))?
                .claims;
            if let Ok(mut cache) = sh.token_cache.lock() {
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(token.to_string(), c.clone());
            }
            c
        }
    };
    let now = sh.now();
    if claims.exp <= now || claims.nbf > now + 300 {
        return Err(unauth("Access token has expired or is not yet valid."));
    }
    if claims.aud != GRAPH_AUDIENCE && claims.aud != GRAPH_APP_ID {
        return Err(unauth("Access token validation failure. Invalid audience."));
    }
    if !claims.tid.eq_ignore_ascii_case(&sh.tenant_id) {
        return Err(unauth("Access token validation failure. Invalid audience."));
    }
    Ok(claims)
}
