//! Client-credentials tokens from the Microsoft identity platform v2.0 endpoint, with a client
//! secret or a certificate-signed client assertion, cached and refreshed before expiry.
//!
//! Protocol: <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>
//! and <https://learn.microsoft.com/entra/identity-platform/certificate-credentials>.

use super::config::{AssertionAlgorithm, GraphCredential, GraphSourceConfig};
use super::errors::TokenErrorBody;
use crate::http::{self, HttpCounters, Idempotency, RetryPolicy};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Digest;
use std::sync::Arc;
use std::time::{Duration, Instant};
use usersync_core::ports::{ConnectorError, ErrorKind};

/// A cached access token.
#[derive(Clone)]
pub struct AccessToken {
    /// The bearer token.
    pub secret: SecretString,
    /// When we stop using it.
    refresh_at: Instant,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken([REDACTED])")
    }
}

/// Why a token could not be obtained.
#[derive(Debug, Clone)]
pub enum TokenError {
    /// The login endpoint could not be reached (or kept throttling).
    Transport(ConnectorError),
    /// Entra answered with an error body.
    Rejected {
        /// HTTP status.
        status: u16,
        /// Parsed body.
        body: TokenErrorBody,
    },
    /// The credential could not be used locally (bad PEM, signing failed).
    Local(String),
}

impl TokenError {
    /// As a connector error (Auth, except transport problems).
    pub fn into_connector(self) -> ConnectorError {
        match self {
            TokenError::Transport(e) => e,
            TokenError::Rejected { status, body } => {
                let (what, fix) = body.code().map(super::errors::explain_aadsts).unwrap_or((
                    "Entra ID rejected the token request.",
                    "Check the tenant ID, client ID and credential; the status above says which kind of failure it was.",
                ));
                let summary = body.summary();
                let summary = if summary.trim().is_empty() {
                    "(empty body)".to_string()
                } else {
                    summary
                };
                let mut e = ConnectorError::new(
                    ErrorKind::Auth,
                    format!(
                        "Entra ID token request failed: HTTP {status} {summary} — {what} Fix: {fix}"
                    ),
                );
                e.status = Some(status);
                e
            }
            TokenError::Local(m) => ConnectorError::new(ErrorKind::Auth, m),
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Prepared certificate credential.
struct CertCredential {
    key: jsonwebtoken::EncodingKey,
    alg: jsonwebtoken::Algorithm,
    x5t: String,
    x5t_s256: String,
}

/// Reads the first certificate of a PEM bundle and returns its DER.
pub fn cert_der_from_pem(pem: &str) -> Result<Vec<u8>, String> {
    use rustls::pki_types::{CertificateDer, pem, pem::PemObject as _};
    match CertificateDer::from_pem_slice(pem.as_bytes()) {
        Ok(der) => Ok(der.to_vec()),
        Err(pem::Error::NoItemsFound) => {
            Err("the certificate PEM contains no CERTIFICATE block".into())
        }
        Err(e) => Err(format!("the certificate PEM cannot be parsed: {e}")),
    }
}

/// Base64url SHA-256 and SHA-1 thumbprints of a DER certificate (`x5t#S256`, `x5t`).
pub fn thumbprints(der: &[u8]) -> (String, String) {
    let s256 = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der));
    let s1 = URL_SAFE_NO_PAD.encode(<sha1::Sha1 as sha1::Digest>::digest(der));
    (s256, s1)
}

impl CertCredential {
    fn new(
        cert_pem: &str,
        key_pem: &SecretString,
        alg: AssertionAlgorithm,
    ) -> Result<Self, String> {
        let der = cert_der_from_pem(cert_pem)?;
        let (x5t_s256, x5t) = thumbprints(&der);
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.expose_secret().as_bytes())
            .map_err(|e| format!("the certificate's private key cannot be read (an RSA key in PEM is needed): {e}"))?;
        let alg = match alg {
            AssertionAlgorithm::PS256 => jsonwebtoken::Algorithm::PS256,
            AssertionAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        };
        Ok(Self {
            key,
            alg,
            x5t,
            x5t_s256,
        })
    }

    /// Signs the client assertion: aud = token endpoint, iss = sub = client id, unique jti,
    /// nbf/iat = now, exp = now + 10 min (doc: "certificate-credentials").
    fn assertion(&self, token_url: &str, client_id: &str) -> Result<String, String> {
        let mut header = jsonwebtoken::Header::new(self.alg);
        header.typ = Some("JWT".into());
        header.x5t_s256 = Some(self.x5t_s256.clone());
        header.x5t = Some(self.x5t.clone());
        let now = jiff::Timestamp::now().as_second();
        let claims = serde_json::json!({
            "aud": token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        });
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("signing the client assertion failed: {e}"))
    }
}

/// Obtains and caches access tokens for one (tenant, client, scope).
pub struct TokenProvider {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    scope: String,
    secret: Option<SecretString>,
    cert: Option<Result<CertCredential, String>>,
    policy: RetryPolicy,
    counters: Arc<HttpCounters>,
    cache: tokio::sync::Mutex<Option<AccessToken>>,
}

impl TokenProvider {
    /// Builds a provider; certificate problems surface on the first `token()` call.
    pub fn new(
        cfg: &GraphSourceConfig,
        http: reqwest::Client,
        counters: Arc<HttpCounters>,
    ) -> Self {
        let (secret, cert) = match &cfg.credential {
            GraphCredential::Secret(s) => (Some(s.clone()), None),
            GraphCredential::Certificate {
                cert_pem,
                key_pem,
                algorithm,
            } => (
                None,
                Some(CertCredential::new(cert_pem, key_pem, *algorithm)),
            ),
        };
        Self {
            http,
            token_url: cfg.token_url(),
            client_id: cfg.client_id.clone(),
            scope: cfg.cloud.scope(),
            secret,
            cert,
            policy: cfg.retry.clone(),
            counters,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// A valid token, from the cache unless it is within its refresh margin.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        let mut cache = self.cache.lock().await;
        if let Some(t) = cache.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.clone());
        }
        let (token, _) = self.fetch().await?;
        *cache = Some(token.clone());
        Ok(token)
    }

    /// Drops the cached token if it is still `used` (Graph answered 401 with it), so the next
    /// `token()` fetches a fresh one.
    pub async fn invalidate(&self, used: &AccessToken) {
        let mut cache = self.cache.lock().await;
        if cache
            .as_ref()
            .is_some_and(|t| t.secret.expose_secret() == used.secret.expose_secret())
        {
            *cache = None;
        }
    }

    /// Requests a new token (no cache), returning it and its raw JWT for diagnostics.
    pub async fn fetch(&self) -> Result<(AccessToken, String), TokenError> {
        let mut form: Vec<(&str, String)> = vec![
            ("client_id", self.client_id.clone()),
            ("scope", self.scope.clone()),
            ("grant_type", "client_credentials".into()),
        ];
        if let Some(secret) = &self.secret {
            form.push(("client_secret", secret.expose_secret().to_string()));
        }
        if let Some(cert) = &self.cert {
            let cert = cert.as_ref().map_err(|e| TokenError::Local(e.clone()))?;
            let assertion = cert
                .assertion(&self.token_url, &self.client_id)
                .map_err(TokenError::Local)?;
            form.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ));
            form.push(("client_assertion", assertion));
        }
        let resp = http::send(
            || self.http.post(&self.token_url).form(&form),
            &self.policy,
            &self.counters,
            // A token request has no side effects; repeating it is safe.
            Idempotency::Idempotent,
            "Entra ID token request",
        )
        .await
        .map_err(TokenError::Transport)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| {
            TokenError::Transport(ConnectorError::new(
                ErrorKind::Unreachable,
                format!("reading the token response: {}", http::describe(&e)),
            ))
        })?;
        if status != 200 {
            return Err(TokenError::Rejected {
                status,
                body: TokenErrorBody::parse(&text),
            });
        }
        let parsed: TokenResponse = serde_json::from_str(&text).map_err(|e| {
            TokenError::Local(format!(
                "the token endpoint answered 200 with an unexpected body: {e}"
            ))
        })?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3599));
        // Refresh 5 minutes early, or at half-life for short-lived tokens.
        let margin = Duration::from_secs(300).min(lifetime / 2);
        let token = AccessToken {
            secret: SecretString::from(parsed.access_token.clone()),
            refresh_at: Instant::now() + lifetime - margin,
        };
        Ok((token, parsed.access_token))
    }
}

/// Claims of an access token that matter for diagnostics (decoded without verification —
/// validating Graph's tokens is Graph's job).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct TokenClaims {
    /// Application permissions granted (absent when no admin consent).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Tenant GUID.
    #[serde(default)]
    pub tid: Option<String>,
    /// Client id.
    #[serde(default)]
    pub appid: Option<String>,
    /// Expiry (Unix seconds).
    #[serde(default)]
    pub exp: Option<i64>,
}

/// Decodes a JWT's payload without verifying it. `None` if it is not a JWT.
pub fn decode_claims(jwt: &str) -> Option<TokenClaims> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_roles_without_verifying() {
        let payload = serde_json::json!({"aud":"https://graph.microsoft.com","roles":["User.Read.All","GroupMember.Read.All"],"tid":"t1","appid":"a1","exp":1});
        let jwt = format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let c = decode_claims(&jwt).unwrap();
        assert_eq!(c.roles, vec!["User.Read.All", "GroupMember.Read.All"]);
        assert_eq!(c.tid.as_deref(), Some("t1"));
        let none = serde_json::json!({"aud":"x"});
        let jwt = format!("a.{}.b", URL_SAFE_NO_PAD.encode(none.to_string()));
        assert!(decode_claims(&jwt).unwrap().roles.is_empty());
        assert!(decode_claims("opaque").is_none());
    }
}
