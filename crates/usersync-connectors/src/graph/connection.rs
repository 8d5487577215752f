//! Save and Test Connection for the Entra ID source: one verdict per check, each failure with
//! the fix an admin can act on.
//!
//! Order: login endpoint → tenant → application → credential → admin consent → permissions →
//! Graph users → Graph groups → credential expiry (when the app may read its own registration).

use super::auth::{TokenClaims, TokenError, TokenProvider, decode_claims};
use super::client::{CallError, GraphClient};
use super::config::{GraphCredential, GraphSourceConfig};
use super::errors::{AadstsArea, aadsts_area, explain_aadsts, explain_graph_error_for};
use super::source::PHOTO_ROLES;
use secrecy::ExposeSecret;
use serde_json::Value;
use usersync_core::check::{Check, ConnectionReport};

const LOGIN: (&str, &str) = ("login_endpoint", "Entra ID login endpoint reachable");
const TENANT: (&str, &str) = ("tenant", "Tenant exists in the configured cloud");
const APP: (&str, &str) = ("application", "Application registered in the tenant");
const CRED: (&str, &str) = ("credentials", "Client secret / certificate accepted");
const CONSENT: (&str, &str) = ("admin_consent", "Admin consent granted");
const PERM_SYNC: (&str, &str) = (
    "permission.sync",
    "Permission to read users, groups and memberships",
);
const PERM_PHOTO: (&str, &str) = (
    "permission.photos",
    "Permission to read profile pictures (User.Read.All)",
);
const USERS: (&str, &str) = ("graph.users", "Microsoft Graph answers for users");
const GROUPS: (&str, &str) = ("graph.groups", "Microsoft Graph answers for groups");
const EXPIRY: (&str, &str) = ("credential_expiry", "Client secret / certificate expiry");

fn skipped(c: (&str, &str), why: &str) -> Check {
    Check::skipped(c.0, c.1, why)
}

/// True when the token's roles allow reading users, groups and memberships.
pub fn roles_allow_sync(roles: &[String]) -> bool {
    let has = |r: &str| roles.iter().any(|x| x == r);
    let dir = has("Directory.Read.All") || has("Directory.ReadWrite.All");
    let users = dir || has("User.Read.All") || has("User.ReadWrite.All");
    let members = dir
        || has("GroupMember.Read.All")
        || has("Group.Read.All")
        || has("Group.ReadWrite.All")
        || has("GroupMember.ReadWrite.All");
    users && members
}

fn roles_allow_app_read(roles: &[String]) -> bool {
    roles.iter().any(|r| {
        matches!(
            r.as_str(),
            "Application.Read.All"
                | "Application.ReadWrite.All"
                | "Directory.Read.All"
                | "Directory.ReadWrite.All"
        )
    })
}

/// Runs every check; never fails as a whole.
pub async fn test_connection(cfg: &GraphSourceConfig) -> ConnectionReport {
    let mut report = ConnectionReport {
        subject: format!(
            "Entra ID tenant {} (application {}, {} cloud)",
            cfg.tenant_id,
            cfg.client_id,
            cfg.cloud.name()
        ),
        checks: Vec::new(),
    };
    // A connection test must answer in seconds: an unreachable endpoint or a long throttling
    // wait is itself the finding, so retry only briefly and time out sooner than a sync would.
    let mut quick = cfg.clone();
    quick.retry = cfg.retry.for_connection_test();
    quick.request_timeout_secs = cfg.request_timeout_secs.min(15);
    let cfg = &quick;
    let client = match GraphClient::new(cfg) {
        Ok(c) => c,
        Err(e) => {
            report.checks.push(Check::fail(
                LOGIN.0,
                LOGIN.1,
                e.message,
                "Check the configuration.",
            ));
            return report;
        }
    };
    let later = [CONSENT, PERM_SYNC, PERM_PHOTO, USERS, GROUPS, EXPIRY];
    let (jwt, claims) = match token_checks(cfg, &client.tokens, &mut report).await {
        Some(t) => t,
        None => {
            for c in later {
                report
                    .checks
                    .push(skipped(c, "not checked: no access token"));
            }
            return report;
        }
    };
    let _ = jwt;

    // Admin consent: an app-only token without `roles` means nothing was consented
    // (v2-oauth2-client-creds-grant-flow: "app-only tokens can be issued without a roles claim").
    let roles = claims.as_ref().map(|c| c.roles.clone());
    match &roles {
        Some(r) if r.is_empty() => report.checks.push(Check::fail(
            CONSENT.0,
            CONSENT.1,
            "the access token carries no application permissions (no 'roles' claim)",
            "In the app registration, open API permissions, add the Microsoft Graph application permission Directory.Read.All (and User.Read.All for pictures), then click 'Grant admin consent for …' (needs a Global or Privileged Role Administrator).",
        )),
        Some(r) => report.checks.push(Check::pass(CONSENT.0, CONSENT.1, format!("token carries: {}", r.join(", ")))),
        None => report.checks.push(Check::warn(CONSENT.0, CONSENT.1, "the access token is not a readable JWT; permissions could not be inspected", "Nothing to do if the Graph checks below pass.")),
    }
    if let Some(r) = &roles {
        if roles_allow_sync(r) {
            report.checks.push(Check::pass(PERM_SYNC.0, PERM_SYNC.1, "Directory.Read.All or an equivalent set (User.Read.All + GroupMember.Read.All) is granted"));
        } else {
            report.checks.push(Check::fail(
                PERM_SYNC.0,
                PERM_SYNC.1,
                format!("granted: [{}]; missing Directory.Read.All (or User.Read.All + GroupMember.Read.All)", r.join(", ")),
                "Add the Microsoft Graph application permission Directory.Read.All under API permissions and click 'Grant admin consent for …'.",
            ));
        }
        if !cfg.read_photos {
            report.checks.push(Check::pass(
                PERM_PHOTO.0,
                PERM_PHOTO.1,
                "profile pictures are not synced; not needed",
            ));
        } else if r.iter().any(|x| PHOTO_ROLES.contains(&x.as_str())) {
            report.checks.push(Check::pass(
                PERM_PHOTO.0,
                PERM_PHOTO.1,
                "User.Read.All is granted",
            ));
        } else {
            report.checks.push(Check::warn(
                PERM_PHOTO.0,
                PERM_PHOTO.1,
                "User.Read.All is not granted: profile pictures will be skipped (users and groups still sync)",
                "Add the Microsoft Graph application permission User.Read.All and grant admin consent, or turn off picture sync.",
            ));
        }
    } else {
        report
            .checks
            .push(skipped(PERM_SYNC, "token not inspectable"));
        report
            .checks
            .push(skipped(PERM_PHOTO, "token not inspectable"));
    }

    // One cheap request each ($top=1, $select=id).
    let granted = roles.as_deref().filter(|r| roles_allow_sync(r));
    report
        .checks
        .push(graph_probe(&client, "users?$top=1&$select=id", USERS, granted).await);
    report
        .checks
        .push(graph_probe(&client, "groups?$top=1&$select=id", GROUPS, granted).await);

    report
        .checks
        .push(expiry_check(cfg, &client, roles.as_deref()).await);
    report
}

/// Token checks (login, tenant, application, credential). Returns the token on success.
async fn token_checks(
    cfg: &GraphSourceConfig,
    tokens: &TokenProvider,
    report: &mut ConnectionReport,
) -> Option<(String, Option<TokenClaims>)> {
    let what = if matches!(cfg.credential, GraphCredential::Secret(_)) {
        "client secret"
    } else {
        "certificate"
    };
    match tokens.fetch().await {
        Ok((_, jwt)) => {
            report.checks.push(Check::pass(
                LOGIN.0,
                LOGIN.1,
                format!("{} answered", cfg.cloud.login_url()),
            ));
            let claims = decode_claims(&jwt);
            let tid = claims
                .as_ref()
                .and_then(|c| c.tid.clone())
                .unwrap_or_else(|| cfg.tenant_id.clone());
            report
                .checks
                .push(Check::pass(TENANT.0, TENANT.1, format!("tenant {tid}")));
            report.checks.push(Check::pass(
                APP.0,
                APP.1,
                format!("application {}", cfg.client_id),
            ));
            report.checks.push(Check::pass(
                CRED.0,
                CRED.1,
                format!("a token was issued with the {what}"),
            ));
            Some((jwt, claims))
        }
        Err(TokenError::Transport(e)) => {
            report.checks.push(Check::fail(
                LOGIN.0,
                LOGIN.1,
                e.message,
                format!("Allow HTTPS from this server to {} (firewall/proxy), and check the cloud setting.", cfg.cloud.login_url()),
            ));
            for c in [TENANT, APP, CRED] {
                report.checks.push(skipped(c, "login endpoint unreachable"));
            }
            None
        }
        Err(TokenError::Local(m)) => {
            report
                .checks
                .push(Check::pass(LOGIN.0, LOGIN.1, "not contacted"));
            report.checks.push(skipped(TENANT, "credential unusable"));
            report.checks.push(skipped(APP, "credential unusable"));
            report.checks.push(Check::fail(
                CRED.0,
                CRED.1,
                m,
                "Configure the certificate PEM and its RSA private key (PEM).",
            ));
            None
        }
        Err(TokenError::Rejected { status, body }) => {
            report.checks.push(Check::pass(
                LOGIN.0,
                LOGIN.1,
                format!("{} answered", cfg.cloud.login_url()),
            ));
            let code = body.code().unwrap_or(0);
            let (meaning, fix) = explain_aadsts(code);
            let detail = format!(
                "HTTP {status} {}: {} — {meaning}",
                body.error,
                body.summary()
            );
            let fix = fix.replace(
                "<Graph URL>",
                cfg.cloud.scope().trim_end_matches("/.default"),
            );
            let area = aadsts_area(code);
            let order = [
                (TENANT, AadstsArea::Tenant),
                (APP, AadstsArea::Application),
                (CRED, AadstsArea::Credential),
            ];
            let mut failed = false;
            for (c, a) in order {
                if failed {
                    report.checks.push(skipped(c, "an earlier check failed"));
                } else if a == area
                    || (c == CRED && !matches!(area, AadstsArea::Tenant | AadstsArea::Application))
                {
                    report
                        .checks
                        .push(Check::fail(c.0, c.1, detail.clone(), fix.clone()));
                    failed = true;
                } else {
                    report
                        .checks
                        .push(Check::pass(c.0, c.1, "accepted by Entra ID"));
                }
            }
            None
        }
    }
}

/// `granted`: the token's roles when they already include what the sync needs, so a 403 is
/// explained by something other than a missing permission.
async fn graph_probe(
    client: &GraphClient,
    path: &str,
    c: (&str, &str),
    granted: Option<&[String]>,
) -> Check {
    match client.get_json(path, &[], &format!("GET {path}")).await {
        Ok(_) => Check::pass(
            c.0,
            c.1,
            format!("GET {}/{path} answered 200", client.base()),
        ),
        Err(CallError::Status {
            status,
            code,
            message,
            ..
        }) => {
            let code = if code.is_empty() {
                "(no error code)".to_string()
            } else {
                code
            };
            let message = if message.is_empty() {
                "(empty body)".to_string()
            } else {
                message
            };
            if status == 403
                && let Some(roles) = granted
            {
                // The token carries the permission, so "add Directory.Read.All" would be wrong.
                return Check::fail(
                    c.0,
                    c.1,
                    format!(
                        "HTTP 403 {code}: {message} — Graph refused although the token carries {}",
                        roles.join(", ")
                    ),
                    "Admin consent can take several minutes to reach Graph: retry the test shortly. If it persists, check for a restricted \
                     (administrative unit or role-scoped) assignment or a Conditional Access policy for workload identities on this application.",
                );
            }
            let (meaning, fix) = explain_graph_error_for(&code, &format!("GET {path}"));
            Check::fail(
                c.0,
                c.1,
                format!("HTTP {status} {code}: {message} — {meaning}"),
                fix,
            )
        }
        Err(CallError::Transport(e)) => Check::fail(
            c.0,
            c.1,
            e.message,
            format!(
                "Allow HTTPS from this server to {} (firewall/proxy) and check the cloud setting.",
                client.base()
            ),
        ),
        Err(CallError::Token(t)) => Check::fail(
            c.0,
            c.1,
            t.into_connector().message,
            "See the credential checks.",
        ),
    }
}

/// Reads the app's own `passwordCredentials`/`keyCredentials` and warns ahead of expiry.
async fn expiry_check(
    cfg: &GraphSourceConfig,
    client: &GraphClient,
    roles: Option<&[String]>,
) -> Check {
    if !roles.is_some_and(roles_allow_app_read) {
        return Check::skipped(
            EXPIRY.0,
            EXPIRY.1,
            "not checked: reading the app registration needs Application.Read.All or Directory.Read.All; secrets expire (24 months at most) — note the date shown under Certificates & secrets",
        );
    }
    let path = format!(
        "applications?$filter={}&$select=appId,passwordCredentials,keyCredentials",
        percent_encoding::utf8_percent_encode(
            &format!("appId eq '{}'", cfg.client_id),
            percent_encoding::NON_ALPHANUMERIC
        )
    );
    let v = match client
        .get_json(&path, &[], "read application registration")
        .await
    {
        Ok(v) => v,
        Err(e) => {
            return Check::skipped(
                EXPIRY.0,
                EXPIRY.1,
                format!(
                    "could not read the app registration: {}",
                    e.into_connector().message
                ),
            );
        }
    };
    let Some(app) = v
        .get("value")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .cloned()
    else {
        return Check::skipped(
            EXPIRY.0,
            EXPIRY.1,
            "the app registration is not visible (it may live in another tenant)",
        );
    };
    let (list, label) = match &cfg.credential {
        GraphCredential::Secret(_) => ("passwordCredentials", "client secret"),
        GraphCredential::Certificate { .. } => ("keyCredentials", "certificate"),
    };
    let creds: Vec<&Value> = app
        .get(list)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    // A secret's `hint` is its first three characters: that identifies which one we use.
    let ours: Vec<&Value> = match &cfg.credential {
        GraphCredential::Secret(s) => {
            let hint: String = s.expose_secret().chars().take(3).collect();
            let m: Vec<&Value> = creds
                .iter()
                .copied()
                .filter(|c| c.get("hint").and_then(Value::as_str) == Some(hint.as_str()))
                .collect();
            if m.is_empty() { creds.clone() } else { m }
        }
        GraphCredential::Certificate { .. } => creds.clone(),
    };
    let now = jiff::Timestamp::now();
    let ends: Vec<jiff::Timestamp> = ours
        .iter()
        .filter_map(|c| c.get("endDateTime").and_then(Value::as_str))
        .filter_map(|s| s.parse().ok())
        .collect();
    // Our credential works (we have a token), so the relevant expiry is the latest one among
    // the candidates that are still valid.
    let Some(end) = ends.iter().filter(|t| **t > now).max().copied() else {
        return Check::skipped(
            EXPIRY.0,
            EXPIRY.1,
            format!("no expiry date found for the {label}"),
        );
    };
    let days = end.duration_since(now).as_secs() / 86_400;
    if days < i64::from(cfg.secret_expiry_warn_days) {
        Check::warn(
            EXPIRY.0,
            EXPIRY.1,
            format!("the {label} expires on {end} (in {days} days); syncs will fail after that"),
            format!(
                "Create a new {label} under Certificates & secrets in the app registration, update the connector, then delete the old one."
            ),
        )
    } else {
        Check::pass(
            EXPIRY.0,
            EXPIRY.1,
            format!("the {label} expires on {end} (in {days} days)"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_sets() {
        let r = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(roles_allow_sync(&r(&["Directory.Read.All"])));
        assert!(roles_allow_sync(&r(&[
            "User.Read.All",
            "GroupMember.Read.All"
        ])));
        assert!(!roles_allow_sync(&r(&["User.Read.All"])));
        assert!(!roles_allow_sync(&r(&["GroupMember.Read.All"])));
        assert!(!roles_allow_sync(&[]));
        assert!(roles_allow_app_read(&r(&["Directory.Read.All"])));
    }
}
