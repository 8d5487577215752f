//! `GET /users/delta` and `GET /groups/delta`.
//!
//! Sources: <https://learn.microsoft.com/graph/delta-query-overview>,
//! <https://learn.microsoft.com/graph/delta-query-users>,
//! <https://learn.microsoft.com/graph/delta-query-groups>,
//! <https://learn.microsoft.com/graph/api/user-delta>,
//! <https://learn.microsoft.com/graph/api/group-delta>.
//!
//! Model: every object (and membership edge) carries the change sequence number of its last
//! change. A delta token records the sequence it was issued at (`s`) plus the query options
//! (`$select`, `$filter` ids), the issue time and the tenant's delta epoch. A round reports
//! objects with `since < seq <= upto`, where `upto` is fixed at the round's first page, so
//! changes made while paging surface in the next round. Tokens are base64url JSON.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Ctx;
use super::model::{ALL_CHANGED, Directory, Life, MemberRef, TRACKED_USER_PROPS, decode_ref};
use super::odata::{
    GResult, GraphError, GraphResponse, Query, context, decode_token, enc, encode_token,
};
use super::props::{GROUP_PROPS, USER_DEFAULT, USER_PROPS, group_json, resolve_select, user_json};

/// Paging state of one delta round (inside `$skiptoken`).
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Round {
    /// "u" or "g".
    k: String,
    since: u64,
    upto: u64,
    /// Next object index to scan.
    pos: usize,
    /// Member offset inside the group at `pos` (group split across pages).
    #[serde(default)]
    mo: usize,
    sel: Option<Vec<String>>,
    ids: Option<Vec<String>>,
    e: u64,
}

/// Content of a `$deltatoken`.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct DeltaToken {
    k: String,
    s: u64,
    sel: Option<Vec<String>>,
    ids: Option<Vec<String>>,
    t: i64,
    e: u64,
}

fn bad_token() -> GraphError {
    GraphError::new(
        400,
        "Request_BadRequest",
        "Specified delta token is invalid.",
    )
}

/// `$deltatoken` older than the TTL (7 days for directory objects): 400 `syncStateNotFound`.
/// <https://devblogs.microsoft.com/microsoft365dev/duration-of-change-tracking-tokens-for-identity-and-education-resources/>
/// ("you will receive a BadRequest response with the error code syncStateNotFound").
fn expired() -> GraphError {
    GraphError::new(
        400,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    )
}

/// Synchronization reset: 410 Gone with a `Location` header holding the initial query with an
/// empty `$deltaToken`. <https://learn.microsoft.com/graph/delta-query-overview#synchronization-reset>;
/// code/message from <https://learn.microsoft.com/graph/errors> (`resyncRequired`).
fn reset(
    ctx: &Ctx<'_>,
    path: &str,
    sel: &Option<Vec<String>>,
    ids: &Option<Vec<String>>,
) -> GraphError {
    let mut parts = Vec::new();
    if let Some(s) = sel {
        parts.push(format!("$select={}", enc(&s.join(","))));
    }
    if let Some(ids) = ids {
        let f: Vec<String> = ids.iter().map(|i| format!("id eq '{i}'")).collect();
        parts.push(format!("$filter={}", enc(&f.join(" or "))));
    }
    parts.push("$deltatoken=".into());
    let mut e = GraphError::new(
        410,
        "resyncRequired",
        "The delta token is no longer valid, and the app must reset the sync state.",
    );
    e.headers.push((
        "Location".into(),
        format!("{}{}?{}", ctx.graph_base, path, parts.join("&")),
    ));
    e
}

/// Reads the query into a round (initial, from a delta token, or from a skip token).
/// Returns `Ok(None)` for `$deltatoken=latest` (handled by the caller).
fn start_round(
    ctx: &Ctx<'_>,
    dir: &Directory,
    q: &Query,
    path: &str,
    kind: &str,
) -> GResult<Option<Round>> {
    let (epoch, ttl) = ctx
        .sh
        .settings
        .read()
        .map(|s| (s.delta_epoch, s.delta_ttl_secs))
        .unwrap_or((0, 7 * 86400));
    if let Some(st) = &q.skiptoken {
        let r: Round = decode_token(st)
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| {
                GraphError::new(
                    400,
                    "Request_BadRequest",
                    "Specified skip token is invalid.",
                )
            })?;
        if r.k != kind {
            return Err(bad_token());
        }
        if r.e != epoch {
            return Err(reset(ctx, path, &r.sel, &r.ids));
        }
        return Ok(Some(r));
    }
    match q.deltatoken.as_deref() {
        Some(t) if t.eq_ignore_ascii_case("latest") => Ok(None),
        Some(t) if !t.is_empty() => {
            let tok: DeltaToken = decode_token(t)
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or_else(bad_token)?;
            if tok.k != kind {
                return Err(bad_token());
            }
            if tok.e != epoch {
                return Err(reset(ctx, path, &tok.sel, &tok.ids));
            }
            if ctx.sh.now() - tok.t > ttl as i64 {
                return Err(expired());
            }
            Ok(Some(Round {
                k: kind.into(),
                since: tok.s,
                upto: dir.seq,
                pos: 0,
                mo: 0,
                sel: tok.sel,
                ids: tok.ids,
                e: epoch,
            }))
        }
        // Initial round (also an empty `$deltatoken=` as sent in a 410 Location).
        _ => {
            let (sel, ids) = initial_options(q, kind)?;
            Ok(Some(Round {
                k: kind.into(),
                since: 0,
                upto: dir.seq,
                pos: 0,
                mo: 0,
                sel,
                ids,
                e: epoch,
            }))
        }
    }
}

/// `$select` and the only supported `$filter` (`id eq '…'` OR-ed, ≤ 50 ids).
/// <https://learn.microsoft.com/graph/delta-query-overview> (optional query parameters).
/// (`$select`, `$filter` ids) of a round.
type Options = (Option<Vec<String>>, Option<Vec<String>>);

fn initial_options(q: &Query, kind: &str) -> GResult<Options> {
    let mut sel = q.select.clone();
    if kind == "g"
        && let Some(e) = &q.expand
    {
        // Older docs use `$expand=members`; treat it like selecting members.
        if e.trim().eq_ignore_ascii_case("members") {
            sel.get_or_insert_with(Vec::new).push("members".into());
        } else {
            return Err(GraphError::unsupported_query());
        }
    }
    let ids = match &q.filter {
        None => None,
        Some(f) => {
            let f = super::odata::Filter::parse(f, false)?;
            let ids = f.id_set().ok_or_else(GraphError::unsupported_query)?;
            if ids.len() > 50 {
                return Err(GraphError::unsupported_query());
            }
            Some(ids)
        }
    };
    if q.orderby.is_some() || q.search.is_some() {
        return Err(GraphError::unsupported_query());
    }
    Ok((sel, ids))
}

fn id_filter(dir: &Directory, kind: &str, ids: &Option<Vec<String>>) -> Option<Vec<usize>> {
    let ids = ids.as_ref()?;
    let mut v: Vec<usize> = ids
        .iter()
        .filter_map(|s| uuid::Uuid::parse_str(s).ok())
        .filter_map(|id| {
            if kind == "u" {
                dir.user_by_id.get(&id)
            } else {
                dir.group_by_id.get(&id)
            }
        })
        .map(|&i| i as usize)
        .collect();
    v.sort_unstable();
    v.dedup();
    Some(v)
}

fn removed(id: String, life: Life) -> Value {
    // Soft delete → "changed" (restorable), hard delete → "deleted".
    // https://learn.microsoft.com/graph/delta-query-users
    let reason = if life == Life::SoftDeleted {
        "changed"
    } else {
        "deleted"
    };
    json!({"id": id, "@removed": {"reason": reason}})
}

fn finish(
    ctx: &Ctx<'_>,
    path: &str,
    set: &str,
    r: &Round,
    first_page: bool,
    value: Vec<Value>,
    next: Option<Round>,
) -> GraphResponse {
    let mut body = Map::new();
    let sel = if first_page { r.sel.as_deref() } else { None };
    body.insert(
        "@odata.context".into(),
        json!(context(&ctx.graph_base, set, sel)),
    );
    match next {
        Some(n) => {
            let t = encode_token(&serde_json::to_value(n).unwrap_or_default());
            body.insert(
                "@odata.nextLink".into(),
                json!(format!("{}{}?$skiptoken={}", ctx.graph_base, path, t)),
            );
        }
        None => {
            let t = DeltaToken {
                k: r.k.clone(),
                s: r.upto,
                sel: r.sel.clone(),
                ids: r.ids.clone(),
                t: ctx.sh.now(),
                e: r.e,
            };
            let t = encode_token(&serde_json::to_value(t).unwrap_or_default());
            body.insert(
                "@odata.deltaLink".into(),
                json!(format!("{}{}?$deltatoken={}", ctx.graph_base, path, t)),
            );
        }
    }
    body.insert("value".into(), Value::Array(value));
    GraphResponse::json(200, Value::Object(body))
}

fn latest(
    ctx: &Ctx<'_>,
    dir: &Directory,
    q: &Query,
    path: &str,
    set: &str,
    kind: &str,
) -> GResult<GraphResponse> {
    // "$deltatoken=latest" → a deltaLink and no resource data (Entra resources only).
    // https://learn.microsoft.com/graph/delta-query-overview
    let (sel, ids) = initial_options(q, kind)?;
    let epoch = ctx.sh.settings.read().map(|s| s.delta_epoch).unwrap_or(0);
    let r = Round {
        k: kind.into(),
        since: dir.seq,
        upto: dir.seq,
        pos: 0,
        mo: 0,
        sel,
        ids,
        e: epoch,
    };
    Ok(finish(ctx, path, set, &r, true, Vec::new(), None))
}

/// `GET /users/delta`. With `Prefer: return=minimal` (`minimal`) a later round returns only
/// the changed properties of updated users.
/// <https://learn.microsoft.com/graph/api/user-delta> (Request headers).
pub(crate) fn users(
    ctx: &Ctx<'_>,
    dir: &Directory,
    q: &Query,
    _path: &str,
    minimal: bool,
) -> GResult<GraphResponse> {
    let path = "/users/delta";
    let Some(r) = start_round(ctx, dir, q, path, "u")? else {
        return latest(ctx, dir, q, path, "users", "u");
    };
    let sel = resolve_select(r.sel.as_deref(), USER_PROPS, USER_DEFAULT, "user", true)?;
    let page = ctx
        .sh
        .settings
        .read()
        .map(|s| s.delta_page_size)
        .unwrap_or(100);
    let first = q.skiptoken.is_none();
    let cand = id_filter(dir, "u", &r.ids);
    let n = cand.as_ref().map_or(dir.users.len(), Vec::len);
    let mut value = Vec::new();
    let mut pos = r.pos;
    while pos < n && value.len() < page {
        let i = cand.as_ref().map_or(pos, |c| c[pos]);
        pos += 1;
        let u = &dir.users[i];
        if r.since == 0 {
            if u.life == Life::Active && u.seq <= r.upto {
                value.push(Value::Object(user_json(u, &sel, dir)));
            }
        } else if u.seq > r.since && u.seq <= r.upto {
            value.push(match u.life {
                Life::Active if minimal => {
                    let mask = dir
                        .user_changes
                        .get(&(i as u32))
                        .map(|v| {
                            v.iter()
                                .filter(|(seq, _)| *seq > r.since && *seq <= r.upto)
                                .fold(0, |m, (_, x)| m | x)
                        })
                        .unwrap_or(ALL_CHANGED);
                    let changed: Vec<&str> = sel
                        .iter()
                        .copied()
                        .filter(|p| {
                            *p == "id"
                                || mask == ALL_CHANGED
                                || TRACKED_USER_PROPS
                                    .iter()
                                    .position(|t| t == p)
                                    .is_some_and(|b| mask & (1 << b) != 0)
                        })
                        .collect();
                    Value::Object(user_json(u, &changed, dir))
                }
                Life::Active => Value::Object(user_json(u, &sel, dir)),
                l => removed(u.id.to_string(), l),
            });
        }
    }
    let next = (pos < n).then(|| Round { pos, ..r.clone() });
    Ok(finish(ctx, path, "users", &r, first, value, next))
}

/// Membership changes of group `g` in `(since, upto]`, last state per member.
fn member_changes(dir: &Directory, g: usize, since: u64, upto: u64) -> Vec<(MemberRef, bool)> {
    let mut last: HashMap<MemberRef, bool> = HashMap::new();
    let mut order = Vec::new();
    for &(seq, m, added) in &dir.groups[g].member_log {
        if seq > since && seq <= upto {
            if !last.contains_key(&m) {
                order.push(m);
            }
            last.insert(m, added);
        }
    }
    order.into_iter().map(|m| (m, last[&m])).collect()
}

fn member_entry(dir: &Directory, m: MemberRef, added: bool) -> Value {
    let (is_group, _) = decode_ref(m);
    let ty = if is_group {
        "#microsoft.graph.group"
    } else {
        "#microsoft.graph.user"
    };
    if added {
        json!({"@odata.type": ty, "id": dir.ref_id(m).to_string()})
    } else {
        // https://learn.microsoft.com/graph/delta-query-groups ("members@delta" removals)
        json!({"@odata.type": ty, "id": dir.ref_id(m).to_string(), "@removed": {"reason": "deleted"}})
    }
}

/// `GET /groups/delta` with `members@delta`; large member lists are split over pages (the
/// same group appears again with the next slice).
/// <https://learn.microsoft.com/graph/delta-query-groups>
pub(crate) fn groups(
    ctx: &Ctx<'_>,
    dir: &Directory,
    q: &Query,
    _path: &str,
) -> GResult<GraphResponse> {
    let path = "/groups/delta";
    let Some(r) = start_round(ctx, dir, q, path, "g")? else {
        return latest(ctx, dir, q, path, "groups", "g");
    };
    // `members@delta` is returned by default or when `members` is selected.
    let with_members = r
        .sel
        .as_ref()
        .is_none_or(|s| s.iter().any(|x| x.eq_ignore_ascii_case("members")));
    let prop_sel: Option<Vec<String>> = r.sel.as_ref().map(|s| {
        s.iter()
            .filter(|x| !x.eq_ignore_ascii_case("members"))
            .cloned()
            .collect()
    });
    let sel = resolve_select(prop_sel.as_deref(), GROUP_PROPS, GROUP_PROPS, "group", true)?;
    let (page, mpp) = ctx
        .sh
        .settings
        .read()
        .map(|s| (s.delta_page_size, s.delta_members_per_page))
        .unwrap_or((100, 500));
    let first = q.skiptoken.is_none();
    let cand = id_filter(dir, "g", &r.ids);
    let n = cand.as_ref().map_or(dir.groups.len(), Vec::len);
    let mut value = Vec::new();
    let mut members_budget = mpp;
    let mut pos = r.pos;
    let mut mo = r.mo;
    let mut next = None;
    while pos < n && value.len() < page {
        let i = cand.as_ref().map_or(pos, |c| c[pos]);
        let g = &dir.groups[i];
        let initial = r.since == 0;
        let changes: Vec<(MemberRef, bool)> = if !with_members || g.life != Life::Active {
            Vec::new()
        } else if initial {
            g.members
                .iter()
                .filter(|&&m| dir.ref_active(m))
                .map(|&m| (m, true))
                .collect()
        } else {
            member_changes(dir, i, r.since, r.upto)
        };
        let include = if initial {
            g.life == Life::Active && g.seq <= r.upto
        } else {
            (g.seq > r.since && g.seq <= r.upto) || !changes.is_empty()
        };
        if !include {
            pos += 1;
            mo = 0;
            continue;
        }
        if g.life != Life::Active {
            value.push(removed(g.id.to_string(), g.life));
            pos += 1;
            mo = 0;
            continue;
        }
        let mut obj = group_json(g, &sel, dir);
        // A forged skip token must not index out of range.
        mo = mo.min(changes.len());
        let remaining = changes.len() - mo;
        let take = remaining.min(members_budget);
        if with_members && !changes.is_empty() {
            let slice: Vec<Value> = changes[mo..mo + take]
                .iter()
                .map(|&(m, a)| member_entry(dir, m, a))
                .collect();
            obj.insert("members@delta".into(), Value::Array(slice));
        }
        value.push(Value::Object(obj));
        members_budget -= take;
        if take < remaining {
            // Split: continue this group's members on the next page.
            next = Some(Round {
                pos,
                mo: mo + take,
                ..r.clone()
            });
            break;
        }
        pos += 1;
        mo = 0;
        if members_budget == 0 {
            break;
        }
    }
    if next.is_none() && pos < n {
        next = Some(Round {
            pos,
            mo: 0,
            ..r.clone()
        });
    }
    Ok(finish(ctx, path, "groups", &r, first, value, next))
}
