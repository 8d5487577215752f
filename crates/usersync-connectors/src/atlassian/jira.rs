//! Jira Data Center target, REST API 2 (`/rest/api/2`).
//!
//! Sources: the official Jira DC 10.3 OpenAPI
//! (`dac-static.atlassian.com/server/jira/platform/jira_software_dc_10003_swagger.v3.json`) and
//! the Jira Server REST reference (`docs.atlassian.com/software/jira/docs/api/REST/latest/`).
//!
//! - Users are listed with `GET /user/list` (cursor paging, Jira 10.3 LTS / 11.0+). Older Jira
//!   has no complete listing: `GET /user/search?username=.` never returns more than the first
//!   1000 matches (JRASERVER-65089), so a result that reaches the cap fails the read rather than
//!   returning a silently partial directory.
//! - Groups come from `GET /groups/picker`, whose result size is capped by the
//!   `jira.ajax.autocomplete.limit` system property; when `total` exceeds what was returned the
//!   read fails and says which property to raise.
//! - Memberships come from `GET /group/member` (paged with `startAt`/`isLast`). Jira's internal
//!   directory does not nest groups by default; where nesting is on, this endpoint also lists
//!   nested members (documented), which Jira cannot write anyway.
//! - Deactivation is `PUT /user {"active":false}` (Jira 8.3+, JRASERVER-37294); a deactivated
//!   user does not count toward the licence.
//! - Avatars use the documented three steps: temporary upload, crop/confirm, select.
//! - Single-object reads (incremental runs, re-reads before removals): `GET /user?username=
//!   &expand=groups` (one account with its groups; 404 when there is none) and
//!   `GET /group/member?groupname=&maxResults=1` (404 when the group does not exist).

use super::client::{Client, json_body, run_all, unexpected};
use super::{AtlassianTargetConfig, Product};
use crate::http::Idempotency;
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use usersync_core::model::{TargetAccount, TargetGroup, TargetSnapshot, name_key};
use usersync_core::plan::{AccountSpec, Field, FieldChange};
use usersync_core::ports::{
    AccountRef, ConnectorError, Created, ErrorKind, Photo, TargetCapabilities, TargetDirectory,
};

const API: &str = "/rest/api/2";
/// `GET /user/search` returns at most this many users in total (JRASERVER-65089).
const SEARCH_CAP: usize = 1000;

pub(crate) struct JiraTarget {
    c: Client,
    application_keys: Vec<String>,
}

/// Jira `UserBean` (only the fields usersync reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserBean {
    name: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    email_address: Option<String>,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    deleted: bool,
    /// `{"size","items":[{"name"}]}`, filled with `expand=groups`.
    #[serde(default)]
    groups: Option<GroupList>,
}

/// The `groups` of a `UserBean` (`SimpleListWrapper`).
#[derive(Debug, Default, Deserialize)]
struct GroupList {
    #[serde(default)]
    items: Vec<GroupSuggestion>,
}

fn yes() -> bool {
    true
}

/// `StreamPageBean` of `GET /user/list`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamPage {
    #[serde(default)]
    values: Vec<UserBean>,
    #[serde(default)]
    is_last: Option<bool>,
    #[serde(default)]
    next_cursor: Option<serde_json::Value>,
}

/// Page of `GET /group/member`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberPage {
    #[serde(default)]
    values: Vec<UserBean>,
    #[serde(default)]
    is_last: Option<bool>,
    #[serde(default)]
    total: Option<u64>,
}

/// `GroupSuggestionsBean` of `GET /groups/picker`.
#[derive(Debug, Deserialize)]
struct GroupSuggestions {
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    groups: Vec<GroupSuggestion>,
}

#[derive(Debug, Deserialize)]
struct GroupSuggestion {
    name: String,
}

impl JiraTarget {
    pub(crate) fn new(c: Client, cfg: &AtlassianTargetConfig) -> Self {
        Self {
            c,
            application_keys: cfg.jira_application_keys.clone(),
        }
    }

    async fn list_users(&self) -> Result<Vec<UserBean>, ConnectorError> {
        let what = "list Jira users";
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let resp = self
                .c
                .send(what, Idempotency::Idempotent, || {
                    let mut q: Vec<(&str, String)> = vec![("maxResults", "1000".into())];
                    if let Some(cur) = &cursor {
                        q.push(("cursor", cur.clone()));
                    }
                    self.c
                        .req(Method::GET, &format!("{API}/user/list"))
                        .query(&q)
                })
                .await?;
            if resp.status().as_u16() == 404 && cursor.is_none() {
                // Jira before 10.3 has no /user/list.
                return self.search_users().await;
            }
            if resp.status().as_u16() != 200 {
                return Err(self.c.error_from(resp, what).await);
            }
            let page: StreamPage = json_body(resp, what).await?;
            let n = page.values.len();
            out.extend(page.values);
            let next = match page.next_cursor {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            // The page says whether it is the last; without the flag, a missing cursor or an
            // empty page ends the listing.
            let last = page.is_last.unwrap_or(next.is_none() || n == 0);
            if last {
                return Ok(out);
            }
            match next {
                Some(n) if Some(&n) != cursor.as_ref() => cursor = Some(n),
                _ => {
                    return Err(unexpected(
                        what,
                        "isLast is false but no new nextCursor was given",
                    ));
                }
            }
        }
    }

    /// Fallback for Jira before 10.3: `GET /user/search?username=.` (matches every user,
    /// JRA-29069), paged with `startAt`, capped at 1000 results in total.
    async fn search_users(&self) -> Result<Vec<UserBean>, ConnectorError> {
        let what = "search Jira users";
        let page_size = 1000usize;
        let mut out: Vec<UserBean> = Vec::new();
        loop {
            let start = out.len();
            let page: Vec<UserBean> = self
                .c
                .get_json(what, || {
                    self.c
                        .req(Method::GET, &format!("{API}/user/search"))
                        .query(&[
                            ("username", ".".to_string()),
                            ("startAt", start.to_string()),
                            ("maxResults", page_size.to_string()),
                            ("includeActive", "true".into()),
                            ("includeInactive", "true".into()),
                        ])
                })
                .await?;
            let n = page.len();
            out.extend(page);
            if n == 0 || n < page_size || out.len() >= SEARCH_CAP {
                break;
            }
        }
        // Newer 10.3.x builds cap at 100 (startAt + maxResults ≤ 100), older ones at 1000; a
        // listing that ends exactly there may be truncated.
        if out.len() >= SEARCH_CAP || out.len() == 100 {
            return Err(ConnectorError::new(
                ErrorKind::Unsupported,
                format!(
                    "list Jira users: this Jira has no /rest/api/2/user/list (added in Jira 10.3) and /user/search stops at {} users, \
                     so the listing may be incomplete — upgrade Jira to 10.3 LTS or later, or provision through Jira's user server \
                     with the Crowd target",
                    out.len()
                ),
            ));
        }
        Ok(out)
    }

    async fn list_groups(&self) -> Result<Vec<String>, ConnectorError> {
        let what = "list Jira groups";
        let page: GroupSuggestions = self
            .c
            .get_json(what, || {
                self.c
                    .req(Method::GET, &format!("{API}/groups/picker"))
                    .query(&[("query", ""), ("maxResults", "1000000")])
            })
            .await?;
        if let Some(total) = page.total
            && (page.groups.len() as u64) < total
        {
            return Err(ConnectorError::new(
                ErrorKind::Other,
                format!(
                    "list Jira groups: the group picker returned {} of {total} groups (capped by the jira.ajax.autocomplete.limit \
                     system property) — set -Djira.ajax.autocomplete.limit={} or higher on the Jira nodes and restart",
                    page.groups.len(),
                    total.max(1000)
                ),
            ));
        }
        Ok(page.groups.into_iter().map(|g| g.name).collect())
    }

    async fn group_members(&self, group: &str) -> Result<Vec<UserBean>, ConnectorError> {
        let what = format!("list members of Jira group {group}");
        let mut out = Vec::new();
        loop {
            let start = out.len();
            let page: MemberPage = self
                .c
                .get_json(&what, || {
                    self.c
                        .req(Method::GET, &format!("{API}/group/member"))
                        .query(&[
                            ("groupname", group.to_string()),
                            ("includeInactiveUsers", "true".into()),
                            ("startAt", start.to_string()),
                            ("maxResults", "50".into()),
                        ])
                })
                .await?;
            let n = page.values.len();
            out.extend(page.values);
            let last = match (page.is_last, page.total) {
                (Some(l), _) => l,
                (None, Some(t)) => out.len() as u64 >= t,
                (None, None) => n == 0,
            };
            if last || n == 0 {
                if let Some(t) = page.total
                    && (out.len() as u64) < t
                {
                    return Err(unexpected(
                        &what,
                        format!("paging ended after {} of {t} members", out.len()),
                    ));
                }
                return Ok(out);
            }
        }
    }
    async fn add_one(&self, group: &str, u: &str) -> Result<(), ConnectorError> {
        let what = format!("add {u} to Jira group {group}");
        let body = json!({ "name": u });
        match self
            .c
            .call(&what, Idempotency::NonIdempotent, &[200, 201], || {
                self.c
                    .req(Method::POST, &format!("{API}/group/user"))
                    .query(&[("groupname", group)])
                    .json(&body)
            })
            .await
        {
            // Jira answers 400 when the user is already in the group: the wanted state.
            Err(e) if e.kind == ErrorKind::Conflict => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// The query parameter addressing `account` on `/rest/api/2/user`: `key=` when the plan knows
/// the key (the user resource accepts `username` or `key`), so a username given to another
/// account since the read answers 404 instead of writing to that account.
fn user_param<'a>(account: AccountRef<'a>) -> (&'static str, &'a str) {
    match account.key {
        Some(k) => ("key", k),
        None => ("username", account.username),
    }
}

/// `bob` or `bob (key JIRAUSER10001)`, for messages.
fn describe(account: AccountRef<'_>) -> String {
    match account.key {
        Some(k) => format!("{} (key {k})", account.username),
        None => account.username.to_string(),
    }
}

#[async_trait]
impl TargetDirectory for JiraTarget {
    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities {
            product: Product::Jira.display_name().into(),
            deactivate: true,
            rename: true,
            delete_user: true,
            avatars: true,
            batch_membership: false,
            lowercase_usernames_only: false,
            max_concurrency: self.c.max_concurrency,
        }
    }

    async fn read(&self) -> Result<TargetSnapshot, ConnectorError> {
        let users = self.list_users().await?;
        let groups = self.list_groups().await?;
        let mut accounts: Vec<TargetAccount> = Vec::with_capacity(users.len());
        let mut by_key: HashMap<String, usize> = HashMap::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for u in users.into_iter().filter(|u| !u.deleted) {
            let i = accounts.len();
            if let Some(k) = &u.key {
                by_key.insert(k.clone(), i);
            }
            by_name.insert(name_key(&u.name), i);
            accounts.push(TargetAccount {
                display_name: u.display_name.unwrap_or_else(|| u.name.clone()),
                email: u.email_address.unwrap_or_default(),
                username: u.name,
                key: u.key,
                active: u.active,
                groups: BTreeSet::new(),
            });
        }
        let limit = self.c.max_concurrency;
        let members: Vec<(String, Result<Vec<UserBean>, ConnectorError>)> =
            futures::stream::iter(groups.iter().cloned())
                .map(|g| async move {
                    let r = self.group_members(&g).await;
                    (g, r)
                })
                .buffer_unordered(limit)
                .collect()
                .await;
        for (group, result) in members {
            for m in result? {
                let idx = m
                    .key
                    .as_ref()
                    .and_then(|k| by_key.get(k))
                    .or_else(|| by_name.get(&name_key(&m.name)));
                if let Some(&i) = idx {
                    accounts[i].groups.insert(group.clone());
                }
            }
        }
        Ok(TargetSnapshot {
            accounts,
            groups: groups
                .into_iter()
                .map(|name| TargetGroup { name })
                .collect(),
        })
    }

    fn supports_targeted_reads(&self) -> bool {
        true
    }

    async fn read_account(&self, username: &str) -> Result<Option<TargetAccount>, ConnectorError> {
        let what = format!("read Jira user {username}");
        let u: Option<UserBean> = self
            .c
            .get_json_opt(&what, || {
                self.c
                    .req(Method::GET, &format!("{API}/user"))
                    .query(&[("username", username), ("expand", "groups")])
            })
            .await?;
        Ok(u.filter(|u| !u.deleted).map(|u| TargetAccount {
            display_name: u.display_name.unwrap_or_else(|| u.name.clone()),
            email: u.email_address.unwrap_or_default(),
            groups: u
                .groups
                .unwrap_or_default()
                .items
                .into_iter()
                .map(|g| g.name)
                .collect(),
            username: u.name,
            key: u.key,
            active: u.active,
        }))
    }

    async fn group_exists(&self, name: &str) -> Result<bool, ConnectorError> {
        let what = format!("check Jira group {name}");
        let page: Option<MemberPage> = self
            .c
            .get_json_opt(&what, || {
                self.c
                    .req(Method::GET, &format!("{API}/group/member"))
                    .query(&[("groupname", name), ("maxResults", "1")])
            })
            .await?;
        Ok(page.is_some())
    }

    async fn create_user(&self, spec: &AccountSpec) -> Result<Created, ConnectorError> {
        let what = format!("create Jira user {}", spec.username);
        // No password: Jira generates a random one when it is omitted (UserWriteBean docs);
        // users sign in through SSO. applicationKeys is always sent, so an empty list means
        // "no application access" instead of "the applications selected by default".
        let body = json!({
            "name": spec.username,
            "displayName": spec.display_name,
            "emailAddress": spec.email,
            "notification": "false",
            "applicationKeys": self.application_keys,
        });
        let resp = self
            .c
            .call(&what, Idempotency::NonIdempotent, &[200, 201], || {
                self.c.req(Method::POST, &format!("{API}/user")).json(&body)
            })
            .await?;
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        Ok(Created {
            key: v.get("key").and_then(|k| k.as_str()).map(str::to_string),
        })
    }

    async fn update_user(
        &self,
        username: &str,
        changes: &[FieldChange],
    ) -> Result<(), ConnectorError> {
        self.update_user_ref(
            AccountRef {
                username,
                key: None,
            },
            changes,
        )
        .await
    }

    async fn update_user_ref(
        &self,
        account: AccountRef<'_>,
        changes: &[FieldChange],
    ) -> Result<(), ConnectorError> {
        let mut body = serde_json::Map::new();
        for c in changes {
            match c.field {
                Field::DisplayName => body.insert("displayName".into(), json!(c.after)),
                Field::Email => body.insert("emailAddress".into(), json!(c.after)),
            };
        }
        if body.is_empty() {
            return Ok(());
        }
        let body = serde_json::Value::Object(body);
        self.c
            .call(
                &format!("update Jira user {}", describe(account)),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::PUT, &format!("{API}/user"))
                        .query(&[user_param(account)])
                        .json(&body)
                },
            )
            .await?;
        Ok(())
    }

    async fn rename_user(&self, from: &str, to: &str) -> Result<(), ConnectorError> {
        // PUT /user?username=OLD {"name":"NEW"}; the key stays the same.
        let body = json!({ "name": to });
        self.c
            .call(
                &format!("rename Jira user {from} to {to}"),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::PUT, &format!("{API}/user"))
                        .query(&[("username", from)])
                        .json(&body)
                },
            )
            .await?;
        Ok(())
    }

    async fn set_active(&self, username: &str, active: bool) -> Result<(), ConnectorError> {
        self.set_active_ref(
            AccountRef {
                username,
                key: None,
            },
            active,
        )
        .await
    }

    async fn set_active_ref(
        &self,
        account: AccountRef<'_>,
        active: bool,
    ) -> Result<(), ConnectorError> {
        // `active` is a JSON boolean; Jira 8.3+ (JRASERVER-37294). Older Jira answers
        // 400 "error.no.value.found.to.be.changed".
        let body = json!({ "active": active });
        let verb = if active { "reactivate" } else { "deactivate" };
        self.c
            .call(
                &format!("{verb} Jira user {}", describe(account)),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::PUT, &format!("{API}/user"))
                        .query(&[user_param(account)])
                        .json(&body)
                },
            )
            .await?;
        Ok(())
    }

    async fn delete_user(&self, username: &str) -> Result<(), ConnectorError> {
        self.delete_user_ref(AccountRef {
            username,
            key: None,
        })
        .await
    }

    async fn delete_user_ref(&self, account: AccountRef<'_>) -> Result<(), ConnectorError> {
        self.c
            .call(
                &format!("delete Jira user {}", describe(account)),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::DELETE, &format!("{API}/user"))
                        .query(&[user_param(account)])
                },
            )
            .await?;
        Ok(())
    }

    async fn create_group(&self, name: &str) -> Result<(), ConnectorError> {
        let body = json!({ "name": name });
        self.c
            .call(
                &format!("create Jira group {name}"),
                Idempotency::NonIdempotent,
                &[200, 201],
                || {
                    self.c
                        .req(Method::POST, &format!("{API}/group"))
                        .json(&body)
                },
            )
            .await?;
        Ok(())
    }

    async fn delete_group(&self, name: &str) -> Result<(), ConnectorError> {
        // Documented success is 200 (not 204).
        self.c
            .call(
                &format!("delete Jira group {name}"),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::DELETE, &format!("{API}/group"))
                        .query(&[("groupname", name)])
                },
            )
            .await?;
        Ok(())
    }

    async fn add_members(&self, group: &str, usernames: &[String]) -> Result<(), ConnectorError> {
        let futs = usernames
            .iter()
            .map(|u| self.add_one(group, u).boxed())
            .collect();
        run_all(
            futs,
            self.c.max_concurrency,
            &format!("add members to Jira group {group}"),
        )
        .await
    }

    async fn remove_member(&self, group: &str, username: &str) -> Result<(), ConnectorError> {
        self.c
            .call(
                &format!("remove {username} from Jira group {group}"),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::DELETE, &format!("{API}/group/user"))
                        .query(&[("groupname", group), ("username", username)])
                },
            )
            .await?;
        Ok(())
    }

    async fn set_avatar(&self, username: &str, photo: &Photo) -> Result<(), ConnectorError> {
        let ext = if photo.content_type == "image/png" {
            "png"
        } else {
            "jpg"
        };
        // Step 1: temporary avatar, raw body variant; multipart/raw uploads need
        // `X-Atlassian-Token: no-check` (XSRF protection).
        let what = format!("upload temporary avatar for Jira user {username}");
        let resp = self
            .c
            .call(&what, Idempotency::NonIdempotent, &[200, 201], || {
                self.c
                    .req(Method::POST, &format!("{API}/user/avatar/temporary"))
                    .query(&[
                        ("username", username.to_string()),
                        ("filename", format!("avatar.{ext}")),
                        ("size", photo.bytes.len().to_string()),
                    ])
                    .header("X-Atlassian-Token", "no-check")
                    .header(reqwest::header::CONTENT_TYPE, photo.content_type.clone())
                    .body(photo.bytes.clone())
            })
            .await?;
        // The multipart variant wraps the JSON in an HTML page (iframe legacy); accept both.
        let text = resp.text().await.unwrap_or_default();
        let json_text = match (text.find('{'), text.rfind('}')) {
            (Some(a), Some(b)) if b > a => &text[a..=b],
            _ => return Err(unexpected(&what, "no AvatarCroppingBean in the response")),
        };
        let crop: serde_json::Value =
            serde_json::from_str(json_text).map_err(|e| unexpected(&what, e))?;
        // Step 2: confirm the crop (whole image).
        let what = format!("confirm avatar for Jira user {username}");
        let crop_body = json!({
            "cropperWidth": crop.get("cropperWidth").cloned().unwrap_or(json!(0)),
            "cropperOffsetX": crop.get("cropperOffsetX").cloned().unwrap_or(json!(0)),
            "cropperOffsetY": crop.get("cropperOffsetY").cloned().unwrap_or(json!(0)),
            "needsCropping": false,
        });
        let resp = self
            .c
            .call(&what, Idempotency::NonIdempotent, &[200, 201], || {
                self.c
                    .req(Method::POST, &format!("{API}/user/avatar"))
                    .query(&[("username", username)])
                    .json(&crop_body)
            })
            .await?;
        let avatar: serde_json::Value = json_body(resp, &what).await?;
        let id = match avatar.get("id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => return Err(unexpected(&what, "AvatarBean without id")),
        };
        // Step 3: select it.
        let body = json!({ "id": id });
        self.c
            .call(
                &format!("select avatar for Jira user {username}"),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::PUT, &format!("{API}/user/avatar"))
                        .query(&[("username", username)])
                        .json(&body)
                },
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/atlassian/");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIX}{name}")).expect("fixture")
    }

    #[test]
    fn parses_documented_user_list_page() {
        let page: StreamPage = serde_json::from_str(&fixture("jira-user-list.json")).unwrap();
        assert_eq!(page.is_last, Some(false));
        assert_eq!(page.next_cursor, Some(serde_json::json!("10101")));
        assert_eq!(page.values.len(), 2);
        let fred = &page.values[0];
        assert_eq!(fred.key.as_deref(), Some("JIRAUSER10100"));
        assert_eq!(fred.email_address.as_deref(), Some("fred@example.com"));
        assert!(fred.active && !fred.deleted);
        assert!(!page.values[1].active);
    }

    #[test]
    fn parses_documented_member_page_and_picker() {
        let page: MemberPage = serde_json::from_str(&fixture("jira-group-member.json")).unwrap();
        assert_eq!(
            (page.is_last, page.total, page.values.len()),
            (Some(false), Some(5), 1)
        );
        let picker: GroupSuggestions =
            serde_json::from_str(&fixture("jira-groups-picker.json")).unwrap();
        // 2 of 25: the read must fail rather than return a partial list.
        assert_eq!(picker.total, Some(25));
        assert_eq!(picker.groups[0].name, "jdog-developers");
    }
}
