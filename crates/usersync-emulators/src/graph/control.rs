//! Test control surface (not part of Graph): the in-process [`TenantHandle`] and the same
//! operations over HTTP under `/_emulator/…` for process mode.
//!
//! HTTP control API (JSON bodies use the camelCase names of [`UserFields`]/[`GroupFields`]):
//!
//! | Method + path | Effect |
//! |---|---|
//! | `GET /_emulator/stats` | request counters (`{"counts":{…},"total":N}`) |
//! | `POST /_emulator/stats/reset` | zero the counters |
//! | `GET /_emulator/summary` | object counts, current change sequence, fingerprint |
//! | `GET /_emulator/users?limit=N` | first N user ids/UPNs (including deleted state) |
//! | `POST /_emulator/users` | create user → `{"id":…}` |
//! | `PATCH /_emulator/users/{id-or-upn}` | update fields (e.g. `{"accountEnabled":false}`) |
//! | `DELETE /_emulator/users/{id}[?permanent=true]` | soft (default) or hard delete |
//! | `POST /_emulator/users/{id}/restore` | restore a soft-deleted user |
//! | `POST /_emulator/groups` | create group (may list `members`) → `{"id":…}` |
//! | `PATCH /_emulator/groups/{id}` | update group fields |
//! | `DELETE /_emulator/groups/{id}[?permanent=true]` | delete group |
//! | `GET /_emulator/groups?limit=N` | first N group ids and member counts |
//! | `POST /_emulator/groups/{id}/members` `{"id":"…"}` | add member (user id/UPN or group id) |
//! | `DELETE /_emulator/groups/{id}/members/{member}` | remove member |
//! | `POST /_emulator/apps` | register an [`AppRegistration`] |
//! | `POST /_emulator/apps/{clientId}/secrets` | add a [`Secret`] |
//! | `DELETE /_emulator/apps/{clientId}/secrets/{keyId}` | remove a secret |
//! | `POST /_emulator/apps/{clientId}/certificates` `{"pem":"…"}` | register a certificate |
//! | `POST /_emulator/apps/{clientId}/secrets/expire` | expire all secrets now |
//! | `PUT /_emulator/apps/{clientId}/roles` `{"roles":[…],"adminConsent":true}` | grants/consent |
//! | `POST /_emulator/delta/invalidate` | later delta/skip tokens get 410 Gone (sync reset) |
//! | `PUT /_emulator/delta/ttl` `{"seconds":N}` | delta token lifetime |
//! | `PUT /_emulator/faults` | replace the [`FaultConfig`] |
//! | `PUT /_emulator/settings` `{"latencyMs":N,"tokenLifetimeSecs":N,"deltaPageSize":N,"deltaMembersPerPage":N}` | settings |
//! | `POST /_emulator/clock/advance` `{"seconds":N}` | move the emulator clock (token/secret/delta expiry) |

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query as AxQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{AppRegistration, AppState, Secret};
use super::faults::{FaultConfig, FaultState, RequestStats};
use super::model::{GroupFields, UserFields, decode_ref};
use super::{Directory, Shared};

/// Cloneable handle to mutate a running emulator (directory, apps, faults, settings).
/// Every change bumps the change sequence so delta queries see it.
#[derive(Clone)]
pub struct TenantHandle {
    sh: Arc<Shared>,
}

fn lock_err<T>(_: T) -> anyhow::Error {
    anyhow::anyhow!("emulator state lock poisoned")
}

impl TenantHandle {
    pub(crate) fn new(sh: Arc<Shared>) -> Self {
        TenantHandle { sh }
    }

    fn with_dir<R>(
        &self,
        f: impl FnOnce(&mut Directory, i64) -> anyhow::Result<R>,
    ) -> anyhow::Result<R> {
        let now = self.sh.now();
        let mut d = self.sh.dir.write().map_err(lock_err)?;
        f(&mut d, now)
    }

    fn user_idx(d: &Directory, key: &str) -> anyhow::Result<u32> {
        d.find_user(key)
            .ok_or_else(|| anyhow::anyhow!("user '{key}' not found"))
    }
    fn group_idx(d: &Directory, key: &str) -> anyhow::Result<u32> {
        d.find_group(key)
            .ok_or_else(|| anyhow::anyhow!("group '{key}' not found"))
    }

    /// Tenant id.
    pub fn tenant_id(&self) -> String {
        self.sh.tenant_id.clone()
    }

    /// Verified domain (UPN suffix of generated users).
    pub fn domain(&self) -> String {
        self.sh.domain.clone()
    }

    /// Creates a user; returns its object id.
    pub fn add_user(&self, f: UserFields) -> anyhow::Result<String> {
        self.with_dir(|d, now| {
            let i = d.create_user(&f, now)?;
            Ok(d.users[i as usize].id.to_string())
        })
    }

    /// Updates the given fields of a user (by id or UPN).
    pub fn update_user(&self, key: &str, f: UserFields) -> anyhow::Result<()> {
        self.with_dir(|d, _| {
            let i = Self::user_idx(d, key)?;
            d.patch_user(i, &f)
        })
    }

    /// Sets `accountEnabled` of a user.
    pub fn set_account_enabled(&self, key: &str, enabled: bool) -> anyhow::Result<()> {
        self.update_user(
            key,
            UserFields {
                account_enabled: Some(enabled),
                ..Default::default()
            },
        )
    }

    /// Deletes a user: soft (restorable; delta `@removed.reason = "changed"`) or permanent
    /// (`"deleted"`). Its memberships are removed.
    pub fn delete_user(&self, key: &str, permanent: bool) -> anyhow::Result<()> {
        self.with_dir(|d, _| {
            let i = Self::user_idx(d, key)?;
            d.delete_user(i, permanent);
            Ok(())
        })
    }

    /// Restores a soft-deleted user.
    pub fn restore_user(&self, key: &str) -> anyhow::Result<()> {
        self.with_dir(|d, _| {
            let i = Self::user_idx(d, key)?;
            d.restore_user(i)
        })
    }

    /// Gives (`true`) or removes (`false`) a user's photo (changes `@odata.mediaEtag`; not
    /// visible to delta, like Graph).
    pub fn set_photo(&self, key: &str, has_photo: bool) -> anyhow::Result<()> {
        self.update_user(
            key,
            UserFields {
                has_photo: Some(has_photo),
                ..Default::default()
            },
        )
    }

    /// Creates a group (with optional initial `members`); returns its id.
    pub fn add_group(&self, f: GroupFields) -> anyhow::Result<String> {
        self.with_dir(|d, now| {
            let g = d.create_group(&f, now)?;
            for key in f.members.iter().flatten() {
                let m = d
                    .resolve_member(key)
                    .ok_or_else(|| anyhow::anyhow!("member '{key}' not found"))?;
                d.add_member(g, m)?;
            }
            Ok(d.groups[g as usize].id.to_string())
        })
    }

    /// Updates group properties.
    pub fn update_group(&self, key: &str, f: GroupFields) -> anyhow::Result<()> {
        self.with_dir(|d, _| {
            let g = Self::group_idx(d, key)?;
            d.patch_group(g, &f);
            Ok(())
        })
    }

    /// Deletes a group (soft or permanent).
    pub fn delete_group(&self, key: &str, permanent: bool) -> anyhow::Result<()> {
        self.with_dir(|d, _| {
            let g = Self::group_idx(d, key)?;
            d.delete_group(g, permanent);
            Ok(())
        })
    }

    /// Restores a soft-deleted group.
    pub fn restore_group(&self, key: &str) -> anyhow::Result<()> {
        self.with_dir(|d, _| {
            let g = Self::group_idx(d, key)?;
            d.restore_group(g)
        })
    }

    /// Adds a direct member (user id/UPN or group id). Returns false if already a member.
    pub fn add_member(&self, group: &str, member: &str) -> anyhow::Result<bool> {
        self.with_dir(|d, _| {
            let g = Self::group_idx(d, group)?;
            let m = d
                .resolve_member(member)
                .ok_or_else(|| anyhow::anyhow!("member '{member}' not found"))?;
            d.add_member(g, m)
        })
    }

    /// Removes a direct member. Returns false if it was not a member.
    pub fn remove_member(&self, group: &str, member: &str) -> anyhow::Result<bool> {
        self.with_dir(|d, _| {
            let g = Self::group_idx(d, group)?;
            let m = d
                .resolve_member(member)
                .ok_or_else(|| anyhow::anyhow!("member '{member}' not found"))?;
            Ok(d.remove_member(g, m))
        })
    }

    /// Ids of all users that are not hard-deleted (in directory order).
    pub fn user_ids(&self) -> Vec<String> {
        self.sh
            .dir
            .read()
            .map(|d| {
                d.users
                    .iter()
                    .filter(|u| u.life == super::model::Life::Active)
                    .map(|u| u.id.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ids of all active groups (in directory order).
    pub fn group_ids(&self) -> Vec<String> {
        self.sh
            .dir
            .read()
            .map(|d| {
                d.groups
                    .iter()
                    .filter(|g| g.life == super::model::Life::Active)
                    .map(|g| g.id.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// UPN of a user.
    pub fn user_upn(&self, key: &str) -> Option<String> {
        let d = self.sh.dir.read().ok()?;
        d.find_user(key)
            .map(|i| d.users[i as usize].upn.to_string())
    }

    /// Whether a user has a photo.
    pub fn user_has_photo(&self, key: &str) -> Option<bool> {
        let d = self.sh.dir.read().ok()?;
        d.find_user(key)
            .map(|i| d.users[i as usize].photo.is_some())
    }

    /// Direct active member ids of a group.
    pub fn group_member_ids(&self, group: &str) -> anyhow::Result<Vec<String>> {
        let d = self.sh.dir.read().map_err(lock_err)?;
        let g = Self::group_idx(&d, group)?;
        Ok(d.groups[g as usize]
            .members
            .iter()
            .filter(|&&m| d.ref_active(m))
            .map(|&m| d.ref_id(m).to_string())
            .collect())
    }

    /// Number of active users.
    pub fn user_count(&self) -> usize {
        self.user_ids().len()
    }

    /// Number of active groups.
    pub fn group_count(&self) -> usize {
        self.group_ids().len()
    }

    /// Total direct membership edges between active objects.
    pub fn membership_count(&self) -> usize {
        self.sh
            .dir
            .read()
            .map(|d| {
                d.groups
                    .iter()
                    .filter(|g| g.life == super::model::Life::Active)
                    .map(|g| g.members.iter().filter(|&&m| d.ref_active(m)).count())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// SHA-256 digest of the directory (same seed + size → same fingerprint).
    pub fn fingerprint(&self) -> String {
        self.sh
            .dir
            .read()
            .map(|d| d.fingerprint())
            .unwrap_or_default()
    }

    /// Current change sequence number.
    pub fn change_seq(&self) -> u64 {
        self.sh.dir.read().map(|d| d.seq).unwrap_or(0)
    }

    fn with_app<R>(
        &self,
        client_id: &str,
        f: impl FnOnce(&mut AppState) -> anyhow::Result<R>,
    ) -> anyhow::Result<R> {
        let mut apps = self.sh.apps.write().map_err(lock_err)?;
        let a = apps
            .iter_mut()
            .find(|a| a.reg.client_id.eq_ignore_ascii_case(client_id))
            .ok_or_else(|| anyhow::anyhow!("app '{client_id}' not registered"))?;
        f(a)
    }

    /// Registers another app (or replaces one with the same client id).
    pub fn add_app(&self, reg: AppRegistration) -> anyhow::Result<()> {
        let st = AppState::new(reg)?;
        let mut apps = self.sh.apps.write().map_err(lock_err)?;
        apps.retain(|a| !a.reg.client_id.eq_ignore_ascii_case(&st.reg.client_id));
        apps.push(st);
        Ok(())
    }

    /// Removes an app (token requests then fail with AADSTS700016).
    pub fn remove_app(&self, client_id: &str) -> anyhow::Result<()> {
        let mut apps = self.sh.apps.write().map_err(lock_err)?;
        apps.retain(|a| !a.reg.client_id.eq_ignore_ascii_case(client_id));
        Ok(())
    }

    /// Adds a client secret (rotation: add the new one, later remove the old one).
    pub fn add_secret(&self, client_id: &str, s: Secret) -> anyhow::Result<()> {
        self.with_app(client_id, |a| {
            a.reg.secrets.push(s);
            Ok(())
        })
    }

    /// Removes a client secret by `keyId`.
    pub fn remove_secret(&self, client_id: &str, key_id: &str) -> anyhow::Result<()> {
        self.with_app(client_id, |a| {
            a.reg
                .secrets
                .retain(|s| !s.key_id.eq_ignore_ascii_case(key_id));
            Ok(())
        })
    }

    /// Sets every secret's `endDateTime` to one second before the emulator clock's now
    /// (token requests then fail with AADSTS7000222).
    pub fn expire_secrets(&self, client_id: &str) -> anyhow::Result<()> {
        let now = self.sh.now();
        self.with_app(client_id, |a| {
            for s in &mut a.reg.secrets {
                s.end = now - 1;
            }
            Ok(())
        })
    }

    /// Sets the expiry (unix seconds) of one secret.
    pub fn set_secret_expiry(&self, client_id: &str, key_id: &str, end: i64) -> anyhow::Result<()> {
        self.with_app(client_id, |a| {
            let s = a
                .reg
                .secrets
                .iter_mut()
                .find(|s| s.key_id.eq_ignore_ascii_case(key_id))
                .ok_or_else(|| anyhow::anyhow!("secret '{key_id}' not found"))?;
            s.end = end;
            Ok(())
        })
    }

    /// Adds a certificate (PEM) for client assertions.
    pub fn add_certificate(&self, client_id: &str, pem: &str) -> anyhow::Result<()> {
        let info = super::auth::parse_cert_pem(pem)?;
        self.with_app(client_id, |a| {
            a.reg.certificates.push(pem.to_string());
            a.certs.push(info);
            Ok(())
        })
    }

    /// Replaces the granted application permissions. Already issued tokens keep their roles
    /// until they expire, as with Entra.
    pub fn set_roles(&self, client_id: &str, roles: Vec<String>) -> anyhow::Result<()> {
        self.with_app(client_id, |a| {
            a.reg.granted_roles = roles;
            Ok(())
        })
    }

    /// Grants or revokes admin consent (no consent → tokens without `roles`).
    pub fn set_admin_consent(&self, client_id: &str, consent: bool) -> anyhow::Result<()> {
        self.with_app(client_id, |a| {
            a.reg.admin_consent = consent;
            Ok(())
        })
    }

    /// Invalidates all outstanding delta and delta-paging tokens: their next use gets
    /// `410 Gone` + `Location` (synchronization reset).
    pub fn invalidate_delta_tokens(&self) {
        if let Ok(mut s) = self.sh.settings.write() {
            s.delta_epoch += 1;
        }
    }

    /// Sets the delta token lifetime (default 7 days); older tokens get 400 `syncStateNotFound`.
    pub fn set_delta_token_ttl(&self, secs: u64) {
        if let Ok(mut s) = self.sh.settings.write() {
            s.delta_ttl_secs = secs;
        }
    }

    /// Sets objects per delta page and the `members@delta` entries per page.
    pub fn set_delta_paging(&self, page_size: usize, members_per_page: usize) {
        if let Ok(mut s) = self.sh.settings.write() {
            s.delta_page_size = page_size.max(1);
            s.delta_members_per_page = members_per_page.max(1);
        }
    }

    /// Moves the emulator clock forward (access token, secret, certificate and delta token
    /// expiry all use it).
    pub fn advance_clock(&self, secs: i64) {
        if let Ok(mut s) = self.sh.settings.write() {
            s.clock_offset += secs;
        }
    }

    /// Sets the access token lifetime (`expires_in`) for tokens issued from now on.
    pub fn set_token_lifetime(&self, secs: u64) {
        if let Ok(mut s) = self.sh.settings.write() {
            s.token_lifetime_secs = secs;
        }
    }

    /// Sets the fixed per-request latency.
    pub fn set_latency(&self, latency: Duration) {
        if let Ok(mut s) = self.sh.settings.write() {
            s.latency = latency;
        }
    }

    /// Replaces the fault configuration (resets the fault RNG, request numbering and budget).
    pub fn set_faults(&self, cfg: FaultConfig) {
        if let Ok(mut f) = self.sh.faults.lock() {
            *f = FaultState::new(cfg);
        }
    }

    /// Current fault configuration.
    pub fn faults(&self) -> FaultConfig {
        self.sh
            .faults
            .lock()
            .map(|f| f.cfg.clone())
            .unwrap_or_default()
    }

    /// Clears all faults.
    pub fn clear_faults(&self) {
        self.set_faults(FaultConfig::default());
    }

    /// Snapshot of the request counters.
    pub fn stats(&self) -> RequestStats {
        RequestStats {
            counts: self.sh.stats.lock().map(|s| s.clone()).unwrap_or_default(),
        }
    }

    /// Zeroes the request counters.
    pub fn reset_stats(&self) {
        if let Ok(mut s) = self.sh.stats.lock() {
            s.clear();
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

type St = State<Arc<Shared>>;

fn h(sh: &Arc<Shared>) -> TenantHandle {
    TenantHandle::new(sh.clone())
}

fn res<T: serde::Serialize>(r: anyhow::Result<T>) -> Response {
    match r {
        Ok(v) => axum::Json(json!({"ok": true, "result": v})).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"ok": false, "error": e.to_string()})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct DelQ {
    #[serde(default)]
    permanent: bool,
}

#[derive(Deserialize)]
struct LimitQ {
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Deserialize)]
struct PemBody {
    pem: String,
}

#[derive(Deserialize)]
struct IdBody {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RolesBody {
    roles: Option<Vec<String>>,
    admin_consent: Option<bool>,
}

#[derive(Deserialize)]
struct Secs {
    seconds: i64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SettingsBody {
    latency_ms: Option<u64>,
    token_lifetime_secs: Option<u64>,
    delta_page_size: Option<usize>,
    delta_members_per_page: Option<usize>,
}

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/stats", get(|State(sh): St| async move {
            let s = h(&sh).stats();
            axum::Json(json!({"counts": s.counts, "total": s.total()}))
        }))
        .route("/stats/reset", post(|State(sh): St| async move { h(&sh).reset_stats(); res(Ok(())) }))
        .route("/summary", get(|State(sh): St| async move {
            let t = h(&sh);
            axum::Json(json!({
                "tenantId": t.tenant_id(), "domain": t.domain(), "users": t.user_count(), "groups": t.group_count(),
                "memberships": t.membership_count(), "changeSeq": t.change_seq(), "fingerprint": t.fingerprint(),
            }))
        }))
        .route("/users", get(list_users).post(|State(sh): St, axum::Json(f): axum::Json<UserFields>| async move {
            res(h(&sh).add_user(f).map(|id| json!({"id": id})))
        }))
        .route("/users/{id}", axum::routing::patch(|State(sh): St, Path(id): Path<String>, axum::Json(f): axum::Json<UserFields>| async move {
            res(h(&sh).update_user(&id, f))
        }).delete(|State(sh): St, Path(id): Path<String>, AxQuery(q): AxQuery<DelQ>| async move {
            res(h(&sh).delete_user(&id, q.permanent))
        }))
        .route("/users/{id}/restore", post(|State(sh): St, Path(id): Path<String>| async move { res(h(&sh).restore_user(&id)) }))
        .route("/groups", get(list_groups).post(|State(sh): St, axum::Json(f): axum::Json<GroupFields>| async move {
            res(h(&sh).add_group(f).map(|id| json!({"id": id})))
        }))
        .route("/groups/{id}", axum::routing::patch(|State(sh): St, Path(id): Path<String>, axum::Json(f): axum::Json<GroupFields>| async move {
            res(h(&sh).update_group(&id, f))
        }).delete(|State(sh): St, Path(id): Path<String>, AxQuery(q): AxQuery<DelQ>| async move {
            res(h(&sh).delete_group(&id, q.permanent))
        }))
        .route("/groups/{id}/restore", post(|State(sh): St, Path(id): Path<String>| async move { res(h(&sh).restore_group(&id)) }))
        .route("/groups/{id}/members", post(|State(sh): St, Path(id): Path<String>, axum::Json(b): axum::Json<IdBody>| async move {
            res(h(&sh).add_member(&id, &b.id))
        }).get(|State(sh): St, Path(id): Path<String>| async move { res(h(&sh).group_member_ids(&id)) }))
        .route("/groups/{id}/members/{member}", delete(|State(sh): St, Path((id, m)): Path<(String, String)>| async move {
            res(h(&sh).remove_member(&id, &m))
        }))
        .route("/apps", post(|State(sh): St, axum::Json(a): axum::Json<AppRegistration>| async move { res(h(&sh).add_app(a)) }))
        .route("/apps/{cid}/secrets", post(|State(sh): St, Path(cid): Path<String>, axum::Json(s): axum::Json<Secret>| async move {
            res(h(&sh).add_secret(&cid, s))
        }))
        .route("/apps/{cid}/certificates", post(|State(sh): St, Path(cid): Path<String>, axum::Json(b): axum::Json<PemBody>| async move {
            res(h(&sh).add_certificate(&cid, &b.pem))
        }))
        .route("/apps/{cid}/secrets/expire", post(|State(sh): St, Path(cid): Path<String>| async move { res(h(&sh).expire_secrets(&cid)) }))
        .route("/apps/{cid}/secrets/{kid}", delete(|State(sh): St, Path((cid, kid)): Path<(String, String)>| async move {
            res(h(&sh).remove_secret(&cid, &kid))
        }))
        .route("/apps/{cid}/roles", put(|State(sh): St, Path(cid): Path<String>, axum::Json(b): axum::Json<RolesBody>| async move {
            let t = h(&sh);
            let r = (|| {
                if let Some(r) = b.roles {
                    t.set_roles(&cid, r)?;
                }
                if let Some(c) = b.admin_consent {
                    t.set_admin_consent(&cid, c)?;
                }
                Ok(())
            })();
            res(r)
        }))
        .route("/delta/invalidate", post(|State(sh): St| async move { h(&sh).invalidate_delta_tokens(); res(Ok(())) }))
        .route("/delta/ttl", put(|State(sh): St, axum::Json(s): axum::Json<Secs>| async move {
            h(&sh).set_delta_token_ttl(s.seconds.max(0) as u64);
            res(Ok(()))
        }))
        .route("/faults", put(|State(sh): St, axum::Json(f): axum::Json<FaultConfig>| async move { h(&sh).set_faults(f); res(Ok(())) })
            .get(|State(sh): St| async move { axum::Json(h(&sh).faults()) }))
        .route("/settings", put(|State(sh): St, axum::Json(b): axum::Json<SettingsBody>| async move {
            let t = h(&sh);
            if let Some(ms) = b.latency_ms {
                t.set_latency(Duration::from_millis(ms));
            }
            if let Some(s) = b.token_lifetime_secs {
                t.set_token_lifetime(s);
            }
            if b.delta_page_size.is_some() || b.delta_members_per_page.is_some() {
                let (p, m) = sh.settings.read().map(|s| (s.delta_page_size, s.delta_members_per_page)).unwrap_or((100, 500));
                t.set_delta_paging(b.delta_page_size.unwrap_or(p), b.delta_members_per_page.unwrap_or(m));
            }
            res(Ok(()))
        }))
        .route("/clock/advance", post(|State(sh): St, axum::Json(s): axum::Json<Secs>| async move { h(&sh).advance_clock(s.seconds); res(Ok(())) }))
}

async fn list_users(State(sh): St, AxQuery(q): AxQuery<LimitQ>) -> Response {
    let d = match sh.dir.read() {
        Ok(d) => d,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let v: Vec<Value> = d
        .users
        .iter()
        .take(q.limit.unwrap_or(100))
        .map(|u| json!({"id": u.id.to_string(), "userPrincipalName": &*u.upn, "state": format!("{:?}", u.life), "hasPhoto": u.photo.is_some()}))
        .collect();
    axum::Json(json!({"value": v})).into_response()
}

async fn list_groups(State(sh): St, AxQuery(q): AxQuery<LimitQ>) -> Response {
    let d = match sh.dir.read() {
        Ok(d) => d,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let v: Vec<Value> = d
        .groups
        .iter()
        .take(q.limit.unwrap_or(100))
        .map(|g| {
            let nested = g.members.iter().filter(|&&m| decode_ref(m).0).count();
            json!({"id": g.id.to_string(), "displayName": &*g.display_name, "state": format!("{:?}", g.life),
                   "members": g.members.len(), "nestedGroups": nested})
        })
        .collect();
    axum::Json(json!({"value": v})).into_response()
}
