//! The emulators' control APIs (not part of any vendor API): request counters, the target's
//! directory, and the 1 % change made in Entra ID
//! (`crates/usersync-emulators/src/graph/control.rs`, `…/atlassian/control.rs`).

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// Both control surfaces.
pub(crate) struct Control {
    http: reqwest::Client,
    /// `{login_url}/_emulator`.
    pub(crate) graph: String,
    /// `{base_url}/_emulator`.
    pub(crate) target: String,
}

/// Request counts of one side.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct Counts {
    /// All requests.
    pub(crate) total: u64,
    /// Non-GET requests (target side only).
    pub(crate) writes: u64,
    /// Per endpoint / route.
    pub(crate) by_route: std::collections::BTreeMap<String, u64>,
}

impl Control {
    pub(crate) fn new(graph: String, target: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            graph,
            target,
        }
    }

    async fn get(&self, url: &str) -> anyhow::Result<Value> {
        let r = self.http.get(url).send().await?;
        let status = r.status();
        let body: Value = r.json().await.with_context(|| format!("GET {url}"))?;
        if !status.is_success() {
            bail!("GET {url}: {status}: {body}");
        }
        Ok(body)
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<bool> {
        let r = req.send().await.with_context(|| what.to_string())?;
        Ok(r.status().is_success())
    }

    /// Zeroes both sides' counters.
    pub async fn reset(&self) -> anyhow::Result<()> {
        for url in [
            format!("{}/stats/reset", self.graph),
            format!("{}/stats/reset", self.target),
        ] {
            if !self.send(self.http.post(&url), &url).await? {
                bail!("POST {url} failed");
            }
        }
        Ok(())
    }

    /// Graph requests since the last reset (`requests` is the total; `$batch` counts once).
    pub async fn graph_counts(&self) -> anyhow::Result<Counts> {
        let v = self.get(&format!("{}/stats", self.graph)).await?;
        let by_route: std::collections::BTreeMap<String, u64> = v
            .get("counts")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| *k != "requests")
                    .filter_map(|(k, n)| Some((k.clone(), n.as_u64()?)))
                    .filter(|(_, n)| *n > 0)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Counts {
            total: v.get("total").and_then(Value::as_u64).unwrap_or(0),
            writes: 0,
            by_route,
        })
    }

    /// Target requests since the last reset.
    pub async fn target_counts(&self) -> anyhow::Result<Counts> {
        let v = self.get(&format!("{}/stats", self.target)).await?;
        let by_route = v
            .get("requests")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, n)| Some((k.clone(), n.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Counts {
            total: v.get("total").and_then(Value::as_u64).unwrap_or(0),
            writes: v.get("writes").and_then(Value::as_u64).unwrap_or(0),
            by_route,
        })
    }

    /// The target's directory (`{users, groups, memberships: {group: [user…]}}`).
    pub async fn target_state(&self) -> anyhow::Result<Value> {
        self.get(&format!("{}/state", self.target)).await
    }

    /// The tenant's size: `(users, groups, memberships)`.
    pub async fn graph_summary(&self) -> anyhow::Result<(u64, u64, u64)> {
        let v = self.get(&format!("{}/summary", self.graph)).await?;
        let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        Ok((n("users"), n("groups"), n("memberships")))
    }

    /// Changes about 1 % of the active users (at least five), picked evenly, in turn: a UPN
    /// rename, a display-name change, a disabled account, a (soft) deleted user, a user added
    /// to a leaf group it is not in. Returns the changes made, described.
    pub async fn change_one_percent(&self) -> anyhow::Result<Vec<String>> {
        let users = self
            .get(&format!("{}/users?limit=100000000", self.graph))
            .await?;
        let users: Vec<(String, String)> = users
            .get("value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|u| u.get("state").and_then(Value::as_str) == Some("Active"))
            .filter_map(|u| {
                Some((
                    u.get("id")?.as_str()?.to_string(),
                    u.get("userPrincipalName")?.as_str()?.to_string(),
                ))
            })
            .collect();
        let groups = self
            .get(&format!("{}/groups?limit=100000000", self.graph))
            .await?;
        let leaf_groups: Vec<String> = groups
            .get("value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|g| g.get("state").and_then(Value::as_str) == Some("Active"))
            .filter(|g| g.get("nestedGroups").and_then(Value::as_u64) == Some(0))
            .filter_map(|g| Some(g.get("id")?.as_str()?.to_string()))
            .collect();
        if users.is_empty() {
            bail!("the Graph emulator lists no active users");
        }
        let n = (users.len() / 100).max(5).min(users.len());
        let stride = users.len() / n;
        let mut done = Vec::new();
        for i in 0..n {
            let (id, upn) = &users[i * stride];
            let user_url = format!("{}/users/{id}", self.graph);
            match i % 5 {
                0 => {
                    let (local, domain) = upn.split_once('@').unwrap_or((upn, "example.com"));
                    let new = format!("{local}.renamed@{domain}");
                    let body = json!({"userPrincipalName": new});
                    if self
                        .send(self.http.patch(&user_url).json(&body), &user_url)
                        .await?
                    {
                        done.push(format!("rename {upn} -> {new}"));
                    }
                }
                1 => {
                    let body = json!({"displayName": format!("Changed Name {i}")});
                    if self
                        .send(self.http.patch(&user_url).json(&body), &user_url)
                        .await?
                    {
                        done.push(format!("display name of {upn}"));
                    }
                }
                2 => {
                    let body = json!({"accountEnabled": false});
                    if self
                        .send(self.http.patch(&user_url).json(&body), &user_url)
                        .await?
                    {
                        done.push(format!("disable {upn}"));
                    }
                }
                3 => {
                    if self.send(self.http.delete(&user_url), &user_url).await? {
                        done.push(format!("delete {upn}"));
                    }
                }
                _ => {
                    // The first leaf group (from a rotating start) that takes the user.
                    for g in leaf_groups.iter().cycle().skip(i).take(leaf_groups.len()) {
                        let members = self.graph_group_members(g).await?;
                        if members.iter().any(|m| m == id) {
                            continue;
                        }
                        let url = format!("{}/groups/{g}/members", self.graph);
                        if self
                            .send(self.http.post(&url).json(&json!({"id": id})), &url)
                            .await?
                        {
                            done.push(format!("add {upn} to group {g}"));
                            break;
                        }
                    }
                }
            }
        }
        Ok(done)
    }

    async fn graph_group_members(&self, group: &str) -> anyhow::Result<Vec<String>> {
        let v = self
            .get(&format!("{}/groups/{group}/members", self.graph))
            .await?;
        Ok(v.get("result")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str().map(str::to_string))
            .collect())
    }
}
