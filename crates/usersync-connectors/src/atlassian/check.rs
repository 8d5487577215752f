//! Test Connection for an Atlassian target: is the server reachable (and is it the product the
//! configuration says), are the credentials valid, and does the account hold the admin rights
//! the sync needs. Each check is a verdict with the fix.
//!
//! Probes (all read-only):
//! - Jira: `GET /rest/api/2/serverInfo`, `GET /rest/api/2/myself`,
//!   `GET /rest/api/2/mypermissions?permissions=ADMINISTER,SYSTEM_ADMIN` (global permissions;
//!   Jira REST reference "Get my permissions"), `GET /rest/api/2/user/list` (complete listing).
//! - Confluence: `GET /rest/api/server-information`, `GET /rest/api/user/current`,
//!   `GET /rest/api/user/list` (admin-only user management API, Confluence 8.4+).
//! - Bitbucket: `GET /rest/api/1.0/application-properties`, `GET /rest/api/1.0/users`, then
//!   `GET /rest/api/1.0/admin/permissions/users` ("The authenticated user must have ADMIN
//!   permission or higher to call this resource").
//! - Crowd: application authentication with `GET /rest/usermanagement/1/search?entity-type=user`
//!   (401 = wrong application credentials, 403 = this host's address is not allowed).

use super::client::Client;
use super::{AtlassianTargetConfig, Product};
use crate::http::Idempotency;
use reqwest::Method;
use usersync_core::check::{Check, ConnectionReport};
use usersync_core::ports::{ConnectorError, ErrorKind};

const REACH: (&str, &str) = ("reachable", "Server reachable");
const CREDS: (&str, &str) = ("credentials", "Credentials accepted");
const ADMIN: (&str, &str) = (
    "admin_rights",
    "Account has the admin rights the sync needs",
);

/// Runs the connection test for one Atlassian target. Never fails: every problem is a verdict.
pub async fn test_connection(cfg: &AtlassianTargetConfig) -> ConnectionReport {
    let mut report = ConnectionReport {
        subject: format!(
            "{} at {}",
            cfg.product.display_name(),
            cfg.base_url.trim_end_matches('/')
        ),
        checks: Vec::new(),
    };
    // A connection test must answer quickly: retry maintenance 503s and throttling only briefly.
    let mut quick = cfg.clone();
    quick.retry = cfg.retry.for_connection_test();
    let c = match Client::new(&quick) {
        Ok(c) => c,
        Err(e) => {
            report.checks.push(Check::fail(
                "configuration",
                "Configuration valid",
                e.message.clone(),
                "fix the target configuration",
            ));
            skip_rest(
                &mut report,
                &[REACH, CREDS, ADMIN],
                "the configuration is invalid",
            );
            return report;
        }
    };
    if !reachable(&c, &mut report).await {
        skip_rest(&mut report, &[CREDS, ADMIN], "the server is not reachable");
        return report;
    }
    if !credentials(&c, &mut report).await {
        skip_rest(&mut report, &[ADMIN], "the credentials were not accepted");
        return report;
    }
    admin_rights(&c, &mut report).await;
    report
}

fn skip_rest(report: &mut ConnectionReport, checks: &[(&str, &str)], why: &str) {
    for (id, title) in checks {
        report
            .checks
            .push(Check::skipped(id, title, format!("not checked: {why}")));
    }
}

fn status_path(p: Product) -> &'static str {
    match p {
        Product::Jira => "/rest/api/2/serverInfo",
        Product::Confluence => "/rest/api/server-information",
        Product::Bitbucket => "/rest/api/1.0/application-properties",
        Product::Crowd => "/rest/usermanagement/1/search?entity-type=user&max-results=1",
    }
}

/// A transport error's fix: TLS problems get the CA hint.
fn transport_fix(e: &ConnectorError) -> String {
    let m = e.message.to_lowercase();
    // Not a bare "tls": our transport messages always suggest checking TLS settings.
    if m.contains("certificate") || m.contains("unknownissuer") || m.contains("handshake") {
        "TLS failed: the server's certificate is not trusted — add the internal CA with ca_bundle (a PEM file with the issuing CA chain), \
         and check the host name matches the certificate"
            .into()
    } else if e.kind == ErrorKind::Throttled {
        "the server is rate limiting this client; try again later or exempt the service account from rate limiting".into()
    } else {
        "check base_url (scheme, host, port), DNS, proxy and firewall rules, and that the product is running".into()
    }
}

/// Second probe when the status endpoint is missing (older Confluence has no
/// `/rest/api/server-information`).
fn fallback_path(p: Product) -> Option<&'static str> {
    match p {
        Product::Confluence => Some("/rest/api/user/current"),
        Product::Jira => Some("/rest/api/2/myself"),
        Product::Bitbucket | Product::Crowd => None,
    }
}

async fn reachable(c: &Client, report: &mut ConnectionReport) -> bool {
    let (id, title) = REACH;
    let mut path = status_path(c.product);
    let resp = loop {
        let resp = match c
            .send("reach the server", Idempotency::Idempotent, || {
                c.req_anonymous(Method::GET, path)
            })
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let fix = transport_fix(&e);
                report.checks.push(Check::fail(id, title, e.message, fix));
                return false;
            }
        };
        match fallback_path(c.product) {
            Some(next) if resp.status().as_u16() == 404 && next != path => path = next,
            _ => break resp,
        }
    };
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.text().await.unwrap_or_default();
    match status {
        200 if content_type.contains("json") => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let version = v
                .get("version")
                .and_then(|v| v.as_str())
                .unwrap_or("version not shown");
            report.checks.push(Check::pass(
                id,
                title,
                format!(
                    "{} answered at {} ({version})",
                    c.product.display_name(),
                    c.base()
                ),
            ));
            true
        }
        401 | 403 | 200 => {
            report.checks.push(Check::pass(
                id,
                title,
                format!(
                    "{} answered at {} (HTTP {status} without credentials)",
                    c.product.display_name(),
                    c.base()
                ),
            ));
            true
        }
        503 => {
            report.checks.push(Check::fail(
                id,
                title,
                format!("HTTP 503 from {path}: the product is unavailable (starting, in maintenance, or a proxy has no backend)"),
                "wait for the maintenance to end or check the product's status page and the reverse proxy",
            ));
            false
        }
        404 => {
            report.checks.push(Check::fail(
                id,
                title,
                format!("HTTP 404 from {}{path}: no {} REST API at this URL", c.base(), c.product.display_name()),
                "set base_url to the product's URL including its context path (e.g. https://host/jira, https://host/crowd)",
            ));
            false
        }
        s => {
            let e = super::client::error_for(c.product, s, &c.redact(&body), "reach the server");
            report.checks.push(Check::fail(
                id,
                title,
                e.message,
                "check the product's logs and the reverse proxy",
            ));
            false
        }
    }
}

async fn credentials(c: &Client, report: &mut ConnectionReport) -> bool {
    let (id, title) = CREDS;
    let path = match c.product {
        Product::Jira => "/rest/api/2/myself",
        Product::Confluence => "/rest/api/user/current",
        // application-properties may answer anonymously; /users needs an authenticated user.
        Product::Bitbucket => "/rest/api/1.0/users?limit=1",
        Product::Crowd => "/rest/usermanagement/1/search?entity-type=user&max-results=1",
    };
    let resp = match c
        .send("check the credentials", Idempotency::Idempotent, || {
            c.req(Method::GET, path)
        })
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let fix = transport_fix(&e);
            report.checks.push(Check::fail(id, title, e.message, fix));
            return false;
        }
    };
    let status = resp.status().as_u16();
    let html = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().contains("html"));
    let who = resp
        .headers()
        .get("X-AUSERNAME")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.text().await.unwrap_or_default();
    if status == 200 && html {
        report.checks.push(Check::fail(
            id,
            title,
            format!("{}{path} answered HTTP 200 with an HTML page, not {}'s JSON: a proxy or single sign-on gateway answered (a login page?)", c.base(), c.product.display_name()),
            "point base_url at the product itself, or let the proxy pass REST calls with their Authorization header through",
        ));
        return false;
    }
    if status == 200 {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if c.product == Product::Confluence
            && v.get("type").and_then(|t| t.as_str()) == Some("anonymous")
        {
            report.checks.push(Check::fail(
                id,
                title,
                "Confluence treated the request as anonymous: the credentials were ignored",
                "use an administrator's username and password, or a personal access token (Confluence 7.9+)",
            ));
            return false;
        }
        let name = v
            .get("name")
            .or_else(|| v.get("username"))
            .and_then(|n| n.as_str())
            .map(str::to_string)
            .or(who);
        let detail = match (c.product, name) {
            (Product::Crowd, _) => {
                "the application authenticated and may read the directory".to_string()
            }
            (_, Some(n)) => format!("authenticated as {n}"),
            (_, None) => "authenticated".to_string(),
        };
        report.checks.push(Check::pass(id, title, detail));
        return true;
    }
    let e = super::client::error_for(c.product, status, &c.redact(&body), "check the credentials");
    let fix = match (c.product, status) {
        (Product::Crowd, 403) => {
            "add this host's IP address (or CIDR range / host name) to the application's remote addresses in Crowd > Applications > \
             Remote addresses, or in Jira's user server settings"
        }
        (Product::Crowd, _) => {
            "check the application name and password (Crowd > Applications, or Jira's user server settings)"
        }
        _ => {
            "check the username and password, or create a new personal access token (PATs expire); the account must be able to log in"
        }
    };
    report.checks.push(Check::fail(id, title, e.message, fix));
    false
}

async fn admin_rights(c: &Client, report: &mut ConnectionReport) {
    let (id, title) = ADMIN;
    match c.product {
        Product::Jira => {
            let r: Result<serde_json::Value, _> = c
                .get_json("check Jira global permissions", || {
                    c.req(Method::GET, "/rest/api/2/mypermissions").query(&[("permissions", "ADMINISTER,SYSTEM_ADMIN")])
                })
                .await;
            match r {
                Ok(v) => {
                    let has = |k: &str| v.pointer(&format!("/permissions/{k}/havePermission")).and_then(|h| h.as_bool()) == Some(true);
                    if has("ADMINISTER") || has("SYSTEM_ADMIN") {
                        let which = if has("SYSTEM_ADMIN") { "SYSTEM_ADMIN" } else { "ADMINISTER" };
                        report.checks.push(Check::pass(id, title, format!("the account has the {which} global permission")));
                    } else {
                        report.checks.push(Check::fail(
                            id,
                            title,
                            "the account lacks the ADMINISTER (Jira Administrators) global permission, which user and group management needs",
                            "add the account to a group holding the Jira Administrators global permission (Administration > System > Global permissions)",
                        ));
                    }
                }
                Err(e) if e.status == Some(404) => report.checks.push(not_there(c, "/rest/api/2/mypermissions", &e.message)),
                Err(e) => report.checks.push(Check::fail(id, title, e.message, "grant the account the Jira Administrators global permission")),
            }
            // Complete user listing needs /user/list (Jira 10.3+).
            let listing = c
                .send("check Jira user listing", Idempotency::Idempotent, || {
                    c.req(Method::GET, "/rest/api/2/user/list").query(&[("maxResults", "1")])
                })
                .await;
            match listing.map(|r| r.status().as_u16()) {
                Ok(200) => report.checks.push(Check::pass("user_listing", "Complete user listing available", "/rest/api/2/user/list works")),
                Ok(404) => report.checks.push(Check::warn(
                    "user_listing",
                    "Complete user listing available",
                    "this Jira has no /rest/api/2/user/list (Jira 10.3+); reads fall back to /user/search, which stops at 1000 users",
                    "upgrade to Jira 10.3 LTS or later if the directory has 1000 users or more, or provision through the Crowd target",
                )),
                Ok(s) => report.checks.push(Check::warn(
                    "user_listing",
                    "Complete user listing available",
                    format!("/rest/api/2/user/list answered HTTP {s}"),
                    "check the account's permissions",
                )),
                Err(e) => report.checks.push(Check::warn("user_listing", "Complete user listing available", e.message, "retry the test")),
            }
        }
        Product::Confluence => {
            probe(
                c,
                report,
                "/rest/api/user/list?limit=1",
                "the account can use Confluence's user management REST API",
                "the account is not a Confluence administrator (the admin user-management REST API answered {status})",
                "add the account to a group with the Confluence Administrator or System Administrator global permission \
                 (General configuration > Global permissions); Confluence 8.4 or later is required for user management REST",
            )
            .await
        }
        Product::Bitbucket => {
            probe(
                c,
                report,
                "/rest/api/1.0/admin/permissions/users?limit=1",
                "the account has the ADMIN global permission (admin permission endpoint answered)",
                "the account lacks the Bitbucket ADMIN global permission (admin endpoint answered {status})",
                "grant the account (or its group) the Admin or System admin global permission (Administration > Global permissions)",
            )
            .await
        }
        Product::Crowd => {
            probe(
                c,
                report,
                "/rest/usermanagement/1/search?entity-type=group&max-results=1",
                "the application can search users and groups; its directory write permissions (add/modify/remove users, groups, \
                 memberships) are checked by the first write",
                "the application may not search groups (HTTP {status})",
                "in Crowd > Applications > the application > Directories, map the target directory and allow the add/modify/remove \
                 user, group and membership operations",
            )
            .await
        }
    }
}

async fn probe(
    c: &Client,
    report: &mut ConnectionReport,
    path: &str,
    pass: &str,
    fail: &str,
    fix: &str,
) {
    let (id, title) = ADMIN;
    match c
        .send("check admin rights", Idempotency::Idempotent, || {
            c.req(Method::GET, path)
        })
        .await
    {
        Ok(r) if r.status().as_u16() == 200 => report.checks.push(Check::pass(id, title, pass)),
        Ok(r) if r.status().as_u16() == 404 => {
            let e = c.error_from(r, "admin probe").await;
            report.checks.push(not_there(c, path, &e.message));
        }
        Ok(r) => {
            let status = r.status().as_u16();
            let e = c.error_from(r, "admin probe").await;
            report.checks.push(Check::fail(
                id,
                title,
                format!(
                    "{}: {}",
                    fail.replace("{status}", &format!("HTTP {status}")),
                    e.message
                ),
                fix,
            ));
        }
        Err(e) => report
            .checks
            .push(Check::fail(id, title, e.message, "retry the test")),
    }
}

/// A permission probe answered 404: the endpoint is not there, which says nothing about rights.
fn not_there(c: &Client, path: &str, detail: &str) -> Check {
    let (id, title) = ADMIN;
    let path = path.split('?').next().unwrap_or(path);
    Check::fail(
        id,
        title,
        format!(
            "HTTP 404 from {}{path}: this endpoint is not there, so the rights could not be checked ({detail})",
            c.base()
        ),
        format!(
            "check that base_url includes the product's context path (e.g. https://host/jira) and that this is {} at a version with this REST API",
            c.product.display_name()
        ),
    )
}
