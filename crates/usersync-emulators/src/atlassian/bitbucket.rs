//! Bitbucket Data Center REST (`{base}/rest/api/1.0`, alias `/rest/api/latest`): admin user and
//! group management, batch memberships, global permissions (licensing) and user avatars.
//!
//! Source: the official Bitbucket DC 9.4 OpenAPI
//! (`dac-static.atlassian.com/server/bitbucket/9.4.swagger.v3.json`, "BB-OAS") and the REST docs
//! at `developer.atlassian.com/server/bitbucket/rest/`. Errors are `RestErrors`
//! `{"errors":[{"context","message","exceptionName"}]}`; paging is
//! `{"size","limit","isLastPage","values","start","nextPageStart"}` with `limit` default 25
//! (BB-OAS). Bitbucket has no user deactivation: licensing follows `LICENSED_USER`.

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
    Params, Product, Shared, empty, enc, json, page, parse_body, require_admin, require_user, s,
};

type R = Result<Response, Response>;

/// `RestErrors` (BB-OAS).
pub(crate) fn error(status: u16, message: &str, exception: &str) -> Response {
    json(
        status,
        j!({"errors": [{"context": null, "message": message, "exceptionName": exception}]}),
    )
}

fn error_ctx(status: u16, context: &str, message: &str, exception: &str) -> Response {
    json(
        status,
        j!({"errors": [{"context": context, "message": message, "exceptionName": exception}]}),
    )
}

const NO_SUCH_USER: &str = "com.atlassian.bitbucket.user.NoSuchUserException";
const NO_SUCH_GROUP: &str = "com.atlassian.bitbucket.user.NoSuchGroupException";
const VALIDATION: &str = "com.atlassian.bitbucket.validation.ArgumentValidationException";
const LICENCE: &str = "com.atlassian.bitbucket.license.LicenseLimitException";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    let p = "/rest/api/1.0";
    Router::new()
        .route(
            &format!("{p}/admin/users"),
            get(admin_users)
                .post(create_user)
                .put(update_user)
                .delete(delete_user),
        )
        .route(&format!("{p}/admin/users/rename"), post(rename_user))
        .route(
            &format!("{p}/admin/users/credentials"),
            axum::routing::put(set_password),
        )
        .route(&format!("{p}/admin/users/add-groups"), post(add_groups))
        .route(
            &format!("{p}/admin/users/add-group"),
            post(add_group_legacy),
        )
        .route(
            &format!("{p}/admin/users/remove-group"),
            post(remove_group_rev),
        )
        .route(&format!("{p}/admin/users/more-members"), get(user_groups))
        .route(
            &format!("{p}/admin/users/more-non-members"),
            get(user_non_groups),
        )
        .route(
            &format!("{p}/admin/groups"),
            get(admin_groups).post(create_group).delete(delete_group),
        )
        .route(&format!("{p}/admin/groups/add-users"), post(add_users))
        .route(&format!("{p}/admin/groups/add-user"), post(add_user_legacy))
        .route(&format!("{p}/admin/groups/remove-user"), post(remove_user))
        .route(
            &format!("{p}/admin/groups/more-members"),
            get(group_members),
        )
        .route(
            &format!("{p}/admin/groups/more-non-members"),
            get(group_non_members),
        )
        .route(
            &format!("{p}/admin/permissions/groups"),
            get(perm_groups).put(perm_group_set).delete(perm_group_del),
        )
        .route(
            &format!("{p}/admin/permissions/users"),
            get(perm_users).put(perm_user_set).delete(perm_user_del),
        )
        .route(&format!("{p}/users"), get(users))
        .route(&format!("{p}/users/{{slug}}"), get(user))
        .route(
            &format!("{p}/users/{{slug}}/avatar.png"),
            get(avatar_get).post(avatar_upload).delete(avatar_delete),
        )
        .route(&format!("{p}/groups"), get(groups))
        .route(&format!("{p}/application-properties"), get(app_props))
}

/// Bitbucket user slugs are the URL-safe lower-cased name.
fn slug(name: &str) -> String {
    lc(name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn find_slug<'a>(st: &'a Dir, sl: &str) -> Option<&'a User> {
    st.users.values().find(|u| slug(&u.name) == lc(sl))
}

/// RestApplicationUser (BB-OAS).
fn app_user(sh: &Shared, u: &User) -> Value {
    j!({"name": u.name, "emailAddress": u.email, "id": u.id, "displayName": u.display_name, "active": u.active,
        "slug": slug(&u.name), "type": "NORMAL",
        "links": {"self": [{"href": format!("{}/users/{}", sh.base(), slug(&u.name))}]}})
}

/// `avatarSize` on the user endpoints (BB-OAS: "if present the service adds avatar URLs for
/// users. Set to the desired width/height of the avatar"): a positive size, else none.
fn avatar_size(q: &Params) -> Option<i64> {
    q.num("avatarSize").filter(|n| *n > 0)
}

/// Adds `avatarUrl` to a user entity when `avatarSize` was given; without it the field is
/// absent, as on Bitbucket. The URL points at this emulator's `avatar.png` route, with `v`
/// changing when an avatar is uploaded (Bitbucket appends a version the same way).
fn with_avatar(sh: &Shared, mut v: Value, u: &User, size: Option<i64>) -> Value {
    if let Some(size) = size {
        let version = u.avatar.as_ref().map_or(0, |a| a.size);
        v["avatarUrl"] = j!(format!(
            "{}/users/{}/avatar.png?s={size}&v={version}",
            sh.base(),
            slug(&u.name)
        ));
    }
    v
}

/// RestDetailedUser (BB-OAS).
fn detailed_user(sh: &Shared, u: &User) -> Value {
    let mut v = app_user(sh, u);
    v["directoryName"] = j!("Bitbucket Internal Directory");
    v["deletable"] = j!(true);
    v["mutableDetails"] = j!(true);
    v["mutableGroups"] = j!(true);
    v
}

fn detailed_group(name: &str) -> Value {
    j!({"name": name, "deletable": true})
}

/// A page `{"size","limit","isLastPage","values","start"[,"nextPageStart"]}` (BB-OAS).
fn paged(all: Vec<Value>, q: &Params) -> Response {
    let start = q.num("start").unwrap_or(0).max(0) as usize;
    let limit = q.num("limit").unwrap_or(25).clamp(1, 1000) as usize;
    let (items, last) = page(&all, start, limit);
    let mut v = j!({"size": items.len(), "limit": limit, "isLastPage": last, "values": items, "start": start});
    if !last {
        v["nextPageStart"] = j!(start + limit);
    }
    json(200, v)
}

fn matches_filter(u: &User, f: &str) -> bool {
    let f = lc(f);
    f.is_empty()
        || lc(&u.name).contains(&f)
        || lc(&u.display_name).contains(&f)
        || lc(&u.email).contains(&f)
}

/// `GET /admin/users?filter=&start&limit` -> page of RestDetailedUser (BB-OAS `getUsers_1`).
async fn admin_users(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let f = q.get("filter").unwrap_or("");
    let st = sh.lock_state();
    let all = st
        .users
        .values()
        .filter(|u| matches_filter(u, f))
        .map(|u| with_avatar(&sh, detailed_user(&sh, u), u, avatar_size(&q)))
        .collect();
    Ok(paged(all, &q))
}

/// `POST /admin/users?name=&password=&displayName=&emailAddress=&addToDefaultGroup=true&notify=`
/// -> 204 (query parameters, no body). Missing fields -> 400; existing name -> 409; licence
/// exceeded when adding to the default group -> 403 (BB-OAS `createUser`). `password` is required
/// unless `notify=true`.
async fn create_user(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let name = q.get("name").unwrap_or("").to_string();
    let display = q.get("displayName").unwrap_or("").to_string();
    let email = q.get("emailAddress").unwrap_or("").to_string();
    for (field, val) in [
        ("name", &name),
        ("displayName", &display),
        ("emailAddress", &email),
    ] {
        if val.trim().is_empty() {
            return Err(error_ctx(
                400,
                field,
                &format!("{field} must not be blank"),
                VALIDATION,
            ));
        }
    }
    if !email.contains('@') {
        return Err(error_ctx(
            400,
            "emailAddress",
            "Please enter a valid e-mail address.",
            VALIDATION,
        ));
    }
    let notify = q.flag("notify", false);
    let pw = q.val("password").map(str::to_string);
    if !notify && pw.is_none() {
        return Err(error_ctx(
            400,
            "password",
            "A password is required when notify is false.",
            VALIDATION,
        ));
    }
    if let Some(r) = user_write_fault(&sh, &name) {
        return Err(r);
    }
    let mut st = sh.lock_state();
    if st.user(&name).is_some() {
        return Err(error_ctx(
            409,
            "name",
            &format!("A user with the name '{name}' already exists."),
            "com.atlassian.bitbucket.user.DuplicateUserException",
        ));
    }
    let add_default = q.flag("addToDefaultGroup", true);
    if add_default && sh.default_group.is_some() && st.licence_full() {
        return Err(error(
            403,
            "Adding the user to the default group would exceed the license limit.",
            LICENCE,
        ));
    }
    let u = st.add_user(
        Product::Bitbucket,
        NewUser {
            name,
            display_name: display.clone(),
            first_name: display,
            last_name: String::new(),
            email,
            password: pw,
            active: true,
        },
        true,
    );
    if add_default && let Some(g) = sh.default_group.clone() {
        let gname = st.ensure_group(&g).name.clone();
        st.add_member(&gname, u.id);
    }
    Ok(empty(204))
}

/// `PUT /admin/users` `{"name","displayName","email"}` -> 200 RestDetailedUser; 404 (BB-OAS
/// `updateUserDetails`).
async fn update_user(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> R {
    require_admin(&sh, &h)?;
    let Some(v) = parse_body(&body).filter(|v| v.is_object()) else {
        return Err(error(400, "A JSON body is required", VALIDATION));
    };
    let name = s(&v, "name").unwrap_or_default();
    if let Some(r) = user_write_fault(&sh, &name) {
        return Err(r);
    }
    if let Some(e) = s(&v, "email")
        && !e.contains('@')
    {
        return Err(error_ctx(
            400,
            "email",
            "Please enter a valid e-mail address.",
            VALIDATION,
        ));
    }
    let mut st = sh.lock_state();
    let Some(u) = st.user_mut(&name) else {
        return Err(error(
            404,
            &format!("User {name} does not exist."),
            NO_SUCH_USER,
        ));
    };
    if let Some(d) = s(&v, "displayName") {
        u.display_name = d;
    }
    if let Some(e) = s(&v, "email") {
        u.email = e;
    }
    let u = u.clone();
    Ok(json(200, detailed_user(&sh, &u)))
}

/// `DELETE /admin/users?name=` -> 200 with the deleted RestDetailedUser (not 204); yourself -> 409;
/// missing -> 404 (BB-OAS `deleteUser`). Also drops the user's permissions.
async fn delete_user(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    let caller = require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let name = q.get("name").unwrap_or("").to_string();
    if lc(&name) == lc(&caller.name) {
        return Err(error(
            409,
            "You cannot delete yourself.",
            "com.atlassian.bitbucket.IntegrityException",
        ));
    }
    if let Some(r) = user_write_fault(&sh, &name) {
        return Err(r);
    }
    let mut st = sh.lock_state();
    match st.remove_user(&name) {
        Some(u) => Ok(json(200, detailed_user(&sh, &u))),
        None => Err(error(
            404,
            &format!("User {name} does not exist."),
            NO_SUCH_USER,
        )),
    }
}

/// `POST /admin/users/rename` `{"name","newName"}` -> 200 RestDetailedUser; 404; new name taken
/// or blank -> 400 (BB-OAS `renameUser`).
async fn rename_user(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> R {
    require_admin(&sh, &h)?;
    let v = parse_body(&body).unwrap_or_default();
    let (name, new) = (
        s(&v, "name").unwrap_or_default(),
        s(&v, "newName").unwrap_or_default(),
    );
    if new.trim().is_empty() {
        return Err(error_ctx(
            400,
            "newName",
            "newName must not be blank",
            VALIDATION,
        ));
    }
    for n in [&name, &new] {
        if let Some(r) = user_write_fault(&sh, n) {
            return Err(r);
        }
    }
    let mut st = sh.lock_state();
    if st.user(&name).is_none() {
        return Err(error(
            404,
            &format!("User {name} does not exist."),
            NO_SUCH_USER,
        ));
    }
    if lc(&name) != lc(&new) && st.user(&new).is_some() {
        return Err(error_ctx(
            400,
            "newName",
            &format!("A user with the name '{new}' already exists."),
            VALIDATION,
        ));
    }
    let u = st
        .rename_user(&name, &new)
        .ok_or_else(|| error(404, "gone", NO_SUCH_USER))?;
    Ok(json(200, detailed_user(&sh, &u)))
}

/// `PUT /admin/users/credentials` `{"name","password","passwordConfirm"}` -> 204 (BB-OAS).
async fn set_password(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> R {
    require_admin(&sh, &h)?;
    let v = parse_body(&body).unwrap_or_default();
    let (name, pw, pc) = (
        s(&v, "name").unwrap_or_default(),
        s(&v, "password").unwrap_or_default(),
        s(&v, "passwordConfirm").unwrap_or_default(),
    );
    if pw.is_empty() || pw != pc {
        return Err(error_ctx(
            400,
            "passwordConfirm",
            "The passwords do not match.",
            VALIDATION,
        ));
    }
    let mut st = sh.lock_state();
    match st.user_mut(&name) {
        Some(u) => {
            u.password = Some(pw);
            Ok(empty(204))
        }
        None => Err(error(
            404,
            &format!("User {name} does not exist."),
            NO_SUCH_USER,
        )),
    }
}

/// Adds `(group, user)` pairs atomically: every group and user must exist (404 otherwise), and
/// licensing new users beyond the seats -> 403 (BB-OAS `addUsersToGroup` / `addUserToGroups`).
fn add_pairs(sh: &Shared, pairs: &[(String, String)]) -> R {
    let mut st = sh.lock_state();
    let mut resolved = Vec::new();
    for (g, u) in pairs {
        let Some(grp) = st.group(g) else {
            return Err(error(
                404,
                &format!("Group {g} does not exist."),
                NO_SUCH_GROUP,
            ));
        };
        let Some(usr) = st.user(u) else {
            return Err(error(
                404,
                &format!("User {u} does not exist."),
                NO_SUCH_USER,
            ));
        };
        resolved.push((grp.name.clone(), usr.clone()));
    }
    for (_, u) in &resolved {
        if let Some(r) = user_write_fault(sh, &u.name) {
            return Err(r);
        }
    }
    // Licence check: count users who would become licensed.
    if let Some(seats) = st.seats {
        let newly: std::collections::BTreeSet<u64> = resolved
            .iter()
            .filter(|(g, u)| {
                st.group_permissions.contains_key(&lc(g)) && u.active && !st.is_licensed(u)
            })
            .map(|(_, u)| u.id)
            .collect();
        if st.licensed_count() + newly.len() > seats {
            return Err(error(
                403,
                "Adding these users would exceed the license limit.",
                LICENCE,
            ));
        }
    }
    for (g, u) in resolved {
        st.add_member(&g, u.id);
    }
    Ok(empty(200))
}

/// `POST /admin/groups/add-users` `{"group","users":[...]}` -> 200 (the one true batch write).
async fn add_users(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> R {
    require_admin(&sh, &h)?;
    let v = parse_body(&body).unwrap_or_default();
    let g = s(&v, "group").unwrap_or_default();
    let users: Vec<String> = v
        .get("users")
        .and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if g.is_empty() || users.is_empty() {
        return Err(error(400, "group and users are required", VALIDATION));
    }
    let pairs: Vec<(String, String)> = users.into_iter().map(|u| (g.clone(), u)).collect();
    add_pairs(&sh, &pairs)
}

/// `POST /admin/users/add-groups` `{"user","groups":[...]}` -> 200 (BB-OAS).
async fn add_groups(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> R {
    require_admin(&sh, &h)?;
    let v = parse_body(&body).unwrap_or_default();
    let u = s(&v, "user").unwrap_or_default();
    let groups: Vec<String> = v
        .get("groups")
        .and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if u.is_empty() || groups.is_empty() {
        return Err(error(400, "user and groups are required", VALIDATION));
    }
    let pairs: Vec<(String, String)> = groups.into_iter().map(|g| (g, u.clone())).collect();
    add_pairs(&sh, &pairs)
}

/// `POST /admin/groups/add-user` `{"context":GROUP,"itemName":USER}` -> 200 (deprecated since 2.10).
async fn add_user_legacy(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> R {
    require_admin(&sh, &h)?;
    let v = parse_body(&body).unwrap_or_default();
    add_pairs(
        &sh,
        &[(
            s(&v, "context").unwrap_or_default(),
            s(&v, "itemName").unwrap_or_default(),
        )],
    )
}

/// `POST /admin/users/add-group` `{"context":USER,"itemName":GROUP}` -> 200 (deprecated).
async fn add_group_legacy(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> R {
    require_admin(&sh, &h)?;
    let v = parse_body(&body).unwrap_or_default();
    add_pairs(
        &sh,
        &[(
            s(&v, "itemName").unwrap_or_default(),
            s(&v, "context").unwrap_or_default(),
        )],
    )
}

fn remove_pair(sh: &Shared, group: &str, user: &str) -> R {
    let mut st = sh.lock_state();
    let Some(g) = st.group(group).cloned() else {
        return Err(error(
            404,
            &format!("Group {group} does not exist."),
            NO_SUCH_GROUP,
        ));
    };
    let Some(u) = st.user(user).cloned() else {
        return Err(error(
            404,
            &format!("User {user} does not exist."),
            NO_SUCH_USER,
        ));
    };
    st.remove_member(&g.name, u.id);
    Ok(empty(200))
}

/// `POST /admin/groups/remove-user` `{"context":GROUP,"itemName":USER}` -> 200 (a POST, not a
/// DELETE; BB-OAS `removeUserFromGroup`).
async fn remove_user(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> R {
    require_admin(&sh, &h)?;
    let v = parse_body(&body).unwrap_or_default();
    remove_pair(
        &sh,
        &s(&v, "context").unwrap_or_default(),
        &s(&v, "itemName").unwrap_or_default(),
    )
}

/// `POST /admin/users/remove-group` `{"context":USER,"itemName":GROUP}` -> 200 (BB-OAS).
async fn remove_group_rev(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> R {
    require_admin(&sh, &h)?;
    let v = parse_body(&body).unwrap_or_default();
    remove_pair(
        &sh,
        &s(&v, "itemName").unwrap_or_default(),
        &s(&v, "context").unwrap_or_default(),
    )
}

/// `GET /admin/groups/more-members?context=G&filter&start&limit` -> page of RestDetailedUser.
async fn group_members(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let g = q.get("context").unwrap_or("");
    let f = q.get("filter").unwrap_or("");
    let st = sh.lock_state();
    let Some(grp) = st.group(g) else {
        return Err(error(
            404,
            &format!("Group {g} does not exist."),
            NO_SUCH_GROUP,
        ));
    };
    let all = st
        .member_refs(&grp.name)
        .into_iter()
        .filter(|u| matches_filter(u, f))
        .map(|u| with_avatar(&sh, detailed_user(&sh, u), u, avatar_size(&q)))
        .collect();
    Ok(paged(all, &q))
}

/// `GET /admin/groups/more-non-members?context=G` -> page of RestDetailedUser.
async fn group_non_members(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let g = q.get("context").unwrap_or("");
    let f = q.get("filter").unwrap_or("");
    let st = sh.lock_state();
    let Some(grp) = st.group(g) else {
        return Err(error(
            404,
            &format!("Group {g} does not exist."),
            NO_SUCH_GROUP,
        ));
    };
    let all = st
        .users
        .values()
        .filter(|u| !st.is_member(&grp.name, u.id) && matches_filter(u, f))
        .map(|u| with_avatar(&sh, detailed_user(&sh, u), u, avatar_size(&q)))
        .collect();
    Ok(paged(all, &q))
}

/// `GET /admin/users/more-members?context=U&filter` -> page of RestDetailedGroup (the user's
/// groups; the spec's description text is wrong).
async fn user_groups(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let u = q.get("context").unwrap_or("");
    let f = lc(q.get("filter").unwrap_or(""));
    let st = sh.lock_state();
    let Some(usr) = st.user(u) else {
        return Err(error(
            404,
            &format!("User {u} does not exist."),
            NO_SUCH_USER,
        ));
    };
    let all = st
        .groups_of(usr.id)
        .iter()
        .filter(|g| lc(&g.name).contains(&f))
        .map(|g| detailed_group(&g.name))
        .collect();
    Ok(paged(all, &q))
}

/// `GET /admin/users/more-non-members?context=U` -> page of RestDetailedGroup.
async fn user_non_groups(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let u = q.get("context").unwrap_or("");
    let f = lc(q.get("filter").unwrap_or(""));
    let st = sh.lock_state();
    let Some(usr) = st.user(u) else {
        return Err(error(
            404,
            &format!("User {u} does not exist."),
            NO_SUCH_USER,
        ));
    };
    let all = st
        .groups
        .values()
        .filter(|g| !st.is_member(&g.name, usr.id) && lc(&g.name).contains(&f))
        .map(|g| detailed_group(&g.name))
        .collect();
    Ok(paged(all, &q))
}

/// `GET /admin/groups?filter&start&limit` -> page of RestDetailedGroup (BB-OAS).
async fn admin_groups(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let f = lc(q.get("filter").unwrap_or(""));
    let st = sh.lock_state();
    let all = st
        .groups
        .values()
        .filter(|g| lc(&g.name).contains(&f))
        .map(|g| detailed_group(&g.name))
        .collect();
    Ok(paged(all, &q))
}

/// `GET /groups?filter&start&limit` -> page of group names (strings) (BB-OAS `getGroups`).
async fn groups(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_user(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let f = lc(q.get("filter").unwrap_or(""));
    let st = sh.lock_state();
    let all = st
        .groups
        .values()
        .filter(|g| lc(&g.name).contains(&f))
        .map(|g| j!(g.name))
        .collect();
    Ok(paged(all, &q))
}

/// `POST /admin/groups?name=G` -> 200 RestDetailedGroup (query parameter, not a body); existing ->
/// 409 (BB-OAS `createGroup`).
async fn create_group(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let name = q.get("name").unwrap_or("").to_string();
    if super::bad_group_name(&name) {
        return Err(error_ctx(
            400,
            "name",
            "name must not be blank or contain control characters",
            VALIDATION,
        ));
    }
    let mut st = sh.lock_state();
    if st.group(&name).is_some() {
        return Err(error(
            409,
            &format!("A group named '{name}' already exists."),
            "com.atlassian.bitbucket.user.DuplicateGroupException",
        ));
    }
    st.ensure_group(&name);
    Ok(json(200, detailed_group(&name)))
}

/// `DELETE /admin/groups?name=G` -> 200 RestDetailedGroup; missing -> 404; the last group granting
/// the caller admin -> 409 (BB-OAS `deleteGroup`).
async fn delete_group(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let name = q.get("name").unwrap_or("").to_string();
    let mut st = sh.lock_state();
    let Some(g) = st.group(&name).cloned() else {
        return Err(error(
            404,
            &format!("Group {name} does not exist."),
            NO_SUCH_GROUP,
        ));
    };
    let admin_left = st
        .groups
        .keys()
        .filter(|k| st.admin_groups.contains(*k))
        .count();
    if st.admin_groups.contains(&lc(&name)) && admin_left <= 1 {
        return Err(error(
            409,
            "You cannot delete the last group granting you administrative permission.",
            "com.atlassian.bitbucket.permission.PermissionException",
        ));
    }
    st.remove_group(&name);
    Ok(json(200, detailed_group(&g.name)))
}

const PERMS: [&str; 4] = ["LICENSED_USER", "PROJECT_CREATE", "ADMIN", "SYS_ADMIN"];

/// `GET /admin/permissions/groups?filter` -> page of `{"group":{"name"},"permission"}` (BB-OAS).
async fn perm_groups(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let f = lc(q.get("filter").unwrap_or(""));
    let st = sh.lock_state();
    let all = st
        .group_permissions
        .iter()
        .filter_map(|(g, p)| st.groups.get(g).map(|grp| (grp, p)))
        .filter(|(g, _)| lc(&g.name).contains(&f))
        .map(|(g, p)| j!({"group": detailed_group(&g.name), "permission": p}))
        .collect();
    Ok(paged(all, &q))
}

/// `PUT /admin/permissions/groups?name=G&permission=P` -> 204 (BB-OAS `setPermissionForGroups`).
async fn perm_group_set(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let p = q.get("permission").unwrap_or("");
    if !PERMS.contains(&p) {
        return Err(error_ctx(
            400,
            "permission",
            &format!("Invalid global permission '{p}'"),
            VALIDATION,
        ));
    }
    let names: Vec<String> =
        q.0.iter()
            .filter(|(k, _)| k == "name")
            .map(|(_, v)| v.clone())
            .collect();
    let mut st = sh.lock_state();
    for n in &names {
        if st.group(n).is_none() {
            return Err(error(
                404,
                &format!("Group {n} does not exist."),
                NO_SUCH_GROUP,
            ));
        }
    }
    for n in names {
        st.group_permissions.insert(lc(&n), p.to_string());
    }
    Ok(empty(204))
}

/// `DELETE /admin/permissions/groups?name=G` -> 204 (BB-OAS `revokePermissionsForGroup`).
async fn perm_group_del(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let n = q.get("name").unwrap_or("");
    let mut st = sh.lock_state();
    if st.group(n).is_none() {
        return Err(error(
            404,
            &format!("Group {n} does not exist."),
            NO_SUCH_GROUP,
        ));
    }
    st.group_permissions.remove(&lc(n));
    Ok(empty(204))
}

/// `GET /admin/permissions/users` -> page of `{"user","permission"}` (BB-OAS).
async fn perm_users(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let st = sh.lock_state();
    let all = st
        .user_permissions
        .iter()
        .filter_map(|(id, p)| {
            st.user_by_id(*id)
                .map(|u| j!({"user": with_avatar(&sh, app_user(&sh, u), u, avatar_size(&q)), "permission": p}))
        })
        .collect();
    Ok(paged(all, &q))
}

/// `PUT /admin/permissions/users?name=U&permission=P` -> 204; licence exceeded -> 403 (BB-OAS).
async fn perm_user_set(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let p = q.get("permission").unwrap_or("");
    if !PERMS.contains(&p) {
        return Err(error_ctx(
            400,
            "permission",
            &format!("Invalid global permission '{p}'"),
            VALIDATION,
        ));
    }
    let n = q.get("name").unwrap_or("");
    let mut st = sh.lock_state();
    let Some(u) = st.user(n).cloned() else {
        return Err(error(
            404,
            &format!("User {n} does not exist."),
            NO_SUCH_USER,
        ));
    };
    if !st.is_licensed(&u) && st.licence_full() {
        return Err(error(
            403,
            "Granting this permission would exceed the license limit.",
            LICENCE,
        ));
    }
    st.user_permissions.insert(u.id, p.to_string());
    Ok(empty(204))
}

/// `DELETE /admin/permissions/users?name=U` -> 204 (BB-OAS).
async fn perm_user_del(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let n = q.get("name").unwrap_or("");
    let mut st = sh.lock_state();
    let Some(u) = st.user(n).cloned() else {
        return Err(error(
            404,
            &format!("User {n} does not exist."),
            NO_SUCH_USER,
        ));
    };
    st.user_permissions.remove(&u.id);
    Ok(empty(204))
}

/// `GET /users?filter&start&limit` -> page of RestApplicationUser (BB-OAS `getUsers`).
async fn users(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(raw): RawQuery) -> R {
    require_user(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let f = q.get("filter").unwrap_or("");
    let st = sh.lock_state();
    let all = st
        .users
        .values()
        .filter(|u| matches_filter(u, f))
        .map(|u| with_avatar(&sh, app_user(&sh, u), u, avatar_size(&q)))
        .collect();
    Ok(paged(all, &q))
}

/// `GET /users/{userSlug}[?avatarSize=N]` -> RestApplicationUser; 404 (BB-OAS `getUser`; by
/// slug, not name).
async fn user(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    Path(sl): Path<String>,
    RawQuery(raw): RawQuery,
) -> R {
    require_user(&sh, &h)?;
    let q = Params::parse(raw.as_deref());
    let st = sh.lock_state();
    match find_slug(&st, &sl) {
        Some(u) => Ok(json(
            200,
            with_avatar(&sh, app_user(&sh, u), u, avatar_size(&q)),
        )),
        None => Err(error(
            404,
            &format!("User {sl} does not exist."),
            NO_SUCH_USER,
        )),
    }
}

/// `POST /users/{userSlug}/avatar.png` multipart field `avatar`, header
/// `X-Atlassian-Token: no-check` -> 201 (BB-OAS `uploadAvatar_1`); more than 1 MB or not an image
/// -> 400; XSRF header missing -> 403. Admins may set anyone's avatar, users their own.
async fn avatar_upload(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    Path(sl): Path<String>,
    body: Bytes,
) -> R {
    let c = require_user(&sh, &h)?;
    let xsrf = h
        .get("x-atlassian-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("no-check"));
    if !xsrf {
        return Err(error(
            403,
            "XSRF check failed",
            "com.atlassian.bitbucket.XsrfException",
        ));
    }
    let ctype = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let Some((bytes, ct)) = super::jira::extract_multipart(&ctype, body).await else {
        return Err(error_ctx(
            400,
            "avatar",
            "A multipart field named 'avatar' is required.",
            VALIDATION,
        ));
    };
    if bytes.len() > 1024 * 1024 {
        return Err(error_ctx(
            400,
            "avatar",
            "The avatar must not be larger than 1 MB.",
            VALIDATION,
        ));
    }
    let Ok(img) = image::load_from_memory(&bytes) else {
        return Err(error_ctx(
            400,
            "avatar",
            "The uploaded file is not a valid image.",
            VALIDATION,
        ));
    };
    if img.width() > 1024 || img.height() > 1024 {
        return Err(error_ctx(
            400,
            "avatar",
            "The avatar must not be larger than 1024x1024 pixels.",
            VALIDATION,
        ));
    }
    let mut st = sh.lock_state();
    let Some(u) = find_slug(&st, &sl).cloned() else {
        return Err(error(
            404,
            &format!("User {sl} does not exist."),
            NO_SUCH_USER,
        ));
    };
    if !c.admin && lc(&c.name) != lc(&u.name) {
        return Err(error(
            401,
            "You are not permitted to change this user's avatar.",
            "com.atlassian.bitbucket.AuthorisationException",
        ));
    }
    if let Some(m) = st.user_mut(&u.name) {
        m.avatar = Some(Avatar {
            content_type: ct,
            size: bytes.len(),
            bytes,
        });
    }
    Ok(empty(201))
}

/// `GET /users/{userSlug}/avatar.png` -> the image (404 when none was uploaded).
async fn avatar_get(State(sh): State<Arc<Shared>>, Path(sl): Path<String>) -> R {
    let st = sh.lock_state();
    match find_slug(&st, &sl).and_then(|u| u.avatar.clone()) {
        Some(a) => Ok((
            axum::http::StatusCode::OK,
            [(header::CONTENT_TYPE, a.content_type)],
            a.bytes,
        )
            .into_response()),
        None => Err(error(404, "No avatar", NO_SUCH_USER)),
    }
}

/// `DELETE /users/{userSlug}/avatar.png` -> 200 RestNamedLink to the default avatar (BB-OAS).
async fn avatar_delete(State(sh): State<Arc<Shared>>, h: HeaderMap, Path(sl): Path<String>) -> R {
    require_admin(&sh, &h)?;
    let mut st = sh.lock_state();
    let Some(name) = find_slug(&st, &sl).map(|u| u.name.clone()) else {
        return Err(error(
            404,
            &format!("User {sl} does not exist."),
            NO_SUCH_USER,
        ));
    };
    if let Some(u) = st.user_mut(&name) {
        u.avatar = None;
    }
    Ok(json(
        200,
        j!({"href": format!("{}/users/{}/avatar.png", sh.base(), enc(&sl)), "name": "default"}),
    ))
}

/// `GET /application-properties` -> version info (anonymous).
async fn app_props() -> R {
    Ok(json(
        200,
        j!({"version": "9.4.0", "buildNumber": "9004000", "buildDate": "1700000000000", "displayName": "Bitbucket"}),
    ))
}
