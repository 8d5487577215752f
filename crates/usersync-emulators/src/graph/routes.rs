//! Graph v1.0 request routing and the read endpoints: users, groups, members,
//! transitiveMembers, memberOf, photos, applications and organization. Delta lives in
//! [`super::delta`], `$batch` in [`super::batch`].

use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use super::Ctx;
use super::generator::{PHOTO_SIZE, photos};
use super::model::{Directory, Group, Life, MemberRef, User, decode_ref, group_ref, user_ref};
use super::odata::{
    Body, Filter, GResult, GraphError, GraphResponse, Query, context, decode_token, encode_token,
    next_link, project, unknown_property,
};

// Application permissions per endpoint (any one suffices), from each API page's
// "Permissions" table.
/// <https://learn.microsoft.com/graph/api/user-list> / user-get / user-delta
pub const PERM_USERS: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// <https://learn.microsoft.com/graph/api/group-list> / group-get
pub const PERM_GROUPS: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// <https://learn.microsoft.com/graph/api/group-delta> (application: GroupMember.Read.All least
/// privileged; Directory.Read.All, Directory.ReadWrite.All, Group.Read.All, Group.ReadWrite.All).
pub const PERM_GROUP_DELTA: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// <https://learn.microsoft.com/graph/api/group-list-members> / group-list-transitivemembers
pub const PERM_MEMBERS: &[&str] = &[
    "GroupMember.Read.All",
    "GroupMember.ReadWrite.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// <https://learn.microsoft.com/graph/api/user-list-memberof>
pub const PERM_MEMBER_OF: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// <https://learn.microsoft.com/graph/api/profilephoto-get> (user photos).
pub const PERM_PHOTO: &[&str] = &[
    "ProfilePhoto.Read.All",
    "ProfilePhoto.ReadWrite.All",
    "User.Read.All",
    "User.ReadWrite.All",
];
/// <https://learn.microsoft.com/graph/api/application-list> (application permissions:
/// Application.Read.All; Application.ReadWrite.OwnedBy, Application.ReadWrite.All,
/// Directory.Read.All).
pub const PERM_APPS: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Application.ReadWrite.OwnedBy",
    "Directory.Read.All",
];
/// <https://learn.microsoft.com/graph/api/organization-list>
pub const PERM_ORG: &[&str] = &[
    "Organization.Read.All",
    "Organization.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// Permissions that can read user objects; members/memberOf listings return users with
/// limited information without one of them.
/// <https://learn.microsoft.com/graph/permissions-overview#limited-information-returned-for-inaccessible-member-objects>
pub const USER_READERS: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "User.ReadBasic.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// Page size defaults/maxima: <https://learn.microsoft.com/graph/api/user-list>,
/// <https://learn.microsoft.com/graph/api/group-list> (100 / 999).
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 999;

/// A parsed Graph path.
#[derive(Debug, Clone)]
pub enum Route {
    Users,
    UsersCount,
    UsersDelta,
    User(String),
    UserPhoto {
        user: String,
        size: Option<String>,
        value: bool,
    },
    UserPhotos(String),
    UserMemberOf {
        user: String,
        transitive: bool,
    },
    Groups,
    GroupsCount,
    GroupsDelta,
    Group(String),
    Members {
        group: String,
        transitive: bool,
        cast: Option<&'static str>,
    },
    Applications,
    Application(String),
    Organization,
}

/// 405 body. <https://learn.microsoft.com/graph/json-batching> (example item).
pub fn method_not_allowed() -> GraphError {
    GraphError::new(
        405,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
    )
}

fn segment_error(seg: &str) -> GraphError {
    GraphError::bad_request(format!("Resource not found for the segment '{seg}'."))
}

fn is_delta(s: &str) -> bool {
    matches!(
        s,
        "delta" | "delta()" | "microsoft.graph.delta" | "microsoft.graph.delta()"
    )
}

fn cast(s: &str) -> Option<Option<&'static str>> {
    match s {
        "microsoft.graph.user" => Some(Some("user")),
        "microsoft.graph.group" => Some(Some("group")),
        _ => None,
    }
}

impl Route {
    /// Parses a path relative to `/v1.0` (e.g. `/users/{id}/photo/$value`).
    pub fn parse(path: &str) -> GResult<Route> {
        let segs: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .to_string()
            })
            .collect();
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let r = match s.as_slice() {
            ["users"] => Route::Users,
            ["users", "$count"] => Route::UsersCount,
            ["users", d] if is_delta(d) => Route::UsersDelta,
            ["users", id] => Route::User(id.to_string()),
            ["users", id, "photo"] => Route::UserPhoto {
                user: id.to_string(),
                size: None,
                value: false,
            },
            ["users", id, "photo", "$value"] => Route::UserPhoto {
                user: id.to_string(),
                size: None,
                value: true,
            },
            ["users", id, "photos"] => Route::UserPhotos(id.to_string()),
            ["users", id, "photos" | "photo", size] => Route::UserPhoto {
                user: id.to_string(),
                size: Some(size.to_string()),
                value: false,
            },
            ["users", id, "photos" | "photo", size, "$value"] => Route::UserPhoto {
                user: id.to_string(),
                size: Some(size.to_string()),
                value: true,
            },
            ["users", id, "memberOf"] => Route::UserMemberOf {
                user: id.to_string(),
                transitive: false,
            },
            ["users", id, "transitiveMemberOf"] => Route::UserMemberOf {
                user: id.to_string(),
                transitive: true,
            },
            ["groups"] => Route::Groups,
            ["groups", "$count"] => Route::GroupsCount,
            ["groups", d] if is_delta(d) => Route::GroupsDelta,
            ["groups", id] => Route::Group(id.to_string()),
            [
                "groups",
                id,
                rel @ ("members" | "transitiveMembers"),
                rest @ ..,
            ] => {
                let c = match rest {
                    [] => None,
                    [c] => cast(c).ok_or_else(|| segment_error(c))?,
                    [_, x, ..] => return Err(segment_error(x)),
                };
                Route::Members {
                    group: id.to_string(),
                    transitive: *rel == "transitiveMembers",
                    cast: c,
                }
            }
            ["applications"] => Route::Applications,
            ["applications", id] => Route::Application(id.to_string()),
            ["organization"] => Route::Organization,
            [] => return Err(GraphError::bad_request("Invalid version.")),
            [first, ..] if !["users", "groups", "applications", "organization"].contains(first) => {
                return Err(segment_error(first));
            }
            other => return Err(segment_error(other.last().copied().unwrap_or(""))),
        };
        Ok(r)
    }

    /// Key for request counting.
    pub fn key(&self) -> &'static str {
        match self {
            Route::Users => "users",
            Route::UsersCount => "users.count",
            Route::UsersDelta => "users.delta",
            Route::User(_) => "users.get",
            Route::UserPhoto { value: false, .. } | Route::UserPhotos(_) => "photo",
            Route::UserPhoto { value: true, .. } => "photo.value",
            Route::UserMemberOf { .. } => "memberOf",
            Route::Groups => "groups",
            Route::GroupsCount => "groups.count",
            Route::GroupsDelta => "groups.delta",
            Route::Group(_) => "groups.get",
            Route::Members {
                transitive: false, ..
            } => "members",
            Route::Members {
                transitive: true, ..
            } => "transitiveMembers",
            Route::Applications | Route::Application(_) => "applications",
            Route::Organization => "organization",
        }
    }

    /// ResourceUnit cost. <https://learn.microsoft.com/graph/throttling-limits>
    /// ("Identity and access service limits": base costs and `$select`/`$top`/`$expand`
    /// modifiers, minimum 1).
    pub fn cost(&self, q: &Query) -> u32 {
        let base: i32 = match self {
            Route::Users => 2,
            Route::Members {
                transitive: false, ..
            } => 3,
            Route::Members {
                transitive: true, ..
            } => 5,
            Route::UserMemberOf { .. } => 2,
            Route::Applications => 2,
            _ => 1,
        };
        let mut c = base;
        if q.select.is_some() {
            c -= 1;
        }
        if q.expand.is_some() {
            c += 1;
        }
        if q.top
            .as_deref()
            .and_then(|t| t.parse::<i64>().ok())
            .is_some_and(|t| t < 20)
        {
            c -= 1;
        }
        c.max(1) as u32
    }
}

/// Routes and runs one Graph GET (top-level or `$batch` item). Returns the response and an
/// injected delay in milliseconds.
pub(crate) fn exec(
    ctx: &Ctx<'_>,
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
) -> (GraphResponse, u64) {
    let route = match Route::parse(path) {
        Ok(r) => r,
        Err(e) => {
            ctx.sh.count("unknown");
            return (ctx.err(e), 0);
        }
    };
    ctx.sh.count(route.key());
    if !method.eq_ignore_ascii_case("GET") {
        return (ctx.err(method_not_allowed()), 0);
    }
    let q = match Query::parse(query) {
        Ok(q) => q,
        Err(e) => return (ctx.err(e), 0),
    };
    let cost = route.cost(&q);
    let decoded = percent_encoding::percent_decode_str(query)
        .decode_utf8_lossy()
        .to_string();
    let url = format!("{path}?{query} {path}?{decoded}");
    let decision = match ctx.sh.faults.lock() {
        Ok(mut f) => f.decide(&url, cost, &ctx.claims.appid, &ctx.sh.tenant_id),
        Err(_) => {
            return (
                ctx.err(GraphError::new(
                    500,
                    "generalException",
                    "fault state poisoned",
                )),
                0,
            );
        }
    };
    if let Some(e) = decision.error {
        ctx.sh.count(if e.status == 429 {
            "throttled"
        } else {
            "faults"
        });
        return (ctx.err(e), decision.delay_ms);
    }
    let mut resp = match handle(ctx, &route, &q, path, headers) {
        Ok(r) => r,
        Err(e) => ctx.err(e),
    };
    resp.headers
        .push(("x-ms-resource-unit".into(), cost.to_string()));
    if let Some(p) = decision.limit_pct {
        resp.headers
            .push(("x-ms-throttle-limit-percentage".into(), format!("{p:.1}")));
    }
    (resp, decision.delay_ms)
}

fn need(ctx: &Ctx<'_>, perms: &[&str]) -> GResult<()> {
    // 403 Authorization_RequestDenied when roles lack every accepted permission.
    if ctx.claims.has_any(perms) {
        Ok(())
    } else {
        Err(GraphError::forbidden())
    }
}

/// `ConsistencyLevel: eventual` present?
/// <https://learn.microsoft.com/graph/aad-advanced-queries>
pub fn eventual(h: &HeaderMap) -> bool {
    h.get("consistencylevel")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
}

fn handle(
    ctx: &Ctx<'_>,
    route: &Route,
    q: &Query,
    path: &str,
    headers: &HeaderMap,
) -> GResult<GraphResponse> {
    let dir = ctx
        .sh
        .dir
        .read()
        .map_err(|_| GraphError::new(500, "generalException", "directory lock poisoned"))?;
    let dir = &*dir;
    match route {
        Route::Users => {
            need(ctx, PERM_USERS)?;
            list(ctx, dir, q, path, headers, Kind::User)
        }
        Route::Groups => {
            need(ctx, PERM_GROUPS)?;
            list(ctx, dir, q, path, headers, Kind::Group)
        }
        Route::UsersCount | Route::GroupsCount => {
            let kind = if matches!(route, Route::UsersCount) {
                Kind::User
            } else {
                Kind::Group
            };
            need(
                ctx,
                if kind == Kind::User {
                    PERM_USERS
                } else {
                    PERM_GROUPS
                },
            )?;
            raw_count(dir, q, headers, kind)
        }
        Route::UsersDelta => {
            need(ctx, PERM_USERS)?;
            let minimal = headers
                .get_all("prefer")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| {
                    v.split(',')
                        .any(|p| p.trim().eq_ignore_ascii_case("return=minimal"))
                });
            super::delta::users(ctx, dir, q, path, minimal)
        }
        Route::GroupsDelta => {
            need(ctx, PERM_GROUP_DELTA)?;
            super::delta::groups(ctx, dir, q, path)
        }
        Route::User(key) => {
            need(ctx, PERM_USERS)?;
            let i = dir
                .active_user(key)
                .ok_or_else(|| GraphError::not_found(key))?;
            let sel = resolve_select(q.select.as_deref(), USER_PROPS, USER_DEFAULT, "user", false)?;
            let mut m = user_json(&dir.users[i as usize], &sel, dir);
            m.insert(
                "@odata.context".into(),
                Value::String(format!(
                    "{}/$metadata#users{}/$entity",
                    ctx.graph_base,
                    sel_suffix(q.select.as_deref())
                )),
            );
            Ok(GraphResponse::json(200, Value::Object(m)))
        }
        Route::Group(key) => {
            need(ctx, PERM_GROUPS)?;
            let i = dir
                .active_group(key)
                .ok_or_else(|| GraphError::not_found(key))?;
            let sel = resolve_select(
                q.select.as_deref(),
                GROUP_PROPS,
                GROUP_PROPS,
                "group",
                false,
            )?;
            let mut m = group_json(&dir.groups[i as usize], &sel, dir);
            if q.expand
                .as_deref()
                .is_some_and(|e| e.trim().eq_ignore_ascii_case("members"))
            {
                // $expand returns at most 20 related objects, no nextLink.
                // https://learn.microsoft.com/graph/known-issues#query-parameters
                let usel = resolve_select(None, USER_PROPS, USER_DEFAULT, "user", false)?;
                let items: Vec<Value> = dir.groups[i as usize]
                    .members
                    .iter()
                    .filter(|&&r| dir.ref_active(r))
                    .take(20)
                    .map(|&r| member_json(dir, r, &usel, !ctx.claims.has_any(USER_READERS)))
                    .collect();
                m.insert("members".into(), Value::Array(items));
            } else if let Some(e) = &q.expand {
                return Err(GraphError::bad_request(format!(
                    "Could not find a property named '{e}' on type 'microsoft.graph.group'."
                )));
            }
            m.insert(
                "@odata.context".into(),
                Value::String(format!(
                    "{}/$metadata#groups{}/$entity",
                    ctx.graph_base,
                    sel_suffix(q.select.as_deref())
                )),
            );
            Ok(GraphResponse::json(200, Value::Object(m)))
        }
        Route::Members {
            group,
            transitive,
            cast,
        } => {
            need(ctx, PERM_MEMBERS)?;
            let g = dir
                .active_group(group)
                .ok_or_else(|| GraphError::not_found(group))?;
            members(ctx, dir, q, path, g, *transitive, *cast)
        }
        Route::UserMemberOf { user, transitive } => {
            need(ctx, PERM_MEMBER_OF)?;
            let u = dir
                .active_user(user)
                .ok_or_else(|| GraphError::not_found(user))?;
            member_of(ctx, dir, q, path, u, *transitive)
        }
        Route::UserPhoto { user, size, value } => {
            need(ctx, PERM_PHOTO)?;
            photo(ctx, dir, user, size.as_deref(), *value)
        }
        Route::UserPhotos(user) => {
            need(ctx, PERM_PHOTO)?;
            let i = dir
                .active_user(user)
                .ok_or_else(|| GraphError::not_found(user))?;
            let u = &dir.users[i as usize];
            let value: Vec<Value> = u
                .photo
                .map(|_| Value::Object(photo_meta(ctx, u, false)))
                .into_iter()
                .collect();
            Ok(GraphResponse::json(
                200,
                json!({"@odata.context": format!("{}/$metadata#users('{}')/photos", ctx.graph_base, u.id), "value": value}),
            ))
        }
        Route::Applications => {
            need(ctx, PERM_APPS)?;
            applications(ctx, q, None)
        }
        Route::Application(id) => {
            need(ctx, PERM_APPS)?;
            applications(ctx, q, Some(id))
        }
        Route::Organization => {
            need(ctx, PERM_ORG)?;
            // https://learn.microsoft.com/graph/api/organization-list
            Ok(GraphResponse::json(
                200,
                json!({
                    "@odata.context": format!("{}/$metadata#organization", ctx.graph_base),
                    "value": [{
                        "id": ctx.sh.tenant_id,
                        "deletedDateTime": null,
                        "displayName": "Contoso (usersync emulator)",
                        "countryLetterCode": "US",
                        "createdDateTime": "2024-01-01T00:00:00Z",
                        "tenantType": "AAD",
                        "verifiedDomains": [{
                            "capabilities": "Email, OfficeCommunicationsOnline",
                            "isDefault": true, "isInitial": true,
                            "name": dir.domain, "type": "Managed"
                        }]
                    }]
                }),
            ))
        }
    }
}

fn sel_suffix(sel: Option<&[String]>) -> String {
    match sel {
        Some(s) if !s.is_empty() => format!("({})", s.join(",")),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

/// Known user properties (subset of the v1.0 schema).
/// <https://learn.microsoft.com/graph/api/resources/user>
pub const USER_PROPS: &[&str] = &[
    "id",
    "accountEnabled",
    "businessPhones",
    "city",
    "companyName",
    "country",
    "createdDateTime",
    "creationType",
    "deletedDateTime",
    "department",
    "displayName",
    "employeeHireDate",
    "employeeId",
    "employeeType",
    "externalUserState",
    "givenName",
    "identities",
    "jobTitle",
    "mail",
    "mailNickname",
    "mobilePhone",
    "officeLocation",
    "onPremisesDistinguishedName",
    "onPremisesDomainName",
    "onPremisesExtensionAttributes",
    "onPremisesImmutableId",
    "onPremisesLastSyncDateTime",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "onPremisesUserPrincipalName",
    "otherMails",
    "postalCode",
    "preferredLanguage",
    "proxyAddresses",
    "securityIdentifier",
    "state",
    "streetAddress",
    "surname",
    "usageLocation",
    "userPrincipalName",
    "userType",
];
/// Returned without `$select`. <https://learn.microsoft.com/graph/api/user-list>
pub const USER_DEFAULT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];
/// Not listable: `$select` of these on a collection → 501.
/// <https://learn.microsoft.com/graph/api/user-list> ("Properties that can't be returned
/// within a user collection").
pub const USER_NOT_LISTABLE: &[&str] = &[
    "aboutMe",
    "birthday",
    "hireDate",
    "interests",
    "mySite",
    "pastProjects",
    "preferredName",
    "responsibilities",
    "schools",
    "skills",
    "mailboxSettings",
];
/// Known group properties; all are in the default set.
/// <https://learn.microsoft.com/graph/api/group-list> (response example).
pub const GROUP_PROPS: &[&str] = &[
    "id",
    "deletedDateTime",
    "classification",
    "createdDateTime",
    "creationOptions",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
    "securityEnabled",
    "securityIdentifier",
    "theme",
    "uniqueName",
    "visibility",
    "onPremisesProvisioningErrors",
    "serviceProvisioningErrors",
];

/// Resolves `$select` against known names (canonical casing). `collection` enables the 501 for
/// non-listable user properties.
pub fn resolve_select(
    sel: Option<&[String]>,
    known: &[&'static str],
    default: &[&'static str],
    ty: &str,
    collection: bool,
) -> GResult<Vec<&'static str>> {
    let Some(sel) = sel else {
        return Ok(default.to_vec());
    };
    let mut out = Vec::new();
    for s in sel {
        if s == "*" {
            out.extend_from_slice(known);
            continue;
        }
        if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(s)) {
            out.push(*k);
        } else if collection
            && ty == "user"
            && USER_NOT_LISTABLE.iter().any(|k| k.eq_ignore_ascii_case(s))
        {
            // https://learn.microsoft.com/graph/delta-query-overview (properties stored outside
            // the main data store → 501).
            return Err(GraphError::new(
                501,
                "NotImplemented",
                "This operation target is not yet supported.",
            ));
        } else {
            return Err(unknown_property(s, ty));
        }
    }
    if !out.contains(&"id") {
        out.push("id");
    }
    Ok(out)
}

fn s(v: &Option<Box<str>>) -> Value {
    v.as_deref()
        .map_or(Value::Null, |x| Value::String(x.to_string()))
}

fn iso(t: i64) -> Value {
    jiff::Timestamp::from_second(t)
        .map(|t| Value::String(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
        .unwrap_or(Value::Null)
}

/// Windows SID form of an Entra object id (`S-1-12-1-…`).
fn sid(id: &uuid::Uuid) -> String {
    let b = id.as_bytes();
    let p = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    format!("S-1-12-1-{}-{}-{}-{}", p(0), p(4), p(8), p(12))
}

/// One user property by canonical name.
pub fn user_prop(u: &User, name: &str, dir: &Directory) -> Option<Value> {
    Some(match name {
        "id" => Value::String(u.id.to_string()),
        "accountEnabled" => Value::Bool(u.account_enabled),
        "businessPhones" | "otherMails" => json!([]),
        "city"
        | "companyName"
        | "country"
        | "creationType"
        | "employeeHireDate"
        | "employeeType"
        | "mobilePhone"
        | "officeLocation"
        | "onPremisesDistinguishedName"
        | "onPremisesDomainName"
        | "onPremisesImmutableId"
        | "onPremisesLastSyncDateTime"
        | "onPremisesSecurityIdentifier"
        | "onPremisesSyncEnabled"
        | "onPremisesUserPrincipalName"
        | "postalCode"
        | "state"
        | "streetAddress"
        | "usageLocation"
        | "deletedDateTime" => Value::Null,
        "preferredLanguage" => json!("en-US"),
        "createdDateTime" => iso(u.created),
        "department" => s(&u.department),
        "displayName" => Value::String(u.display_name.to_string()),
        "employeeId" => s(&u.employee_id),
        "externalUserState" => {
            if u.guest {
                json!("Accepted")
            } else {
                Value::Null
            }
        }
        "givenName" => s(&u.given_name),
        "identities" => {
            json!([{"signInType": "userPrincipalName", "issuer": dir.domain, "issuerAssignedId": u.upn.to_string()}])
        }
        "jobTitle" => s(&u.job_title),
        "mail" => s(&u.mail),
        "mailNickname" => Value::String(u.upn.split('@').next().unwrap_or("").to_string()),
        "onPremisesExtensionAttributes" => {
            let mut m = Map::new();
            for i in 1..=15 {
                m.insert(format!("extensionAttribute{i}"), Value::Null);
            }
            Value::Object(m)
        }
        "onPremisesSamAccountName" => s(&u.sam),
        "proxyAddresses" => match &u.mail {
            Some(m) => json!([format!("SMTP:{m}")]),
            None => json!([]),
        },
        "securityIdentifier" => Value::String(sid(&u.id)),
        "surname" => s(&u.surname),
        "userPrincipalName" => Value::String(u.upn.to_string()),
        "userType" => json!(if u.guest { "Guest" } else { "Member" }),
        _ => return None,
    })
}

/// One group property by canonical name.
pub fn group_prop(g: &Group, name: &str, dir: &Directory) -> Option<Value> {
    let mail = g.mail(&dir.domain);
    Some(match name {
        "id" => Value::String(g.id.to_string()),
        "classification"
        | "deletedDateTime"
        | "expirationDateTime"
        | "isAssignableToRole"
        | "membershipRule"
        | "membershipRuleProcessingState"
        | "onPremisesDomainName"
        | "onPremisesLastSyncDateTime"
        | "onPremisesNetBiosName"
        | "onPremisesSamAccountName"
        | "onPremisesSecurityIdentifier"
        | "onPremisesSyncEnabled"
        | "preferredDataLocation"
        | "preferredLanguage"
        | "theme"
        | "uniqueName" => Value::Null,
        "createdDateTime" | "renewedDateTime" => iso(g.created),
        "creationOptions"
        | "resourceBehaviorOptions"
        | "resourceProvisioningOptions"
        | "onPremisesProvisioningErrors"
        | "serviceProvisioningErrors" => json!([]),
        "description" => s(&g.description),
        "displayName" => Value::String(g.display_name.to_string()),
        "groupTypes" => {
            if g.unified {
                json!(["Unified"])
            } else {
                json!([])
            }
        }
        "mail" => mail.clone().map_or(Value::Null, Value::String),
        "mailEnabled" => Value::Bool(g.mail_enabled),
        "mailNickname" => Value::String(g.mail_nickname.to_string()),
        "proxyAddresses" => match &mail {
            Some(m) => json!([format!("SMTP:{m}")]),
            None => json!([]),
        },
        "securityEnabled" => Value::Bool(g.security_enabled),
        "securityIdentifier" => Value::String(sid(&g.id)),
        "visibility" => {
            if g.unified {
                json!("Private")
            } else {
                Value::Null
            }
        }
        _ => return None,
    })
}

pub fn user_json(u: &User, sel: &[&str], dir: &Directory) -> Map<String, Value> {
    let mut m = Map::new();
    for p in sel {
        if let Some(v) = user_prop(u, p, dir) {
            m.insert((*p).to_string(), v);
        }
    }
    m
}

pub fn group_json(g: &Group, sel: &[&str], dir: &Directory) -> Map<String, Value> {
    let mut m = Map::new();
    for p in sel {
        if let Some(v) = group_prop(g, p, dir) {
            m.insert((*p).to_string(), v);
        }
    }
    m
}

/// A polymorphic directoryObject with `@odata.type`; `sel` names are applied to whichever
/// type the member is (unknown-for-that-type names are skipped).
pub fn member_json(dir: &Directory, r: MemberRef, sel: &[&str], limited_users: bool) -> Value {
    let (is_group, i) = decode_ref(r);
    let mut m = if is_group {
        let g = &dir.groups[i as usize];
        let mut m = group_json(g, sel, dir);
        m.insert("@odata.type".into(), json!("#microsoft.graph.group"));
        m
    } else if limited_users {
        // Limited information: only `@odata.type` and `id`, other properties null.
        // https://learn.microsoft.com/graph/permissions-overview#limited-information-returned-for-inaccessible-member-objects
        let mut m: Map<String, Value> = sel
            .iter()
            .filter(|p| USER_PROPS.contains(p))
            .map(|p| ((*p).to_string(), Value::Null))
            .collect();
        m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
        m
    } else {
        let u = &dir.users[i as usize];
        let mut m = user_json(u, sel, dir);
        m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
        m
    };
    m.insert("id".into(), Value::String(dir.ref_id(r).to_string()));
    Value::Object(m)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    User,
    Group,
}

fn prop_of(dir: &Directory, kind: Kind, i: usize, name: &str) -> Option<Value> {
    let (known, ty): (&[&str], _) = match kind {
        Kind::User => (USER_PROPS, 0),
        Kind::Group => (GROUP_PROPS, 1),
    };
    let canon = known.iter().find(|k| k.eq_ignore_ascii_case(name))?;
    if ty == 0 {
        user_prop(&dir.users[i], canon, dir)
    } else {
        group_prop(&dir.groups[i], canon, dir)
    }
}

fn active(dir: &Directory, kind: Kind, i: usize) -> bool {
    match kind {
        Kind::User => dir.users[i].life == Life::Active,
        Kind::Group => dir.groups[i].life == Life::Active,
    }
}

/// `$search="prop:term"` (advanced query; tokenized contains, approximated here as a
/// case-insensitive substring match). <https://learn.microsoft.com/graph/search-query-parameter>
fn search_match(dir: &Directory, kind: Kind, i: usize, search: &str) -> GResult<bool> {
    let mut any = false;
    for clause in search.split(" OR ") {
        let c = clause.trim().trim_matches('"');
        let (p, t) = c.split_once(':').ok_or_else(|| {
            GraphError::bad_request(
                "Syntax error: character '\"' is not valid at position 0 in '$search'.",
            )
        })?;
        let v = prop_of(dir, kind, i, p.trim())
            .ok_or_else(|| unknown_property(p, "directoryObject"))?;
        any |= v
            .as_str()
            .is_some_and(|x| x.to_lowercase().contains(&t.trim().to_lowercase()));
    }
    Ok(any)
}

/// Shared matching logic for `/users` and `/groups` (filter, search) → matching indices.
struct Matcher<'a> {
    filter: Option<Filter>,
    search: Option<&'a str>,
}

impl Matcher<'_> {
    fn new<'a>(q: &'a Query, headers: &HeaderMap) -> GResult<Matcher<'a>> {
        let adv = eventual(headers) && q.count;
        if q.search.is_some() && !eventual(headers) {
            return Err(GraphError::new(
                400,
                "Request_UnsupportedQuery",
                "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
            ));
        }
        let filter = q
            .filter
            .as_deref()
            .map(|f| Filter::parse(f, adv))
            .transpose()?;
        Ok(Matcher {
            filter,
            search: q.search.as_deref(),
        })
    }
    fn matches(&self, dir: &Directory, kind: Kind, i: usize) -> GResult<bool> {
        if !active(dir, kind, i) {
            return Ok(false);
        }
        if let Some(f) = &self.filter
            && !f.eval(&|p| prop_of(dir, kind, i, p))?
        {
            return Ok(false);
        }
        if let Some(s) = self.search {
            return search_match(dir, kind, i, s);
        }
        Ok(true)
    }
    /// Candidate indices: direct lookup for `id eq/in` filters, else everything.
    fn candidates(&self, dir: &Directory, kind: Kind) -> Option<Vec<usize>> {
        let ids = self.filter.as_ref()?.id_set()?;
        let mut v: Vec<usize> = ids
            .iter()
            .filter_map(|id| uuid::Uuid::parse_str(id).ok())
            .filter_map(|id| match kind {
                Kind::User => dir.user_by_id.get(&id),
                Kind::Group => dir.group_by_id.get(&id),
            })
            .map(|&i| i as usize)
            .collect();
        v.sort_unstable();
        v.dedup();
        Some(v)
    }
}

/// `GET /users` and `GET /groups` with `$select`, `$top`, `$filter`, `$search`, `$count`,
/// `$orderby=displayName`, `$skiptoken` paging.
/// <https://learn.microsoft.com/graph/api/user-list>, <https://learn.microsoft.com/graph/api/group-list>,
/// <https://learn.microsoft.com/graph/paging>
fn list(
    ctx: &Ctx<'_>,
    dir: &Directory,
    q: &Query,
    path: &str,
    headers: &HeaderMap,
    kind: Kind,
) -> GResult<GraphResponse> {
    let (known, default, ty, set) = match kind {
        Kind::User => (USER_PROPS, USER_DEFAULT, "user", "users"),
        Kind::Group => (GROUP_PROPS, GROUP_PROPS, "group", "groups"),
    };
    let sel = resolve_select(q.select.as_deref(), known, default, ty, true)?;
    let size = q.page_size(DEFAULT_PAGE, MAX_PAGE)?;
    if q.count && !eventual(headers) {
        // https://learn.microsoft.com/graph/aad-advanced-queries ($count needs ConsistencyLevel)
        return Err(GraphError::new(
            400,
            "Request_BadRequest",
            "$count is not currently supported.",
        ));
    }
    if q.expand.is_some() && kind == Kind::User {
        return Err(GraphError::bad_request(
            "Parsing OData Select and Expand failed: Could not find a navigation property for $expand on type 'microsoft.graph.user'.",
        ));
    }
    let m = Matcher::new(q, headers)?;
    let n = match kind {
        Kind::User => dir.users.len(),
        Kind::Group => dir.groups.len(),
    };
    let start = match &q.skiptoken {
        None => 0,
        Some(t) => decode_token(t)
            .and_then(|v| v.get("p").and_then(Value::as_u64))
            .ok_or_else(|| {
                GraphError::new(
                    400,
                    "Request_BadRequest",
                    "Specified skip token is invalid.",
                )
            })? as usize,
    };
    // Either a sorted/explicit candidate list (paged by offset) or a scan of all objects
    // (paged by object index).
    let order: Option<Vec<usize>> = if let Some(ob) = &q.orderby {
        let (prop, desc) = match ob.trim().split_once(' ') {
            Some((p, d)) => (p.trim(), d.trim().eq_ignore_ascii_case("desc")),
            None => (ob.trim(), false),
        };
        if !["displayName", "userPrincipalName"]
            .iter()
            .any(|x| x.eq_ignore_ascii_case(prop))
        {
            return Err(GraphError::unsupported_query());
        }
        let mut all: Vec<usize> = match m.candidates(dir, kind) {
            Some(c) => c,
            None => (0..n).collect(),
        };
        let mut keep = Vec::with_capacity(all.len());
        for i in all.drain(..) {
            if m.matches(dir, kind, i)? {
                keep.push(i);
            }
        }
        let key = |i: &usize| {
            prop_of(dir, kind, *i, prop)
                .and_then(|v| v.as_str().map(str::to_lowercase))
                .unwrap_or_default()
        };
        keep.sort_by_cached_key(key);
        if desc {
            keep.reverse();
        }
        Some(keep)
    } else {
        m.candidates(dir, kind)
    };
    let mut items = Vec::new();
    let mut next = None;
    let mut total = None;
    match &order {
        Some(list) => {
            let mut pos = start;
            while pos < list.len() && items.len() < size {
                let i = list[pos];
                pos += 1;
                if q.orderby.is_some() || m.matches(dir, kind, i)? {
                    items.push(i);
                }
            }
            if pos < list.len() {
                next = Some(pos);
            }
            if q.count && q.skiptoken.is_none() {
                let mut c = 0;
                for &i in list {
                    if q.orderby.is_some() || m.matches(dir, kind, i)? {
                        c += 1;
                    }
                }
                total = Some(c);
            }
        }
        None => {
            let mut i = start;
            while i < n && items.len() < size {
                if m.matches(dir, kind, i)? {
                    items.push(i);
                }
                i += 1;
            }
            if i < n {
                next = Some(i);
            }
            if q.count && q.skiptoken.is_none() {
                let mut c = 0;
                for j in 0..n {
                    if m.matches(dir, kind, j)? {
                        c += 1;
                    }
                }
                total = Some(c);
            }
        }
    }
    let value: Vec<Value> = items
        .iter()
        .map(|&i| {
            Value::Object(match kind {
                Kind::User => user_json(&dir.users[i], &sel, dir),
                Kind::Group => group_json(&dir.groups[i], &sel, dir),
            })
        })
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(context(&ctx.graph_base, set, q.select.as_deref())),
    );
    if let Some(c) = total {
        // @odata.count only on the first page. https://learn.microsoft.com/graph/paging
        body.insert("@odata.count".into(), json!(c));
    }
    if let Some(p) = next {
        body.insert(
            "@odata.nextLink".into(),
            json!(next_link(
                &ctx.graph_base,
                path,
                &q.carry,
                &encode_token(&json!({"p": p}))
            )),
        );
    }
    body.insert("value".into(), Value::Array(value));
    Ok(GraphResponse::json(200, Value::Object(body)))
}

/// `GET /users/$count` (text/plain), needs `ConsistencyLevel: eventual`.
/// <https://learn.microsoft.com/graph/api/user-list> (example "Get only a count of users").
fn raw_count(
    dir: &Directory,
    q: &Query,
    headers: &HeaderMap,
    kind: Kind,
) -> GResult<GraphResponse> {
    if !eventual(headers) {
        return Err(GraphError::new(
            400,
            "Request_UnsupportedQuery",
            "Raw count (/$count) is not supported because the 'ConsistencyLevel:eventual' header is missing. Refer to https://aka.ms/graph-docs/advanced-queries for more information",
        ));
    }
    let qq = Query {
        count: true,
        ..q.clone()
    };
    let m = Matcher::new(&qq, headers)?;
    let n = match kind {
        Kind::User => dir.users.len(),
        Kind::Group => dir.groups.len(),
    };
    let mut c = 0;
    for i in 0..n {
        if m.matches(dir, kind, i)? {
            c += 1;
        }
    }
    Ok(GraphResponse {
        status: 200,
        headers: vec![],
        body: Body::Text(c.to_string()),
    })
}

/// `/groups/{id}/members` and `/transitiveMembers` (+ OData cast), paged by offset.
/// <https://learn.microsoft.com/graph/api/group-list-members>,
/// <https://learn.microsoft.com/graph/api/group-list-transitivemembers>
fn members(
    ctx: &Ctx<'_>,
    dir: &Directory,
    q: &Query,
    path: &str,
    g: u32,
    transitive: bool,
    cast: Option<&'static str>,
) -> GResult<GraphResponse> {
    let all: Vec<MemberRef> = if transitive {
        dir.transitive_members(g)
    } else {
        dir.groups[g as usize]
            .members
            .iter()
            .copied()
            .filter(|&r| dir.ref_active(r))
            .collect()
    };
    let list: Vec<MemberRef> = all
        .into_iter()
        .filter(|&r| match cast {
            Some("user") => !decode_ref(r).0,
            Some(_) => decode_ref(r).0,
            None => true,
        })
        .collect();
    directory_objects(ctx, dir, q, path, &list, cast)
}

/// Shared paging of a directoryObject collection.
fn directory_objects(
    ctx: &Ctx<'_>,
    dir: &Directory,
    q: &Query,
    path: &str,
    list: &[MemberRef],
    cast: Option<&'static str>,
) -> GResult<GraphResponse> {
    let size = q.page_size(DEFAULT_PAGE, MAX_PAGE)?;
    let mut union: Vec<&'static str> = USER_PROPS.to_vec();
    union.extend(GROUP_PROPS.iter().filter(|p| !USER_PROPS.contains(p)));
    let sel = match (&q.select, cast) {
        (None, Some("group")) => GROUP_PROPS.to_vec(),
        (None, _) => {
            let mut d = USER_DEFAULT.to_vec();
            d.extend(GROUP_PROPS.iter().filter(|p| !USER_DEFAULT.contains(p)));
            d
        }
        (Some(s), _) => resolve_select(Some(s), &union, &union, "directoryObject", true)?,
    };
    let filter = q
        .filter
        .as_deref()
        .map(|f| Filter::parse(f, false))
        .transpose()?;
    let start = match &q.skiptoken {
        None => 0,
        Some(t) => decode_token(t)
            .and_then(|v| v.get("p").and_then(Value::as_u64))
            .ok_or_else(|| {
                GraphError::new(
                    400,
                    "Request_BadRequest",
                    "Specified skip token is invalid.",
                )
            })? as usize,
    };
    let limited_users = !ctx.claims.has_any(USER_READERS);
    let mut out = Vec::new();
    let mut pos = start;
    while pos < list.len() && out.len() < size {
        let r = list[pos];
        pos += 1;
        if let Some(f) = &filter {
            let (is_group, i) = decode_ref(r);
            let kind = if is_group { Kind::Group } else { Kind::User };
            if !f.eval(&|p| prop_of(dir, kind, i as usize, p).or(Some(Value::Null)))? {
                continue;
            }
        }
        out.push(member_json(dir, r, &sel, limited_users));
    }
    let set = match cast {
        Some("user") => "users",
        Some(_) => "groups",
        None => "directoryObjects",
    };
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(context(&ctx.graph_base, set, q.select.as_deref())),
    );
    if pos < list.len() {
        body.insert(
            "@odata.nextLink".into(),
            json!(next_link(
                &ctx.graph_base,
                path,
                &q.carry,
                &encode_token(&json!({"p": pos}))
            )),
        );
    }
    body.insert("value".into(), Value::Array(out));
    Ok(GraphResponse::json(200, Value::Object(body)))
}

/// `/users/{id}/memberOf` and `/transitiveMemberOf` (groups only; no directory roles here).
/// <https://learn.microsoft.com/graph/api/user-list-memberof>
fn member_of(
    ctx: &Ctx<'_>,
    dir: &Directory,
    q: &Query,
    path: &str,
    u: u32,
    transitive: bool,
) -> GResult<GraphResponse> {
    let mut found: Vec<MemberRef> = Vec::new();
    let mut frontier = vec![user_ref(u)];
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for (gi, g) in dir.groups.iter().enumerate() {
            let r = group_ref(gi as u32);
            if g.life == Life::Active
                && !found.contains(&r)
                && g.members.iter().any(|m| frontier.contains(m))
            {
                found.push(r);
                next.push(r);
            }
        }
        if !transitive {
            break;
        }
        frontier = next;
    }
    directory_objects(ctx, dir, q, path, &found, None)
}

// ---------------------------------------------------------------------------------------
// Photos
// ---------------------------------------------------------------------------------------

fn photo_etag(u: &User) -> String {
    let h =
        (u.id.as_u128() as u64) ^ ((u.photo_version as u64) << 32) ^ u.photo.unwrap_or(0) as u64;
    format!("\"{:08X}\"", (h ^ (h >> 32)) as u32)
}

fn photo_meta(ctx: &Ctx<'_>, u: &User, entity: bool) -> Map<String, Value> {
    let mut m = Map::new();
    if entity {
        m.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/$metadata#users('{}')/photo/$entity",
                ctx.graph_base, u.id
            )),
        );
    }
    m.insert("@odata.mediaContentType".into(), json!("image/jpeg"));
    m.insert("@odata.mediaEtag".into(), json!(photo_etag(u)));
    m.insert("id".into(), json!(format!("{PHOTO_SIZE}x{PHOTO_SIZE}")));
    m.insert("width".into(), json!(PHOTO_SIZE));
    m.insert("height".into(), json!(PHOTO_SIZE));
    m
}

/// `/users/{id}/photo[/$value]`, `/users/{id}/photos/{size}[/$value]`.
/// <https://learn.microsoft.com/graph/api/profilephoto-get> ("If no photo exists, the
/// operation returns 404 Not Found").
fn photo(
    ctx: &Ctx<'_>,
    dir: &Directory,
    user: &str,
    size: Option<&str>,
    value: bool,
) -> GResult<GraphResponse> {
    let i = dir
        .active_user(user)
        .ok_or_else(|| GraphError::not_found(user))?;
    let u = &dir.users[i as usize];
    let no_photo = || {
        GraphError::new(
            404,
            "ImageNotFound",
            "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.",
        )
    };
    let Some(idx) = u.photo else {
        return Err(no_photo());
    };
    if let Some(sz) = size
        && sz != format!("{PHOTO_SIZE}x{PHOTO_SIZE}")
    {
        return Err(no_photo());
    }
    if value {
        let bytes = photos()[idx as usize % photos().len()].clone();
        Ok(GraphResponse {
            status: 200,
            headers: vec![("ETag".into(), photo_etag(u))],
            body: Body::Bytes(bytes, "image/jpeg"),
        })
    } else {
        Ok(GraphResponse::json(
            200,
            Value::Object(photo_meta(ctx, u, true)),
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Applications
// ---------------------------------------------------------------------------------------

/// Application object JSON (`passwordCredentials`, `keyCredentials`).
/// <https://learn.microsoft.com/graph/api/resources/application>,
/// <https://learn.microsoft.com/graph/api/resources/passwordcredential>,
/// <https://learn.microsoft.com/graph/api/resources/keycredential>
pub fn application_json(a: &super::auth::AppState, domain: &str) -> Map<String, Value> {
    let pw: Vec<Value> = a
        .reg
        .secrets
        .iter()
        .map(|s| {
            json!({
                "customKeyIdentifier": null,
                "displayName": null,
                "endDateTime": iso(s.end),
                "hint": s.value.chars().take(3).collect::<String>(),
                "keyId": s.key_id,
                "secretText": null,
                "startDateTime": iso(s.end - 2 * 365 * 86400),
            })
        })
        .collect();
    let keys: Vec<Value> = a
        .certs
        .iter()
        .map(|c| {
            use base64::Engine;
            json!({
                "customKeyIdentifier": base64::engine::general_purpose::STANDARD.encode(hex_bytes(&c.sha1_hex)),
                "displayName": format!("CN={}", c.subject_cn),
                "endDateTime": iso(c.not_after),
                "key": null,
                "keyId": c.key_id,
                "startDateTime": iso(c.not_before),
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
            })
        })
        .collect();
    let mut m = Map::new();
    m.insert("id".into(), json!(a.object_id));
    m.insert("appId".into(), json!(a.reg.client_id));
    m.insert("displayName".into(), json!(a.reg.display_name));
    m.insert("createdDateTime".into(), json!("2024-01-01T00:00:00Z"));
    m.insert("deletedDateTime".into(), Value::Null);
    m.insert("publisherDomain".into(), json!(domain));
    m.insert("signInAudience".into(), json!("AzureADMyOrg"));
    m.insert("passwordCredentials".into(), Value::Array(pw));
    m.insert("keyCredentials".into(), Value::Array(keys));
    m
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .filter_map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok())
        .collect()
}

const APP_PROPS: &[&str] = &[
    "id",
    "appId",
    "displayName",
    "createdDateTime",
    "deletedDateTime",
    "publisherDomain",
    "signInAudience",
    "passwordCredentials",
    "keyCredentials",
];

/// `GET /applications[?$filter=appId eq '…']`, `GET /applications/{object-id}`.
/// <https://learn.microsoft.com/graph/api/application-list>
fn applications(ctx: &Ctx<'_>, q: &Query, one: Option<&str>) -> GResult<GraphResponse> {
    let apps = ctx
        .sh
        .apps
        .read()
        .map_err(|_| GraphError::new(500, "generalException", "apps lock poisoned"))?;
    let sel = q.select.as_deref().map(|s| {
        let mut v = s.to_vec();
        v.retain(|x| x != "id");
        v
    });
    let render = |a: &super::auth::AppState| -> GResult<Value> {
        let full = application_json(a, &ctx.sh.domain);
        Ok(Value::Object(match &sel {
            Some(s) => {
                project(&full, s, APP_PROPS).map_err(|n| unknown_property(&n, "application"))?
            }
            None => full,
        }))
    };
    if let Some(id) = one {
        let a = apps
            .iter()
            .find(|a| a.object_id.eq_ignore_ascii_case(id))
            .ok_or_else(|| GraphError::not_found(id))?;
        let mut v = render(a)?;
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "@odata.context".into(),
                json!(format!("{}/$metadata#applications/$entity", ctx.graph_base)),
            );
        }
        return Ok(GraphResponse::json(200, v));
    }
    let filter = q
        .filter
        .as_deref()
        .map(|f| Filter::parse(f, false))
        .transpose()?;
    let size = q.page_size(DEFAULT_PAGE, MAX_PAGE)?;
    let mut out = Vec::new();
    for a in apps.iter() {
        let full = application_json(a, &ctx.sh.domain);
        if let Some(f) = &filter
            && !f.eval(&|p| {
                APP_PROPS
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(p))
                    .map(|k| full.get(*k).cloned().unwrap_or(Value::Null))
            })?
        {
            continue;
        }
        out.push(render(a)?);
        if out.len() >= size {
            break;
        }
    }
    Ok(GraphResponse::json(
        200,
        json!({"@odata.context": context(&ctx.graph_base, "applications", q.select.as_deref()), "value": out}),
    ))
}
