//! Entra ID (AADSTS) and Microsoft Graph error bodies, and what they mean to an admin.
//!
//! Token errors: `{error, error_description, error_codes[], …}` — code against `error_codes`,
//! not the description text
//! (<https://learn.microsoft.com/entra/identity-platform/reference-error-codes>).
//! Graph errors: `{"error":{"code","message","innerError":{…}}}`
//! (<https://learn.microsoft.com/graph/errors>).

use serde::Deserialize;

/// A token endpoint error body.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct TokenErrorBody {
    /// OAuth error (`invalid_client`, `invalid_tenant`, …).
    #[serde(default)]
    pub error: String,
    /// `AADSTS…: text` plus trace ids.
    #[serde(default)]
    pub error_description: String,
    /// Numeric AADSTS codes.
    #[serde(default)]
    pub error_codes: Vec<u64>,
    /// Correlation id, worth quoting to Microsoft support.
    #[serde(default)]
    pub correlation_id: Option<String>,
}

impl TokenErrorBody {
    /// Parses a token error body; falls back to scraping `AADSTS<digits>` from the text.
    pub fn parse(body: &str) -> Self {
        let mut parsed: TokenErrorBody = serde_json::from_str(body).unwrap_or_default();
        if parsed.error_codes.is_empty()
            && let Some(code) = scrape_aadsts(if parsed.error_description.is_empty() {
                body
            } else {
                &parsed.error_description
            })
        {
            parsed.error_codes.push(code);
        }
        parsed
    }

    /// The first AADSTS code, if any.
    pub fn code(&self) -> Option<u64> {
        self.error_codes.first().copied()
    }

    /// The first line of the description (without trace/correlation ids).
    pub fn summary(&self) -> String {
        let first = self.error_description.lines().next().unwrap_or("").trim();
        if first.is_empty() {
            self.error.clone()
        } else {
            first.to_string()
        }
    }
}

fn scrape_aadsts(text: &str) -> Option<u64> {
    let i = text.find("AADSTS")?;
    let digits: String = text[i + 6..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Which part of the setup an AADSTS code points at; drives the Test Connection check that
/// fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AadstsArea {
    /// Tenant ID / cloud.
    Tenant,
    /// Application (client) ID.
    Application,
    /// Secret or certificate.
    Credential,
    /// Scope, consent, resource.
    Permission,
    /// Anything else (policy, service).
    Other,
}

/// Classifies an AADSTS code.
pub fn aadsts_area(code: u64) -> AadstsArea {
    match code {
        90002 | 900023 | 90038 | 50049 | 900971 | 9001023 => AadstsArea::Tenant,
        700016 | 7000112 | 700038 | 50011 => AadstsArea::Application,
        7000215 | 7000222 | 7000218 | 700027 | 700024 | 700023 | 50012 | 500133 | 50034 | 50013 => {
            AadstsArea::Credential
        }
        1002012 | 70011 | 700022 | 500011 | 65001 | 650057 => AadstsArea::Permission,
        _ => AadstsArea::Other,
    }
}

/// Explains an AADSTS code: `(what happened, what the admin should do)`. Codes from
/// <https://learn.microsoft.com/entra/identity-platform/reference-error-codes>.
pub fn explain_aadsts(code: u64) -> (&'static str, &'static str) {
    match code {
        90002 => (
            "The tenant was not found in this Microsoft cloud.",
            "Check the Directory (tenant) ID on the app's Overview page in the Entra admin center, and that the configured cloud (global, US Government, China) is the one the tenant lives in.",
        ),
        900023 => (
            "The tenant identifier is neither a valid GUID nor a valid domain name.",
            "Paste the Directory (tenant) ID (a GUID) or the tenant's primary domain, e.g. contoso.onmicrosoft.com.",
        ),
        90038 | 50049 => (
            "The tenant belongs to a different national cloud than the configured one.",
            "Set the cloud to where the tenant lives (global, US Government L4/L5, China); tokens are not interchangeable between clouds.",
        ),
        9001023 => (
            "Client credentials cannot be used with /common or /consumers.",
            "Configure the tenant's ID or domain instead of 'common', 'organizations' or 'consumers'.",
        ),
        700016 => (
            "No application with this Application (client) ID exists in the tenant.",
            "Copy the Application (client) ID from the app registration's Overview page, and check the tenant ID is the tenant where the app is registered (or that an admin installed it there).",
        ),
        7000112 => (
            "The application is disabled.",
            "Enable the service principal under Enterprise applications > Properties ('Enabled for users to sign in').",
        ),
        7000215 => (
            "The client secret is invalid (often the secret's ID was pasted instead of its value).",
            "Under Certificates & secrets, create a new client secret and paste its Value (not the Secret ID) into the connector.",
        ),
        7000222 => (
            "The client secret has expired.",
            "Create a new client secret under Certificates & secrets in the app registration and paste its Value into the connector; secrets expire after at most 24 months.",
        ),
        7000218 => (
            "Neither a client secret nor a client assertion was sent.",
            "Configure a client secret or a certificate for the connector.",
        ),
        700027 | 50012 => (
            "The certificate assertion failed validation (the certificate is not registered on the app, expired, or the key does not match).",
            "Upload the certificate (public part, .cer/.pem) under Certificates & secrets and configure the matching private key; check the certificate has not expired.",
        ),
        700024 | 500133 => (
            "The client assertion is not within its valid time range.",
            "Check this server's clock (NTP); the assertion's nbf/exp are derived from it.",
        ),
        700023 => (
            "The client assertion's audience is not this token endpoint.",
            "Check the tenant ID and cloud settings.",
        ),
        50034 => (
            "The user account does not exist in the tenant (a user sign-in was attempted).",
            "usersync signs in as an application; check the tenant ID and that the credential belongs to an application, not a user.",
        ),
        50011 => (
            "The reply address does not match.",
            "Not used by client credentials; check the configured login URL.",
        ),
        1002012 | 70011 => (
            "The requested scope is invalid.",
            "Client credentials need the scope '<Graph URL>/.default' (https://graph.microsoft.com/.default in the global cloud); check the cloud setting.",
        ),
        700022 => (
            "The scope names more than one resource.",
            "Use a single '<Graph URL>/.default' scope.",
        ),
        500011 => (
            "Microsoft Graph's service principal was not found in the tenant, or the scope names the wrong resource.",
            "Check the cloud setting matches the tenant (the Graph resource URL differs per cloud).",
        ),
        65001 | 650057 => (
            "Consent for the requested permissions has not been granted.",
            "In API permissions, add the Microsoft Graph application permissions and click 'Grant admin consent for …'.",
        ),
        53003 => (
            "A Conditional Access policy blocked the application's sign-in.",
            "Ask a Conditional Access administrator to exclude this workload identity or allow this server's network location.",
        ),
        50013 => (
            "The assertion's signature is invalid.",
            "Use the private key that belongs to the uploaded certificate.",
        ),
        _ => (
            "Entra ID rejected the token request.",
            "See the error text and https://login.microsoftonline.com/error?code=<code> for details.",
        ),
    }
}

/// A Graph error body's `error` object.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct GraphErrorBody {
    /// Error code (`Authorization_RequestDenied`, …).
    #[serde(default)]
    pub code: String,
    /// Message.
    #[serde(default)]
    pub message: String,
}

impl GraphErrorBody {
    /// Parses `{"error":{…}}`; unknown bodies give an empty code and the raw text (trimmed).
    pub fn parse(body: &str) -> Self {
        #[derive(Deserialize)]
        struct Wrapper {
            error: GraphErrorBody,
        }
        match serde_json::from_str::<Wrapper>(body) {
            Ok(w) => w.error,
            Err(_) => GraphErrorBody {
                code: String::new(),
                message: body.chars().take(300).collect(),
            },
        }
    }
}

/// Explains a Graph error code: `(what happened, what the admin should do)`.
pub fn explain_graph_error(code: &str) -> (&'static str, &'static str) {
    match code.to_ascii_lowercase().as_str() {
        "authorization_requestdenied" => (
            "The application lacks the Microsoft Graph permission for this request.",
            "In API permissions, add the application permission Directory.Read.All (or User.Read.All + GroupMember.Read.All; User.Read.All for pictures) and click 'Grant admin consent'.",
        ),
        "invalidauthenticationtoken" => (
            "Graph rejected the access token (expired, malformed, or issued for another cloud).",
            "Check the cloud setting matches the tenant; if it persists, check the server clock.",
        ),
        "authorization_identitynotfound" => (
            "The application's service principal was not found in the tenant.",
            "Have an administrator consent to the app in this tenant (Enterprise applications), or check the tenant ID.",
        ),
        "request_resourcenotfound" | "resourcenotfound" => (
            "The object does not exist (deleted, or the ID is wrong).",
            "Check the configured group IDs/names still exist in the directory.",
        ),
        "imagenotfound" | "erroritemnotfound" | "errorentitynotfound" => {
            ("The user has no profile picture.", "Nothing to do.")
        }
        "syncstatenotfound" | "resyncrequired" => (
            "The saved delta state is no longer valid.",
            "Nothing to do: usersync falls back to a full read.",
        ),
        "toomanyrequests" => (
            "Microsoft Graph throttled the requests.",
            "Run again later or lower the concurrency.",
        ),
        "request_unsupportedquery" | "request_badrequest" | "badrequest" => (
            "Graph rejected the query.",
            "This is a usersync bug or an unsupported tenant type (B2C/External ID do not support delta); please report it.",
        ),
        _ => (
            "Microsoft Graph returned an error.",
            "See Graph's message and the HTTP status above; if Graph gave no message, check the Microsoft 365 service health and retry.",
        ),
    }
}

/// Like [`explain_graph_error`], for a named request (`what`, e.g. `"GET users/delta"` or
/// `"$batch"`): the delta-specific advice is given only for delta requests.
pub fn explain_graph_error_for(code: &str, what: &str) -> (&'static str, &'static str) {
    let bad_request = matches!(
        code.to_ascii_lowercase().as_str(),
        "request_unsupportedquery" | "request_badrequest" | "badrequest"
    );
    if bad_request && !what.contains("delta") {
        return (
            "Graph rejected the request.",
            "Check the object IDs and options in the configuration (e.g. source.scope_group_ids); if they are right, report this message to the usersync maintainers.",
        );
    }
    explain_graph_error(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_token_error() {
        let body = r#"{"error":"invalid_scope","error_description":"AADSTS70011: The provided value for the input parameter 'scope' isn't valid.\r\nTrace ID: 0000aaaa\r\nCorrelation ID: aaaa0000\r\nTimestamp: 2016-01-09 02:02:12Z","error_codes":[70011],"timestamp":"2016-01-09 02:02:12Z","trace_id":"0000aaaa","correlation_id":"aaaa0000","error_uri":"https://login.microsoftonline.com/error?code=70011"}"#;
        let e = TokenErrorBody::parse(body);
        assert_eq!(e.code(), Some(70011));
        assert_eq!(e.error, "invalid_scope");
        assert!(e.summary().starts_with("AADSTS70011"));
        assert!(!e.summary().contains("Trace ID"));
        assert_eq!(aadsts_area(70011), AadstsArea::Permission);
    }

    #[test]
    fn recorded_token_error_fixtures() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/graph");
        let e = TokenErrorBody::parse(
            &std::fs::read_to_string(format!("{dir}/token_error_7000222.json")).unwrap(),
        );
        assert_eq!(
            (e.error.as_str(), e.code()),
            ("invalid_client", Some(7000222))
        );
        assert_eq!(
            e.correlation_id.as_deref(),
            Some("aaaa0000-bb11-2222-33cc-444444dddddd")
        );
        let e = TokenErrorBody::parse(
            &std::fs::read_to_string(format!("{dir}/token_error_90002.json")).unwrap(),
        );
        assert_eq!(
            (e.error.as_str(), e.code()),
            ("invalid_tenant", Some(90002))
        );
        assert_eq!(aadsts_area(90002), AadstsArea::Tenant);
    }

    #[test]
    fn scrapes_code_from_text() {
        let e = TokenErrorBody::parse(
            r#"{"error":"invalid_client","error_description":"AADSTS7000222: The provided client secret keys for app 'x' are expired."}"#,
        );
        assert_eq!(e.code(), Some(7000222));
    }

    #[test]
    fn every_listed_code_is_explained() {
        for code in [
            90002, 900023, 90038, 50049, 700016, 7000215, 7000222, 700027, 700024, 1002012, 70011,
            50034, 500011, 65001, 53003,
        ] {
            let (what, fix) = explain_aadsts(code);
            assert_ne!(
                what, "Entra ID rejected the token request.",
                "code {code} falls through"
            );
            assert!(!fix.is_empty());
        }
        assert!(explain_aadsts(7000222).1.contains("Certificates & secrets"));
        assert!(explain_aadsts(7000215).1.contains("Value"));
        assert_eq!(aadsts_area(90002), AadstsArea::Tenant);
        assert_eq!(aadsts_area(700016), AadstsArea::Application);
        assert_eq!(aadsts_area(7000222), AadstsArea::Credential);
    }

    #[test]
    fn delta_advice_only_for_delta_requests() {
        for what in [
            "read application registration",
            "POST $batch",
            "GET applications",
        ] {
            assert!(
                !explain_graph_error_for("Request_BadRequest", what)
                    .1
                    .contains("delta"),
                "{what}"
            );
        }
        assert!(
            explain_graph_error_for("Request_UnsupportedQuery", "GET users/delta")
                .1
                .contains("delta")
        );
        assert!(!explain_graph_error("").1.contains("See the error text."));
    }

    #[test]
    fn graph_errors() {
        let body = r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"date":"2025-02-13T10:17:06","request-id":"93b6","client-request-id":"e70c"}}}"#;
        let e = GraphErrorBody::parse(body);
        assert_eq!(e.code, "Authorization_RequestDenied");
        assert!(
            explain_graph_error(&e.code)
                .1
                .contains("Grant admin consent")
        );
        for code in [
            "InvalidAuthenticationToken",
            "Authorization_IdentityNotFound",
            "Request_ResourceNotFound",
            "ImageNotFound",
            "syncStateNotFound",
        ] {
            assert_ne!(
                explain_graph_error(code).0,
                "Microsoft Graph returned an error."
            );
        }
    }
}
