//! Jira Data Center REST v2 (`{base}/rest/api/2`), the user, group, application-role and
//! avatar resources.
//!
//! Source: the official Jira Software DC 10.3 OpenAPI
//! (`dac-static.atlassian.com/server/jira/platform/jira_software_dc_10003_swagger.v3.json`,
//! "JIRA-OAS" below) and the REST docs at `docs.atlassian.com/software/jira/docs/api/REST/`.
//! Errors are `ErrorCollection` `{"errorMessages":[],"errors":{}}` (JIRA-OAS). Message wordings
//! are close to Jira's but not verified against a live instance.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json as j};

use super::directory::{Avatar, NewUser, State as Dir, User, lc};
use super::faults::user_write_fault;
use super::{
    Params, Product, Shared, b, empty, enc, json, page, parse_body, require_admin, require_user, s,
};

type R = Result<Response, Response>;

/// `ErrorCollection` (JIRA-OAS).
pub(crate) fn error(status: u16, messages: &[&str], errors: &[(&str, &str)]) -> Response {
    let errs: serde_json::Map<String, Value> = errors
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    json(status, j!({"errorMessages": messages, "errors": errs}))
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    let p = "/rest/api/2";
    Router::new()
        .route(
            &format!("{p}/user"),
            get(get_user)
                .post(create_user)
                .put(update_user)
                .delete(delete_user),
        )
        .route(&format!("{p}/user/search"), get(search_users))
        .route(&format!("{p}/user/list"), get(list_users))
        .route(
            &format!("{p}/user/password"),
            axum::routing::put(set_password),
        )
        .route(
            &format!("{p}/user/application"),
            post(add_application).delete(remove_application),
        )
        .route(
            &format!("{p}/user/avatar/temporary"),
            post(avatar_temporary),
        )
        .route(
            &format!("{p}/user/avatar"),
            post(avatar_crop).put(avatar_select),
        )
        .route(
            &format!("{p}/user/avatar/{{id}}"),
            axum::routing::delete(avatar_delete),
        )
        .route(&format!("{p}/user/avatars"), get(avatars_list))
        .route(
            &format!("{p}/group"),
            get(get_group).post(create_group).delete(delete_group),
        )
        .route(&format!("{p}/group/member"), get(group_members))
        .route(
            &format!("{p}/group/user"),
            post(add_member).delete(remove_member),
        )
        .route(&format!("{p}/groups/picker"), get(groups_picker))
        .route(&format!("{p}/applicationrole"), get(roles))
        .route(&format!("{p}/applicationrole/{{key}}"), get(role))
        .route(&format!("{p}/myself"), get(myself))
        .route(&format!("{p}/mypermissions"), get(mypermissions))
        .route(&format!("{p}/serverInfo"), get(server_info))
        .route("/secure/useravatar", get(avatar_image))
}

fn user_self(base: &str, u: &User) -> String {
    format!("{base}/rest/api/2/user?username={}", enc(&u.name))
}

/// UserBean (JIRA-OAS): `groups` and `applicationRoles` are `{"size":N,"items":[]}` unless
/// expanded with `expand=groups,applicationRoles`.
fn user_bean(sh: &Shared, st: &Dir, u: &User, expand: &str) -> Value {
    let base = sh.base();
    let groups = st.groups_of(u.id);
    let roles: Vec<&super::AppRole> = st
        .roles
        .iter()
        .filter(|r| {
            groups
                .iter()
                .any(|g| r.groups.iter().any(|rg| lc(rg) == lc(&g.name)))
        })
        .collect();
    let exp_groups = expand.split(',').any(|e| e.trim() == "groups");
    let exp_roles = expand.split(',').any(|e| e.trim() == "applicationRoles");
    let avatar_id = u
        .avatar
        .as_ref()
        .and_then(|_| {
            st.avatars
                .iter()
                .rev()
                .find(|(_, (o, _))| *o == u.id)
                .map(|(id, _)| *id)
        })
        .unwrap_or(10122);
    let av = |size: u32| {
        format!(
            "{base}/secure/useravatar?size={size}&ownerId={}&avatarId={avatar_id}",
            enc(&u.key)
        )
    };
    j!({
        "self": user_self(base, u),
        "key": u.key,
        "name": u.name,
        "emailAddress": u.email,
        "avatarUrls": {"48x48": av(48), "24x24": av(24), "16x16": av(16), "32x32": av(32)},
        "displayName": u.display_name,
        "active": u.active,
        "deleted": false,
        "timeZone": "UTC",
        "locale": "en_US",
        "groups": {
            "size": groups.len(),
            "items": if exp_groups {
                groups.iter().map(|g| j!({"name": g.name, "self": format!("{base}/rest/api/2/group?groupname={}", enc(&g.name))})).collect::<Vec<_>>()
            } else { vec![] }
        },
        "applicationRoles": {
            "size": roles.len(),
            "items": if exp_roles { roles.iter().map(|r| j!({"key": r.key, "name": r.name})).collect::<Vec<_>>() } else { vec![] }
        },
        "expand": "groups,applicationRoles"
    })
}

/// UserWriteBean as returned by create (JIRA-OAS): no password.
fn user_write_bean(sh: &Shared, u: &User, app_keys: &[String]) -> Value {
    j!({
        "self": user_self(sh.base(), u),
        "key": u.key,
        "name": u.name,
        "emailAddress": u.email,
        "displayName": u.display_name,
        "active": u.active,
        "applicationKeys": app_keys,
    })
}

/// Finds the user addressed by `?username=` or `?key=`.
fn target<'a>(st: &'a Dir, q: &Params) -> Result<&'a User, Response> {
    let found = if let Some(n) = q.val("username") {
        st.user(n).ok_or(n.to_string())
    } else if let Some(k) = q.val("key") {
        st.user_by_key(k).ok_or(k.to_string())
    } else {
        return Err(error(
            400,
            &["Either the 'username' or the 'key' query parameter must be provided."],
            &[],
        ));
    };
    found.map_err(|n| error(404, &[&format!("The user named '{n}' does not exist")], &[]))
}

/// `GET /user?username=|key=[&expand=][&includeDeleted=true]` -> 200 UserBean, 404 (JIRA-OAS
/// `getUser`, parameter `includeDeleted`: "include deleted users"). A deleted user is found
/// only with `includeDeleted=true` and only when no live user holds the name; it comes back
/// with `"deleted": true`, inactive and without groups.
async fn get_user(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_user(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let st = sh.lock_state();
    let expand = q.get("expand").unwrap_or("");
    match target(&st, &q) {
        Ok(u) => Ok(json(200, user_bean(&sh, &st, u, expand))),
        Err(not_found) if q.flag("includeDeleted", false) => {
            let gone = if let Some(n) = q.val("username") {
                st.deleted_users
                    .values()
                    .filter(|u| lc(&u.name) == lc(n))
                    .max_by_key(|u| u.id)
            } else {
                q.val("key").and_then(|k| st.deleted_users.get(k))
            };
            let Some(u) = gone else {
                return Err(not_found);
            };
            let mut bean = user_bean(&sh, &st, u, expand);
            bean["deleted"] = Value::Bool(true);
            bean["active"] = Value::Bool(false);
            Ok(json(200, bean))
        }
        Err(not_found) => Err(not_found),
    }
}

/// Jira's username validation: not blank, at most 255 characters, none of `<`, `>`, `&`
/// (Jira UserService "username must not contain '<', '>' or '&'").
fn validate_username(n: &str) -> Option<&'static str> {
    if n.trim().is_empty() {
        Some("You must specify a username.")
    } else if n.chars().count() > 255 {
        Some("The username must not exceed 255 characters in length.")
    } else if n.contains(['<', '>', '&']) {
        Some("The username must not contain '<', '>' or '&'.")
    } else {
        None
    }
}

/// `POST /user` UserWriteBean -> 201 UserWriteBean (JIRA-OAS `createUser`). `applicationKeys`
/// puts the user into each application's default groups; without it the roles marked
/// `selectedByDefault` apply. Unknown application key, missing fields or an existing name -> 400.
/// Duplicate e-mail addresses are allowed (Jira does not enforce unique e-mails).
async fn create_user(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> R {
    require_admin(&sh, &h)?;
    let Some(v) = parse_body(&body) else {
        return Err(error(
            400,
            &["Unrecognized or malformed JSON request body."],
            &[],
        ));
    };
    let name = s(&v, "name").unwrap_or_default();
    if let Some(e) = validate_username(&name) {
        return Err(error(400, &[], &[("username", e)]));
    }
    let email = s(&v, "emailAddress").unwrap_or_default();
    if email.trim().is_empty() {
        return Err(error(
            400,
            &[],
            &[("email", "You must specify an email address.")],
        ));
    }
    if !email.contains('@') {
        return Err(error(
            400,
            &[],
            &[("email", "You must specify a valid email address.")],
        ));
    }
    let display = s(&v, "displayName").unwrap_or_default();
    if display.trim().is_empty() {
        return Err(error(
            400,
            &[],
            &[("displayName", "You must specify a full name.")],
        ));
    }
    if let Some(r) = user_write_fault(&sh, &name) {
        return Err(r);
    }
    let mut st = sh.lock_state();
    if st.user(&name).is_some() {
        return Err(error(
            400,
            &[],
            &[("username", "A user with that username already exists.")],
        ));
    }
    let app_keys: Vec<String> = match v.get("applicationKeys").and_then(|x| x.as_array()) {
        Some(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        None => st
            .roles
            .iter()
            .filter(|r| r.selected_by_default)
            .map(|r| r.key.clone())
            .collect(),
    };
    let mut default_groups = Vec::new();
    for k in &app_keys {
        match st.roles.iter().find(|r| r.key == *k) {
            Some(r) => default_groups.extend(r.default_groups.clone()),
            None => {
                return Err(error(
                    400,
                    &[&format!("Application with key '{k}' does not exist.")],
                    &[],
                ));
            }
        }
    }
    let u = st.add_user(
        Product::Jira,
        NewUser {
            name: name.clone(),
            display_name: display.clone(),
            first_name: display,
            last_name: String::new(),
            email,
            // Jira generates a random password when none is given (JIRA-OAS UserWriteBean).
            password: Some(s(&v, "password").unwrap_or_else(|| uuid::Uuid::new_v4().to_string())),
            active: true,
        },
        true,
    );
    for g in default_groups {
        let gname = st.ensure_group(&g).name.clone();
        st.add_member(&gname, u.id);
    }
    let mut r = json(201, user_write_bean(&sh, &u, &app_keys));
    if let Ok(loc) = user_self(sh.base(), &u).parse() {
        r.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(r)
}

/// `PUT /user?username=|key=` partial UserWriteBean -> 200 (JIRA-OAS `updateUser`): `name`
/// renames (key unchanged), `active` deactivates/reactivates (Jira 8.3+, JRASERVER-37294),
/// `emailAddress`, `displayName`, `password`.
async fn update_user(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    let caller = require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let Some(v) = parse_body(&body).filter(|v| v.is_object()) else {
        return Err(error(
            400,
            &["Unrecognized or malformed JSON request body."],
            &[],
        ));
    };
    let mut st = sh.lock_state();
    let u = target(&st, &q)?.clone();
    if let Some(r) = user_write_fault(&sh, &u.name) {
        return Err(r);
    }
    let new_name = s(&v, "name").filter(|n| *n != u.name);
    if let Some(n) = &new_name {
        if let Some(e) = validate_username(n) {
            return Err(error(400, &[], &[("username", e)]));
        }
        if let Some(r) = user_write_fault(&sh, n) {
            return Err(r);
        }
        if lc(n) != lc(&u.name) && st.user(n).is_some() {
            return Err(error(
                400,
                &[],
                &[("username", "A user with that username already exists.")],
            ));
        }
    }
    let active = b(&v, "active");
    // UserWriteBean.active is a Boolean: Jackson refuses anything but true/false ("true"/
    // "false" strings are coerced) with a 400 before the resource runs.
    // https://docs.atlassian.com/software/jira/docs/api/REST/9.12.0/#api/2/user-updateUser
    if active.is_none() && v.get("active").is_some_and(|x| !x.is_null()) {
        return Err(error(
            400,
            &["Unrecognized or malformed JSON request body: 'active' must be true or false."],
            &[],
        ));
    }
    if active == Some(false) && lc(&caller.name) == lc(&u.name) {
        return Err(error(400, &["You cannot deactivate yourself."], &[]));
    }
    if let Some(e) = s(&v, "emailAddress")
        && !e.contains('@')
    {
        return Err(error(
            400,
            &[],
            &[("email", "You must specify a valid email address.")],
        ));
    }
    if let Some(n) = &new_name {
        st.rename_user(&u.name, n);
    }
    let cur = new_name.unwrap_or(u.name.clone());
    let Some(m) = st.user_mut(&cur) else {
        return Err(error(404, &["User disappeared"], &[]));
    };
    if let Some(e) = s(&v, "emailAddress") {
        m.email = e;
    }
    if let Some(d) = s(&v, "displayName") {
        m.display_name = d;
    }
    if let Some(p) = s(&v, "password") {
        m.password = Some(p);
    }
    if let Some(a) = active {
        m.active = a;
    }
    let m = m.clone();
    Ok(json(200, user_bean(&sh, &st, &m, "")))
}

/// `DELETE /user?username=|key=` -> 204 (JIRA-OAS `removeUser`); deleting yourself -> 400.
async fn delete_user(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    let caller = require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let mut st = sh.lock_state();
    let u = target(&st, &q)?.clone();
    if lc(&u.name) == lc(&caller.name) {
        return Err(error(
            400,
            &["You cannot delete the currently logged in user."],
            &[],
        ));
    }
    if let Some(r) = user_write_fault(&sh, &u.name) {
        return Err(r);
    }
    if let Some(gone) = st.remove_user(&u.name) {
        st.deleted_users.insert(gone.key.clone(), gone);
    }
    Ok(empty(204))
}

/// `PUT /user/password?username=` `{"password"}` -> 204.
async fn set_password(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let pw = parse_body(&body).and_then(|v| s(&v, "password"));
    let Some(pw) = pw.filter(|p| !p.is_empty()) else {
        return Err(error(
            400,
            &[],
            &[("password", "You must specify a password.")],
        ));
    };
    let mut st = sh.lock_state();
    let name = target(&st, &q)?.name.clone();
    if let Some(u) = st.user_mut(&name) {
        u.password = Some(pw);
    }
    Ok(empty(204))
}

/// `GET /user/search?username=Q&startAt&maxResults&includeActive&includeInactive` -> bare array of
/// UserBean (JIRA-OAS `findUsers`; the spec's single-object schema is a known defect). Matches a
/// case-insensitive prefix/substring of name, display name or e-mail; `.`, `""`, `%` and `_`
/// match everyone (JRA-29069). Only the first 1000 matches are reachable (JRASERVER-65089);
/// `maxResults` defaults to 50, max 1000.
async fn search_users(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_user(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let Some(term) = q.get("username") else {
        return Err(error(
            400,
            &["The username query parameter was not provided"],
            &[],
        ));
    };
    let term = lc(term);
    let all = matches!(term.as_str(), "." | "" | "%" | "_");
    let inc_active = q.flag("includeActive", true);
    let inc_inactive = q.flag("includeInactive", false);
    let start = q.num("startAt").unwrap_or(0).max(0) as usize;
    let max = q.num("maxResults").unwrap_or(50).clamp(0, 1000) as usize;
    let st = sh.lock_state();
    let mut found: Vec<&User> = st
        .users
        .values()
        .filter(|u| (u.active && inc_active) || (!u.active && inc_inactive))
        .filter(|u| {
            all || lc(&u.name).contains(&term)
                || lc(&u.display_name).contains(&term)
                || lc(&u.email).contains(&term)
        })
        .collect();
    found.truncate(sh.jira_search_cap);
    let (items, _) = page(&found, start, max);
    Ok(json(
        200,
        Value::Array(items.iter().map(|u| user_bean(&sh, &st, u, "")).collect()),
    ))
}

/// `GET /user/list?cursor=&maxResults=` -> StreamPageBean (Jira DC 10.3 LTS / 11.0,
/// JIRA-OAS `getUserList`): `{"self","nextPage","maxResults","nextCursor","isLast","values"}`.
/// The cursor is opaque; an unknown cursor never gives 404. Default and max page size 2000.
async fn list_users(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let cursor = q.num("cursor").unwrap_or(0).max(0) as u64;
    let max = q.num("maxResults").unwrap_or(2000).clamp(1, 2000) as usize;
    let st = sh.lock_state();
    let mut users: Vec<&User> = st.users.values().filter(|u| u.id > cursor).collect();
    users.sort_by_key(|u| u.id);
    let is_last = users.len() <= max;
    users.truncate(max);
    let base = sh.base();
    let mut out = j!({
        "self": format!("{base}/rest/api/2/user/list?cursor={cursor}&maxResults={max}"),
        "maxResults": max,
        "isLast": is_last,
        "values": users.iter().map(|u| user_bean(&sh, &st, u, "")).collect::<Vec<_>>(),
    });
    if !is_last && let Some(last) = users.last() {
        out["nextCursor"] = Value::String(last.id.to_string());
        out["nextPage"] = Value::String(format!(
            "{base}/rest/api/2/user/list?cursor={}&maxResults={max}",
            last.id
        ));
    }
    Ok(json(200, out))
}

/// `POST /user/application?username=&applicationKey=` -> 200: adds the user to the role's default
/// groups (JIRA-OAS `addUserToApplication`).
async fn add_application(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let mut st = sh.lock_state();
    let u = target(&st, &q)?.clone();
    let key = q.get("applicationKey").unwrap_or("");
    let Some(role) = st.roles.iter().find(|r| r.key == key).cloned() else {
        return Err(error(
            400,
            &[&format!("Application with key '{key}' does not exist.")],
            &[],
        ));
    };
    for g in role.default_groups {
        let gname = st.ensure_group(&g).name.clone();
        st.add_member(&gname, u.id);
    }
    Ok(empty(200))
}

/// `DELETE /user/application?username=&applicationKey=` -> 204: removes the user from every group
/// of the role (JIRA-OAS `removeUserFromApplication`).
async fn remove_application(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let mut st = sh.lock_state();
    let u = target(&st, &q)?.clone();
    let key = q.get("applicationKey").unwrap_or("");
    let Some(role) = st.roles.iter().find(|r| r.key == key).cloned() else {
        return Err(error(
            400,
            &[&format!("Application with key '{key}' does not exist.")],
            &[],
        ));
    };
    for g in role.groups {
        st.remove_member(&g, u.id);
    }
    Ok(empty(204))
}

fn role_bean(st: &Dir, r: &super::AppRole) -> Value {
    let count = st
        .users
        .values()
        .filter(|u| {
            u.active
                && st
                    .groups_of(u.id)
                    .iter()
                    .any(|g| r.groups.iter().any(|x| lc(x) == lc(&g.name)))
        })
        .count();
    let seats = r.seats.map(|s| s as i64).unwrap_or(-1);
    j!({
        "key": r.key, "name": r.name, "groups": r.groups, "defaultGroups": r.default_groups,
        "selectedByDefault": r.selected_by_default, "defined": true,
        "numberOfSeats": seats,
        "remainingSeats": r.seats.map(|s| s as i64 - count as i64).unwrap_or(-1),
        "userCount": count, "userCountDescription": format!("{count} users"),
        "hasUnlimitedSeats": r.seats.is_none(), "platform": r.key == "jira-core"
    })
}

/// `GET /applicationrole` -> array of ApplicationRoleBean (JIRA-OAS).
async fn roles(State(sh): State<Arc<Shared>>, h: HeaderMap) -> R {
    require_admin(&sh, &h)?;
    let st = sh.lock_state();
    Ok(json(
        200,
        Value::Array(st.roles.iter().map(|r| role_bean(&st, r)).collect()),
    ))
}

/// `GET /applicationrole/{key}` -> ApplicationRoleBean or 404 (JIRA-OAS).
async fn role(State(sh): State<Arc<Shared>>, h: HeaderMap, Path(key): Path<String>) -> R {
    require_admin(&sh, &h)?;
    let st = sh.lock_state();
    match st.roles.iter().find(|r| r.key == key) {
        Some(r) => Ok(json(200, role_bean(&st, r))),
        None => Err(error(
            404,
            &[&format!(
                "The application role with key '{key}' does not exist."
            )],
            &[],
        )),
    }
}

fn group_bean(base: &str, name: &str) -> Value {
    j!({"name": name, "self": format!("{base}/rest/api/2/group?groupname={}", enc(name)),
        "users": {"size": 0, "items": [], "max-results": 50, "start-index": 0, "end-index": 0}, "expand": "users"})
}

/// `GET /group?groupname=G[&expand=users[0:49]]` -> GroupBean (deprecated in favour of
/// `/group/member`, JIRA-OAS).
async fn get_group(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let name = q.get("groupname").unwrap_or("");
    let st = sh.lock_state();
    let Some(g) = st.group(name) else {
        return Err(error(
            404,
            &[&format!("The specified group '{name}' does not exist.")],
            &[],
        ));
    };
    let members = st.members_of(&g.name);
    let mut bean = group_bean(sh.base(), &g.name);
    bean["users"]["size"] = j!(members.len());
    if let Some(e) = q.get("expand").filter(|e| e.starts_with("users")) {
        // `users[a:b]` selects an inclusive index range.
        let range = e
            .trim_start_matches("users")
            .trim_matches(|c| c == '[' || c == ']');
        let (a, bnd) = range.split_once(':').unwrap_or(("0", "49"));
        let a: usize = a.parse().unwrap_or(0);
        let bnd: usize = bnd.parse().unwrap_or(a + 49);
        let (items, _) = page(&members, a, bnd.saturating_sub(a).saturating_add(1));
        bean["users"]["items"] =
            Value::Array(items.iter().map(|u| user_bean(&sh, &st, u, "")).collect());
        bean["users"]["start-index"] = j!(a);
        bean["users"]["end-index"] = j!(a + items.len().saturating_sub(1));
    }
    Ok(json(200, bean))
}

/// `POST /group` `{"name"}` -> 201 GroupBean; empty name or existing group -> 400 (JIRA-OAS
/// `createGroup`).
async fn create_group(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> R {
    require_admin(&sh, &h)?;
    let name = parse_body(&body)
        .and_then(|v| s(&v, "name"))
        .unwrap_or_default();
    if super::bad_group_name(&name) {
        return Err(error(400, &["You must specify a valid group name."], &[]));
    }
    let mut st = sh.lock_state();
    if st.group(&name).is_some() {
        return Err(error(
            400,
            &["A group or user with this name already exists."],
            &[],
        ));
    }
    st.ensure_group(&name);
    let mut r = json(201, group_bean(sh.base(), &name));
    if let Ok(loc) = format!("{}/rest/api/2/group?groupname={}", sh.base(), enc(&name)).parse() {
        r.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(r)
}

/// `DELETE /group?groupname=G[&swapGroup=]` -> 200 with empty body (not 204); missing group ->
/// 404 (JIRA-OAS `removeGroup`).
async fn delete_group(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let Some(name) = q.val("groupname") else {
        return Err(error(400, &["You must specify a group name."], &[]));
    };
    let mut st = sh.lock_state();
    if st.group(name).is_none() {
        return Err(error(
            404,
            &[&format!("The specified group '{name}' does not exist.")],
            &[],
        ));
    }
    if let Some(sw) = q.val("swapGroup")
        && st.group(sw).is_none()
    {
        return Err(error(
            400,
            &[&format!("The specified swap group '{sw}' does not exist.")],
            &[],
        ));
    }
    st.remove_group(name);
    Ok(empty(200))
}

/// `GET /group/member?groupname=&includeInactiveUsers=false&startAt=0&maxResults=50` -> page
/// `{"self","nextPage","maxResults","startAt","total","isLast","values"}` (JIRA-OAS
/// `getUsersFromGroup`; `maxResults` at most 50 per the 8.x docs).
async fn group_members(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let Some(name) = q.val("groupname") else {
        return Err(error(400, &["You must specify a group name."], &[]));
    };
    let st = sh.lock_state();
    let Some(g) = st.group(name) else {
        return Err(error(
            404,
            &[&format!("The specified group '{name}' does not exist.")],
            &[],
        ));
    };
    let inactive = q.flag("includeInactiveUsers", false);
    let start = q.num("startAt").unwrap_or(0).max(0) as usize;
    let max = q.num("maxResults").unwrap_or(50).clamp(1, 50) as usize;
    let members: Vec<&User> = st
        .member_refs(&g.name)
        .into_iter()
        .filter(|u| inactive || u.active)
        .collect();
    let (items, is_last) = page(&members, start, max);
    let base = sh.base();
    let link = |s: usize| {
        format!(
            "{base}/rest/api/2/group/member?groupname={}&includeInactiveUsers={inactive}&startAt={s}&maxResults={max}",
            enc(&g.name)
        )
    };
    let mut out = j!({
        "self": link(start), "maxResults": max, "startAt": start, "total": members.len(), "isLast": is_last,
        "values": items.iter().map(|u| user_bean(&sh, &st, u, "")).collect::<Vec<_>>()
    });
    if !is_last {
        out["nextPage"] = Value::String(link(start + max));
    }
    Ok(json(200, out))
}

/// `POST /group/user?groupname=G` `{"name":"U"}` -> 201 GroupBean; already a member -> 400;
/// group or user missing -> 404 (JIRA-OAS `addUserToGroup`).
async fn add_member(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let Some(gname) = q.val("groupname") else {
        return Err(error(400, &["You must specify a group name."], &[]));
    };
    let uname = parse_body(&body)
        .and_then(|v| s(&v, "name"))
        .unwrap_or_default();
    if uname.is_empty() {
        return Err(error(400, &["You must specify a user name."], &[]));
    }
    let mut st = sh.lock_state();
    let Some(g) = st.group(gname).cloned() else {
        return Err(error(
            404,
            &[&format!("The specified group '{gname}' does not exist.")],
            &[],
        ));
    };
    let Some(u) = st.user(&uname).cloned() else {
        return Err(error(
            404,
            &[&format!("The user named '{uname}' does not exist")],
            &[],
        ));
    };
    if let Some(r) = user_write_fault(&sh, &u.name) {
        return Err(r);
    }
    if !st.add_member(&g.name, u.id) {
        return Err(error(
            400,
            &[&format!(
                "Cannot add user. '{}' is already a member of '{}'",
                u.name, g.name
            )],
            &[],
        ));
    }
    Ok(json(201, group_bean(sh.base(), &g.name)))
}

/// `DELETE /group/user?groupname=G&username=U` -> 200 (not 204); not a member -> 400 (JIRA-OAS
/// `removeUserFromGroup`).
async fn remove_member(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let (Some(gname), Some(uname)) = (q.val("groupname"), q.val("username")) else {
        return Err(error(
            400,
            &["You must specify a group name and a user name."],
            &[],
        ));
    };
    let mut st = sh.lock_state();
    let Some(g) = st.group(gname).cloned() else {
        return Err(error(
            404,
            &[&format!("The specified group '{gname}' does not exist.")],
            &[],
        ));
    };
    let Some(u) = st.user(uname).cloned() else {
        return Err(error(
            404,
            &[&format!("The user named '{uname}' does not exist")],
            &[],
        ));
    };
    if !st.remove_member(&g.name, u.id) {
        return Err(error(
            400,
            &[&format!(
                "Cannot remove user '{}' from group '{}' since user is not a member of '{}'",
                u.name, g.name, g.name
            )],
            &[],
        ));
    }
    Ok(empty(200))
}

/// `GET /groups/picker?query=&exclude=&maxResults=` -> GroupSuggestionsBean
/// `{"header","total","groups":[{"name","html","labels"}]}` (JIRA-OAS `findGroups`); the
/// default page size stands in for `jira.ajax.autocomplete.limit` (20).
async fn groups_picker(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_user(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let query = lc(q.get("query").unwrap_or(""));
    let excl: Vec<String> =
        q.0.iter()
            .filter(|(k, _)| k == "exclude")
            .map(|(_, v)| lc(v))
            .collect();
    let max = q.num("maxResults").unwrap_or(20).max(0) as usize;
    let st = sh.lock_state();
    let matched: Vec<&super::Group> = st
        .groups
        .values()
        .filter(|g| lc(&g.name).contains(&query) && !excl.contains(&lc(&g.name)))
        .collect();
    let shown: Vec<Value> = matched
        .iter()
        .take(max)
        .map(|g| j!({"name": g.name, "html": g.name, "labels": []}))
        .collect();
    Ok(json(
        200,
        j!({"header": format!("Showing {} of {} matching groups", shown.len(), matched.len()), "total": matched.len(), "groups": shown}),
    ))
}

/// `GET /myself` -> UserBean of the caller.
async fn myself(State(sh): State<Arc<Shared>>, h: HeaderMap) -> R {
    let c = require_user(&sh, &h)?;
    let st = sh.lock_state();
    match st.user(&c.name) {
        Some(u) => Ok(json(200, user_bean(&sh, &st, u, "groups,applicationRoles"))),
        None => Err(error(404, &["The current user does not exist"], &[])),
    }
}

/// `GET /mypermissions?permissions=ADMINISTER,SYSTEM_ADMIN` -> `{"permissions":{KEY:{"id","key",
/// "name","type","description","havePermission"}}}` (JIRA-OAS `getPermissions`). Only the global
/// admin permissions (and USER_PICKER/BROWSE_USERS) are modelled.
async fn mypermissions(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    let c = require_user(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let known = [
        ("ADMINISTER", "0", "Administer Jira"),
        ("SYSTEM_ADMIN", "44", "Jira System Administrators"),
        ("USER_PICKER", "27", "Browse Users"),
    ];
    let wanted: Vec<String> = q
        .get("permissions")
        .map(|p| {
            p.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_else(|| known.iter().map(|k| k.0.to_string()).collect());
    let mut perms = serde_json::Map::new();
    for w in wanted {
        let Some((key, id, name)) = known.iter().find(|k| k.0 == w) else {
            return Err(error(
                400,
                &[&format!("Could not find permission with key '{w}'")],
                &[],
            ));
        };
        let have = c.admin || *key == "USER_PICKER";
        perms.insert(
            key.to_string(),
            j!({"id": id, "key": key, "name": name, "type": "GLOBAL", "description": name, "havePermission": have}),
        );
    }
    Ok(json(200, j!({ "permissions": perms })))
}

/// `GET /serverInfo` -> ServerInfoBean; anonymous access allowed (JIRA-OAS).
async fn server_info(State(sh): State<Arc<Shared>>) -> R {
    let now = jiff::Timestamp::now().to_string();
    Ok(json(
        200,
        j!({"baseUrl": sh.base(), "version": "10.3.12", "versionNumbers": [10, 3, 12], "deploymentType": "Server",
            "buildNumber": 10030012, "buildDate": "2025-10-01T00:00:00.000+0000", "serverTime": now,
            "scmInfo": "emulator", "serverTitle": "Jira (usersync emulator)"}),
    ))
}

fn xsrf_ok(h: &HeaderMap) -> bool {
    h.get("x-atlassian-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("no-check") || v.eq_ignore_ascii_case("nocheck"))
}

fn decode_image(bytes: &[u8]) -> Option<(u32, u32)> {
    image::load_from_memory(bytes)
        .ok()
        .map(|i| (i.width(), i.height()))
}

/// `POST /user/avatar/temporary?username=&filename=&size=` step 1 of the avatar upload
/// (the Jira DC 10.3 OpenAPI's `storeTemporaryAvatar`). Needs `X-Atlassian-Token: no-check` (else 403
/// XSRF). Raw image body -> 201 AvatarCroppingBean JSON; `multipart/form-data` with field
/// `avatar` -> 201 the same JSON wrapped in an HTML page (`text/html`, the iframe legacy).
async fn avatar_temporary(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    if !xsrf_ok(&h) {
        return Err(error(403, &["XSRF check failed"], &[]));
    }
    let q = Params::parse(q.as_deref());
    let ctype = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let multipart = ctype.starts_with("multipart/form-data");
    let (bytes, img_type) = if multipart {
        match extract_multipart(&ctype, body).await {
            Some(x) => x,
            None => {
                return Err(error(
                    400,
                    &["No avatar file in the multipart request (field 'avatar')."],
                    &[],
                ));
            }
        }
    } else {
        (body.to_vec(), ctype.clone())
    };
    let Some((w, hgt)) = decode_image(&bytes) else {
        return Err(error(
            400,
            &["The uploaded file is not a valid image."],
            &[],
        ));
    };
    let mut st = sh.lock_state();
    let u = target(&st, &q)?.clone();
    st.temp_avatars.insert(
        u.id,
        Avatar {
            content_type: if img_type.is_empty() {
                "image/png".into()
            } else {
                img_type
            },
            size: bytes.len(),
            bytes,
        },
    );
    let side = w.min(hgt);
    let bean = j!({"cropperWidth": side, "cropperOffsetX": 0, "cropperOffsetY": 0,
        "url": format!("{}/secure/temporaryavatar?cropped=true", sh.base()), "needsCropping": w != hgt});
    if multipart {
        let html = format!("<html><body><textarea>{bean}</textarea></body></html>");
        return Ok((
            axum::http::StatusCode::CREATED,
            [(header::CONTENT_TYPE, "text/html;charset=UTF-8")],
            html,
        )
            .into_response());
    }
    Ok(json(201, bean))
}

/// Reads the `avatar` file field of a multipart body: `(bytes, content type)`.
pub(crate) async fn extract_multipart(ctype: &str, body: Bytes) -> Option<(Vec<u8>, String)> {
    use axum::extract::FromRequest;
    let req = axum::http::Request::builder()
        .header(header::CONTENT_TYPE, ctype)
        .body(axum::body::Body::from(body))
        .ok()?;
    let mut mp = axum::extract::Multipart::from_request(req, &())
        .await
        .ok()?;
    while let Ok(Some(field)) = mp.next_field().await {
        if field.name() == Some("avatar") {
            let ct = field
                .content_type()
                .unwrap_or("application/octet-stream")
                .to_string();
            let data = field.bytes().await.ok()?;
            return Some((data.to_vec(), ct));
        }
    }
    None
}

/// `POST /user/avatar?username=` AvatarCroppingBean -> 201 AvatarBean `{"id","owner"}` (step 2,
/// JIRA-OAS `createAvatarFromTemporary`); no temporary avatar -> 400.
async fn avatar_crop(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    if parse_body(&body).filter(|v| v.is_object()).is_none() {
        return Err(error(
            400,
            &["Unrecognized or malformed JSON request body."],
            &[],
        ));
    }
    let mut st = sh.lock_state();
    let u = target(&st, &q)?.clone();
    let Some(av) = st.temp_avatars.remove(&u.id) else {
        return Err(error(
            400,
            &["No temporary avatar was uploaded for this user."],
            &[],
        ));
    };
    st.next_avatar_id += 1;
    let id = 10500 + st.next_avatar_id;
    st.avatars.insert(id, (u.id, av));
    Ok(json(
        201,
        j!({"id": id.to_string(), "owner": u.key, "isSystemAvatar": false, "isSelected": false}),
    ))
}

/// `PUT /user/avatar?username=` `{"id"}` -> 200 AvatarBean (step 3, JIRA-OAS `updateUserAvatar`);
/// unknown id -> 404.
async fn avatar_select(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let id = parse_body(&body)
        .and_then(|v| {
            v.get("id").and_then(|x| {
                x.as_str()
                    .map(str::to_string)
                    .or_else(|| x.as_u64().map(|n| n.to_string()))
            })
        })
        .and_then(|x| x.parse::<u64>().ok());
    let Some(id) = id else {
        return Err(error(400, &["You must specify an avatar id."], &[]));
    };
    let mut st = sh.lock_state();
    let u = target(&st, &q)?.clone();
    let Some((owner, av)) = st.avatars.get(&id).cloned() else {
        return Err(error(
            404,
            &[&format!("Avatar with id '{id}' does not exist.")],
            &[],
        ));
    };
    if owner != u.id {
        return Err(error(
            400,
            &["The avatar does not belong to this user."],
            &[],
        ));
    }
    // Move the selected avatar to the end so `user_bean` links the newest selection.
    st.avatars.remove(&id);
    st.avatars.insert(id, (owner, av.clone()));
    if let Some(m) = st.user_mut(&u.name) {
        m.avatar = Some(av);
    }
    Ok(json(
        200,
        j!({"id": id.to_string(), "owner": u.key, "isSystemAvatar": false, "isSelected": true}),
    ))
}

/// `DELETE /user/avatar/{id}?username=` -> 204; unknown avatar -> 404 (JIRA-OAS `deleteAvatar_2`).
/// Deleting the selected avatar falls back to the system default.
async fn avatar_delete(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let mut st = sh.lock_state();
    let u = target(&st, &q)?.clone();
    let id: u64 = id.parse().unwrap_or(0);
    match st.avatars.get(&id) {
        Some((owner, _)) if *owner == u.id => {}
        _ => {
            return Err(error(
                404,
                &[&format!("Avatar with id '{id}' does not exist.")],
                &[],
            ));
        }
    }
    st.avatars.remove(&id);
    let remaining = st
        .avatars
        .values()
        .rev()
        .find(|(o, _)| *o == u.id)
        .map(|(_, a)| a.clone());
    if let Some(m) = st.user_mut(&u.name) {
        m.avatar = remaining;
    }
    Ok(empty(204))
}

/// `GET /user/avatars?username=` -> `{"system":[...],"custom":[...]}` (JIRA-OAS).
async fn avatars_list(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_user(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let st = sh.lock_state();
    let u = target(&st, &q)?;
    let custom: Vec<Value> = st
        .avatars
        .iter()
        .filter(|(_, (o, _))| *o == u.id)
        .map(|(id, _)| j!({"id": id.to_string(), "owner": u.key, "isSystemAvatar": false}))
        .collect();
    Ok(json(
        200,
        j!({"system": [{"id": "10122", "isSystemAvatar": true}], "custom": custom}),
    ))
}

/// `GET /secure/useravatar?ownerId=&avatarId=`: the image bytes (what `avatarUrls` point at).
async fn avatar_image(State(sh): State<Arc<Shared>>, RawQuery(q): RawQuery) -> R {
    let q = Params::parse(q.as_deref());
    let id: u64 = q.num("avatarId").unwrap_or(0).max(0) as u64;
    let st = sh.lock_state();
    match st.avatars.get(&id) {
        Some((_, av)) => Ok((
            axum::http::StatusCode::OK,
            [(header::CONTENT_TYPE, av.content_type.clone())],
            av.bytes.clone(),
        )
            .into_response()),
        None => Err(empty(404)),
    }
}
