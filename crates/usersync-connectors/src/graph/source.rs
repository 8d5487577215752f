//! [`GraphSource`]: reads users, groups and memberships with the fewest requests Graph allows.
//!
//! - Whole tenant: `/users/delta` and `/groups/delta?$select=displayName,description,members`
//!   run concurrently. The first read walks both rounds to their `@odata.deltaLink`; later reads
//!   follow the saved delta links and patch the saved snapshot (changes only). Delta tokens of
//!   directory objects live 7 days; an expired/reset state (410 Gone, `syncStateNotFound`,
//!   `resyncRequired`) falls back to a full read
//!   (<https://learn.microsoft.com/graph/delta-query-overview>).
//! - Selected groups: delta's `$filter` only takes `id eq` (≤ 50 ids) and returns *direct*
//!   members, so nested groups and the member users' properties would still need a
//!   tenant-wide users delta. Instead each scoped group is read with
//!   `/groups/{id}/transitiveMembers/microsoft.graph.user?$select=…&$top=999`, which returns
//!   the flattened member users *with* their properties: ceil(members/999) requests per group,
//!   plus one `$batch` per 20 groups for names. Scoped groups are therefore emitted flattened
//!   (`member_groups` empty). No delta state is kept in this mode.
//! - Pictures: photos are not tracked by delta, so tags (`@odata.mediaEtag`) are fetched with
//!   `$batch` (20 `GET /users/{id}/photo` per request) for every user on full reads and only
//!   for users that changed on delta reads; the periodic full reconcile picks up picture-only
//!   changes.
//! - Completeness: a page that still fails after the shared retry policy stops that listing
//!   (its nextLink is lost with it); the snapshot is returned with `complete = false`, a
//!   warning naming the request, and `next_state` carrying the *old* cursor (delta links never
//!   advance; in whole-tenant mode the old snapshot was patched in place, so `next_state.snapshot`
//!   is `None`, which would force a full read if it were ever saved). Throttling that outlasts
//!   the retry budget and unreachable hosts are treated the same way. Credential and
//!   permission failures (token errors, 401, 403) are returned as `Err` — they would fail every
//!   request.

use super::auth::decode_claims;
use super::batch::batch_get;
use super::client::{CallError, GraphClient, json_or_error};
use super::config::{GraphCredential, GraphSourceConfig};
use super::delta::{
    Cursor, CursorMode, GROUP_SELECT, GroupSet, Listing, Page, USER_SELECT, UserSet,
};
use crate::http::HttpCounters;
use async_trait::async_trait;
use futures::StreamExt;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::Value;
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use usersync_core::model::{PhotoRef, SourceGroup, SourceSnapshot, SourceUser};
use usersync_core::ports::{
    ConnectorError, ErrorKind, FullReason, Photo, ReadMode, ReadStats, SourceDirectory, SourceRead,
    SourceSyncState,
};

/// Application permissions that allow reading user photos
/// (<https://learn.microsoft.com/graph/api/profilephoto-get>).
pub const PHOTO_ROLES: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "ProfilePhoto.Read.All",
    "ProfilePhoto.ReadWrite.All",
];

/// The Entra ID source.
pub struct GraphSource {
    cfg: GraphSourceConfig,
    client: Arc<GraphClient>,
    /// Photo tags from the last read, so `photo()` returns the tag the snapshot carries.
    tags: std::sync::Mutex<HashMap<String, String>>,
}

/// How one listing ended.
enum RoundEnd {
    Done(Option<String>),
    Failed {
        err: CallError,
        page: usize,
        url: String,
    },
    /// A page that cannot be trusted: malformed, a paging loop, too many pages, or a link to
    /// another origin. The listing stops there; the read is incomplete.
    Spoiled {
        page: usize,
        url: String,
        why: String,
    },
}

impl RoundEnd {
    /// The warning for a listing that did not end well, or `Err` for a systemic failure.
    fn problem(self, what: &str) -> Result<Option<String>, ConnectorError> {
        match self {
            RoundEnd::Done(_) => Ok(None),
            RoundEnd::Failed { err, page, url } => {
                if is_systemic(&err) {
                    return Err(err.into_connector());
                }
                Ok(Some(format!(
                    "{what} page {page} failed (GET {}): {}; the read is treated as incomplete",
                    short(&url),
                    err.into_connector().message
                )))
            }
            RoundEnd::Spoiled { page, url, why } => Ok(Some(format!(
                "{what} page {page} (GET {}): {why}; the read is treated as incomplete",
                short(&url)
            ))),
        }
    }
}

/// Which users need fresh photo tags.
enum PhotoTargets {
    All,
    Only(BTreeSet<String>),
}

struct Outcome {
    users: BTreeMap<String, SourceUser>,
    groups: BTreeMap<String, SourceGroup>,
    complete: bool,
    warnings: Vec<String>,
    mode: ReadMode,
    cursor: Cursor,
    photos: PhotoTargets,
}

fn short(url: &str) -> String {
    if url.len() > 160 {
        format!(
            "{}…",
            &url[..url
                .char_indices()
                .nth(160)
                .map(|(i, _)| i)
                .unwrap_or(url.len())]
        )
    } else {
        url.to_string()
    }
}

/// The path of a listing's URL, compared loosely: case-insensitive, without a function call's
/// `()` (Graph has written `delta()` in links) or a trailing slash.
fn collection_path(url: &str) -> String {
    let path = reqwest::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_else(|_| url.split('?').next().unwrap_or(url).to_string());
    path.to_ascii_lowercase()
        .replace("()", "")
        .trim_end_matches('/')
        .to_string()
}

fn is_systemic(e: &CallError) -> bool {
    match e {
        CallError::Token(_) => true,
        CallError::Status { status, .. } => matches!(status, 401 | 403),
        CallError::Transport(_) => false,
    }
}

impl GraphSource {
    /// Builds the source; checks the configuration (IDs present, certificate readable).
    pub fn new(cfg: GraphSourceConfig) -> Result<Self, ConnectorError> {
        if cfg.tenant_id.trim().is_empty() {
            return Err(ConnectorError::new(
                ErrorKind::Invalid,
                "tenant_id is empty: paste the Directory (tenant) ID from the app registration's Overview page",
            ));
        }
        if cfg.client_id.trim().is_empty() {
            return Err(ConnectorError::new(
                ErrorKind::Invalid,
                "client_id is empty: paste the Application (client) ID from the app registration's Overview page",
            ));
        }
        if let GraphCredential::Certificate { cert_pem, .. } = &cfg.credential {
            super::auth::cert_der_from_pem(cert_pem)
                .map_err(|e| ConnectorError::new(ErrorKind::Invalid, e))?;
        }
        let client = Arc::new(GraphClient::new(&cfg)?);
        Ok(Self {
            cfg,
            client,
            tags: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Request counters (all requests this source made, token requests included).
    pub fn counters(&self) -> &Arc<HttpCounters> {
        &self.client.counters
    }

    fn fingerprint(&self) -> String {
        let mut ids = self.cfg.scope_group_ids.clone();
        ids.sort();
        let mut names = self.cfg.scope_group_names.clone();
        names.sort();
        // The selects are in it because a deltaLink keeps the `$select` it was started with:
        // state saved before a property was added must be replaced by a full read.
        format!(
            "graph={};ids={};names={};photos={};users_select={USER_SELECT};groups_select={GROUP_SELECT}",
            self.client.base(),
            ids.join(","),
            names.join("\u{1f}"),
            self.cfg.read_photos
        )
    }

    /// Why this read must be full, or `None` for a delta read.
    fn full_reason(&self, state: &SourceSyncState, cursor: Option<&Cursor>) -> Option<FullReason> {
        if self.cfg.force_full {
            return Some(FullReason::Forced);
        }
        let Some(c) = cursor else {
            return Some(FullReason::Plain);
        };
        if state.snapshot.is_none() {
            return Some(FullReason::Plain);
        }
        if c.fingerprint != self.fingerprint() {
            return Some(FullReason::ConfigChanged);
        }
        if self.cfg.full_reconcile_every_hours > 0 {
            let last = c
                .last_full_read
                .as_deref()
                .and_then(|s| s.parse::<jiff::Timestamp>().ok());
            let due = match last {
                None => true,
                Some(t) => {
                    jiff::Timestamp::now().duration_since(t).as_secs()
                        >= (self.cfg.full_reconcile_every_hours * 3600) as i64
                }
            };
            if due {
                return Some(FullReason::PeriodicReconcile);
            }
        }
        None
    }

    /// Follows a listing from `start` to its end, applying each page. Stops, as
    /// [`RoundEnd::Spoiled`], at a page without the documented shape, at a link already followed
    /// (a loop), after `max_pages_per_read` pages, or at a link to another origin
    /// (<https://learn.microsoft.com/graph/paging>: links are followed verbatim, so they are
    /// checked before the token goes with them).
    async fn round(
        &self,
        start: String,
        what: &str,
        listing: Listing,
        mut apply: impl FnMut(&[Value]),
    ) -> RoundEnd {
        let mut url = start;
        let mut page_no = 0usize;
        let mut visited: HashSet<String> = HashSet::new();
        let max_pages = self.cfg.max_pages_per_read.max(1);
        // Every page of a listing is the same resource with a different token (graph/paging);
        // a link to another path would splice another collection into this one.
        let start_abs = self.client.absolute(&url);
        let collection = collection_path(&start_abs);
        visited.insert(start_abs);
        loop {
            page_no += 1;
            // `Prefer: odata.maxpagesize` asks for the largest pages where the API honours it;
            // delta ignores `$top` for directory objects.
            let mut headers = vec![("Prefer", "odata.maxpagesize=999")];
            // An OData cast on a transitive member list is an advanced query: it needs
            // `ConsistencyLevel: eventual` (resent on every page) and `$count=true` (kept in
            // the nextLink). https://learn.microsoft.com/graph/api/group-list-transitivemembers
            if url.contains("/transitiveMembers/") {
                headers.push(("ConsistencyLevel", "eventual"));
            }
            let v = match self.client.get_json(&url, &headers, what).await {
                Ok(v) => v,
                Err(err) => {
                    return RoundEnd::Failed {
                        err,
                        page: page_no,
                        url,
                    };
                }
            };
            let spoiled = |why: String, url: String| RoundEnd::Spoiled {
                page: page_no,
                url,
                why,
            };
            let page = match Page::parse(v, listing) {
                Ok(p) => p,
                Err(why) => {
                    return spoiled(format!("not a valid page of the listing: {why}"), url);
                }
            };
            apply(&page.value);
            for (name, link) in [
                ("@odata.nextLink", &page.next_link),
                ("@odata.deltaLink", &page.delta_link),
            ] {
                if let Some(link) = link
                    && let Err(why) = self.client.check_origin(link)
                {
                    // Never the link itself in the log line: only where it points.
                    tracing::warn!("{what}: {name} not followed: {why}");
                    return spoiled(format!("{name} not followed: {why}"), url);
                }
            }
            for link in [&page.next_link, &page.delta_link].into_iter().flatten() {
                let other = collection_path(&self.client.absolute(link));
                if other != collection {
                    return spoiled(
                        format!("a link leads to another collection ({other}, not {collection})"),
                        url,
                    );
                }
            }
            let Some(next) = page.next_link else {
                return RoundEnd::Done(page.delta_link);
            };
            // Each followed link is recorded once, as the URL actually sent.
            if !visited.insert(self.client.absolute(&next)) {
                return spoiled(
                    "@odata.nextLink repeats a page already read (a paging loop); stopped".into(),
                    url,
                );
            }
            if page_no >= max_pages {
                return spoiled(
                    format!(
                        "the listing goes on past {max_pages} pages (max_pages_per_read); stopped"
                    ),
                    url,
                );
            }
            // Followed verbatim: it carries all query options (graph/paging).
            url = next;
        }
    }

    async fn read_tenant(
        &self,
        prev: Option<SourceSnapshot>,
        cursor: Option<&Cursor>,
        full_reason: Option<FullReason>,
    ) -> Result<Outcome, ConnectorError> {
        let delta_from = match (&full_reason, cursor) {
            (None, Some(c)) => match (&c.users_delta_link, &c.groups_delta_link, prev) {
                (Some(u), Some(g), Some(p)) => Some((u.clone(), g.clone(), p)),
                _ => None,
            },
            _ => None,
        };
        let Some((ulink, glink, prev_snap)) = delta_from else {
            return self
                .tenant_full(full_reason.unwrap_or_default(), cursor)
                .await;
        };
        let mut users = UserSet {
            users: prev_snap
                .users
                .into_iter()
                .map(|u| (u.id.clone(), u))
                .collect(),
            ..Default::default()
        };
        let mut groups = GroupSet {
            groups: prev_snap
                .groups
                .into_iter()
                .map(|g| (g.id.clone(), g))
                .collect(),
            ..Default::default()
        };
        let (ru, rg) = tokio::join!(
            self.round(ulink, "users delta", Listing::Delta, |items| users
                .apply(items)),
            self.round(glink, "groups delta", Listing::Delta, |items| groups
                .apply(items)),
        );
        for r in [&ru, &rg] {
            if let RoundEnd::Failed { err, page, .. } = r {
                if err.is_delta_reset() {
                    tracing::info!("Graph delta state expired or reset; doing a full read");
                    return self.tenant_full(FullReason::DeltaExpired, cursor).await;
                }
                // A saved deltaLink rejected outright as a bad request (e.g. "Specified delta
                // token is invalid") can never succeed; a full read replaces it.
                if *page == 1 && err.status() == Some(400) {
                    tracing::warn!("Graph rejected the saved delta link; doing a full read");
                    return self.tenant_full(FullReason::DeltaInvalid, cursor).await;
                }
            }
        }
        groups.prune(&users.removed);
        let mut out = self.finish_tenant(users, groups, ru, rg, ReadMode::Delta)?;
        out.cursor.last_full_read = cursor.and_then(|c| c.last_full_read.clone());
        Ok(out)
    }

    async fn tenant_full(
        &self,
        reason: FullReason,
        _old: Option<&Cursor>,
    ) -> Result<Outcome, ConnectorError> {
        let mut users = UserSet::default();
        let mut groups = GroupSet::default();
        let (ru, rg) = tokio::join!(
            self.round(
                format!("users/delta?$select={USER_SELECT}"),
                "users delta",
                Listing::Delta,
                |items| users.apply(items)
            ),
            self.round(
                format!("groups/delta?$select={GROUP_SELECT}"),
                "groups delta",
                Listing::Delta,
                |items| groups.apply(items)
            ),
        );
        // Objects removed during an initial round are simply absent.
        groups.prune(&users.removed);
        let mut out = self.finish_tenant(users, groups, ru, rg, ReadMode::Full(reason))?;
        out.cursor.last_full_read = Some(jiff::Timestamp::now().to_string());
        out.photos = PhotoTargets::All;
        Ok(out)
    }

    fn finish_tenant(
        &self,
        users: UserSet,
        groups: GroupSet,
        ru: RoundEnd,
        rg: RoundEnd,
        mode: ReadMode,
    ) -> Result<Outcome, ConnectorError> {
        let mut warnings = Vec::new();
        let mut complete = true;
        let mut links = [None, None];
        for (i, (r, name)) in [(ru, "users"), (rg, "groups")].into_iter().enumerate() {
            match r {
                RoundEnd::Done(Some(link)) => links[i] = Some(link),
                RoundEnd::Done(None) => {
                    complete = false;
                    warnings.push(format!("{name} delta: the last page carried no @odata.deltaLink; the read is treated as incomplete"));
                }
                other => {
                    if let Some(w) = other.problem(&format!("{name} delta"))? {
                        complete = false;
                        warnings.push(w);
                    }
                }
            }
        }
        let [ulink, glink] = links;
        let changed = users.changed.clone();
        Ok(Outcome {
            users: users.users,
            groups: groups.groups,
            complete,
            warnings,
            mode,
            cursor: Cursor {
                version: 1,
                mode: CursorMode::Tenant,
                users_delta_link: ulink,
                groups_delta_link: glink,
                last_full_read: None,
                fingerprint: self.fingerprint(),
            },
            photos: PhotoTargets::Only(changed),
        })
    }

    /// Resolves configured group names to ids (`$filter=displayName eq '…'`).
    async fn resolve_names(
        &self,
        warnings: &mut Vec<String>,
        complete: &mut bool,
    ) -> Result<BTreeSet<String>, ConnectorError> {
        let mut ids: BTreeSet<String> = self.cfg.scope_group_ids.iter().cloned().collect();
        for name in &self.cfg.scope_group_names {
            let filter = format!("displayName eq '{}'", name.replace('\'', "''"));
            let url = format!(
                "groups?$filter={}&$select=id,displayName",
                utf8_percent_encode(&filter, NON_ALPHANUMERIC)
            );
            let mut found: Vec<String> = Vec::new();
            let end = self
                .round(url, "resolve group name", Listing::Plain, |items| {
                    found.extend(
                        items
                            .iter()
                            .filter_map(|g| g.get("id").and_then(Value::as_str))
                            .map(str::to_string),
                    )
                })
                .await;
            if let Some(w) = end.problem(&format!("resolving scope group '{name}'"))? {
                *complete = false;
                warnings.push(w);
                ids.extend(found);
                continue;
            }
            if found.is_empty() {
                *complete = false;
                warnings.push(format!("scope group '{name}' was not found in the directory; check the name (exact display name) — removals are held back until it is fixed"));
            }
            if found.len() > 1 {
                warnings.push(format!(
                    "scope group name '{name}' matches {} groups; all of them are synced",
                    found.len()
                ));
            }
            ids.extend(found);
        }
        Ok(ids)
    }

    async fn read_scoped(
        &self,
        prev: Option<&SourceSnapshot>,
        cursor: Option<&Cursor>,
        full_reason: Option<FullReason>,
    ) -> Result<Outcome, ConnectorError> {
        let mut warnings = Vec::new();
        let mut complete = true;
        let ids: Vec<String> = self
            .resolve_names(&mut warnings, &mut complete)
            .await?
            .into_iter()
            .collect();
        // Names and descriptions: one $batch per 20 groups.
        let urls: Vec<String> = ids
            .iter()
            .map(|id| format!("/groups/{id}?$select=id,displayName,description"))
            .collect();
        let meta = batch_get(
            &self.client,
            &urls,
            self.cfg.max_concurrency,
            self.cfg.retry.max_delay,
        )
        .await
        .map_err(|e| e.into_connector())?;
        let mut groups: BTreeMap<String, SourceGroup> = BTreeMap::new();
        for (id, item) in ids.iter().zip(meta) {
            match item.status {
                200 => {
                    groups.insert(
                        id.clone(),
                        SourceGroup {
                            id: id.clone(),
                            display_name: item
                                .body
                                .get("displayName")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                            description: item
                                .body
                                .get("description")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                            member_users: BTreeSet::new(),
                            member_groups: BTreeSet::new(),
                        },
                    );
                }
                401 | 403 => {
                    let body = item.body.to_string();
                    let e = json_or_error(
                        super::client::Reply {
                            status: item.status,
                            headers: Default::default(),
                            body: body.into_bytes(),
                        },
                        "GET group",
                    )
                    .unwrap_err();
                    return Err(e.into_connector());
                }
                404 => {
                    complete = false;
                    warnings.push(format!("scope group {id} does not exist (deleted, or a wrong id in the configuration); removals are held back until it is fixed"));
                }
                s => {
                    complete = false;
                    warnings.push(format!("reading scope group {id} failed with HTTP {s}"));
                }
            }
        }
        // Flattened member users with their properties, ceil(n/999) requests per group.
        let gids: Vec<String> = groups.keys().cloned().collect();
        let results: Vec<(String, UserSet, RoundEnd)> = futures::stream::iter(gids)
            .map(|gid| async move {
                let mut set = UserSet::default();
                let url = format!("groups/{gid}/transitiveMembers/microsoft.graph.user?$count=true&$select={USER_SELECT}&$top={}", self.cfg.page_size.clamp(1, 999));
                let end = self
                    .round(url, "group members", Listing::Plain, |items| set.apply(items))
                    .await;
                (gid, set, end)
            })
            .buffer_unordered(self.cfg.max_concurrency.max(1))
            .collect()
            .await;
        let mut users: BTreeMap<String, SourceUser> = BTreeMap::new();
        for (gid, set, end) in results {
            if let Some(w) = end.problem(&format!("members of group {gid}"))? {
                complete = false;
                warnings.push(w);
            }
            if let Some(g) = groups.get_mut(&gid) {
                g.member_users = set.users.keys().cloned().collect();
            }
            users.extend(set.users);
        }
        // Photos: all users on full/reconcile reads, else only new or changed users.
        let photos = match (&full_reason, prev) {
            (None, Some(p)) => {
                let old: HashMap<&str, &SourceUser> =
                    p.users.iter().map(|u| (u.id.as_str(), u)).collect();
                PhotoTargets::Only(
                    users
                        .values()
                        .filter(|u| {
                            old.get(u.id.as_str()).is_none_or(|o| {
                                SourceUser {
                                    photo: None,
                                    ..(*o).clone()
                                } != SourceUser {
                                    photo: None,
                                    ..(*u).clone()
                                }
                            })
                        })
                        .map(|u| u.id.clone())
                        .collect(),
                )
            }
            _ => PhotoTargets::All,
        };
        let last_full_read = if full_reason.is_some() {
            Some(jiff::Timestamp::now().to_string())
        } else {
            cursor.and_then(|c| c.last_full_read.clone())
        };
        Ok(Outcome {
            users,
            groups,
            complete,
            warnings,
            mode: ReadMode::Scoped(full_reason.unwrap_or_default()),
            cursor: Cursor {
                version: 1,
                mode: CursorMode::Scoped,
                users_delta_link: None,
                groups_delta_link: None,
                last_full_read,
                fingerprint: self.fingerprint(),
            },
            photos,
        })
    }

    /// Whether the current token carries a photo permission (`None` if not decodable).
    async fn token_allows_photos(&self) -> Result<Option<bool>, ConnectorError> {
        let token = self
            .client
            .tokens
            .token()
            .await
            .map_err(|e| e.into_connector())?;
        use secrecy::ExposeSecret;
        Ok(decode_claims(token.secret.expose_secret())
            .map(|c| c.roles.iter().any(|r| PHOTO_ROLES.contains(&r.as_str()))))
    }

    /// Refreshes photo tags of `targets`; other users keep the tag they carry.
    async fn refresh_photo_tags(
        &self,
        users: &mut BTreeMap<String, SourceUser>,
        targets: PhotoTargets,
        warnings: &mut Vec<String>,
    ) -> Result<(), ConnectorError> {
        if !self.cfg.read_photos {
            for u in users.values_mut() {
                u.photo = None;
            }
            return Ok(());
        }
        const NO_PERMISSION: &str = "profile pictures skipped: the application lacks the Microsoft Graph application permission User.Read.All — add it under API permissions and grant admin consent";
        if self.token_allows_photos().await? == Some(false) {
            warnings.push(NO_PERMISSION.into());
            return Ok(());
        }
        let ids: Vec<String> = match targets {
            PhotoTargets::All => users.keys().cloned().collect(),
            PhotoTargets::Only(set) => set
                .into_iter()
                .filter(|id| users.contains_key(id))
                .collect(),
        };
        if ids.is_empty() {
            return Ok(());
        }
        let urls: Vec<String> = ids.iter().map(|id| format!("/users/{id}/photo")).collect();
        let items = match batch_get(
            &self.client,
            &urls,
            self.cfg.max_concurrency,
            self.cfg.retry.max_delay,
        )
        .await
        {
            Ok(items) => items,
            Err(e) if is_systemic(&e) => return Err(e.into_connector()),
            Err(e) => {
                warnings.push(format!("profile picture tags could not be read; pictures keep their previous state: {}", e.into_connector().message));
                return Ok(());
            }
        };
        let (mut denied, mut failed) = (0usize, 0usize);
        for (id, item) in ids.iter().zip(items) {
            let Some(u) = users.get_mut(id) else { continue };
            match item.status {
                200 => {
                    let tag = item
                        .body
                        .get("@odata.mediaEtag")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    // The "no photo" placeholder is a 1x1 GIF with an empty ETag; the doc shows
                    // both "1x1" and "1X1" (profilephoto-get). Not an error: no photo.
                    let placeholder = item
                        .body
                        .get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| id.eq_ignore_ascii_case("1x1"));
                    u.photo = (!tag.is_empty() && !placeholder).then(|| PhotoRef {
                        tag: tag.to_string(),
                    });
                }
                // Any 404 (ImageNotFound, ErrorItemNotFound, …) means "no photo".
                404 => u.photo = None,
                401 | 403 => denied += 1,
                _ => failed += 1,
            }
        }
        if denied > 0 {
            warnings.push(NO_PERMISSION.into());
        }
        if failed > 0 {
            warnings.push(format!("profile picture tags of {failed} users could not be read after retries; they keep their previous state"));
        }
        Ok(())
    }

    async fn read_inner(&self, mut state: SourceSyncState) -> Result<SourceRead, ConnectorError> {
        let req0 = self.client.counters.requests();
        let thr0 = self.client.counters.throttled();
        let cursor = Cursor::from_value(&state.cursor);
        let full_reason = self.full_reason(&state, cursor.as_ref());
        // Tags carried over to users re-read in full (photos are not part of delta).
        let prev_photos: HashMap<String, PhotoRef> = state
            .snapshot
            .iter()
            .flat_map(|s| s.users.iter())
            .filter_map(|u| u.photo.clone().map(|p| (u.id.clone(), p)))
            .collect();
        let mut out = if self.cfg.is_scoped() {
            self.read_scoped(state.snapshot.as_deref(), cursor.as_ref(), full_reason)
                .await?
        } else {
            // The previous snapshot is patched in place (moved, not copied: large tenants;
            // the store hands over the only reference).
            self.read_tenant(
                state.snapshot.take().map(Arc::unwrap_or_clone),
                cursor.as_ref(),
                full_reason,
            )
            .await?
        };
        for u in out.users.values_mut() {
            if u.photo.is_none()
                && let Some(p) = prev_photos.get(&u.id)
            {
                u.photo = Some(p.clone());
            }
        }
        drop(prev_photos);
        let targets = std::mem::replace(&mut out.photos, PhotoTargets::All);
        self.refresh_photo_tags(&mut out.users, targets, &mut out.warnings)
            .await?;
        {
            let mut tags = self.tags.lock().unwrap_or_else(|p| p.into_inner());
            tags.clear();
            tags.extend(
                out.users
                    .values()
                    .filter_map(|u| u.photo.as_ref().map(|p| (u.id.clone(), p.tag.clone()))),
            );
        }
        // One snapshot, shared with the state to save (the largest thing a run holds).
        let snapshot = Arc::new(SourceSnapshot {
            users: out.users.into_values().collect(),
            groups: out.groups.into_values().collect(),
            complete: out.complete,
            warnings: out.warnings,
        });
        // Incomplete: the saved state must not advance, so hand back the old cursor (the store
        // does not save incomplete reads anyway; the snapshot may have been consumed above).
        let next_state = if snapshot.complete {
            SourceSyncState {
                cursor: out.cursor.to_value(),
                snapshot: Some(Arc::clone(&snapshot)),
            }
        } else {
            state
        };
        let stats = ReadStats {
            mode: out.mode,
            requests: self.client.counters.requests() - req0,
            throttled: self.client.counters.throttled() - thr0,
        };
        Ok(SourceRead {
            snapshot,
            next_state,
            stats,
        })
    }
}

/// Checks that `bytes` are a JPEG or PNG that decodes within sane limits; returns the MIME type.
pub fn validate_image(bytes: &[u8]) -> Result<&'static str, String> {
    let format = image::guess_format(bytes).map_err(|e| format!("not a recognised image: {e}"))?;
    let mime = match format {
        image::ImageFormat::Jpeg => "image/jpeg",
        image::ImageFormat::Png => "image/png",
        other => {
            return Err(format!(
                "unsupported image format {other:?} (only JPEG and PNG are synced)"
            ));
        }
    };
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(8192);
    limits.max_image_height = Some(8192);
    limits.max_alloc = Some(128 * 1024 * 1024);
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| format!("the image does not decode: {e}"))?;
    Ok(mime)
}

#[async_trait]
impl SourceDirectory for GraphSource {
    async fn read(&self, state: Option<SourceSyncState>) -> Result<SourceRead, ConnectorError> {
        self.read_inner(state.unwrap_or_default()).await
    }

    async fn photo(&self, source_id: &str) -> Result<Option<Photo>, ConnectorError> {
        if !self.cfg.read_photos {
            return Ok(None);
        }
        let id = utf8_percent_encode(source_id, NON_ALPHANUMERIC).to_string();
        let reply = self
            .client
            .send(
                Method::GET,
                &format!("users/{id}/photo/$value"),
                None,
                &[],
                "GET user photo",
            )
            .await
            .map_err(CallError::into_connector)?;
        match reply.status {
            // No photo is normal (ImageNotFound / ErrorItemNotFound / ErrorEntityNotFound).
            404 => Ok(None),
            200 => {
                let content_type = validate_image(&reply.body).map_err(|m| {
                    ConnectorError::new(
                        ErrorKind::Invalid,
                        format!("profile picture of {source_id}: {m}"),
                    )
                })?;
                let known = self
                    .tags
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(source_id)
                    .cloned();
                let tag = known
                    .or_else(|| {
                        reply
                            .headers
                            .get(reqwest::header::ETAG)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| format!("sha256:{:x}", sha2::Sha256::digest(&reply.body)));
                Ok(Some(Photo {
                    content_type: content_type.into(),
                    bytes: reply.body,
                    tag,
                }))
            }
            _ => Err(json_or_error(reply, "GET user photo")
                .err()
                .map(CallError::into_connector)
                .unwrap_or_else(|| {
                    ConnectorError::new(ErrorKind::Other, "unexpected photo response")
                })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_validation() {
        let mut png = Vec::new();
        image::RgbImage::new(4, 4)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(validate_image(&png), Ok("image/png"));
        let mut jpg = Vec::new();
        image::RgbImage::new(4, 4)
            .write_to(
                &mut std::io::Cursor::new(&mut jpg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        assert_eq!(validate_image(&jpg), Ok("image/jpeg"));
        assert!(validate_image(b"GIF89a\x01\x00\x01\x00").is_err());
        assert!(validate_image(b"<html>").is_err());
        assert!(validate_image(&png[..png.len() / 2]).is_err());
    }
}
