//! Confluence Data Center REST (`{base}/rest/api`): admin user and group management (8.4+),
//! memberships, user and group listings.
//!
//! Source: the official Confluence DC 10.0.3 OpenAPI
//! (`dac-static.atlassian.com/server/confluence/10.0.3.swagger.v3.json`, "CONF-OAS") and the
//! Confluence REST docs (`developer.atlassian.com/server/confluence/rest/`). Errors are
//! `RestError` `{"statusCode","data","message","reason"}` (CONF-OAS). There is no REST rename.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde_json::{Value, json as j};

use super::directory::{NewUser, State as Dir, User, lc};
use super::faults::user_write_fault;
use super::{
    Params, Product, Shared, b, empty, enc, json, page, parse_body, require_admin, require_user, s,
};

type R = Result<Response, Response>;

/// `RestError` (CONF-OAS): `data` is a ValidationResult.
pub(crate) fn error(status: u16, message: &str) -> Response {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    json(
        status,
        j!({"statusCode": status,
            "data": {"authorized": status != 401 && status != 403, "valid": status != 400, "allowedInReadOnlyMode": true, "errors": [], "successful": false},
            "message": message, "reason": reason}),
    )
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/rest/api/admin/user",
            post(create_user).delete(delete_by_query),
        )
        .route(
            "/rest/api/admin/user/{username}",
            put(update_user).delete(delete_user),
        )
        .route("/rest/api/admin/user/{username}/disable", put(disable))
        .route("/rest/api/admin/user/{username}/enable", put(enable))
        .route(
            "/rest/api/admin/user/{username}/password",
            post(set_password),
        )
        .route("/rest/api/admin/users/list/active", get(list_active))
        .route("/rest/api/admin/group", post(create_group))
        .route(
            "/rest/api/admin/group/{name}",
            axum::routing::delete(delete_group),
        )
        .route("/rest/api/user", get(get_user))
        .route("/rest/api/user/current", get(current))
        .route("/rest/api/user/list", get(list_users))
        .route("/rest/api/user/memberof", get(member_of))
        .route(
            "/rest/api/user/{username}/group/{group}",
            put(add_member).delete(remove_member),
        )
        .route("/rest/api/group", get(list_groups))
        .route("/rest/api/group/{name}", get(get_group))
        .route("/rest/api/group/{name}/member", get(group_members))
        .route("/rest/api/longtask/{id}", get(long_task))
        .route(
            "/rest/license/1.0/license/userCount",
            get(licence_user_count),
        )
        .route("/rest/license/1.0/license/maxUsers", get(licence_max_users))
        .route(
            "/rest/license/1.0/license/remainingSeats",
            get(licence_remaining),
        )
}

/// Person / KnownUser as Confluence DC serves it (CONF-OAS lists only part of it; `username`,
/// `userKey` and `_links` are on the wire). `expand=status` adds `"status":"Active"|"Deactivated"`
/// (atlassian-python-api `get_user_details_by_username` documents those values).
fn person(sh: &Shared, u: &User, expand: &str) -> Value {
    let ctx = &sh.context_path;
    let mut p = j!({
        "type": "known",
        "username": u.name,
        "userKey": u.key,
        "profilePicture": {"path": format!("{ctx}/images/icons/profilepics/default.svg"), "width": 48, "height": 48, "isDefault": u.avatar.is_none()},
        "displayName": u.display_name,
        "_links": {"self": format!("{}/rest/api/user?key={}", sh.base(), u.key)},
        "_expandable": {"status": "", "email": ""}
    });
    for e in expand.split(',').map(str::trim) {
        if e == "status" {
            p["status"] = Value::String(if u.active { "Active" } else { "Deactivated" }.into());
        }
        if e == "email" {
            p["email"] = Value::String(u.email.clone());
        }
    }
    p
}

/// `expand` without `status` (the test knobs that make a listing omit it).
fn without_status(expand: &str) -> String {
    expand
        .split(',')
        .filter(|e| e.trim() != "status")
        .collect::<Vec<_>>()
        .join(",")
}

fn group_json(sh: &Shared, name: &str) -> Value {
    j!({"type": "group", "name": name, "_links": {"self": format!("{}/rest/api/group/{}", sh.base(), enc(name))}})
}

/// Page `{"results","start","limit","size","totalCount","_links":{"base","context","self","next"}}`
/// (CONF-OAS); `next` only when more results exist.
fn paged(
    sh: &Shared,
    path: &str,
    extra: &str,
    all: Vec<Value>,
    q: &Params,
    default_limit: i64,
) -> Response {
    let start = q.num("start").unwrap_or(0).max(0) as usize;
    let limit = q.num("limit").unwrap_or(default_limit).clamp(1, 1000) as usize;
    let (items, last) = page(&all, start, limit);
    let base = sh.base();
    let mut links =
        j!({"base": base, "context": sh.context_path, "self": format!("{base}{path}{extra}")});
    if !last {
        let sep = if extra.is_empty() { "?" } else { "&" };
        links["next"] = Value::String(format!(
            "{path}{extra}{sep}limit={limit}&start={}",
            start + limit
        ));
    }
    if start > 0 {
        let sep = if extra.is_empty() { "?" } else { "&" };
        links["prev"] = Value::String(format!(
            "{path}{extra}{sep}limit={limit}&start={}",
            start.saturating_sub(limit)
        ));
    }
    json(
        200,
        j!({"results": items, "start": start, "limit": limit, "size": items.len(), "totalCount": all.len(), "_links": links}),
    )
}

/// userName rules of `UserDetailsForCreation` (CONF-OAS): not blank, no `\ , + < > ' "`, no
/// whitespace, not "anonymous", no upper-case letters.
fn validate_username(n: &str) -> Option<&'static str> {
    if n.trim().is_empty() {
        Some("Username is required")
    } else if n.chars().any(|c| "\\,+<>'\"".contains(c)) {
        Some("Username contains invalid characters: \\ , + < > ' \"")
    } else if n.chars().any(char::is_whitespace) {
        Some("Username must not contain whitespace")
    } else if n.eq_ignore_ascii_case("anonymous") {
        Some("Username 'anonymous' is reserved")
    } else if n.chars().any(char::is_uppercase) {
        Some("Username must not contain uppercase letters")
    } else {
        None
    }
}

/// fullName rules (CONF-OAS createUser/updateUser): not blank, no `<` or `>`, not "anonymous".
fn validate_full_name(n: &str) -> Option<&'static str> {
    if n.trim().is_empty() {
        Some("Full name is required")
    } else if n.contains(['<', '>']) {
        Some("Full name contains invalid characters: < >")
    } else if n.trim().eq_ignore_ascii_case("anonymous") {
        Some("Full name must not be 'anonymous'")
    } else {
        None
    }
}

/// "The email should be a valid email address" (CONF-OAS): one `@` with text on both sides.
fn valid_email(e: &str) -> bool {
    matches!(e.split_once('@'), Some((l, d)) if !l.is_empty() && !d.is_empty() && !d.contains('@') && !e.contains(char::is_whitespace))
}

/// `POST /rest/api/admin/user` UserDetailsForCreation `{"userName","fullName","email","password",
/// "notifyViaEmail"}` -> 201 `{"userKey"}`; invalid -> 400, no licence seat left -> 402, existing
/// user -> 409 (CONF-OAS, Confluence 8.4+). If `notifyViaEmail` is true the password must be
/// absent; if false it is required. New users join the default group (`confluence-users`).
async fn create_user(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> R {
    require_admin(&sh, &h)?;
    let Some(v) = parse_body(&body).filter(|v| v.is_object()) else {
        return Err(error(400, "Request body is required"));
    };
    let name = s(&v, "userName").unwrap_or_default();
    if let Some(e) = validate_username(&name) {
        return Err(error(400, e));
    }
    let full = s(&v, "fullName").unwrap_or_default();
    if let Some(e) = validate_full_name(&full) {
        return Err(error(400, e));
    }
    let email = s(&v, "email").unwrap_or_default();
    if !valid_email(&email) {
        return Err(error(400, "A valid email is required"));
    }
    let notify = b(&v, "notifyViaEmail").unwrap_or(false);
    let pw = s(&v, "password");
    match (notify, &pw) {
        (true, Some(_)) => {
            return Err(error(
                400,
                "Password must not be set when notifyViaEmail is true",
            ));
        }
        (false, None) => {
            return Err(error(
                400,
                "Password is required when notifyViaEmail is false",
            ));
        }
        _ => {}
    }
    if let Some(r) = user_write_fault(&sh, &name) {
        return Err(r);
    }
    let mut st = sh.lock_state();
    if st.user(&name).is_some() {
        return Err(error(
            409,
            &format!("User with username {name} already exists"),
        ));
    }
    if st.licence_full() {
        return Err(error(402, "Your license does not allow more users"));
    }
    let u = st.add_user(
        Product::Confluence,
        NewUser {
            name,
            display_name: full.clone(),
            first_name: full,
            last_name: String::new(),
            email,
            password: pw,
            active: true,
        },
        true,
    );
    if let Some(g) = sh.default_group.clone() {
        let gname = st.ensure_group(&g).name.clone();
        st.add_member(&gname, u.id);
    }
    Ok(json(201, j!({"userKey": u.key})))
}

fn find<'a>(st: &'a Dir, name: &str) -> Result<&'a User, Response> {
    st.user(name)
        .ok_or_else(|| error(404, &format!("No user found with username {name}")))
}

/// `PUT /rest/api/admin/user/{username}` `{"fullName","email"}` -> 204 (CONF-OAS `updateUser`).
/// The spec lists only 400 for failures ("any error occurs while updating the user"), so an
/// unknown user is 400 too. Other fields (including a new user name) are ignored: no REST rename.
async fn update_user(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let Some(v) = parse_body(&body).filter(|v| v.is_object()) else {
        return Err(error(400, "Request body is required"));
    };
    if let Some(e) = s(&v, "email")
        && !valid_email(&e)
    {
        return Err(error(400, "A valid email is required"));
    }
    if let Some(f) = s(&v, "fullName")
        && let Some(e) = validate_full_name(&f)
    {
        return Err(error(400, e));
    }
    if let Some(r) = user_write_fault(&sh, &name) {
        return Err(r);
    }
    let mut st = sh.lock_state();
    if st.user(&name).is_none() {
        return Err(error(400, &format!("No user found with username {name}")));
    }
    if let Some(u) = st.user_mut(&name) {
        if let Some(f) = s(&v, "fullName") {
            u.display_name = f;
        }
        if let Some(e) = s(&v, "email") {
            u.email = e;
        }
    }
    Ok(empty(204))
}

async fn set_active(sh: Arc<Shared>, h: HeaderMap, name: String, active: bool) -> R {
    let caller = require_admin(&sh, &h)?;
    if !active && lc(&caller.name) == lc(&name) {
        return Err(error(400, "You cannot disable yourself"));
    }
    if let Some(r) = user_write_fault(&sh, &name) {
        return Err(r);
    }
    let mut st = sh.lock_state();
    find(&st, &name)?;
    if let Some(u) = st.user_mut(&name) {
        u.active = active;
    }
    Ok(empty(204))
}

/// `PUT /rest/api/admin/user/{username}/disable` -> 204, idempotent (CONF-OAS); a disabled user
/// does not count toward the licence.
async fn disable(State(sh): State<Arc<Shared>>, h: HeaderMap, Path(name): Path<String>) -> R {
    set_active(sh, h, name, false).await
}

/// `PUT /rest/api/admin/user/{username}/enable` -> 204, idempotent (CONF-OAS).
async fn enable(State(sh): State<Arc<Shared>>, h: HeaderMap, Path(name): Path<String>) -> R {
    set_active(sh, h, name, true).await
}

/// `POST /rest/api/admin/user/{username}/password` `{"password"}` -> 204 (CONF-OAS).
async fn set_password(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let Some(pw) = parse_body(&body)
        .and_then(|v| s(&v, "password"))
        .filter(|p| !p.is_empty())
    else {
        return Err(error(400, "Password is required"));
    };
    let mut st = sh.lock_state();
    find(&st, &name)?;
    if let Some(u) = st.user_mut(&name) {
        u.password = Some(pw);
    }
    Ok(empty(204))
}

/// `DELETE /rest/api/admin/user/{username}` -> 202 LongTaskSubmission
/// `{"id","links":{"status"}}`; the deletion is asynchronous in Confluence, here it is done when
/// the 202 is sent (CONF-OAS; a DC 10.2.11 fixture shows the 202).
async fn delete_user(State(sh): State<Arc<Shared>>, h: HeaderMap, Path(name): Path<String>) -> R {
    let caller = require_admin(&sh, &h)?;
    if lc(&caller.name) == lc(&name) {
        return Err(error(400, "You cannot delete yourself"));
    }
    if let Some(r) = user_write_fault(&sh, &name) {
        return Err(r);
    }
    let mut st = sh.lock_state();
    find(&st, &name)?;
    st.remove_user(&name);
    let id = uuid::Uuid::new_v4().to_string();
    Ok(json(
        202,
        j!({"id": id, "links": {"status": format!("{}/rest/api/longtask/{id}", sh.base())}}),
    ))
}

/// `DELETE /rest/api/admin/user?name=` -> 405: only the path form exists (the Confluence DC
/// 10.0.3 OpenAPI has only `/rest/api/admin/user/{username}`; DC 10.2.11 answers 405).
async fn delete_by_query(State(sh): State<Arc<Shared>>, h: HeaderMap) -> R {
    require_admin(&sh, &h)?;
    Err(error(405, "Method Not Allowed"))
}

/// `GET /rest/api/longtask/{id}` -> a finished LongTaskStatus.
async fn long_task(State(sh): State<Arc<Shared>>, h: HeaderMap, Path(id): Path<String>) -> R {
    require_user(&sh, &h)?;
    Ok(json(
        200,
        j!({"id": id, "name": {"key": "com.atlassian.confluence.user.delete.task", "args": []},
            "elapsedTime": 1, "percentageComplete": 100, "successful": true, "finished": true, "messages": []}),
    ))
}

/// `GET /rest/api/user?username=|key=[&expand=]` -> Person, 404 (CONF-OAS).
async fn get_user(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_user(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let st = sh.lock_state();
    let u = if let Some(n) = q.val("username") {
        find(&st, n)?
    } else if let Some(k) = q.val("key") {
        st.user_by_key(k)
            .ok_or_else(|| error(404, &format!("No user found with key {k}")))?
    } else {
        return Err(error(400, "username or key query parameter is required"));
    };
    let mut exp = q.get("expand").unwrap_or("").to_string();
    if !sh.confluence_user_status {
        exp = without_status(&exp);
    }
    Ok(json(200, person(&sh, u, &exp)))
}

/// `GET /rest/api/user/current` -> Person of the caller.
async fn current(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    let c = require_user(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let st = sh.lock_state();
    Ok(json(
        200,
        person(&sh, find(&st, &c.name)?, q.get("expand").unwrap_or("")),
    ))
}

/// `GET /rest/api/user/list?start&limit` -> page of Person, including disabled and unlicensed
/// users; default limit 100 (CONF-OAS, 8.4+).
async fn list_users(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let mut exp = q.get("expand").unwrap_or("").to_string();
    if !sh.confluence_list_status {
        exp = without_status(&exp);
    }
    let st = sh.lock_state();
    let all: Vec<Value> = st.users.values().map(|u| person(&sh, u, &exp)).collect();
    Ok(paged(&sh, "/rest/api/user/list", "", all, &q, 100))
}

/// `GET /rest/api/admin/users/list/active?start&limit` -> page of active licensed users (CONF-OAS).
async fn list_active(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let st = sh.lock_state();
    let all: Vec<Value> = st
        .users
        .values()
        .filter(|u| st.is_licensed(u))
        .map(|u| person(&sh, u, ""))
        .collect();
    Ok(paged(
        &sh,
        "/rest/api/admin/users/list/active",
        "",
        all,
        &q,
        100,
    ))
}

/// `GET /rest/api/user/memberof?username=&start&limit` -> page of groups, default limit 200
/// (CONF-OAS).
async fn member_of(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_user(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let st = sh.lock_state();
    let Some(n) = q.val("username").or(q.val("key")) else {
        return Err(error(400, "username or key query parameter is required"));
    };
    let u = match q.val("username") {
        Some(_) => find(&st, n)?,
        None => st
            .user_by_key(n)
            .ok_or_else(|| error(404, &format!("No user found with key {n}")))?,
    };
    let all: Vec<Value> = st
        .groups_of(u.id)
        .iter()
        .map(|g| group_json(&sh, &g.name))
        .collect();
    let extra = format!("?username={}", enc(&u.name));
    Ok(paged(&sh, "/rest/api/user/memberof", &extra, all, &q, 200))
}

/// `PUT /rest/api/user/{username}/group/{groupName}` -> 204, idempotent (CONF-OAS); missing user
/// or group -> 404.
async fn add_member(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    Path((user, group)): Path<(String, String)>,
) -> R {
    require_admin(&sh, &h)?;
    if let Some(r) = user_write_fault(&sh, &user) {
        return Err(r);
    }
    let mut st = sh.lock_state();
    let u = find(&st, &user)?.clone();
    let Some(g) = st.group(&group).cloned() else {
        return Err(error(404, &format!("Group {group} not found")));
    };
    st.add_member(&g.name, u.id);
    Ok(empty(204))
}

/// `DELETE /rest/api/user/{username}/group/{groupName}` -> 204, idempotent (CONF-OAS).
async fn remove_member(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    Path((user, group)): Path<(String, String)>,
) -> R {
    require_admin(&sh, &h)?;
    let mut st = sh.lock_state();
    let u = find(&st, &user)?.clone();
    let Some(g) = st.group(&group).cloned() else {
        return Err(error(404, &format!("Group {group} not found")));
    };
    st.remove_member(&g.name, u.id);
    Ok(empty(204))
}

/// `POST /rest/api/admin/group` `{"name"}` -> 200 Group (not 201); no name -> 400, existing ->
/// 409 (CONF-OAS).
async fn create_group(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> R {
    require_admin(&sh, &h)?;
    let name = parse_body(&body)
        .and_then(|v| s(&v, "name"))
        .unwrap_or_default();
    if super::bad_group_name(&name) {
        return Err(error(400, "Group name is required"));
    }
    let mut st = sh.lock_state();
    if st.group(&name).is_some() {
        return Err(error(409, &format!("Group {name} already exists")));
    }
    // Confluence stores group names in lower case.
    let name = lc(&name);
    st.ensure_group(&name);
    Ok(json(200, group_json(&sh, &name)))
}

/// `DELETE /rest/api/admin/group/{groupName}` -> 204; missing -> 404; the last admin group -> 400
/// (CONF-OAS).
async fn delete_group(State(sh): State<Arc<Shared>>, h: HeaderMap, Path(name): Path<String>) -> R {
    require_admin(&sh, &h)?;
    let mut st = sh.lock_state();
    if st.group(&name).is_none() {
        return Err(error(404, &format!("Group {name} not found")));
    }
    let admin_groups_left = st
        .groups
        .keys()
        .filter(|g| st.admin_groups.contains(*g))
        .count();
    if st.admin_groups.contains(&lc(&name)) && admin_groups_left <= 1 {
        return Err(error(400, "Cannot delete the last administrators group"));
    }
    st.remove_group(&name);
    Ok(empty(204))
}

/// `GET /rest/api/group?start&limit` -> page of groups, default limit 200 (CONF-OAS).
async fn list_groups(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_user(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let st = sh.lock_state();
    let all: Vec<Value> = st
        .groups
        .values()
        .map(|g| group_json(&sh, &g.name))
        .collect();
    Ok(paged(&sh, "/rest/api/group", "", all, &q, 200))
}

/// `GET /rest/api/group/{groupName}` -> Group or 404 (CONF-OAS).
async fn get_group(State(sh): State<Arc<Shared>>, h: HeaderMap, Path(name): Path<String>) -> R {
    require_user(&sh, &h)?;
    let st = sh.lock_state();
    match st.group(&name) {
        Some(g) => Ok(json(200, group_json(&sh, &g.name))),
        None => Err(error(404, &format!("Group {name} not found"))),
    }
}

/// `GET /rest/api/group/{groupName}/member?start&limit&expand` -> page of Person, default limit
/// 200; admin only (CONF-OAS).
async fn group_members(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let exp = q.get("expand").unwrap_or("").to_string();
    let st = sh.lock_state();
    let Some(g) = st.group(&name) else {
        return Err(error(404, &format!("Group {name} not found")));
    };
    let all: Vec<Value> = st
        .member_refs(&g.name)
        .into_iter()
        .map(|u| person(&sh, u, &exp))
        .collect();
    let path = format!("/rest/api/group/{}/member", enc(&g.name));
    Ok(paged(&sh, &path, "", all, &q, 200))
}

/// `GET /rest/license/1.0/license/userCount` -> `{"count": N}` (licensed users), and the
/// companions `maxUsers` / `remainingSeats` (unlimited licence: -1). Confluence DC licence
/// REST resource (`/rest/license/1.0/license/*`, same `{"count"}` shape as the
/// `remainingSeats` example in Atlassian's licence-monitoring guidance).
async fn licence_user_count(State(sh): State<Arc<Shared>>, h: HeaderMap) -> R {
    require_admin(&sh, &h)?;
    let st = sh.lock_state();
    Ok(json(200, j!({"count": st.licensed_count()})))
}

async fn licence_max_users(State(sh): State<Arc<Shared>>, h: HeaderMap) -> R {
    require_admin(&sh, &h)?;
    let st = sh.lock_state();
    Ok(json(200, j!({"count": st.seats.map_or(-1, |s| s as i64)})))
}

async fn licence_remaining(State(sh): State<Arc<Shared>>, h: HeaderMap) -> R {
    require_admin(&sh, &h)?;
    let st = sh.lock_state();
    let left = st
        .seats
        .map_or(-1, |s| s as i64 - st.licensed_count() as i64);
    Ok(json(200, j!({"count": left})))
}
