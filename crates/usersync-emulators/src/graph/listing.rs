//! Collection endpoints: `/users`, `/groups`, `$count`, members, transitiveMembers,
//! memberOf — filtering, searching, ordering and `$skiptoken` paging.

use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use super::Ctx;
use super::model::{Directory, Life, MemberRef, decode_ref, group_ref, user_ref};
use super::odata::{
    Body, Filter, GResult, GraphError, GraphResponse, Query, context, decode_token, encode_token,
    next_link, unknown_property,
};
use super::props::*;
use super::routes::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    User,
    Group,
}

pub(crate) fn prop_of(dir: &Directory, kind: Kind, i: usize, name: &str) -> Option<Value> {
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

pub(crate) fn active(dir: &Directory, kind: Kind, i: usize) -> bool {
    match kind {
        Kind::User => dir.users[i].life == Life::Active,
        Kind::Group => dir.groups[i].life == Life::Active,
    }
}

/// `$search="prop:term"` (advanced query; tokenized contains, approximated here as a
/// case-insensitive substring match). <https://learn.microsoft.com/graph/search-query-parameter>
pub(crate) fn search_match(dir: &Directory, kind: Kind, i: usize, search: &str) -> GResult<bool> {
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
pub(crate) struct Matcher<'a> {
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
pub(crate) fn list(
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
pub(crate) fn raw_count(
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
pub(crate) fn members(
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
pub(crate) fn directory_objects(
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
pub(crate) fn member_of(
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
