//! Crowd Data Center usermanagement REST (`{base}/rest/usermanagement/1`, alias `latest`, with
//! the `.json` suffix accepted): users, attributes, rename, groups, direct and nested
//! memberships (groups in groups), search (CQL and restriction entities) and the bulk
//! `/group/membership` read.
//!
//! Sources: the Crowd REST resources docs (`developer.atlassian.com/server/crowd/crowd-rest-resources/`,
//! `docs.atlassian.com/atlassian-crowd/latest/REST/`, the 6.x Swagger at
//! `developer.atlassian.com/server/crowd/rest/v603`), the Crowd REST plugin's UsersResource /
//! GroupsResource / ErrorEntity and the RestCrowdClient. The caller is an
//! application (Basic with the application name and password); errors are ErrorEntity
//! `{"reason","message"}`. Lists are `{"expand":"user","users":[...]}` with `start-index` /
//! `max-results` (default 1000) and no total. Resources produce XML and JSON, chosen by `Accept`
//! (or the `.json`/`.xml` suffix); without a JSON preference Jersey picks the first declared type,
//! XML. `/group/membership` is XML-only. Request bodies must be JSON here (XML bodies -> 415).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json as j};

use super::directory::{Group, NewUser, State as Dir, User, lc};
use super::faults::user_write_fault;
use super::{Params, Product, Shared, b, empty, enc, json, parse_body, require_admin, s};

type R = Result<Response, Response>;

/// ErrorEntity JSON `{"reason","message"}` (Crowd ErrorEntity).
pub(crate) fn error(status: u16, reason: &str, message: &str) -> Response {
    json(status, j!({"reason": reason, "message": message}))
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    let p = "/rest/usermanagement/1";
    Router::new()
        .route(
            &format!("{p}/user"),
            get(get_user)
                .post(create_user)
                .put(update_user)
                .delete(delete_user),
        )
        .route(&format!("{p}/user/rename"), post(rename_user))
        .route(
            &format!("{p}/user/password"),
            axum::routing::put(set_password).delete(clear_password),
        )
        .route(
            &format!("{p}/user/attribute"),
            get(user_attrs)
                .post(store_user_attrs)
                .delete(delete_user_attr),
        )
        .route(
            &format!("{p}/user/group/direct"),
            get(user_groups)
                .post(user_add_group)
                .delete(user_remove_group),
        )
        .route(&format!("{p}/user/group/nested"), get(user_groups_nested))
        .route(
            &format!("{p}/group"),
            get(get_group)
                .post(create_group)
                .put(update_group)
                .delete(delete_group),
        )
        .route(
            &format!("{p}/group/attribute"),
            get(group_attrs)
                .post(store_group_attrs)
                .delete(delete_group_attr),
        )
        .route(
            &format!("{p}/group/user/direct"),
            get(group_users)
                .post(group_add_user)
                .delete(group_remove_user),
        )
        .route(&format!("{p}/group/user/nested"), get(group_users_nested))
        .route(
            &format!("{p}/group/child-group/direct"),
            get(child_groups)
                .post(add_child_group)
                .delete(remove_child_group),
        )
        .route(
            &format!("{p}/group/child-group/nested"),
            get(child_groups_nested),
        )
        .route(
            &format!("{p}/group/parent-group/direct"),
            get(parent_groups).post(add_parent_group),
        )
        .route(
            &format!("{p}/group/parent-group/nested"),
            get(parent_groups_nested),
        )
        .route(&format!("{p}/group/membership"), get(memberships))
        .route(&format!("{p}/search"), get(search_get).post(search_post))
        .route(&format!("{p}/authentication"), post(authenticate))
}

/// Crowd-wide request handling around every usermanagement route:
/// - the application's remote-address allow-list: an authenticated application calling from
///   another address gets Crowd's Tomcat 403 HTML page (`Client with address "…" is
///   forbidden from making requests to the application, …`);
/// - XML request bodies are not supported by the emulator (415);
/// - content negotiation: JSON responses are rewritten to Crowd's XML unless the client asked
///   for JSON.
pub(crate) async fn negotiate(State(sh): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let remote = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = remote
        && let Some(app) = super::authenticate(&sh, req.headers())
    {
        let allowed = sh
            .crowd_allowed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !allowed.contains(&ip) {
            let msg = format!(
                "Client with address \"{ip}\" is forbidden from making requests to the application, {}.",
                app.name
            );
            let html = format!(
                "<!doctype html><html lang=\"en\"><head><title>HTTP Status 403 – Forbidden</title></head><body><h1>HTTP Status 403 – Forbidden</h1><p><b>Message</b> {}</p></body></html>",
                xml_escape(&msg)
            );
            return (
                axum::http::StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "text/html;charset=utf-8")],
                html,
            )
                .into_response();
        }
    }
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ctype.contains("xml") {
        return error(
            415,
            "UNSUPPORTED_OPERATION",
            "The emulator accepts JSON request bodies only",
        );
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let want_xml = !accept.contains("json");
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !want_xml || !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return error(500, "OPERATION_FAILED", "Could not read the response body");
    };
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>{}",
        to_xml(root_name(&v, &path), &v)
    );
    parts.headers.insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/xml"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(xml))
}

/// The XML root element of a Crowd entity.
fn root_name(v: &Value, path: &str) -> &'static str {
    if v.get("reason").is_some() && v.get("message").is_some() {
        "error"
    } else if v.get("users").is_some() {
        "users"
    } else if v.get("groups").is_some() {
        "groups"
    } else if v.get("attributes").is_some_and(Value::is_array) {
        "attributes"
    } else if path.ends_with("/group") || path.contains("/user/group/") {
        "group"
    } else {
        "user"
    }
}

/// Child element name for the items of a list-valued field.
fn item_name(list: &str) -> &str {
    match list {
        "users" => "user",
        "groups" => "group",
        "attributes" => "attribute",
        "values" => "value",
        other => other,
    }
}

/// Crowd's JAXB shape: `name`/`expand` become XML attributes, `link` objects become
/// `<link rel href/>`, lists repeat the singular element, scalars become text elements.
fn to_xml(name: &str, v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut attrs = String::new();
            let mut body = String::new();
            // JAXB writes elements in declaration order (UserEntity, GroupEntity, ErrorEntity);
            // serde_json maps are sorted, so restore that order.
            const ORDER: [&str; 14] = [
                "link",
                "first-name",
                "last-name",
                "display-name",
                "email",
                "password",
                "key",
                "description",
                "type",
                "active",
                "attributes",
                "reason",
                "message",
                "values",
            ];
            let mut fields: Vec<(&String, &Value)> = m.iter().collect();
            fields.sort_by_key(|(k, _)| ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()));
            for (k, x) in fields {
                match (k.as_str(), x) {
                    ("name" | "expand", Value::String(s)) if name != "error" => {
                        attrs.push_str(&format!(" {k}=\"{}\"", xml_escape(s)));
                    }
                    ("link", Value::Object(l)) => {
                        let get = |f: &str| {
                            l.get(f)
                                .and_then(Value::as_str)
                                .map(xml_escape)
                                .unwrap_or_default()
                        };
                        body.push_str(&format!(
                            "<link rel=\"{}\" href=\"{}\"/>",
                            get("rel"),
                            get("href")
                        ));
                    }
                    (_, Value::Array(items)) => {
                        let child = item_name(k);
                        let inner: String = items.iter().map(|i| to_xml(child, i)).collect();
                        if k == name {
                            // `<users><user/>..</users>`: the list is the element itself.
                            body.push_str(&inner);
                        } else {
                            body.push_str(&format!("<{k}>{inner}</{k}>"));
                        }
                    }
                    _ => body.push_str(&to_xml(k, x)),
                }
            }
            format!("<{name}{attrs}>{body}</{name}>")
        }
        Value::Null => format!("<{name}/>"),
        Value::String(s) => format!("<{name}>{}</{name}>", xml_escape(s)),
        other => format!("<{name}>{other}</{name}>"),
    }
}

fn api(sh: &Shared) -> String {
    format!("{}/rest/usermanagement/1", sh.base())
}

fn user_link(sh: &Shared, name: &str) -> Value {
    j!({"href": format!("{}/user?username={}", api(sh), enc(name)), "rel": "self"})
}

fn group_link(sh: &Shared, name: &str) -> Value {
    j!({"href": format!("{}/group?groupname={}", api(sh), enc(name)), "rel": "self"})
}

fn attrs_json(a: &std::collections::BTreeMap<String, Vec<String>>, link: String) -> Value {
    j!({"attributes": a.iter().map(|(k, v)| j!({"name": k, "values": v})).collect::<Vec<_>>(),
        "link": {"href": link, "rel": "self"}})
}

/// User entity (crowd4s fixture captured from a real server; `key` in newer Crowd).
fn user_entity(sh: &Shared, u: &User, with_attrs: bool) -> Value {
    let a = format!("{}/user/attribute?username={}", api(sh), enc(&u.name));
    j!({
        "expand": "attributes",
        "link": user_link(sh, &u.name),
        "name": u.name,
        "key": u.key,
        "first-name": u.first_name,
        "last-name": u.last_name,
        "display-name": u.display_name,
        "email": u.email,
        "password": {"link": {"href": format!("{}/user/password?username={}", api(sh), enc(&u.name)), "rel": "edit"}},
        "active": u.active,
        "attributes": if with_attrs { attrs_json(&u.attributes, a) } else { j!({"attributes": [], "link": {"href": a, "rel": "self"}}) }
    })
}

fn group_entity(sh: &Shared, g: &Group, with_attrs: bool) -> Value {
    let a = format!("{}/group/attribute?groupname={}", api(sh), enc(&g.name));
    j!({
        "expand": "attributes",
        "link": group_link(sh, &g.name),
        "name": g.name,
        "description": g.description,
        "type": "GROUP",
        "active": g.active,
        "attributes": if with_attrs { attrs_json(&g.attributes, a) } else { j!({"attributes": [], "link": {"href": a, "rel": "self"}}) }
    })
}

fn expands(q: &Params, what: &str) -> bool {
    q.get("expand")
        .is_some_and(|e| e.split(',').any(|x| x.trim() == what))
}

/// `Validate.notNull` on a query parameter -> 400 ILLEGAL_ARGUMENT "<p> query parameter must be
/// given" (UsersResource).
fn required<'a>(q: &'a Params, p: &str) -> Result<&'a str, Response> {
    q.val(p).ok_or_else(|| {
        error(
            400,
            "ILLEGAL_ARGUMENT",
            &format!("{p} query parameter must be given"),
        )
    })
}

fn find_user<'a>(st: &'a Dir, name: &str) -> Result<&'a User, Response> {
    st.user(name).ok_or_else(|| {
        error(
            404,
            "USER_NOT_FOUND",
            &format!("User <{name}> does not exist"),
        )
    })
}

fn find_group<'a>(st: &'a Dir, name: &str) -> Result<&'a Group, Response> {
    st.group(name).ok_or_else(|| {
        error(
            404,
            "GROUP_NOT_FOUND",
            &format!("Group <{name}> does not exist"),
        )
    })
}

fn created(location: String, body: Option<Value>) -> Response {
    let mut r = match body {
        Some(v) => json(201, v),
        None => empty(201),
    };
    if let Ok(l) = location.parse() {
        r.headers_mut().insert(header::LOCATION, l);
    }
    r
}

/// `GET /user?username=U|key=K[&expand=attributes]` -> 200 user; 404 USER_NOT_FOUND.
async fn get_user(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let st = sh.lock_state();
    let u = match (q.val("username"), q.val("key")) {
        (Some(n), _) => find_user(&st, n)?,
        (None, Some(k)) => st.user_by_key(k).ok_or_else(|| {
            error(
                404,
                "USER_NOT_FOUND",
                &format!("User with key <{k}> does not exist"),
            )
        })?,
        _ => {
            return Err(error(
                400,
                "ILLEGAL_ARGUMENT",
                "username query parameter must be given",
            ));
        }
    };
    Ok(json(200, user_entity(&sh, u, expands(&q, "attributes"))))
}

fn read_attrs(v: &Value) -> Vec<(String, Vec<String>)> {
    v.get("attributes")
        .and_then(|a| a.as_array())
        .map(|arr| {
            arr.iter()
                .filter_map(|x| {
                    let n = s(x, "name")?;
                    let vals = x
                        .get("values")
                        .and_then(|v| v.as_array())
                        .map(|v| {
                            v.iter()
                                .filter_map(|y| y.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    Some((n, vals))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `POST /user` user entity with `password.value` -> 201 + `Location` and the created user.
/// `name` and `password.value` are required (400 ILLEGAL_ARGUMENT / INVALID_CREDENTIAL); an
/// existing user -> 400 INVALID_USER (UsersResource; the exact status for duplicates is
/// unverified). `attributes.attributes` in the body is stored (newer Crowd, RestCrowdClient).
async fn create_user(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> R {
    require_admin(&sh, &h)?;
    let Some(v) = parse_body(&body).filter(|v| v.is_object()) else {
        return Err(error(
            400,
            "ILLEGAL_ARGUMENT",
            "A user entity body is required",
        ));
    };
    let name = s(&v, "name").unwrap_or_default();
    if name.trim().is_empty() {
        return Err(error(400, "ILLEGAL_ARGUMENT", "User name must be given"));
    }
    let Some(pw) = v.get("password").and_then(|p| s(p, "value")) else {
        return Err(error(400, "INVALID_CREDENTIAL", "Password must be given"));
    };
    if let Some(r) = user_write_fault(&sh, &name) {
        return Err(r);
    }
    let email = s(&v, "email").unwrap_or_default();
    if !email.is_empty() && !email.contains('@') {
        return Err(error(
            400,
            "INVALID_EMAIL",
            &format!("Invalid email address <{email}>"),
        ));
    }
    let mut st = sh.lock_state();
    if st.user(&name).is_some() {
        return Err(error(
            400,
            "INVALID_USER",
            &format!("User <{name}> already exists"),
        ));
    }
    let first = s(&v, "first-name").unwrap_or_default();
    let last = s(&v, "last-name").unwrap_or_default();
    let display =
        s(&v, "display-name").unwrap_or_else(|| format!("{first} {last}").trim().to_string());
    let u = st.add_user(
        Product::Crowd,
        NewUser {
            name: name.clone(),
            display_name: display,
            first_name: first,
            last_name: last,
            email,
            password: Some(pw),
            active: b(&v, "active").unwrap_or(true),
        },
        true,
    );
    let attrs = v.get("attributes").map(read_attrs).unwrap_or_default();
    if let Some(m) = st.user_mut(&name) {
        for (k, vals) in attrs {
            m.attributes.insert(k, vals);
        }
    }
    let u = st.user(&u.name).cloned().unwrap_or(u);
    Ok(created(
        format!("{}/user?username={}", api(&sh), enc(&u.name)),
        Some(user_entity(&sh, &u, true)),
    ))
}

/// `PUT /user?username=U` full user entity -> 204. The body `name` must equal `U`
/// case-insensitively, else 400 ILLEGAL_ARGUMENT (UsersResource). Fields absent from the body
/// are left unchanged here.
async fn update_user(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let name = required(&q, "username")?.to_string();
    let Some(v) = parse_body(&body).filter(|v| v.is_object()) else {
        return Err(error(
            400,
            "ILLEGAL_ARGUMENT",
            "A user entity body is required",
        ));
    };
    let body_name = s(&v, "name").unwrap_or_default();
    if lc(&body_name) != lc(&name) {
        return Err(error(
            400,
            "ILLEGAL_ARGUMENT",
            &format!(
                "The names of the resource location <{name}> and object <{body_name}> are not equal"
            ),
        ));
    }
    if let Some(r) = user_write_fault(&sh, &name) {
        return Err(r);
    }
    let mut st = sh.lock_state();
    find_user(&st, &name)?;
    if let Some(u) = st.user_mut(&name) {
        if let Some(x) = s(&v, "first-name") {
            u.first_name = x;
        }
        if let Some(x) = s(&v, "last-name") {
            u.last_name = x;
        }
        if let Some(x) = s(&v, "display-name") {
            u.display_name = x;
        }
        if let Some(x) = s(&v, "email") {
            u.email = x;
        }
        if let Some(a) = b(&v, "active") {
            u.active = a;
        }
        if let Some(pw) = v.get("password").and_then(|p| s(p, "value")) {
            u.password = Some(pw);
        }
    }
    Ok(empty(204))
}

/// `DELETE /user?username=U` -> 204; 404 USER_NOT_FOUND.
async fn delete_user(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let name = required(&q, "username")?.to_string();
    if let Some(r) = user_write_fault(&sh, &name) {
        return Err(r);
    }
    let mut st = sh.lock_state();
    find_user(&st, &name)?;
    st.remove_user(&name);
    Ok(empty(204))
}

/// `POST /user/rename?username=OLD` `{"new-name":"NEW"}` -> 200 renamed user (Crowd 2.8.4+,
/// RestCrowdClient). Missing `new-name` -> 400 ILLEGAL_ARGUMENT; target exists -> 400
/// INVALID_USER (CWD-4819 once gave 500; the fixed status is unverified).
async fn rename_user(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let name = required(&q, "username")?.to_string();
    let Some(new) = parse_body(&body)
        .and_then(|v| s(&v, "new-name"))
        .filter(|n| !n.trim().is_empty())
    else {
        return Err(error(400, "ILLEGAL_ARGUMENT", "new-name must be given"));
    };
    for n in [&name, &new] {
        if let Some(r) = user_write_fault(&sh, n) {
            return Err(r);
        }
    }
    let mut st = sh.lock_state();
    find_user(&st, &name)?;
    if lc(&new) != lc(&name) && st.user(&new).is_some() {
        return Err(error(
            400,
            "INVALID_USER",
            &format!("User {new} already exists."),
        ));
    }
    let u = st
        .rename_user(&name, &new)
        .ok_or_else(|| error(404, "USER_NOT_FOUND", "gone"))?;
    Ok(json(200, user_entity(&sh, &u, false)))
}

/// `PUT /user/password?username=U` `{"value"}` -> 204.
async fn set_password(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let name = required(&q, "username")?.to_string();
    let Some(pw) = parse_body(&body).and_then(|v| s(&v, "value")) else {
        return Err(error(
            400,
            "INVALID_CREDENTIAL",
            "Password value must be given",
        ));
    };
    let mut st = sh.lock_state();
    find_user(&st, &name)?;
    if let Some(u) = st.user_mut(&name) {
        u.password = Some(pw);
    }
    Ok(empty(204))
}

/// `DELETE /user/password?username=U` -> 204.
async fn clear_password(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let name = required(&q, "username")?.to_string();
    let mut st = sh.lock_state();
    find_user(&st, &name)?;
    if let Some(u) = st.user_mut(&name) {
        u.password = None;
    }
    Ok(empty(204))
}

/// `GET /user/attribute?username=U` -> `{"attributes":[{"name","values"}],"link"}`.
async fn user_attrs(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let name = required(&q, "username")?;
    let st = sh.lock_state();
    let u = find_user(&st, name)?;
    Ok(json(
        200,
        attrs_json(
            &u.attributes,
            format!("{}/user/attribute?username={}", api(&sh), enc(&u.name)),
        ),
    ))
}

/// `POST /user/attribute?username=U` `{"attributes":[{"name","values"}]}` -> 204 (the real method
/// is POST; a PUT gets 405 — atlassian-python-api's `user_store_attributes` uses PUT).
async fn store_user_attrs(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let name = required(&q, "username")?.to_string();
    let Some(v) = parse_body(&body) else {
        return Err(error(
            400,
            "ILLEGAL_ARGUMENT",
            "An attributes body is required",
        ));
    };
    let mut st = sh.lock_state();
    find_user(&st, &name)?;
    if let Some(u) = st.user_mut(&name) {
        for (k, vals) in read_attrs(&v) {
            u.attributes.insert(k, vals);
        }
    }
    Ok(empty(204))
}

/// `DELETE /user/attribute?username=U&attributename=A` -> 204.
async fn delete_user_attr(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let name = required(&q, "username")?.to_string();
    let attr = required(&q, "attributename")?.to_string();
    let mut st = sh.lock_state();
    find_user(&st, &name)?;
    if let Some(u) = st.user_mut(&name) {
        u.attributes.remove(&attr);
    }
    Ok(empty(204))
}

/// `GET /group?groupname=G[&expand=attributes]` -> 200 group; 404 GROUP_NOT_FOUND.
async fn get_group(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let name = required(&q, "groupname")?;
    let st = sh.lock_state();
    let g = find_group(&st, name)?;
    Ok(json(200, group_entity(&sh, g, expands(&q, "attributes"))))
}

/// `POST /group` `{"name","type":"GROUP","description","active"}` -> 201 + `Location`; existing
/// -> 400 INVALID_GROUP (status unverified).
async fn create_group(State(sh): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> R {
    require_admin(&sh, &h)?;
    let v = parse_body(&body).unwrap_or_default();
    let name = s(&v, "name").unwrap_or_default();
    if super::bad_group_name(&name) {
        return Err(error(
            400,
            "INVALID_GROUP",
            "Group name must be given and must not contain control characters",
        ));
    }
    let mut st = sh.lock_state();
    if st.group(&name).is_some() {
        return Err(error(
            400,
            "INVALID_GROUP",
            &format!("Group <{name}> already exists"),
        ));
    }
    st.ensure_group(&name);
    let l = lc(&name);
    if let Some(g) = st.groups.get_mut(&l) {
        g.description = s(&v, "description").unwrap_or_default();
        g.active = b(&v, "active").unwrap_or(true);
    }
    Ok(created(
        format!("{}/group?groupname={}", api(&sh), enc(&name)),
        None,
    ))
}

/// `PUT /group?groupname=G` full group entity -> 200 with the group (not 204); name mismatch ->
/// 400 INVALID_GROUP (GroupsResource).
async fn update_group(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let name = required(&q, "groupname")?.to_string();
    let v = parse_body(&body).unwrap_or_default();
    let body_name = s(&v, "name").unwrap_or_default();
    if lc(&body_name) != lc(&name) {
        return Err(error(
            400,
            "INVALID_GROUP",
            &format!(
                "The names of the resource location <{name}> and object <{body_name}> are not equal"
            ),
        ));
    }
    let mut st = sh.lock_state();
    find_group(&st, &name)?;
    let l = lc(&name);
    if let Some(g) = st.groups.get_mut(&l) {
        if let Some(d) = s(&v, "description") {
            g.description = d;
        }
        if let Some(a) = b(&v, "active") {
            g.active = a;
        }
    }
    let g = st
        .groups
        .get(&l)
        .cloned()
        .ok_or_else(|| error(404, "GROUP_NOT_FOUND", "gone"))?;
    Ok(json(200, group_entity(&sh, &g, false)))
}

/// `DELETE /group?groupname=G` -> 204; 404 GROUP_NOT_FOUND.
async fn delete_group(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let name = required(&q, "groupname")?.to_string();
    let mut st = sh.lock_state();
    find_group(&st, &name)?;
    st.remove_group(&name);
    Ok(empty(204))
}

/// `GET /group/attribute?groupname=G`.
async fn group_attrs(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let name = required(&q, "groupname")?;
    let st = sh.lock_state();
    let g = find_group(&st, name)?;
    Ok(json(
        200,
        attrs_json(
            &g.attributes,
            format!("{}/group/attribute?groupname={}", api(&sh), enc(&g.name)),
        ),
    ))
}

/// `POST /group/attribute?groupname=G` -> 204.
async fn store_group_attrs(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let name = required(&q, "groupname")?.to_string();
    let v = parse_body(&body).unwrap_or_default();
    let mut st = sh.lock_state();
    find_group(&st, &name)?;
    if let Some(g) = st.groups.get_mut(&lc(&name)) {
        for (k, vals) in read_attrs(&v) {
            g.attributes.insert(k, vals);
        }
    }
    Ok(empty(204))
}

/// `DELETE /group/attribute?groupname=G&attributename=A` -> 204.
async fn delete_group_attr(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let name = required(&q, "groupname")?.to_string();
    let attr = required(&q, "attributename")?.to_string();
    let mut st = sh.lock_state();
    find_group(&st, &name)?;
    if let Some(g) = st.groups.get_mut(&lc(&name)) {
        g.attributes.remove(&attr);
    }
    Ok(empty(204))
}

/// `start-index` (default 0) / `max-results` (default 1000) slicing (AbstractResource).
/// `max-results=-1` means "all results" (Crowd's `EntityQuery.ALL_RESULTS`; the usermanagement
/// REST docs: "max-results: maximum number of results returned, -1 for all").
/// <https://docs.atlassian.com/atlassian-crowd/latest/com/atlassian/crowd/search/query/entity/EntityQuery.html>
/// The test knob `crowd_results_cap` lowers every page below what was asked for.
fn window<T: Clone>(sh: &Shared, q: &Params, all: &[T]) -> Vec<T> {
    let start = q.num("start-index").unwrap_or(0).max(0) as usize;
    let max = match q.num("max-results").unwrap_or(1000) {
        -1 => usize::MAX,
        n => n.max(0) as usize,
    };
    let max = sh.crowd_results_cap.map_or(max, |cap| max.min(cap));
    super::page(all, start, max).0
}

fn user_list(sh: &Shared, q: &Params, users: &[User]) -> Value {
    let full = expands(q, "user");
    let items: Vec<Value> = window(sh, q, users)
        .iter()
        .map(|u| {
            if full {
                user_entity(sh, u, expands(q, "attributes"))
            } else {
                j!({"link": user_link(sh, &u.name), "name": u.name})
            }
        })
        .collect();
    j!({"expand": "user", "users": items})
}

fn group_list(sh: &Shared, q: &Params, groups: &[Group]) -> Value {
    let full = expands(q, "group");
    let items: Vec<Value> = window(sh, q, groups)
        .iter()
        .map(|g| {
            if full {
                group_entity(sh, g, expands(q, "attributes"))
            } else {
                j!({"link": group_link(sh, &g.name), "name": g.name})
            }
        })
        .collect();
    j!({"expand": "group", "groups": items})
}

/// `GET /group/user/direct?groupname=G[&username=U]`: with `username`, 200 the user if a direct
/// member else 404 MEMBERSHIP_NOT_FOUND; without, `{"expand":"user","users":[...]}`.
async fn group_users(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    group_users_of(&sh, &h, q, false)
}

/// `GET /group/user/nested?groupname=G[&username=U]`: the same over the group and every group
/// nested in it (Crowd REST resources, "Group - Nested Users").
async fn group_users_nested(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> R {
    group_users_of(&sh, &h, q, true)
}

fn group_users_of(sh: &Shared, h: &HeaderMap, q: Option<String>, nested: bool) -> R {
    require_admin(sh, h)?;
    let q = Params::parse(q.as_deref());
    let gname = required(&q, "groupname")?;
    let st = sh.lock_state();
    let g = find_group(&st, gname)?;
    let users = if nested {
        st.nested_members_of(&g.name)
    } else {
        st.members_of(&g.name)
    };
    let kind = if nested { "nested" } else { "direct" };
    if let Some(un) = q.val("username") {
        return match users.iter().find(|u| lc(&u.name) == lc(un)) {
            Some(u) => Ok(json(
                200,
                j!({"link": user_link(sh, &u.name), "name": u.name}),
            )),
            None => Err(error(
                404,
                "MEMBERSHIP_NOT_FOUND",
                &format!("User <{un}> is not a {kind} member of group <{}>", g.name),
            )),
        };
    }
    Ok(json(200, user_list(sh, &q, &users)))
}

/// `POST /group/user/direct?groupname=G` `{"name":"U"}` -> 201; user missing -> **400**
/// USER_NOT_FOUND; group missing -> 404; already a member -> 409 MEMBERSHIP_ALREADY_EXISTS
/// (GroupsResource; Go crowd client `AddUserToGroup`).
async fn group_add_user(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let gname = required(&q, "groupname")?.to_string();
    let Some(un) = parse_body(&body).and_then(|v| s(&v, "name")) else {
        return Err(error(400, "ILLEGAL_ARGUMENT", "User name must be given"));
    };
    add_membership(&sh, &gname, &un, false)
}

fn add_membership(sh: &Arc<Shared>, gname: &str, un: &str, group_is_other: bool) -> R {
    if let Some(r) = user_write_fault(sh, un) {
        return Err(r);
    }
    let mut st = sh.lock_state();
    // The entity named in the URL is 404 when missing; the one in the body is 400.
    let g = match st.group(gname) {
        Some(g) => g.clone(),
        None if group_is_other => {
            return Err(error(
                400,
                "GROUP_NOT_FOUND",
                &format!("Group <{gname}> does not exist"),
            ));
        }
        None => {
            return Err(error(
                404,
                "GROUP_NOT_FOUND",
                &format!("Group <{gname}> does not exist"),
            ));
        }
    };
    let u = match st.user(un) {
        Some(u) => u.clone(),
        None if group_is_other => {
            return Err(error(
                404,
                "USER_NOT_FOUND",
                &format!("User <{un}> does not exist"),
            ));
        }
        None => {
            return Err(error(
                400,
                "USER_NOT_FOUND",
                &format!("User <{un}> does not exist"),
            ));
        }
    };
    if !st.add_member(&g.name, u.id) {
        return Err(error(
            409,
            "MEMBERSHIP_ALREADY_EXISTS",
            &format!(
                "User <{}> is already a direct member of group <{}>",
                u.name, g.name
            ),
        ));
    }
    Ok(created(
        format!(
            "{}/group/user/direct?groupname={}&username={}",
            api(sh),
            enc(&g.name),
            enc(&u.name)
        ),
        None,
    ))
}

fn remove_membership(sh: &Arc<Shared>, gname: &str, un: &str) -> R {
    let mut st = sh.lock_state();
    let g = find_group(&st, gname)?.clone();
    let u = find_user(&st, un)?.clone();
    if !st.remove_member(&g.name, u.id) {
        return Err(error(
            404,
            "MEMBERSHIP_NOT_FOUND",
            &format!(
                "User <{}> is not a direct member of group <{}>",
                u.name, g.name
            ),
        ));
    }
    Ok(empty(204))
}

/// `DELETE /group/user/direct?groupname=G&username=U` -> 204; 404 MEMBERSHIP_NOT_FOUND /
/// GROUP_NOT_FOUND / USER_NOT_FOUND.
async fn group_remove_user(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let g = required(&q, "groupname")?.to_string();
    let u = required(&q, "username")?.to_string();
    remove_membership(&sh, &g, &u)
}

/// `GET /user/group/direct?username=U[&groupname=G]` -> `{"expand":"group","groups":[...]}` (or the
/// single group / 404 MEMBERSHIP_NOT_FOUND with `groupname`).
async fn user_groups(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    user_groups_of(&sh, &h, q, false)
}

/// `GET /user/group/nested?username=U[&groupname=G]`: the user's groups and every group they
/// are nested in (Crowd REST resources, "User - Nested Groups").
async fn user_groups_nested(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> R {
    user_groups_of(&sh, &h, q, true)
}

fn user_groups_of(sh: &Shared, h: &HeaderMap, q: Option<String>, nested: bool) -> R {
    require_admin(sh, h)?;
    let q = Params::parse(q.as_deref());
    let un = required(&q, "username")?;
    let st = sh.lock_state();
    let u = find_user(&st, un)?;
    let groups = if nested {
        st.nested_groups_of(u.id)
    } else {
        st.groups_of(u.id)
    };
    let kind = if nested { "nested" } else { "direct" };
    if let Some(gn) = q.val("groupname") {
        return match groups.iter().find(|g| lc(&g.name) == lc(gn)) {
            Some(g) => Ok(json(
                200,
                j!({"link": group_link(sh, &g.name), "name": g.name}),
            )),
            None => Err(error(
                404,
                "MEMBERSHIP_NOT_FOUND",
                &format!("User <{}> is not a {kind} member of group <{gn}>", u.name),
            )),
        };
    }
    Ok(json(200, group_list(sh, &q, &groups)))
}

/// `POST /user/group/direct?username=U` `{"name":"G"}` -> 201; group missing -> **400**
/// GROUP_NOT_FOUND; user missing -> 404 (UsersResource). atlassian-python-api's `group_add_user`
/// sends `?groupname=` here instead, which Crowd rejects with 400 ILLEGAL_ARGUMENT.
async fn user_add_group(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let un = required(&q, "username")?.to_string();
    let Some(gn) = parse_body(&body).and_then(|v| s(&v, "name")) else {
        return Err(error(400, "ILLEGAL_ARGUMENT", "Group name must be given"));
    };
    add_membership(&sh, &gn, &un, true)
}

/// `DELETE /user/group/direct?username=U&groupname=G` -> 204.
async fn user_remove_group(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let u = required(&q, "username")?.to_string();
    let g = required(&q, "groupname")?.to_string();
    remove_membership(&sh, &g, &u)
}

/// Which way a group-in-group listing looks from the group named in `groupname`.
#[derive(Clone, Copy)]
enum Rel {
    Children,
    Parents,
}

/// `GET /group/child-group/{direct|nested}?groupname=G[&child-groupname=C]` and
/// `GET /group/parent-group/{direct|nested}?groupname=G[&parent-groupname=P]`: the group's
/// child (or parent) groups as `{"expand":"group","groups":[...]}` with `start-index` /
/// `max-results`; with the single-name parameter, 200 that group or 404 MEMBERSHIP_NOT_FOUND;
/// an unknown `groupname` is 404 GROUP_NOT_FOUND. Crowd REST resources ("Group - Direct/Nested
/// Child Groups", "Group - Direct/Nested Parent Groups"),
/// <https://developer.atlassian.com/server/crowd/crowd-rest-resources/>; RestCrowdClient
/// `getChildGroupsOfGroup` / `getParentGroupsForGroup` / `getNestedChildGroupsOfGroup`.
fn related_groups(sh: &Shared, h: &HeaderMap, q: Option<String>, rel: Rel, nested: bool) -> R {
    require_admin(sh, h)?;
    let q = Params::parse(q.as_deref());
    let gname = required(&q, "groupname")?;
    let st = sh.lock_state();
    let g = find_group(&st, gname)?;
    let groups = match (rel, nested) {
        (Rel::Children, false) => st.children_of(&g.name),
        (Rel::Children, true) => st.descendants_of(&g.name),
        (Rel::Parents, false) => st.parents_of(&g.name),
        (Rel::Parents, true) => st.ancestors_of(&g.name),
    };
    let one = match rel {
        Rel::Children => "child-groupname",
        Rel::Parents => "parent-groupname",
    };
    if let Some(other) = q.val(one) {
        return match groups.iter().find(|x| lc(&x.name) == lc(other)) {
            Some(x) => Ok(json(
                200,
                j!({"link": group_link(sh, &x.name), "name": x.name}),
            )),
            None => {
                let (child, parent) = match rel {
                    Rel::Children => (other, g.name.as_str()),
                    Rel::Parents => (g.name.as_str(), other),
                };
                let kind = if nested { "nested" } else { "direct" };
                Err(error(
                    404,
                    "MEMBERSHIP_NOT_FOUND",
                    &format!("Group <{child}> is not a {kind} member of group <{parent}>"),
                ))
            }
        };
    }
    Ok(json(200, group_list(sh, &q, &groups)))
}

async fn child_groups(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    related_groups(&sh, &h, q, Rel::Children, false)
}

async fn child_groups_nested(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> R {
    related_groups(&sh, &h, q, Rel::Children, true)
}

async fn parent_groups(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    related_groups(&sh, &h, q, Rel::Parents, false)
}

async fn parent_groups_nested(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> R {
    related_groups(&sh, &h, q, Rel::Parents, true)
}

/// Adds `child` as a direct member of `parent`. As with user memberships, the group named in
/// the URL is 404 when missing and the one in the body 400 (GroupsResource); an existing edge
/// is 409 MEMBERSHIP_ALREADY_EXISTS; a group inside itself is 400 INVALID_MEMBERSHIP
/// (`DirectoryManagerGeneric.addGroupToGroup` refuses it; the exact status is unverified).
/// Cycles through other groups are accepted: Crowd's nested queries tolerate them.
fn add_group_edge(sh: &Shared, parent: &str, child: &str, url_is_parent: bool) -> R {
    let mut st = sh.lock_state();
    let missing = |name: &str, in_url: bool| {
        error(
            if in_url { 404 } else { 400 },
            "GROUP_NOT_FOUND",
            &format!("Group <{name}> does not exist"),
        )
    };
    let (url, body) = if url_is_parent {
        (parent, child)
    } else {
        (child, parent)
    };
    let Some(url_group) = st.group(url).cloned() else {
        return Err(missing(url, true));
    };
    let Some(body_group) = st.group(body).cloned() else {
        return Err(missing(body, false));
    };
    let (p, c) = if url_is_parent {
        (url_group, body_group)
    } else {
        (body_group, url_group)
    };
    if lc(&p.name) == lc(&c.name) {
        return Err(error(
            400,
            "INVALID_MEMBERSHIP",
            &format!("Cannot add group <{}> as a member of itself", p.name),
        ));
    }
    if !st.add_child(&p.name, &c.name) {
        return Err(error(
            409,
            "MEMBERSHIP_ALREADY_EXISTS",
            &format!(
                "Group <{}> is already a direct member of group <{}>",
                c.name, p.name
            ),
        ));
    }
    Ok(created(
        format!(
            "{}/group/child-group/direct?groupname={}&child-groupname={}",
            api(sh),
            enc(&p.name),
            enc(&c.name)
        ),
        None,
    ))
}

/// `POST /group/child-group/direct?groupname=P` `{"name":"C"}` -> 201 + `Location`.
async fn add_child_group(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let parent = required(&q, "groupname")?.to_string();
    let Some(child) = parse_body(&body).and_then(|v| s(&v, "name")) else {
        return Err(error(400, "ILLEGAL_ARGUMENT", "Group name must be given"));
    };
    add_group_edge(&sh, &parent, &child, true)
}

/// `POST /group/parent-group/direct?groupname=C` `{"name":"P"}` -> 201: the same edge, named
/// from the child's side.
async fn add_parent_group(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let child = required(&q, "groupname")?.to_string();
    let Some(parent) = parse_body(&body).and_then(|v| s(&v, "name")) else {
        return Err(error(400, "ILLEGAL_ARGUMENT", "Group name must be given"));
    };
    add_group_edge(&sh, &parent, &child, false)
}

/// `DELETE /group/child-group/direct?groupname=P&child-groupname=C` -> 204; either group
/// missing -> 404 GROUP_NOT_FOUND; no such edge -> 404 MEMBERSHIP_NOT_FOUND.
async fn remove_child_group(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let parent = required(&q, "groupname")?.to_string();
    let child = required(&q, "child-groupname")?.to_string();
    let mut st = sh.lock_state();
    let p = find_group(&st, &parent)?.name.clone();
    let c = find_group(&st, &child)?.name.clone();
    if !st.remove_child(&p, &c) {
        return Err(error(
            404,
            "MEMBERSHIP_NOT_FOUND",
            &format!("Group <{c}> is not a direct member of group <{p}>"),
        ));
    }
    Ok(empty(204))
}

/// XML text/attribute escaping (quick-xml).
fn xml_escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// `GET /group/membership` -> every group with its direct users and direct child groups,
/// **XML only** whatever `Accept` says (GroupsResource, REST API 1.1+). The element shape is approximated: the REST resources
/// page (`developer.atlassian.com/server/crowd/crowd-rest-resources/`) does not show it.
async fn memberships(State(sh): State<Arc<Shared>>, h: HeaderMap) -> R {
    require_admin(&sh, &h)?;
    let st = sh.lock_state();
    let mut x =
        String::from(r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><memberships>"#);
    for g in st.groups.values() {
        x.push_str(&format!(
            r#"<membership group="{}"><users>"#,
            xml_escape(&g.name)
        ));
        for u in st.members_of(&g.name) {
            x.push_str(&format!(r#"<user name="{}"/>"#, xml_escape(&u.name)));
        }
        x.push_str("</users><groups>");
        for c in st.children_of(&g.name) {
            x.push_str(&format!(r#"<group name="{}"/>"#, xml_escape(&c.name)));
        }
        x.push_str("</groups></membership>");
    }
    x.push_str("</memberships>");
    Ok((
        axum::http::StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xml")],
        x,
    )
        .into_response())
}

/// One property test of a search restriction.
struct Term {
    field: String,
    value: String,
    mode: Mode,
}

enum Mode {
    Exact,
    Contains,
    StartsWith,
    EndsWith,
}

/// A search restriction: Crowd's SearchRestrictionEntity tree (null, property and boolean
/// restrictions), which CQL also compiles to.
enum Restriction {
    All,
    Term(Term),
    And(Vec<Restriction>),
    Or(Vec<Restriction>),
}

/// Nesting deeper than this is refused (400), so a hostile restriction cannot overflow the
/// stack (the same guard as the Graph emulator's `$filter`).
const MAX_RESTRICTION_DEPTH: usize = 32;

/// The fields a user or group is matched on.
struct Entity<'a> {
    name: &'a str,
    email: &'a str,
    display: &'a str,
    first: &'a str,
    last: &'a str,
    active: bool,
    attributes: &'a std::collections::BTreeMap<String, Vec<String>>,
}

impl Restriction {
    fn matches(&self, e: &Entity<'_>) -> bool {
        match self {
            Restriction::All => true,
            Restriction::Term(t) => term_matches(t, e),
            Restriction::And(rs) => rs.iter().all(|r| r.matches(e)),
            Restriction::Or(rs) => rs.iter().any(|r| r.matches(e)),
        }
    }
}

fn term_matches(t: &Term, e: &Entity<'_>) -> bool {
    let active = e.active.to_string();
    let actual: Vec<&str> = match t.field.as_str() {
        "name" | "username" => vec![e.name],
        "email" => vec![e.email],
        "displayname" | "display-name" | "displayName" => vec![e.display],
        "firstname" | "first-name" | "firstName" => vec![e.first],
        "lastname" | "last-name" | "lastName" => vec![e.last],
        "active" => vec![active.as_str()],
        // Any other name is a custom attribute (CQL page: "searching on custom attributes").
        other => e
            .attributes
            .get(other)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default(),
    };
    let v = lc(&t.value);
    actual.into_iter().any(|a| {
        let a = lc(a);
        match t.mode {
            Mode::Exact => a == v,
            Mode::Contains => a.contains(&v),
            Mode::StartsWith => a.starts_with(&v),
            Mode::EndsWith => a.ends_with(&v),
        }
    })
}

fn bad_restriction(msg: &str) -> Response {
    error(400, "ILLEGAL_ARGUMENT", msg)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    And,
    Or,
    Op(char),
    Word(String),
    Quoted(String),
}

fn cql_tokens(cql: &str) -> Result<Vec<Tok>, Response> {
    let mut out = Vec::new();
    let mut chars = cql.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' => {
                chars.next();
                out.push(if c == '(' { Tok::Open } else { Tok::Close });
            }
            '=' | '<' | '>' => {
                chars.next();
                out.push(Tok::Op(c));
            }
            '"' => {
                chars.next();
                let mut v = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        // `\"` inside a quoted value is a literal quote.
                        Some('\\') => v.extend(chars.next()),
                        Some(x) => v.push(x),
                        None => return Err(bad_restriction("Unterminated quoted value in CQL")),
                    }
                }
                out.push(Tok::Quoted(v));
            }
            _ => {
                let mut w = String::new();
                while let Some(&x) = chars.peek() {
                    if x.is_whitespace() || "()=<>\"".contains(x) {
                        break;
                    }
                    w.push(x);
                    chars.next();
                }
                out.push(match w.to_ascii_lowercase().as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    _ => Tok::Word(w),
                });
            }
        }
    }
    Ok(out)
}

/// A value with `*` wildcards at either end (CQL page, EQUALS operator: "bob*", "*@example.com").
fn wildcard(field: String, v: &str) -> Term {
    let starts = v.starts_with('*');
    let ends = v.ends_with('*') && v.len() > 1;
    let value = v.trim_matches('*').to_string();
    let mode = match (starts, ends) {
        (true, true) => Mode::Contains,
        (false, true) => Mode::StartsWith,
        (true, false) => Mode::EndsWith,
        (false, false) => Mode::Exact,
    };
    Term { field, value, mode }
}

/// Recursive-descent parser for Crowd Query Language (Crowd 2.2+;
/// <https://developer.atlassian.com/server/crowd/crowd-query-language/>): `field = value`
/// terms, `and` binding tighter than `or`, parentheses, quoted values and `*` wildcards.
/// Refused with 400 ILLEGAL_ARGUMENT, as Crowd refuses a restriction it cannot parse: unbalanced
/// parentheses, a dangling `and`/`or`, a term without `=` or value, nesting deeper than
/// [`MAX_RESTRICTION_DEPTH`]. `<` and `>` are Crowd's date comparisons on `createdDate` /
/// `updatedDate`; the emulator keeps no dates and refuses them (400) rather than guess.
struct Cql {
    toks: Vec<Tok>,
    pos: usize,
}

impl Cql {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self
            .toks
            .get_mut(self.pos)
            .map(|t| std::mem::replace(t, Tok::Open));
        self.pos += 1;
        t
    }

    fn or(&mut self, depth: usize) -> Result<Restriction, Response> {
        let mut parts = vec![self.and(depth)?];
        while self.peek() == Some(&Tok::Or) {
            self.next();
            parts.push(self.and(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Restriction::Or(parts)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Restriction, Response> {
        let mut parts = vec![self.primary(depth)?];
        while self.peek() == Some(&Tok::And) {
            self.next();
            parts.push(self.primary(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Restriction::And(parts)
        })
    }

    fn primary(&mut self, depth: usize) -> Result<Restriction, Response> {
        match self.next() {
            Some(Tok::Open) => {
                if depth >= MAX_RESTRICTION_DEPTH {
                    return Err(bad_restriction("CQL restriction is nested too deeply"));
                }
                let r = self.or(depth + 1)?;
                match self.next() {
                    Some(Tok::Close) => Ok(r),
                    _ => Err(bad_restriction("Missing ')' in CQL restriction")),
                }
            }
            Some(Tok::Word(field)) => {
                match self.next() {
                    Some(Tok::Op('=')) => {}
                    Some(Tok::Op(op)) => {
                        return Err(bad_restriction(&format!(
                            "The emulator keeps no dates: '{field} {op} ...' is not supported"
                        )));
                    }
                    _ => {
                        return Err(bad_restriction(&format!(
                            "Expected '=' after <{field}> in CQL restriction"
                        )));
                    }
                }
                match self.next() {
                    Some(Tok::Word(v) | Tok::Quoted(v)) => {
                        Ok(Restriction::Term(wildcard(field, &v)))
                    }
                    _ => Err(bad_restriction(&format!(
                        "Expected a value for <{field}> in CQL restriction"
                    ))),
                }
            }
            Some(t) => Err(bad_restriction(&format!(
                "Unexpected {t:?} in CQL restriction"
            ))),
            None => Err(bad_restriction("Incomplete CQL restriction")),
        }
    }
}

fn parse_cql(cql: &str) -> Result<Restriction, Response> {
    let mut p = Cql {
        toks: cql_tokens(cql)?,
        pos: 0,
    };
    if p.toks.is_empty() {
        return Ok(Restriction::All);
    }
    let r = p.or(0)?;
    if p.pos < p.toks.len() {
        return Err(bad_restriction(
            "Unexpected text after the end of the CQL restriction",
        ));
    }
    Ok(r)
}

/// The JSON form of a SearchRestrictionEntity (RestCrowdClient; Crowd's
/// `SearchRestrictionEntity` discriminates on `restriction-type`):
/// - `{"restriction-type":"null-search-restriction"}` or an empty body: everything;
/// - `{"restriction-type":"property-search-restriction","property":{"name","type"},
///   "match-mode":"EXACTLY_MATCHES|CONTAINS|STARTS_WITH|ENDS_WITH","value"}`;
/// - `{"restriction-type":"boolean-search-restriction","boolean-logic":"and|or",
///   "restrictions":[...]}`.
///
/// An unknown type, match mode or boolean logic, or a missing property name, is 400
/// ILLEGAL_ARGUMENT. Crowd's `LESS_THAN`/`GREATER_THAN`/`NULL` modes need dates or null
/// fields the emulator does not keep, so they are refused too.
fn parse_restriction(v: &Value, depth: usize) -> Result<Restriction, Response> {
    if depth > MAX_RESTRICTION_DEPTH {
        return Err(bad_restriction("Search restriction is nested too deeply"));
    }
    let kind = s(v, "restriction-type").unwrap_or_default();
    match kind.as_str() {
        "" if v.as_object().is_some_and(|m| m.is_empty()) => Ok(Restriction::All),
        "null-search-restriction" => Ok(Restriction::All),
        "property-search-restriction" => {
            let field = v
                .get("property")
                .and_then(|p| s(p, "name"))
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad_restriction("property.name must be given"))?;
            let value = s(v, "value").unwrap_or_default();
            let mode = match s(v, "match-mode").as_deref() {
                Some("EXACTLY_MATCHES") => Mode::Exact,
                Some("CONTAINS") => Mode::Contains,
                Some("STARTS_WITH") => Mode::StartsWith,
                Some("ENDS_WITH") => Mode::EndsWith,
                other => {
                    return Err(bad_restriction(&format!(
                        "Unsupported match-mode <{}>",
                        other.unwrap_or("")
                    )));
                }
            };
            Ok(Restriction::Term(Term { field, value, mode }))
        }
        "boolean-search-restriction" => {
            let list = v
                .get("restrictions")
                .and_then(Value::as_array)
                .ok_or_else(|| bad_restriction("restrictions must be given"))?;
            let parts = list
                .iter()
                .map(|r| parse_restriction(r, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            match s(v, "boolean-logic")
                .map(|l| l.to_ascii_lowercase())
                .as_deref()
            {
                Some("and") => Ok(Restriction::And(parts)),
                Some("or") => Ok(Restriction::Or(parts)),
                other => Err(bad_restriction(&format!(
                    "Unsupported boolean-logic <{}>",
                    other.unwrap_or("")
                ))),
            }
        }
        other => Err(bad_restriction(&format!(
            "Unsupported restriction type <{other}>"
        ))),
    }
}

fn run_search(sh: &Shared, q: &Params, r: &Restriction) -> R {
    let et = required(q, "entity-type")?;
    let st = sh.lock_state();
    match et {
        "user" => {
            let users: Vec<User> = st
                .users
                .values()
                .filter(|u| {
                    r.matches(&Entity {
                        name: &u.name,
                        email: &u.email,
                        display: &u.display_name,
                        first: &u.first_name,
                        last: &u.last_name,
                        active: u.active,
                        attributes: &u.attributes,
                    })
                })
                .cloned()
                .collect();
            Ok(json(200, user_list(sh, q, &users)))
        }
        "group" => {
            let groups: Vec<Group> = st
                .groups
                .values()
                .filter(|g| {
                    r.matches(&Entity {
                        name: &g.name,
                        email: "",
                        display: &g.description,
                        first: "",
                        last: "",
                        active: g.active,
                        attributes: &g.attributes,
                    })
                })
                .cloned()
                .collect();
            Ok(json(200, group_list(sh, q, &groups)))
        }
        other => Err(error(
            400,
            "ILLEGAL_ARGUMENT",
            &format!("Unknown entity-type <{other}>"),
        )),
    }
}

/// `GET /search?entity-type=user|group&restriction=<CQL>&start-index&max-results&expand` (Crowd
/// 2.2+, CQL page).
async fn search_get(State(sh): State<Arc<Shared>>, h: HeaderMap, RawQuery(q): RawQuery) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let r = match q.val("restriction") {
        Some(c) => parse_cql(c)?,
        None => Restriction::All,
    };
    run_search(&sh, &q, &r)
}

/// `POST /search?entity-type=...` with a restriction entity body (RestCrowdClient).
async fn search_post(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let r = match parse_body(&body) {
        None | Some(Value::Null) => Restriction::All,
        Some(v) if v.is_object() => parse_restriction(&v, 0)?,
        Some(_) => return Err(bad_restriction("A search restriction object is required")),
    };
    run_search(&sh, &q, &r)
}

/// `POST /authentication?username=U` `{"value":"pw"}` -> 200 user; wrong password -> 400
/// INVALID_USER_AUTHENTICATION; inactive -> 400 INACTIVE_ACCOUNT (RestCrowdClient).
async fn authenticate(
    State(sh): State<Arc<Shared>>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> R {
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let un = required(&q, "username")?.to_string();
    let pw = parse_body(&body)
        .and_then(|v| s(&v, "value"))
        .unwrap_or_default();
    let st = sh.lock_state();
    let Some(u) = st.user(&un) else {
        return Err(error(
            400,
            "USER_NOT_FOUND",
            &format!("User <{un}> does not exist"),
        ));
    };
    if u.password.as_deref() != Some(pw.as_str()) {
        return Err(error(
            400,
            "INVALID_USER_AUTHENTICATION",
            "Failed to authenticate principal, password was invalid",
        ));
    }
    if !u.active {
        return Err(error(
            400,
            "INACTIVE_ACCOUNT",
            &format!("Account with name <{}> is inactive", u.name),
        ));
    }
    Ok(json(200, user_entity(&sh, u, false)))
}
