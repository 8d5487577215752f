//! Graph v1.0 request routing: path parsing, permission checks, ResourceUnit costs, fault
//! injection hook, and the single-object endpoints (user, group, organization). Collections
//! live in [`super::listing`], properties in [`super::props`], photos in [`super::photos`],
//! applications in [`super::apps`], delta in [`super::delta`], `$batch` in [`super::batch`].

use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::Ctx;
use super::apps::*;
use super::listing::*;
use super::odata::{Body, GResult, GraphError, GraphResponse, Query};
use super::photos::*;
use super::props::*;

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
        cast: Option<&'static str>,
        count: bool,
    },
    Groups,
    GroupsCount,
    GroupsDelta,
    Group(String),
    Members {
        group: String,
        transitive: bool,
        cast: Option<&'static str>,
        /// `/$count` segment.
        count: bool,
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

/// An OData type-cast segment. The `graph` alias of the `microsoft.graph` namespace is
/// accepted too (Microsoft's SDKs generate `…/graph.user`); type names are case-insensitive.
/// <https://learn.microsoft.com/graph/api/group-list-members> (OData cast),
/// `$metadata` (`<Schema Namespace="microsoft.graph" Alias="graph">`).
fn cast(s: &str) -> Option<Option<&'static str>> {
    let l = s.to_ascii_lowercase();
    let name = l
        .strip_prefix("microsoft.graph.")
        .or_else(|| l.strip_prefix("graph."))?;
    match name {
        "user" => Some(Some("user")),
        "group" => Some(Some("group")),
        _ => None,
    }
}

/// Parses what follows a member/memberOf navigation: `[cast][/$count]`.
fn member_suffix(rest: &[&str]) -> GResult<(Option<&'static str>, bool)> {
    Ok(match rest {
        [] => (None, false),
        ["$count"] => (None, true),
        [c] => (cast(c).ok_or_else(|| segment_error(c))?, false),
        [c, "$count"] => (cast(c).ok_or_else(|| segment_error(c))?, true),
        [_, x, ..] => return Err(segment_error(x)),
    })
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
            [
                "users",
                id,
                rel @ ("memberOf" | "transitiveMemberOf"),
                rest @ ..,
            ] => {
                let (cast, count) = member_suffix(rest)?;
                Route::UserMemberOf {
                    user: id.to_string(),
                    transitive: *rel == "transitiveMemberOf",
                    cast,
                    count,
                }
            }
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
                let (cast, count) = member_suffix(rest)?;
                Route::Members {
                    group: id.to_string(),
                    transitive: *rel == "transitiveMembers",
                    cast,
                    count,
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
    if resp.status == 200
        && let Body::Json(body) = &mut resp.body
    {
        let url = if query.is_empty() {
            format!("{}{path}", ctx.graph_base)
        } else {
            format!("{}{path}?{query}", ctx.graph_base)
        };
        let spoiled = ctx
            .sh
            .faults
            .lock()
            .map(|mut f| f.spoil_page(route.key(), &url, body))
            .unwrap_or(false);
        if spoiled {
            ctx.sh.count("pageFaults");
        }
    }
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
            if let Some(e) = &q.expand {
                let e = parse_members_expand(e)?;
                m.insert("members".into(), expanded_members(ctx, dir, i, &e));
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
            count,
        } => {
            need(ctx, PERM_MEMBERS)?;
            let g = dir
                .active_group(group)
                .ok_or_else(|| GraphError::not_found(group))?;
            let o = MemberList {
                transitive: *transitive,
                cast: *cast,
                count_only: *count,
                headers,
            };
            members(ctx, dir, q, path, g, &o)
        }
        Route::UserMemberOf {
            user,
            transitive,
            cast,
            count,
        } => {
            need(ctx, PERM_MEMBER_OF)?;
            let u = dir
                .active_user(user)
                .ok_or_else(|| GraphError::not_found(user))?;
            let o = MemberList {
                transitive: *transitive,
                cast: *cast,
                count_only: *count,
                headers,
            };
            member_of(ctx, dir, q, path, u, &o)
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
            // One entry per stored size. https://learn.microsoft.com/graph/api/profilephoto-get
            let value: Vec<Value> = match u.photo {
                Some(_) => available_sizes()
                    .map(|s| Value::Object(photo_meta_at(ctx, u, false, s)))
                    .collect(),
                None => Vec::new(),
            };
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

pub(crate) fn sel_suffix(sel: Option<&[String]>) -> String {
    match sel {
        Some(s) if !s.is_empty() => format!("({})", s.join(",")),
        _ => String::new(),
    }
}
