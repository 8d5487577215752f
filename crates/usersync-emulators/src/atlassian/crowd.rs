//! Crowd Data Center usermanagement REST (`{base}/rest/usermanagement/1`, alias `latest`, with
//! the `.json` suffix accepted): users, attributes, rename, groups, direct memberships, search
//! and the bulk `/group/membership` read.
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
        .route(&format!("{p}/user/group/nested"), get(user_groups))
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
        .route(&format!("{p}/group/user/nested"), get(group_users))
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
fn window<T: Clone>(q: &Params, all: &[T]) -> Vec<T> {
    let start = q.num("start-index").unwrap_or(0).max(0) as usize;
    let max = match q.num("max-results").unwrap_or(1000) {
        -1 => usize::MAX,
        n => n.max(0) as usize,
    };
    super::page(all, start, max).0
}

fn user_list(sh: &Shared, q: &Params, users: &[User]) -> Value {
    let full = expands(q, "user");
    let items: Vec<Value> = window(q, users)
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
    let items: Vec<Value> = window(q, groups)
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
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let gname = required(&q, "groupname")?;
    let st = sh.lock_state();
    let g = find_group(&st, gname)?;
    if let Some(un) = q.val("username") {
        return match st.user(un) {
            Some(u) if st.is_member(&g.name, u.id) => Ok(json(
                200,
                j!({"link": user_link(&sh, &u.name), "name": u.name}),
            )),
            _ => Err(error(
                404,
                "MEMBERSHIP_NOT_FOUND",
                &format!("User <{un}> is not a direct member of group <{}>", g.name),
            )),
        };
    }
    Ok(json(200, user_list(&sh, &q, &st.members_of(&g.name))))
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
    require_admin(&sh, &h)?;
    let q = Params::parse(q.as_deref());
    let un = required(&q, "username")?;
    let st = sh.lock_state();
    let u = find_user(&st, un)?;
    let groups = st.groups_of(u.id);
    if let Some(gn) = q.val("groupname") {
        return match groups.iter().find(|g| lc(&g.name) == lc(gn)) {
            Some(g) => Ok(json(
                200,
                j!({"link": group_link(&sh, &g.name), "name": g.name}),
            )),
            None => Err(error(
                404,
                "MEMBERSHIP_NOT_FOUND",
                &format!("User <{}> is not a direct member of group <{gn}>", u.name),
            )),
        };
    }
    Ok(json(200, group_list(&sh, &q, &groups)))
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

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// `GET /group/membership` -> every group with its direct users, **XML only** whatever `Accept`
/// says (GroupsResource, REST API 1.1+). The element shape is approximated: the REST resources
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
        x.push_str("</users><groups/></membership>");
    }
    x.push_str("</memberships>");
    Ok((
        axum::http::StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xml")],
        x,
    )
        .into_response())
}

/// One term of a search restriction.
struct Term {
    field: String,
    value: String,
    mode: Mode,
}

enum Mode {
    Exact,
    Contains,
    StartsWith,
}

fn term_matches(
    t: &Term,
    name: &str,
    email: &str,
    display: &str,
    first: &str,
    last: &str,
    active: bool,
) -> bool {
    let actual = match t.field.as_str() {
        "name" | "username" => name.to_string(),
        "email" => email.to_string(),
        "displayname" | "display-name" | "displayName" => display.to_string(),
        "firstname" | "first-name" | "firstName" => first.to_string(),
        "lastname" | "last-name" | "lastName" => last.to_string(),
        "active" => active.to_string(),
        _ => return false,
    };
    let (a, v) = (lc(&actual), lc(&t.value));
    match t.mode {
        Mode::Exact => a == v,
        Mode::Contains => a.contains(&v),
        Mode::StartsWith => a.starts_with(&v),
    }
}

/// Parses a small CQL subset: `field=value` terms joined by `and`, `*` as a trailing/leading
/// wildcard, values optionally quoted (Crowd Query Language page; `or` and parentheses are not
/// supported here -> 400 ILLEGAL_ARGUMENT).
fn parse_cql(cql: &str) -> Result<Vec<Term>, Response> {
    let mut terms = Vec::new();
    let lower = cql.to_ascii_lowercase();
    if lower.contains(" or ") || cql.contains('(') {
        return Err(error(
            400,
            "ILLEGAL_ARGUMENT",
            "The emulator supports only 'and' in CQL restrictions",
        ));
    }
    let mut rest = cql;
    loop {
        // ASCII lower-casing keeps byte offsets valid for slicing `rest`.
        let (part, next) = match rest.to_ascii_lowercase().find(" and ") {
            Some(i) => (&rest[..i], Some(&rest[i + 5..])),
            None => (rest, None),
        };
        let Some((f, v)) = part.split_once('=') else {
            return Err(error(
                400,
                "ILLEGAL_ARGUMENT",
                &format!("Invalid restriction <{part}>"),
            ));
        };
        let v = v.trim().trim_matches('"');
        let (mode, value) = match (v.starts_with('*'), v.ends_with('*') && v.len() > 1) {
            (true, true) => (Mode::Contains, v.trim_matches('*')),
            (false, true) => (Mode::StartsWith, v.trim_end_matches('*')),
            (true, false) => (Mode::Contains, v.trim_start_matches('*')),
            _ => (Mode::Exact, v),
        };
        terms.push(Term {
            field: f.trim().to_string(),
            value: value.to_string(),
            mode,
        });
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    Ok(terms)
}

/// The JSON form of a SearchRestrictionEntity: `{"restriction-type":"property-search-restriction",
/// "property":{"name","type"},"match-mode":"EXACTLY_MATCHES|CONTAINS|STARTS_WITH","value"}`; an
/// empty body or `null-search-restriction` selects everything (RestCrowdClient).
fn parse_restriction(v: &Value) -> Result<Vec<Term>, Response> {
    let kind = s(v, "restriction-type").unwrap_or_default();
    if kind.is_empty() && v.get("property").is_none() || kind == "null-search-restriction" {
        return Ok(Vec::new());
    }
    if kind == "property-search-restriction" || v.get("property").is_some() {
        let field = v
            .get("property")
            .and_then(|p| s(p, "name"))
            .unwrap_or_default();
        let value = s(v, "value").unwrap_or_default();
        let mode = match s(v, "match-mode").as_deref() {
            Some("CONTAINS") => Mode::Contains,
            Some("STARTS_WITH") => Mode::StartsWith,
            _ => Mode::Exact,
        };
        return Ok(vec![Term { field, value, mode }]);
    }
    Err(error(
        400,
        "ILLEGAL_ARGUMENT",
        &format!("Unsupported restriction type <{kind}>"),
    ))
}

fn run_search(sh: &Shared, q: &Params, terms: &[Term]) -> R {
    let et = required(q, "entity-type")?;
    let st = sh.lock_state();
    match et {
        "user" => {
            let users: Vec<User> = st
                .users
                .values()
                .filter(|u| {
                    terms.iter().all(|t| {
                        term_matches(
                            t,
                            &u.name,
                            &u.email,
                            &u.display_name,
                            &u.first_name,
                            &u.last_name,
                            u.active,
                        )
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
                    terms
                        .iter()
                        .all(|t| term_matches(t, &g.name, "", &g.description, "", "", g.active))
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
    let terms = match q.val("restriction") {
        Some(c) => parse_cql(c)?,
        None => Vec::new(),
    };
    run_search(&sh, &q, &terms)
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
    let v = parse_body(&body).unwrap_or(Value::Null);
    let terms = if v.is_null() {
        Vec::new()
    } else {
        parse_restriction(&v)?
    };
    run_search(&sh, &q, &terms)
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
