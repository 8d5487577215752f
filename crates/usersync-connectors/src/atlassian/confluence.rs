//! Confluence Data Center target: the user management REST API (`/rest/api/admin/...`,
//! `/rest/api/user/...`, `/rest/api/group/...`), complete since Confluence DC 8.4
//! (CONFSERVER-87290/87291/87292).
//!
//! Sources: the official Confluence DC 10.0.3 OpenAPI
//! (`dac-static.atlassian.com/server/confluence/10.0.3.swagger.v3.json`) and the REST reference
//! at `developer.atlassian.com/server/confluence/rest/`.
//!
//! - Lists are pages `{"results","start","limit","size","_links":{"next"}}`; paging stops when
//!   `_links.next` is absent.
//! - Usernames must be lower-case (UserDetailsForCreation rules), hence
//!   `lowercase_usernames_only`.
//! - There is no REST rename: a changed username keeps the old login name.
//! - Disable / enable are idempotent `PUT`s (204); a disabled user does not count toward the
//!   licence. Create answers 402 when no licence seat is left.
//! - Delete is asynchronous: 202 with a long task, which is polled.
//! - Avatars: only an undocumented internal user-profile endpoint exists, so not supported.
//! - `status` is an expansion: a user listed without one is read again alone, and the read
//!   fails rather than guess active or inactive (`resolve_unknown_status`).
//! - Single-object reads (incremental runs, re-reads before removals): `GET /user?username=
//!   &expand=status,email` (404 when there is no such user), `GET /user/memberof?username=`
//!   (paged) for the account's groups, `GET /group/{name}` (404 when the group does not exist).

use super::client::{Client, json_body, random_password, run_all, seg, unexpected, unsupported};
use super::{AtlassianTargetConfig, Product};
use crate::http::Idempotency;
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
use usersync_core::model::{TargetAccount, TargetGroup, TargetSnapshot, name_key};
use usersync_core::plan::{AccountSpec, Field, FieldChange};
use usersync_core::ports::{
    ConnectorError, Created, ErrorKind, Photo, TargetCapabilities, TargetDirectory,
};

const API: &str = "/rest/api";
const PAGE: usize = 200;

pub(crate) struct ConfluenceTarget {
    c: Client,
    delete_wait: Duration,
}

/// Reads a Confluence `Person` leniently: the OpenAPI lists only `displayName`, `type` and
/// `profilePicture`; real `KnownUser` JSON adds `username`, `userKey`, and with expansions the
/// e-mail and status. `active` is only meaningful when [`person_status`] is `Some`: the
/// listing's caller resolves or refuses an unknown status (see `read`).
pub(crate) fn person(v: &Value) -> Option<TargetAccount> {
    let username = v
        .get("username")
        .or_else(|| v.get("name"))
        .and_then(|u| u.as_str())?
        .to_string();
    let email = ["/email", "/details/personal/email", "/details/email"]
        .iter()
        .find_map(|p| v.pointer(p).and_then(|e| e.as_str()))
        .unwrap_or_default()
        .to_string();
    Some(TargetAccount {
        display_name: v
            .get("displayName")
            .and_then(|d| d.as_str())
            .unwrap_or(&username)
            .to_string(),
        key: v
            .get("userKey")
            .and_then(|k| k.as_str())
            .map(str::to_string),
        username,
        email,
        active: person_status(v).unwrap_or(true),
        groups: BTreeSet::new(),
    })
}

/// Whether a `Person` is active, when the payload says: `status` as a string ("Active" /
/// "Deactivated", the values atlassian-python-api documents for `expand=status`) or as an
/// object with `value`, or a boolean `active`. `None` when it says nothing: `status` is an
/// expansion (`_expandable.status` in the real responses), so a server or proxy that drops
/// the expansion leaves it out.
pub(crate) fn person_status(v: &Value) -> Option<bool> {
    match v.get("status") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(status_active(s)),
        Some(Value::Object(o)) => o
            .get("value")
            .and_then(|s| s.as_str())
            .filter(|s| !s.trim().is_empty())
            .map(status_active),
        _ => v.get("active").and_then(|a| a.as_bool()),
    }
}

fn status_active(s: &str) -> bool {
    let s = s.to_ascii_lowercase();
    !(s.contains("deactivated") || s.contains("disabled") || s.contains("inactive"))
}

impl ConfluenceTarget {
    pub(crate) fn new(c: Client, cfg: &AtlassianTargetConfig) -> Self {
        Self {
            c,
            delete_wait: cfg.confluence_delete_wait,
        }
    }

    /// A missing `status` is unknown, never a guess. The planner's account model has only
    /// active or inactive, and either guess removes: "active" makes every past leaver a
    /// deactivation again on every run (each counted toward the removal guard, and under the
    /// delete policy restarting its grace period), "inactive" makes the delete policy start a
    /// leaver's grace period and later delete it. So each account whose status the listing
    /// left out is read again alone (`GET /rest/api/user?key=…&expand=status`); if that does
    /// not say either, the read fails, naming the accounts, and nothing is planned.
    async fn resolve_unknown_status(
        &self,
        accounts: &mut [TargetAccount],
        unknown: &[usize],
    ) -> Result<(), ConnectorError> {
        let lookups: Vec<(usize, Result<Value, ConnectorError>)> =
            futures::stream::iter(unknown.iter().copied())
                .map(|i| {
                    let a = &accounts[i];
                    let q = match &a.key {
                        Some(k) => ("key", k.clone()),
                        None => ("username", a.username.clone()),
                    };
                    let what = format!("read the status of Confluence user {}", a.username);
                    async move {
                        let r = self
                            .c
                            .get_json(&what, || {
                                self.c
                                    .req(Method::GET, &format!("{API}/user"))
                                    .query(&[(q.0, q.1.as_str()), ("expand", "status")])
                            })
                            .await;
                        (i, r)
                    }
                })
                .buffer_unordered(self.c.max_concurrency)
                .collect()
                .await;
        let mut still_unknown = Vec::new();
        for (i, r) in lookups {
            match person_status(&r?) {
                Some(active) => accounts[i].active = active,
                None => still_unknown.push(accounts[i].username.clone()),
            }
        }
        if still_unknown.is_empty() {
            return Ok(());
        }
        still_unknown.sort();
        let shown: Vec<&str> = still_unknown.iter().take(5).map(String::as_str).collect();
        Err(ConnectorError::new(
            ErrorKind::Other,
            format!(
                "Confluence returned no `status` for {} user(s) ({}{}), even when asked for one \
                 user with expand=status, so usersync cannot tell active accounts from \
                 deactivated ones and plans nothing rather than guess. Check that the server is \
                 Confluence Data Center 8.4 or later and that no proxy strips the `expand` \
                 parameter.",
                still_unknown.len(),
                shown.join(", "),
                if still_unknown.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            ),
        ))
    }

    /// Pages a Confluence list endpoint; returns every `results` item.
    async fn paged(
        &self,
        what: &str,
        path: &str,
        extra: &[(&str, &str)],
    ) -> Result<Vec<Value>, ConnectorError> {
        let mut out: Vec<Value> = Vec::new();
        loop {
            let start = out.len();
            let page: Value = self
                .c
                .get_json(what, || {
                    self.c
                        .req(Method::GET, &format!("{API}{path}"))
                        .query(extra)
                        .query(&[("start", start.to_string()), ("limit", PAGE.to_string())])
                })
                .await?;
            let results = page
                .get("results")
                .and_then(|r| r.as_array())
                .ok_or_else(|| unexpected(what, "no `results` array"))?
                .clone();
            let n = results.len();
            out.extend(results);
            let has_next = match page.get("_links") {
                Some(links) => links.get("next").is_some(),
                // Without links, a short page is the last (the server may cap `limit`).
                None => n >= PAGE,
            };
            if !has_next || n == 0 {
                return Ok(out);
            }
        }
    }

    async fn wait_long_task(&self, username: &str, task: &Value) -> Result<(), ConnectorError> {
        let what = format!("delete Confluence user {username}");
        let Some(id) = task.get("id").map(|i| match i {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }) else {
            return Ok(());
        };
        let deadline = Instant::now() + self.delete_wait;
        let mut delay = Duration::from_millis(100);
        loop {
            let status: Value = self
                .c
                .get_json(&what, || {
                    self.c
                        .req(Method::GET, &format!("{API}/longtask/{}", seg(&id)))
                })
                .await?;
            let pct = status
                .get("percentageComplete")
                .and_then(|p| p.as_u64())
                .unwrap_or(0);
            let finished = status
                .get("finished")
                .and_then(|f| f.as_bool())
                .unwrap_or(pct >= 100);
            if finished {
                if status.get("successful").and_then(|s| s.as_bool()) == Some(false) {
                    let msgs: Vec<String> = status
                        .get("messages")
                        .and_then(|m| m.as_array())
                        .map(|m| {
                            m.iter()
                                .filter_map(|x| {
                                    x.get("translation")
                                        .or_else(|| x.get("key"))
                                        .and_then(|t| t.as_str())
                                })
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    return Err(ConnectorError::new(
                        ErrorKind::Other,
                        format!(
                            "{what}: Confluence's delete task {id} failed: {}",
                            msgs.join("; ")
                        ),
                    ));
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                tracing::warn!(task = %id, user = username, "Confluence delete task still running; it completes on the server");
                return Ok(());
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
    async fn add_one(&self, group: &str, u: &str) -> Result<(), ConnectorError> {
        self.c
            .call(
                &format!("add {u} to Confluence group {group}"),
                Idempotency::Idempotent,
                &[200, 201, 204],
                || {
                    self.c.req(
                        Method::PUT,
                        &format!("{API}/user/{}/group/{}", seg(u), seg(group)),
                    )
                },
            )
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl TargetDirectory for ConfluenceTarget {
    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities {
            product: Product::Confluence.display_name().into(),
            deactivate: true,
            rename: false,
            delete_user: true,
            avatars: false,
            batch_membership: false,
            lowercase_usernames_only: true,
            max_concurrency: self.c.max_concurrency,
        }
    }

    async fn read(&self) -> Result<TargetSnapshot, ConnectorError> {
        // /user/list includes disabled and unlicensed users (Confluence 8.4+). `email` and
        // `status` are expansions (the admin user listings document `email` as a user field;
        // a disabled user's status reads "Deactivated").
        let users = self
            .paged(
                "list Confluence users",
                "/user/list",
                &[("expand", "status,email")],
            )
            .await?;
        let groups: Vec<String> = self
            .paged("list Confluence groups", "/group", &[])
            .await?
            .iter()
            .filter_map(|g| g.get("name").and_then(|n| n.as_str()).map(str::to_string))
            .collect();
        let mut accounts: Vec<TargetAccount> = Vec::with_capacity(users.len());
        let mut by_key: HashMap<String, usize> = HashMap::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        let mut unknown: Vec<usize> = Vec::new();
        for u in &users {
            let Some(a) = person(u) else { continue };
            if person_status(u).is_none() {
                unknown.push(accounts.len());
            }
            if let Some(k) = &a.key {
                by_key.insert(k.clone(), accounts.len());
            }
            by_name.insert(name_key(&a.username), accounts.len());
            accounts.push(a);
        }
        self.resolve_unknown_status(&mut accounts, &unknown).await?;
        let members: Vec<(String, Result<Vec<Value>, ConnectorError>)> =
            futures::stream::iter(groups.iter().cloned())
                .map(|g| async move {
                    let what = format!("list members of Confluence group {g}");
                    let r = self
                        .paged(&what, &format!("/group/{}/member", seg(&g)), &[])
                        .await;
                    (g, r)
                })
                .buffer_unordered(self.c.max_concurrency)
                .collect()
                .await;
        for (group, result) in members {
            for m in result? {
                let Some(p) = person(&m) else { continue };
                let idx = p
                    .key
                    .as_ref()
                    .and_then(|k| by_key.get(k))
                    .or_else(|| by_name.get(&name_key(&p.username)));
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
        let what = format!("read Confluence user {username}");
        let v: Option<Value> = self
            .c
            .get_json_opt(&what, || {
                self.c
                    .req(Method::GET, &format!("{API}/user"))
                    .query(&[("username", username), ("expand", "status,email")])
            })
            .await?;
        let Some(mut a) = v.as_ref().and_then(person) else {
            return Ok(None);
        };
        let what = format!("list groups of Confluence user {username}");
        a.groups = self
            .paged(
                &what,
                "/user/memberof",
                &[("username", a.username.as_str())],
            )
            .await?
            .iter()
            .filter_map(|g| g.get("name").and_then(|n| n.as_str()).map(str::to_string))
            .collect();
        Ok(Some(a))
    }

    async fn group_exists(&self, name: &str) -> Result<bool, ConnectorError> {
        let what = format!("check Confluence group {name}");
        let g: Option<Value> = self
            .c
            .get_json_opt(&what, || {
                self.c
                    .req(Method::GET, &format!("{API}/group/{}", seg(name)))
            })
            .await?;
        Ok(g.is_some())
    }

    async fn create_user(&self, spec: &AccountSpec) -> Result<Created, ConnectorError> {
        let what = format!("create Confluence user {}", spec.username);
        // notifyViaEmail=false requires a password (UserDetailsForCreation); random, never kept.
        let password = random_password();
        let body = json!({
            "userName": spec.username,
            "fullName": spec.display_name,
            "email": spec.email,
            "password": password.expose_secret(),
            "notifyViaEmail": false,
        });
        let resp = self
            .c
            .call(&what, Idempotency::NonIdempotent, &[200, 201], || {
                self.c
                    .req(Method::POST, &format!("{API}/admin/user"))
                    .json(&body)
            })
            .await?;
        let v: Value = json_body(resp, &what).await.unwrap_or_default();
        Ok(Created {
            key: v
                .get("userKey")
                .and_then(|k| k.as_str())
                .map(str::to_string),
        })
    }

    async fn update_user(
        &self,
        username: &str,
        changes: &[FieldChange],
    ) -> Result<(), ConnectorError> {
        let mut body = serde_json::Map::new();
        for c in changes {
            match c.field {
                Field::DisplayName => body.insert("fullName".into(), json!(c.after)),
                Field::Email => body.insert("email".into(), json!(c.after)),
            };
        }
        if body.is_empty() {
            return Ok(());
        }
        let body = Value::Object(body);
        self.c
            .call(
                &format!("update Confluence user {username}"),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::PUT, &format!("{API}/admin/user/{}", seg(username)))
                        .json(&body)
                },
            )
            .await?;
        Ok(())
    }

    async fn rename_user(&self, _from: &str, _to: &str) -> Result<(), ConnectorError> {
        Err(unsupported(Product::Confluence, "rename users"))
    }

    // Account writes go by username: the admin user endpoints (`PUT /rest/api/admin/user/
    // {username}[/disable|/enable]`, `DELETE /rest/api/admin/user/{username}`) take only a
    // username in the path, no userKey form (Confluence DC OpenAPI), so the by-key
    // `TargetDirectory::*_ref` defaults (by name) apply. The planner never matches by name
    // when keys differ (issue 7 item 4), which narrows the window to a rename between read
    // and write.
    async fn set_active(&self, username: &str, active: bool) -> Result<(), ConnectorError> {
        let (verb, action) = if active {
            ("reactivate", "enable")
        } else {
            ("deactivate", "disable")
        };
        self.c
            .call(
                &format!("{verb} Confluence user {username}"),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c.req(
                        Method::PUT,
                        &format!("{API}/admin/user/{}/{action}", seg(username)),
                    )
                },
            )
            .await?;
        Ok(())
    }

    async fn delete_user(&self, username: &str) -> Result<(), ConnectorError> {
        // Path-parameter form; the `?name=` form answers 405 on DC 10.x.
        let what = format!("delete Confluence user {username}");
        let resp = self
            .c
            .call(&what, Idempotency::Idempotent, &[200, 202, 204], || {
                self.c.req(
                    Method::DELETE,
                    &format!("{API}/admin/user/{}", seg(username)),
                )
            })
            .await?;
        if resp.status().as_u16() == 202 {
            let task: Value = json_body(resp, &what).await.unwrap_or_default();
            self.wait_long_task(username, &task).await?;
        }
        Ok(())
    }

    async fn create_group(&self, name: &str) -> Result<(), ConnectorError> {
        let body = json!({ "name": name });
        self.c
            .call(
                &format!("create Confluence group {name}"),
                Idempotency::NonIdempotent,
                &[200, 201, 204],
                || {
                    self.c
                        .req(Method::POST, &format!("{API}/admin/group"))
                        .json(&body)
                },
            )
            .await?;
        Ok(())
    }

    async fn delete_group(&self, name: &str) -> Result<(), ConnectorError> {
        self.c
            .call(
                &format!("delete Confluence group {name}"),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::DELETE, &format!("{API}/admin/group/{}", seg(name)))
                },
            )
            .await?;
        Ok(())
    }

    async fn add_members(&self, group: &str, usernames: &[String]) -> Result<(), ConnectorError> {
        // PUT /user/{u}/group/{g} is idempotent (204 when already a member).
        let futs = usernames
            .iter()
            .map(|u| self.add_one(group, u).boxed())
            .collect();
        run_all(
            futs,
            self.c.max_concurrency,
            &format!("add members to Confluence group {group}"),
        )
        .await
    }

    async fn remove_member(&self, group: &str, username: &str) -> Result<(), ConnectorError> {
        self.c
            .call(
                &format!("remove {username} from Confluence group {group}"),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c.req(
                        Method::DELETE,
                        &format!("{API}/user/{}/group/{}", seg(username), seg(group)),
                    )
                },
            )
            .await?;
        Ok(())
    }

    async fn set_avatar(&self, _username: &str, _photo: &Photo) -> Result<(), ConnectorError> {
        Err(unsupported(
            Product::Confluence,
            "set avatars (only an undocumented internal endpoint exists)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_user_with_expansions() {
        let body = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/atlassian/confluence-user-page.json"
        ))
        .unwrap();
        let page: Value = serde_json::from_str(&body).unwrap();
        let a = person(&page["results"][0]).unwrap();
        assert_eq!(a.username, "jdoe");
        assert_eq!(a.key.as_deref(), Some("4028d6768851c8900188556ba6000014"));
        assert_eq!(
            (a.display_name.as_str(), a.email.as_str(), a.active),
            ("Jane Doe", "jdoe@example.com", false)
        );
        // No `_links.next`: last page.
        assert!(page["_links"].get("next").is_none());
        // Status as an object or a flag; no status at all, or an empty one, is unknown.
        assert_eq!(
            person_status(&json!({"username":"x","status":{"value":"disabled"}})),
            Some(false)
        );
        assert_eq!(
            person_status(&json!({"username":"x","status":"Active"})),
            Some(true)
        );
        assert_eq!(
            person_status(&json!({"username":"x","active":false})),
            Some(false)
        );
        let page: Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/atlassian/confluence-user-no-status.json"
            ))
            .unwrap(),
        )
        .unwrap();
        for unknown in [
            page["results"][0].clone(),
            json!({"username":"x"}),
            json!({"username":"x","status":""}),
            json!({"username":"x","status":{}}),
            json!({"username":"x","_expandable":{"status":""}}),
        ] {
            assert_eq!(person_status(&unknown), None, "{unknown}");
        }
        assert!(person(&json!({"type":"anonymous"})).is_none());
    }
}
