//! Bitbucket Data Center target: the REST API 1.0 admin resources (`/rest/api/1.0/admin/...`).
//!
//! Sources: the official Bitbucket DC 9.4 OpenAPI
//! (`dac-static.atlassian.com/server/bitbucket/9.4.swagger.v3.json`) and the REST reference
//! at `developer.atlassian.com/server/bitbucket/rest/`.
//!
//! - Pages are `{"values","isLastPage","nextPageStart","start","limit","size"}`.
//! - Create takes **query parameters** (not a body) and answers 204; `addToDefaultGroup`
//!   defaults to true on the server, so usersync always sends it (false unless configured) to
//!   avoid consuming a licence through the default group. 403 on create means the licence is
//!   full.
//! - Bitbucket has **no deactivation** endpoint: the engine's fallback removes the user from
//!   the access (licence) groups, after which the user cannot log in or use a seat.
//!   `active` is read as the directory reports it.
//! - `POST /admin/groups/add-users` adds many users to one group in one request (batch);
//!   removal is one `POST /admin/groups/remove-user` per user.
//! - Avatars: `POST /users/{slug}/avatar.png`, multipart field `avatar`, `X-Atlassian-Token:
//!   no-check`.
//! - Permission errors are usually 401 with an `AuthorisationException`.
//! - Single-object reads (incremental runs, re-reads before removals): `GET /admin/users?filter=`
//!   (substring match; the exact name is picked), `GET /admin/users/more-members?context=`
//!   (the user's groups), `GET /admin/groups?filter=` (exact name picked).

use super::client::{Client, random_password, unexpected, unsupported};
use super::{AtlassianTargetConfig, Product};
use crate::http::Idempotency;
use async_trait::async_trait;
use futures::StreamExt;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use usersync_core::model::{TargetAccount, TargetGroup, TargetSnapshot, name_key};
use usersync_core::plan::{AccountSpec, Field, FieldChange};
use usersync_core::ports::{ConnectorError, Created, Photo, TargetCapabilities, TargetDirectory};

const API: &str = "/rest/api/1.0";
const PAGE: usize = 1000;
/// Users per `add-users` request.
const BATCH: usize = 500;

pub(crate) struct BitbucketTarget {
    c: Client,
    add_to_default_group: bool,
}

/// `RestDetailedUser` / `RestApplicationUser` (fields read).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestUser {
    name: String,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    email_address: Option<String>,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct RestGroup {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    #[serde(default = "Vec::new")]
    values: Vec<T>,
    #[serde(default)]
    is_last_page: Option<bool>,
    #[serde(default)]
    next_page_start: Option<u64>,
}

impl BitbucketTarget {
    pub(crate) fn new(c: Client, cfg: &AtlassianTargetConfig) -> Self {
        Self {
            c,
            add_to_default_group: cfg.bitbucket_add_to_default_group,
        }
    }

    async fn paged<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        extra: &[(&str, &str)],
    ) -> Result<Vec<T>, ConnectorError> {
        let mut out = Vec::new();
        let mut start: u64 = 0;
        loop {
            let page: Page<T> = self
                .c
                .get_json(what, || {
                    self.c
                        .req(Method::GET, &format!("{API}{path}"))
                        .query(extra)
                        .query(&[("start", start.to_string()), ("limit", PAGE.to_string())])
                })
                .await?;
            let n = page.values.len();
            out.extend(page.values);
            match (page.is_last_page, page.next_page_start) {
                (Some(true), _) => return Ok(out),
                (_, Some(next)) if next > start => start = next,
                (None, None) if n == 0 => return Ok(out),
                _ => {
                    return Err(unexpected(
                        what,
                        "isLastPage is false but nextPageStart does not advance",
                    ));
                }
            }
        }
    }

    /// Finds a user by name (case-insensitive) with the admin filter.
    async fn find_user(&self, username: &str) -> Result<RestUser, ConnectorError> {
        let what = format!("look up Bitbucket user {username}");
        let users: Vec<RestUser> = self
            .paged(&what, "/admin/users", &[("filter", username)])
            .await?;
        let key = name_key(username);
        users
            .into_iter()
            .find(|u| name_key(&u.name) == key)
            .ok_or_else(|| {
                let mut e = ConnectorError::new(
                    usersync_core::ports::ErrorKind::NotFound,
                    format!("{what}: Bitbucket Data Center has no user named {username}"),
                );
                e.status = Some(404);
                e
            })
    }
}

#[async_trait]
impl TargetDirectory for BitbucketTarget {
    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities {
            product: Product::Bitbucket.display_name().into(),
            deactivate: false,
            rename: true,
            delete_user: true,
            avatars: true,
            batch_membership: true,
            lowercase_usernames_only: false,
            max_concurrency: self.c.max_concurrency,
        }
    }

    async fn read(&self) -> Result<TargetSnapshot, ConnectorError> {
        let users: Vec<RestUser> = self
            .paged("list Bitbucket users", "/admin/users", &[])
            .await?;
        let groups: Vec<String> = self
            .paged::<RestGroup>("list Bitbucket groups", "/admin/groups", &[])
            .await?
            .into_iter()
            .map(|g| g.name)
            .collect();
        let mut accounts = Vec::with_capacity(users.len());
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for u in users {
            by_name.insert(name_key(&u.name), accounts.len());
            accounts.push(TargetAccount {
                display_name: u.display_name.unwrap_or_else(|| u.name.clone()),
                email: u.email_address.unwrap_or_default(),
                key: u.id.map(|i| i.to_string()),
                username: u.name,
                active: u.active,
                groups: BTreeSet::new(),
            });
        }
        let members: Vec<(String, Result<Vec<RestUser>, ConnectorError>)> =
            futures::stream::iter(groups.iter().cloned())
                .map(|g| async move {
                    let what = format!("list members of Bitbucket group {g}");
                    let r = self
                        .paged(
                            &what,
                            "/admin/groups/more-members",
                            &[("context", g.as_str())],
                        )
                        .await;
                    (g, r)
                })
                .buffer_unordered(self.c.max_concurrency)
                .collect()
                .await;
        for (group, result) in members {
            for m in result? {
                if let Some(&i) = by_name.get(&name_key(&m.name)) {
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
        let u = match self.find_user(username).await {
            Ok(u) => u,
            Err(e) if e.kind == usersync_core::ports::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let what = format!("list groups of Bitbucket user {}", u.name);
        let groups: Vec<RestGroup> = self
            .paged(
                &what,
                "/admin/users/more-members",
                &[("context", u.name.as_str())],
            )
            .await?;
        Ok(Some(TargetAccount {
            display_name: u.display_name.unwrap_or_else(|| u.name.clone()),
            email: u.email_address.unwrap_or_default(),
            key: u.id.map(|i| i.to_string()),
            username: u.name,
            active: u.active,
            groups: groups.into_iter().map(|g| g.name).collect(),
        }))
    }

    async fn group_exists(&self, name: &str) -> Result<bool, ConnectorError> {
        let what = format!("check Bitbucket group {name}");
        let groups: Vec<RestGroup> = self
            .paged(&what, "/admin/groups", &[("filter", name)])
            .await?;
        Ok(groups.iter().any(|g| name_key(&g.name) == name_key(name)))
    }

    async fn create_user(&self, spec: &AccountSpec) -> Result<Created, ConnectorError> {
        let what = format!("create Bitbucket user {}", spec.username);
        // Query parameters per the API; `password` is required unless notify=true. The query
        // string is never logged (crate::http::describe drops it).
        let password = random_password();
        self.c
            .call(&what, Idempotency::NonIdempotent, &[200, 201, 204], || {
                self.c
                    .req(Method::POST, &format!("{API}/admin/users"))
                    .query(&[
                        ("name", spec.username.as_str()),
                        ("displayName", spec.display_name.as_str()),
                        ("emailAddress", spec.email.as_str()),
                        ("password", password.expose_secret()),
                        (
                            "addToDefaultGroup",
                            if self.add_to_default_group {
                                "true"
                            } else {
                                "false"
                            },
                        ),
                        ("notify", "false"),
                    ])
            })
            .await?;
        // 204 has no body: read the new user's numeric id.
        let key = self
            .find_user(&spec.username)
            .await
            .ok()
            .and_then(|u| u.id)
            .map(|i| i.to_string());
        Ok(Created { key })
    }

    async fn update_user(
        &self,
        username: &str,
        changes: &[FieldChange],
    ) -> Result<(), ConnectorError> {
        let mut body = serde_json::Map::new();
        for c in changes {
            match c.field {
                Field::DisplayName => body.insert("displayName".into(), json!(c.after)),
                Field::Email => body.insert("email".into(), json!(c.after)),
            };
        }
        if body.is_empty() {
            return Ok(());
        }
        body.insert("name".into(), json!(username));
        let body = serde_json::Value::Object(body);
        self.c
            .call(
                &format!("update Bitbucket user {username}"),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::PUT, &format!("{API}/admin/users"))
                        .json(&body)
                },
            )
            .await?;
        Ok(())
    }

    async fn rename_user(&self, from: &str, to: &str) -> Result<(), ConnectorError> {
        let body = json!({ "name": from, "newName": to });
        self.c
            .call(
                &format!("rename Bitbucket user {from} to {to}"),
                Idempotency::NonIdempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::POST, &format!("{API}/admin/users/rename"))
                        .json(&body)
                },
            )
            .await?;
        Ok(())
    }

    // Account writes go by name only: `/rest/api/1.0/admin/users` addresses users by `name`
    // (Bitbucket DC OpenAPI), so the by-key `TargetDirectory::*_ref` defaults (by name) apply.
    async fn set_active(&self, _username: &str, _active: bool) -> Result<(), ConnectorError> {
        Err(unsupported(
            Product::Bitbucket,
            "deactivate users (the engine removes the user from the licence groups instead)",
        ))
    }

    async fn delete_user(&self, username: &str) -> Result<(), ConnectorError> {
        // Documented success: 200 with the deleted user.
        self.c
            .call(
                &format!("delete Bitbucket user {username}"),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::DELETE, &format!("{API}/admin/users"))
                        .query(&[("name", username)])
                },
            )
            .await?;
        Ok(())
    }

    async fn create_group(&self, name: &str) -> Result<(), ConnectorError> {
        self.c
            .call(
                &format!("create Bitbucket group {name}"),
                Idempotency::NonIdempotent,
                &[200, 201, 204],
                || {
                    self.c
                        .req(Method::POST, &format!("{API}/admin/groups"))
                        .query(&[("name", name)])
                },
            )
            .await?;
        Ok(())
    }

    async fn delete_group(&self, name: &str) -> Result<(), ConnectorError> {
        self.c
            .call(
                &format!("delete Bitbucket group {name}"),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::DELETE, &format!("{API}/admin/groups"))
                        .query(&[("name", name)])
                },
            )
            .await?;
        Ok(())
    }

    async fn add_members(&self, group: &str, usernames: &[String]) -> Result<(), ConnectorError> {
        // The only true batch membership write among the products; adding an existing member
        // is not an error.
        for chunk in usernames.chunks(BATCH) {
            let body = json!({ "group": group, "users": chunk });
            self.c
                .call(
                    &format!("add {} user(s) to Bitbucket group {group}", chunk.len()),
                    Idempotency::Idempotent,
                    &[200, 204],
                    || {
                        self.c
                            .req(Method::POST, &format!("{API}/admin/groups/add-users"))
                            .json(&body)
                    },
                )
                .await?;
        }
        Ok(())
    }

    async fn remove_member(&self, group: &str, username: &str) -> Result<(), ConnectorError> {
        // A POST, with `context` = group and `itemName` = user.
        let body = json!({ "context": group, "itemName": username });
        self.c
            .call(
                &format!("remove {username} from Bitbucket group {group}"),
                Idempotency::Idempotent,
                &[200, 204],
                || {
                    self.c
                        .req(Method::POST, &format!("{API}/admin/groups/remove-user"))
                        .json(&body)
                },
            )
            .await?;
        Ok(())
    }

    async fn set_avatar(&self, username: &str, photo: &Photo) -> Result<(), ConnectorError> {
        let user = self.find_user(username).await?;
        let slug = user.slug.unwrap_or_else(|| name_key(username));
        let ext = if photo.content_type == "image/png" {
            "png"
        } else {
            "jpg"
        };
        let what = format!("upload avatar for Bitbucket user {username}");
        let bytes = photo.bytes.clone();
        let content_type = photo.content_type.clone();
        let resp = self
            .c
            .call(&what, Idempotency::Idempotent, &[200, 201, 204], || {
                let part = || {
                    reqwest::multipart::Part::bytes(bytes.clone())
                        .file_name(format!("avatar.{ext}"))
                };
                let part = part().mime_str(&content_type).unwrap_or_else(|_| part());
                self.c
                    .req(
                        Method::POST,
                        &format!("{API}/users/{}/avatar.png", super::client::seg(&slug)),
                    )
                    .header("X-Atlassian-Token", "no-check")
                    .multipart(reqwest::multipart::Form::new().part("avatar", part))
            })
            .await;
        resp.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_user_page() {
        let body = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/atlassian/bitbucket-users-page.json"
        ))
        .unwrap();
        let page: Page<RestUser> = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (page.is_last_page, page.next_page_start),
            (Some(false), Some(25))
        );
        let u = &page.values[0];
        assert_eq!(
            (u.name.as_str(), u.id, u.slug.as_deref()),
            ("jcitizen", Some(101), Some("jcitizen"))
        );
        assert_eq!(u.email_address.as_deref(), Some("jane@example.com"));
    }
}
