//! Collection endpoints: `/users`, `/groups`, `$count`, members, transitiveMembers,
//! memberOf — filtering, searching, ordering and `$skiptoken` paging.

use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use super::Ctx;
use super::model::{Directory, Life, MemberRef, decode_ref, group_ref, user_ref};
use super::odata::{
    Body, Filter, FilterScope, GResult, GraphError, GraphResponse, Query, context, decode_token,
    encode_token, next_link, unknown_property,
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
    fn new<'a>(q: &'a Query, headers: &HeaderMap, kind: Kind) -> GResult<Matcher<'a>> {
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
            .map(|f| {
                Filter::parse_in(
                    f,
                    adv,
                    match kind {
                        Kind::User => FilterScope::Users,
                        Kind::Group => FilterScope::Groups,
                    },
                )
            })
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
    // Without `ConsistencyLevel: eventual`, `$count=true` is silently ignored (no
    // `@odata.count`). https://learn.microsoft.com/graph/aad-advanced-queries
    // ("Error handling for advanced queries on directory objects").
    let counting = q.count && eventual(headers);
    let advanced = counting;
    if q.expand.is_some() && kind == Kind::User {
        return Err(GraphError::bad_request(
            "Parsing OData Select and Expand failed: Could not find a navigation property for $expand on type 'microsoft.graph.user'.",
        ));
    }
    let expand = match (&q.expand, kind) {
        (Some(e), Kind::Group) => Some(parse_members_expand(e)?),
        _ => None,
    };
    // "Use of $filter and $orderby in the same query" is an advanced query.
    // https://learn.microsoft.com/graph/aad-advanced-queries
    if q.filter.is_some() && q.orderby.is_some() && !advanced {
        return Err(GraphError::new(
            400,
            "Request_UnsupportedQuery",
            "Sorting not supported for current query. Using $filter and $orderby in the same query needs $count=true and the ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information",
        ));
    }
    let m = Matcher::new(q, headers, kind)?;
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
            if counting && q.skiptoken.is_none() {
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
            if counting && q.skiptoken.is_none() {
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
                Kind::Group => {
                    let mut g = group_json(&dir.groups[i], &sel, dir);
                    if let Some(e) = &expand {
                        g.insert("members".into(), expanded_members(ctx, dir, i as u32, e));
                    }
                    g
                }
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
        return Err(count_segment_unsupported());
    }
    let qq = Query {
        count: true,
        ..q.clone()
    };
    let m = Matcher::new(&qq, headers, kind)?;
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

/// `$count` as a URL segment without `ConsistencyLevel: eventual`: the documented body.
/// <https://learn.microsoft.com/graph/aad-advanced-queries> ("Error handling for advanced
/// queries": `GET /users/$count` → 400 `Request_BadRequest` "$count is not currently
/// supported."). A 2025 observation shows `Request_UnsupportedQuery` with a longer message
/// for the same request; clients must treat either as a 400 that needs the header.
pub(crate) fn count_segment_unsupported() -> GraphError {
    GraphError::new(
        400,
        "Request_BadRequest",
        "$count is not currently supported.",
    )
}

/// A parsed `$expand=members[($select=…)]`.
pub(crate) struct MembersExpand {
    select: Option<Vec<String>>,
}

/// Parses `$expand` on groups: only `members`, optionally with a nested `$select`.
/// <https://learn.microsoft.com/graph/api/group-get> / group-list (`$expand=members`),
/// <https://learn.microsoft.com/graph/query-parameters#expand> (nested `$select`).
pub(crate) fn parse_members_expand(e: &str) -> GResult<MembersExpand> {
    let e = e.trim();
    let (name, inner) = match e.find('(') {
        Some(p) if e.ends_with(')') => (&e[..p], Some(&e[p + 1..e.len() - 1])),
        _ => (e, None),
    };
    if !name.trim().eq_ignore_ascii_case("members") {
        return Err(GraphError::bad_request(format!(
            "Parsing OData Select and Expand failed: Could not find a property named '{}' on type 'microsoft.graph.group'.",
            name.trim()
        )));
    }
    let mut select = None;
    if let Some(inner) = inner {
        for opt in inner.split(';') {
            let (k, v) = opt.split_once('=').ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Parsing OData Select and Expand failed: Syntax error in '{e}'."
                ))
            })?;
            match k
                .trim()
                .trim_start_matches('$')
                .to_ascii_lowercase()
                .as_str()
            {
                "select" => {
                    select = Some(
                        v.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect(),
                    )
                }
                other => {
                    return Err(GraphError::bad_request(format!(
                        "Parsing OData Select and Expand failed: '{other}' is not supported inside $expand here."
                    )));
                }
            }
        }
    }
    Ok(MembersExpand { select })
}

/// The expanded `members` of a group: at most 20 objects, no nextLink.
/// <https://learn.microsoft.com/graph/known-issues#query-parameters>
pub(crate) fn expanded_members(ctx: &Ctx<'_>, dir: &Directory, g: u32, e: &MembersExpand) -> Value {
    let mut union: Vec<&'static str> = USER_PROPS.to_vec();
    union.extend(GROUP_PROPS.iter().filter(|p| !USER_PROPS.contains(p)));
    let sel: Vec<&'static str> = match &e.select {
        Some(s) => s
            .iter()
            .filter_map(|x| union.iter().find(|k| k.eq_ignore_ascii_case(x)).copied())
            .collect(),
        None => USER_DEFAULT.to_vec(),
    };
    let limited = !ctx.claims.has_any(USER_READERS);
    Value::Array(
        dir.groups[g as usize]
            .members
            .iter()
            .filter(|&&r| dir.ref_active(r))
            .take(20)
            .map(|&r| member_json(dir, r, &sel, limited))
            .collect(),
    )
}

/// Options of a member/memberOf listing that depend on the route.
pub(crate) struct MemberList<'a> {
    pub transitive: bool,
    pub cast: Option<&'static str>,
    /// `/$count` segment: answer the number as text.
    pub count_only: bool,
    pub headers: &'a HeaderMap,
}

/// Advanced-query checks shared by member and memberOf listings.
/// <https://learn.microsoft.com/graph/aad-advanced-queries> ("Use of OData cast with transitive
/// members list" needs the advanced query parameters);
/// <https://learn.microsoft.com/graph/api/group-list-transitivemembers> ("To filter the results
/// on the OData type, such as microsoft.graph.user or microsoft.graph.group, you must use the
/// advanced query parameters").
fn check_member_query(q: &Query, o: &MemberList<'_>) -> GResult<()> {
    let ev = eventual(o.headers);
    if o.count_only && !ev {
        return Err(count_segment_unsupported());
    }
    if q.search.is_some() && !ev {
        return Err(GraphError::new(
            400,
            "Request_UnsupportedQuery",
            "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
        ));
    }
    // With the /$count segment the header alone is the advanced form (group-list-members
    // example "Get only a count of members").
    if o.transitive && o.cast.is_some() && !o.count_only && !(ev && q.count) {
        return Err(GraphError::new(
            400,
            "Request_UnsupportedQuery",
            "OData cast on a transitive members list is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information",
        ));
    }
    Ok(())
}

/// `/groups/{id}/members` and `/transitiveMembers` (+ OData cast, `/$count`), paged by offset.
/// <https://learn.microsoft.com/graph/api/group-list-members>,
/// <https://learn.microsoft.com/graph/api/group-list-transitivemembers>
pub(crate) fn members(
    ctx: &Ctx<'_>,
    dir: &Directory,
    q: &Query,
    path: &str,
    g: u32,
    o: &MemberList<'_>,
) -> GResult<GraphResponse> {
    check_member_query(q, o)?;
    let all: Vec<MemberRef> = if o.transitive {
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
        .filter(|&r| match o.cast {
            Some("user") => !decode_ref(r).0,
            Some(_) => decode_ref(r).0,
            None => true,
        })
        .collect();
    directory_objects(ctx, dir, q, path, &list, o)
}

/// Shared paging of a directoryObject collection.
pub(crate) fn directory_objects(
    ctx: &Ctx<'_>,
    dir: &Directory,
    q: &Query,
    path: &str,
    list: &[MemberRef],
    o: &MemberList<'_>,
) -> GResult<GraphResponse> {
    let cast = o.cast;
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
    let advanced = eventual(o.headers) && (q.count || o.count_only);
    let filter = q
        .filter
        .as_deref()
        .map(|f| Filter::parse(f, advanced))
        .transpose()?;
    // Does member `r` pass $filter and $search?
    let keep = |r: MemberRef| -> GResult<bool> {
        let (is_group, i) = decode_ref(r);
        let kind = if is_group { Kind::Group } else { Kind::User };
        if let Some(f) = &filter
            && !f.eval(&|p| prop_of(dir, kind, i as usize, p).or(Some(Value::Null)))?
        {
            return Ok(false);
        }
        match &q.search {
            // $search on members: displayName and description.
            // https://learn.microsoft.com/graph/api/group-list-transitivemembers
            Some(s) => search_match(dir, kind, i as usize, s),
            None => Ok(true),
        }
    };
    if o.count_only {
        let mut c = 0usize;
        for &r in list {
            if keep(r)? {
                c += 1;
            }
        }
        return Ok(GraphResponse {
            status: 200,
            headers: vec![],
            body: Body::Text(c.to_string()),
        });
    }
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
        if !keep(r)? {
            continue;
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
    // @odata.count with the advanced query parameters, first page only.
    if advanced && q.count && q.skiptoken.is_none() {
        let mut c = 0usize;
        for &r in list {
            if keep(r)? {
                c += 1;
            }
        }
        body.insert("@odata.count".into(), json!(c));
    }
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

/// `/users/{id}/memberOf` and `/transitiveMemberOf` (groups only; no directory roles here),
/// with OData cast and `/$count` as for members.
/// <https://learn.microsoft.com/graph/api/user-list-memberof>,
/// <https://learn.microsoft.com/graph/api/user-list-transitivememberof>
pub(crate) fn member_of(
    ctx: &Ctx<'_>,
    dir: &Directory,
    q: &Query,
    path: &str,
    u: u32,
    o: &MemberList<'_>,
) -> GResult<GraphResponse> {
    check_member_query(q, o)?;
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
        if !o.transitive {
            break;
        }
        frontier = next;
    }
    // Only groups are modelled, so a user cast yields nothing.
    if o.cast == Some("user") {
        found.clear();
    }
    directory_objects(ctx, dir, q, path, &found, o)
}
