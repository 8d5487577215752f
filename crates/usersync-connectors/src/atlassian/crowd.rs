//! Crowd Data Center target: the usermanagement REST API (`/rest/usermanagement/1`), which
//! authenticates the *application* (name and password as HTTP Basic, plus the application's
//! remote-address allow-list). Crowd is how Bamboo and any other Atlassian product that uses a
//! Crowd directory is fed; Jira's "user server" exposes the same API.
//!
//! Sources: Crowd REST resources (`developer.atlassian.com/server/crowd/crowd-rest-resources/`,
//! `docs.atlassian.com/atlassian-crowd/latest/REST`), Crowd 6 Swagger docs
//! (`developer.atlassian.com/server/crowd/rest/v603`).
//!
//! - Lists are `{"expand":…,"users"|"groups":[…]}` paged with `start-index`/`max-results` and no
//!   total. Crowd returns up to `max-results` entities from `start-index` (the search
//!   `EntityQuery` contract; `-1` = all), but a server-side cap below our page size (a proxy,
//!   a future version) would make every page short, so a short page is not trusted to be the
//!   last: a listing ends at an empty page, or at a page shorter than one the same endpoint
//!   already returned during this read (the server could have sent more and did not). See
//!   [`CrowdTarget::paged`].
//! - `PUT /user` replaces the whole user (204), so updates and (de)activation send every
//!   field back: taken from the entities this target read (no read-before-write), falling
//!   back to `GET /user` for a user it has not seen.
//! - Rename is `POST /user/rename {"new-name"}` (Crowd 2.8.4+).
//! - No avatar upload exists in usermanagement, and no batch writes (CWD-2378).
//! - Single-object reads (incremental runs, re-reads before removals): `GET /user?username=`
//!   (404 when there is no such user), `GET /user/group/direct?username=` (its groups, paged),
//!   `GET /group?groupname=` (404 when the group does not exist).

use super::Product;
use super::client::{Client, json_body, random_password, run_all, split_name, unsupported};
use crate::http::Idempotency;
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use usersync_core::model::{TargetAccount, TargetGroup, TargetSnapshot, name_key};
use usersync_core::plan::{AccountSpec, Field, FieldChange};
use usersync_core::ports::{
    ConnectorError, Created, ErrorKind, Photo, TargetCapabilities, TargetDirectory,
};

const API: &str = "/rest/usermanagement/1";
const PAGE: usize = 1000;

pub(crate) struct CrowdTarget {
    c: Client,
    /// Writable fields of users as last read or written, by [`name_key`].
    known: std::sync::Mutex<HashMap<String, serde_json::Value>>,
    /// Per endpoint, the longest page the server returned during the current read: a lower
    /// bound on any server-side page cap. Reset at the start of each read.
    longest_page: std::sync::Mutex<HashMap<String, usize>>,
}

/// Crowd `UserEntity` (JSON).
#[derive(Debug, Deserialize)]
struct UserEntity {
    name: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(rename = "display-name", default)]
    display_name: Option<String>,
    #[serde(rename = "first-name", default)]
    first_name: Option<String>,
    #[serde(rename = "last-name", default)]
    last_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct Users {
    #[serde(default)]
    users: Vec<UserEntity>,
}

#[derive(Debug, Deserialize)]
struct NamedGroup {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Groups {
    #[serde(default)]
    groups: Vec<NamedGroup>,
}

impl CrowdTarget {
    pub(crate) fn new(c: Client) -> Self {
        Self {
            c,
            known: Default::default(),
            longest_page: Default::default(),
        }
    }

    fn remember(&self, name: &str, v: serde_json::Value) {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name_key(name), v);
    }

    /// The user's writable fields: cached from the last read/write, else `GET /user`.
    async fn current(&self, username: &str) -> Result<serde_json::Value, ConnectorError> {
        let cached = self
            .known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&name_key(username))
            .cloned();
        match cached {
            Some(v) => Ok(v),
            None => self.get_user(username).await,
        }
    }

    /// Pages a list endpoint to its end. A page shorter than `max-results` is not proof of the
    /// end: a server-side cap lower than [`PAGE`] makes every page short, and stopping there
    /// would truncate the listing silently (and turn the missing accounts into creates or
    /// the missing members into adds). The listing ends at an empty page, or at a non-empty
    /// page shorter than the longest page this endpoint has returned during this read: the
    /// server could have sent that many and did not, so nothing is left. Without a cap this
    /// costs one extra request on the first listing of an endpoint and on each listing longer
    /// than every earlier one, not one per listing.
    async fn paged<T, F>(
        &self,
        what: &str,
        path: &str,
        query: &[(&str, &str)],
        items: F,
    ) -> Result<Vec<T>, ConnectorError>
    where
        F: Fn(serde_json::Value) -> Result<Vec<T>, serde_json::Error>,
    {
        // The cap, if any, is the server's per resource; the entity type selects the
        // resource behind `/search`.
        let endpoint = match query.iter().find(|(k, _)| *k == "entity-type") {
            Some((_, t)) => format!("{path}?{t}"),
            None => path.to_string(),
        };
        let mut out = Vec::new();
        loop {
            let start = out.len();
            let v: serde_json::Value = self
                .c
                .get_json(what, || {
                    self.c
                        .req(Method::GET, &format!("{API}{path}"))
                        .query(query)
                        .query(&[
                            ("start-index", start.to_string()),
                            ("max-results", PAGE.to_string()),
                        ])
                })
                .await?;
            let page = items(v).map_err(|e| super::client::unexpected(what, e))?;
            let n = page.len();
            out.extend(page);
            if n == 0 {
                return Ok(out);
            }
            let longest_before = {
                let mut seen = self.longest_page.lock().unwrap_or_else(|p| p.into_inner());
                let longest = seen.entry(endpoint.clone()).or_insert(0);
                let before = *longest;
                *longest = before.max(n);
                before
            };
            if n < PAGE && n < longest_before {
                return Ok(out);
            }
        }
    }

    async fn get_user(&self, username: &str) -> Result<serde_json::Value, ConnectorError> {
        self.c
            .get_json(&format!("read Crowd user {username}"), || {
                self.c
                    .req(Method::GET, &format!("{API}/user"))
                    .query(&[("username", username)])
            })
            .await
    }

    /// One account with its direct groups, remembering its writable fields for `PUT /user`.
    async fn read_one(&self, username: &str) -> Result<Option<TargetAccount>, ConnectorError> {
        let what = format!("read Crowd user {username}");
        let v: Option<serde_json::Value> = self
            .c
            .get_json_opt(&what, || {
                self.c
                    .req(Method::GET, &format!("{API}/user"))
                    .query(&[("username", username)])
            })
            .await?;
        let Some(v) = v else { return Ok(None) };
        let u: UserEntity =
            serde_json::from_value(v.clone()).map_err(|e| super::client::unexpected(&what, e))?;
        let mut w = serde_json::Map::new();
        for k in [
            "name",
            "first-name",
            "last-name",
            "display-name",
            "email",
            "active",
        ] {
            if let Some(x) = v.get(k).filter(|x| !x.is_null()) {
                w.insert(k.into(), x.clone());
            }
        }
        self.remember(&u.name, serde_json::Value::Object(w));
        let what = format!("list groups of Crowd user {}", u.name);
        let groups: Vec<String> = self
            .paged(
                &what,
                "/user/group/direct",
                &[("username", u.name.as_str())],
                |v| {
                    serde_json::from_value::<Groups>(v)
                        .map(|g| g.groups.into_iter().map(|g| g.name).collect())
                },
            )
            .await?;
        let display = u
            .display_name
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| {
                format!(
                    "{} {}",
                    u.first_name.unwrap_or_default(),
                    u.last_name.unwrap_or_default()
                )
                .trim()
                .to_string()
            });
        Ok(Some(TargetAccount {
            username: u.name,
            key: u.key,
            display_name: display,
            email: u.email.unwrap_or_default(),
            active: u.active,
            groups: groups.into_iter().collect(),
        }))
    }

    /// `PUT /user?username=U` with the full representation (Crowd replaces the user).
    async fn put_user(
        &self,
        username: &str,
        what: &str,
        current: serde_json::Value,
        patch: serde_json::Value,
    ) -> Result<(), ConnectorError> {
        let mut body = serde_json::Map::new();
        // Resend the documented writable fields; `name` must equal the resource's name
        // (compared case-insensitively), so send the stored spelling.
        for k in [
            "name",
            "first-name",
            "last-name",
            "display-name",
            "email",
            "active",
        ] {
            if let Some(v) = current.get(k) {
                body.insert(k.to_string(), v.clone());
            }
        }
        if let serde_json::Value::Object(p) = patch {
            body.extend(p);
        }
        let body = serde_json::Value::Object(body);
        self.c
            .call(what, Idempotency::Idempotent, &[200, 204], || {
                self.c
                    .req(Method::PUT, &format!("{API}/user"))
                    .query(&[("username", username)])
                    .json(&body)
            })
            .await?;
        self.remember(username, body);
        Ok(())
    }
    async fn add_one(&self, group: &str, u: &str) -> Result<(), ConnectorError> {
        let body = json!({ "name": u });
        match self
            .c
            .call(
                &format!("add {u} to Crowd group {group}"),
                Idempotency::NonIdempotent,
                &[200, 201, 204],
                || {
                    self.c
                        .req(Method::POST, &format!("{API}/group/user/direct"))
                        .query(&[("groupname", group)])
                        .json(&body)
                },
            )
            .await
        {
            // 409 MEMBERSHIP_ALREADY_EXISTS: already the wanted state.
            Err(e) if e.kind == ErrorKind::Conflict => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

#[async_trait]
impl TargetDirectory for CrowdTarget {
    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities {
            product: Product::Crowd.display_name().into(),
            deactivate: true,
            rename: true,
            delete_user: true,
            avatars: false,
            batch_membership: false,
            lowercase_usernames_only: false,
            max_concurrency: self.c.max_concurrency,
        }
    }

    async fn read(&self) -> Result<TargetSnapshot, ConnectorError> {
        // A server's cap may have changed since the last read (upgrade, new proxy).
        self.longest_page
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        // GET /search without a restriction lists every entity of the type; expand=user gives
        // full entities instead of name + link.
        let users: Vec<UserEntity> = self
            .paged(
                "list Crowd users",
                "/search",
                &[("entity-type", "user"), ("expand", "user")],
                |v| serde_json::from_value::<Users>(v).map(|u| u.users),
            )
            .await?;
        let groups: Vec<String> = self
            .paged(
                "list Crowd groups",
                "/search",
                &[("entity-type", "group")],
                |v| {
                    serde_json::from_value::<Groups>(v)
                        .map(|g| g.groups.into_iter().map(|g| g.name).collect())
                },
            )
            .await?;
        let mut accounts = Vec::with_capacity(users.len());
        let mut by_name: HashMap<String, usize> = HashMap::new();
        let mut known = HashMap::with_capacity(users.len());
        for u in users {
            by_name.insert(name_key(&u.name), accounts.len());
            let mut w = serde_json::Map::new();
            w.insert("name".into(), json!(u.name));
            for (k, v) in [
                ("first-name", &u.first_name),
                ("last-name", &u.last_name),
                ("display-name", &u.display_name),
                ("email", &u.email),
            ] {
                if let Some(v) = v {
                    w.insert(k.into(), json!(v));
                }
            }
            w.insert("active".into(), json!(u.active));
            known.insert(name_key(&u.name), serde_json::Value::Object(w));
            let display = u
                .display_name
                .filter(|d| !d.trim().is_empty())
                .unwrap_or_else(|| {
                    format!(
                        "{} {}",
                        u.first_name.unwrap_or_default(),
                        u.last_name.unwrap_or_default()
                    )
                    .trim()
                    .to_string()
                });
            accounts.push(TargetAccount {
                username: u.name,
                key: u.key,
                display_name: display,
                email: u.email.unwrap_or_default(),
                active: u.active,
                groups: BTreeSet::new(),
            });
        }
        let members: Vec<(String, Result<Vec<String>, ConnectorError>)> =
            futures::stream::iter(groups.iter().cloned())
                .map(|g| async move {
                    let what = format!("list members of Crowd group {g}");
                    let r = self
                        .paged(
                            &what,
                            "/group/user/direct",
                            &[("groupname", g.as_str())],
                            |v| {
                                serde_json::from_value::<Groups>(
                            json!({ "groups": v.get("users").cloned().unwrap_or(json!([])) }),
                        )
                        .map(|u| u.groups.into_iter().map(|u| u.name).collect())
                            },
                        )
                        .await;
                    (g, r)
                })
                .buffer_unordered(self.c.max_concurrency)
                .collect()
                .await;
        for (group, result) in members {
            for m in result? {
                if let Some(&i) = by_name.get(&name_key(&m)) {
                    accounts[i].groups.insert(group.clone());
                }
            }
        }
        *self.known.lock().unwrap_or_else(|p| p.into_inner()) = known;
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
        self.read_one(username).await
    }

    async fn group_exists(&self, name: &str) -> Result<bool, ConnectorError> {
        let what = format!("check Crowd group {name}");
        let g: Option<serde_json::Value> = self
            .c
            .get_json_opt(&what, || {
                self.c
                    .req(Method::GET, &format!("{API}/group"))
                    .query(&[("groupname", name)])
            })
            .await?;
        Ok(g.is_some())
    }

    async fn create_user(&self, spec: &AccountSpec) -> Result<Created, ConnectorError> {
        let what = format!("create Crowd user {}", spec.username);
        let (first, last) = split_name(&spec.display_name);
        // Crowd requires a password object on create (older versions reject null); users
        // authenticate through SSO, so it is random and never stored.
        let password = random_password();
        let body = json!({
            "name": spec.username,
            "first-name": first,
            "last-name": last,
            "display-name": spec.display_name,
            "email": spec.email,
            "password": { "value": password.expose_secret() },
            "active": true,
        });
        let resp = self
            .c
            .call(&what, Idempotency::NonIdempotent, &[200, 201], || {
                self.c.req(Method::POST, &format!("{API}/user")).json(&body)
            })
            .await?;
        let mut fields = body.clone();
        if let Some(o) = fields.as_object_mut() {
            o.remove("password");
        }
        self.remember(&spec.username, fields);
        // Newer Crowd returns the created entity; older versions an empty body.
        let key = json_body::<serde_json::Value>(resp, &what)
            .await
            .ok()
            .and_then(|v| v.get("key").and_then(|k| k.as_str()).map(str::to_string));
        let key = match key {
            Some(k) => Some(k),
            // Read it back (`key` exists on newer Crowd only; older servers have none).
            None => self
                .get_user(&spec.username)
                .await
                .ok()
                .and_then(|v| v.get("key").and_then(|k| k.as_str()).map(str::to_string)),
        };
        Ok(Created { key })
    }

    async fn update_user(
        &self,
        username: &str,
        changes: &[FieldChange],
    ) -> Result<(), ConnectorError> {
        if changes.is_empty() {
            return Ok(());
        }
        let current = self.current(username).await?;
        let mut patch = serde_json::Map::new();
        for c in changes {
            match c.field {
                Field::DisplayName => {
                    let (first, last) = split_name(&c.after);
                    patch.insert("display-name".into(), json!(c.after));
                    patch.insert("first-name".into(), json!(first));
                    patch.insert("last-name".into(), json!(last));
                }
                Field::Email => {
                    patch.insert("email".into(), json!(c.after));
                }
            }
        }
        self.put_user(
            username,
            &format!("update Crowd user {username}"),
            current,
            serde_json::Value::Object(patch),
        )
        .await
    }

    async fn rename_user(&self, from: &str, to: &str) -> Result<(), ConnectorError> {
        let body = json!({ "new-name": to });
        self.c
            .call(
                &format!("rename Crowd user {from} to {to}"),
                Idempotency::NonIdempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::POST, &format!("{API}/user/rename"))
                        .query(&[("username", from)])
                        .json(&body)
                },
            )
            .await?;
        // The cached fields follow the user to its new name.
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut v) = known.remove(&name_key(from)) {
            v["name"] = json!(to);
            known.insert(name_key(to), v);
        }
        Ok(())
    }

    // Account writes go by username only: `PUT`/`DELETE /user?username=` (Crowd REST); `?key=`
    // exists for reads only, so the by-key `TargetDirectory::*_ref` defaults (by name) apply.
    async fn set_active(&self, username: &str, active: bool) -> Result<(), ConnectorError> {
        let current = self.current(username).await?;
        let verb = if active { "reactivate" } else { "deactivate" };
        self.put_user(
            username,
            &format!("{verb} Crowd user {username}"),
            current,
            json!({ "active": active }),
        )
        .await
    }

    async fn delete_user(&self, username: &str) -> Result<(), ConnectorError> {
        self.c
            .call(
                &format!("delete Crowd user {username}"),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::DELETE, &format!("{API}/user"))
                        .query(&[("username", username)])
                },
            )
            .await?;
        Ok(())
    }

    async fn create_group(&self, name: &str) -> Result<(), ConnectorError> {
        let body = json!({ "name": name, "type": "GROUP", "active": true, "description": "" });
        self.c
            .call(
                &format!("create Crowd group {name}"),
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
        self.c
            .call(
                &format!("delete Crowd group {name}"),
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
            &format!("add members to Crowd group {group}"),
        )
        .await
    }

    async fn remove_member(&self, group: &str, username: &str) -> Result<(), ConnectorError> {
        self.c
            .call(
                &format!("remove {username} from Crowd group {group}"),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::DELETE, &format!("{API}/group/user/direct"))
                        .query(&[("groupname", group), ("username", username)])
                },
            )
            .await?;
        Ok(())
    }

    async fn set_avatar(&self, _username: &str, _photo: &Photo) -> Result<(), ConnectorError> {
        Err(unsupported(
            Product::Crowd,
            "upload avatars (usermanagement only reads them)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_server_user_list() {
        let body = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/atlassian/crowd-users.json"
        ))
        .unwrap();
        let users: Users = serde_json::from_str(&body).unwrap();
        let u = &users.users[0];
        assert_eq!(u.name, "user01");
        assert_eq!(u.display_name.as_deref(), Some("User01"));
        assert_eq!(u.email.as_deref(), Some("user01@example.net"));
        assert!(u.active);
        assert!(u.key.is_none());
    }
}
