//! In-memory test doubles: [`FakeTarget`] (a [`TargetDirectory`] with failure injection) and
//! [`FakeSource`] (a [`SourceDirectory`] serving a fixed snapshot and photos). Public so the
//! store and CLI tests can use them; pure, no runtime needed.

use crate::model::{SourceSnapshot, TargetAccount, TargetGroup, TargetSnapshot, name_key};
use crate::plan::{AccountSpec, Field, FieldChange};
use crate::ports::{
    ConnectorError, Created, ErrorKind, Photo, ReadMode, ReadStats, SourceDirectory, SourceRead,
    SourceSyncState, TargetCapabilities, TargetDirectory,
};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// Capabilities of a product that supports everything (Crowd-like).
pub fn full_capabilities() -> TargetCapabilities {
    TargetCapabilities {
        product: "Test Target".into(),
        deactivate: true,
        rename: true,
        delete_user: true,
        avatars: true,
        batch_membership: true,
        lowercase_usernames_only: false,
        max_concurrency: 4,
    }
}

/// Failures to inject into a [`FakeTarget`].
#[derive(Debug, Clone, Default)]
pub struct Failures {
    /// Writes (1-based count of write calls) that fail with `ErrorKind::Other`.
    pub fail_writes: BTreeSet<usize>,
    /// Usernames (case-insensitive) for which every write fails with this kind.
    pub fail_usernames: BTreeMap<String, ErrorKind>,
    /// After this many successful writes, every write fails with `ErrorKind::Unreachable`
    /// (a systemic error, as when the product goes down mid-run).
    pub systemic_after_writes: Option<usize>,
}

#[derive(Debug, Default)]
struct State {
    accounts: BTreeMap<String, TargetAccount>,
    groups: BTreeMap<String, TargetGroup>,
    avatars: BTreeMap<String, String>,
    issued_keys: BTreeSet<String>,
    calls: usize,
    successes: usize,
    single_reads: usize,
}

/// An in-memory target product.
#[derive(Debug)]
pub struct FakeTarget {
    caps: TargetCapabilities,
    state: Mutex<State>,
    failures: Failures,
}

impl FakeTarget {
    /// A target holding `snapshot`.
    pub fn new(caps: TargetCapabilities, snapshot: TargetSnapshot) -> Self {
        let mut st = State::default();
        for a in snapshot.accounts {
            st.accounts.insert(name_key(&a.username), a);
        }
        for g in snapshot.groups {
            st.groups.insert(name_key(&g.name), g);
        }
        Self {
            caps,
            state: Mutex::new(st),
            failures: Failures::default(),
        }
    }

    /// Injects failures.
    pub fn with_failures(mut self, failures: Failures) -> Self {
        self.failures = failures;
        self
    }

    /// The current state, sorted by name.
    pub fn snapshot(&self) -> TargetSnapshot {
        let st = self.state.lock().expect("fake lock");
        TargetSnapshot {
            accounts: st.accounts.values().cloned().collect(),
            groups: st.groups.values().cloned().collect(),
        }
    }

    /// Avatar photo tags by username key.
    pub fn avatars(&self) -> BTreeMap<String, String> {
        self.state.lock().expect("fake lock").avatars.clone()
    }

    /// Replaces the whole state, as an admin editing the product directly would.
    pub fn replace(&self, snapshot: TargetSnapshot) {
        let mut st = self.state.lock().expect("fake lock");
        st.accounts = snapshot
            .accounts
            .into_iter()
            .map(|a| (name_key(&a.username), a))
            .collect();
        st.groups = snapshot
            .groups
            .into_iter()
            .map(|g| (name_key(&g.name), g))
            .collect();
    }

    /// Single-object reads (`read_account`, `group_exists`) so far.
    pub fn single_reads(&self) -> usize {
        self.state.lock().expect("fake lock").single_reads
    }

    /// Successful writes so far.
    pub fn writes(&self) -> usize {
        self.state.lock().expect("fake lock").successes
    }

    /// Runs a write with failure injection; `f` mutates the state.
    fn write<T>(
        &self,
        usernames: &[&str],
        f: impl FnOnce(&mut State) -> Result<T, ConnectorError>,
    ) -> Result<T, ConnectorError> {
        let mut st = self.state.lock().expect("fake lock");
        st.calls += 1;
        if self
            .failures
            .systemic_after_writes
            .is_some_and(|n| st.successes >= n)
        {
            return Err(ConnectorError::new(
                ErrorKind::Unreachable,
                "injected: target unreachable",
            ));
        }
        if self.failures.fail_writes.contains(&st.calls) {
            return Err(ConnectorError::new(
                ErrorKind::Other,
                format!("injected: write {} fails", st.calls),
            ));
        }
        for u in usernames {
            if let Some(kind) = self.failures.fail_usernames.get(&name_key(u)) {
                return Err(ConnectorError::new(
                    *kind,
                    format!("injected: writes for {u} fail"),
                ));
            }
        }
        let r = f(&mut st)?;
        st.successes += 1;
        Ok(r)
    }
}

fn not_found(what: &str) -> ConnectorError {
    ConnectorError::new(ErrorKind::NotFound, format!("{what} does not exist"))
}

#[async_trait]
impl TargetDirectory for FakeTarget {
    fn capabilities(&self) -> TargetCapabilities {
        self.caps.clone()
    }

    async fn read(&self) -> Result<TargetSnapshot, ConnectorError> {
        Ok(self.snapshot())
    }

    async fn create_user(&self, spec: &AccountSpec) -> Result<Created, ConnectorError> {
        self.write(&[&spec.username], |st| {
            let k = name_key(&spec.username);
            if st.accounts.contains_key(&k) {
                return Err(ConnectorError::new(
                    ErrorKind::Conflict,
                    format!("user {} exists", spec.username),
                ));
            }
            // Keys are derived from the name (deterministic under concurrency) and never reused.
            let mut key = format!("key-{k}");
            let mut n = 1;
            while st.issued_keys.contains(&key)
                || st
                    .accounts
                    .values()
                    .any(|a| a.key.as_deref() == Some(key.as_str()))
            {
                n += 1;
                key = format!("key-{k}#{n}");
            }
            st.issued_keys.insert(key.clone());
            st.accounts.insert(
                k,
                TargetAccount {
                    username: spec.username.clone(),
                    key: Some(key.clone()),
                    display_name: spec.display_name.clone(),
                    email: spec.email.clone(),
                    active: true,
                    groups: BTreeSet::new(),
                },
            );
            Ok(Created { key: Some(key) })
        })
    }

    async fn update_user(
        &self,
        username: &str,
        changes: &[FieldChange],
    ) -> Result<(), ConnectorError> {
        self.write(&[username], |st| {
            let a = st
                .accounts
                .get_mut(&name_key(username))
                .ok_or_else(|| not_found(username))?;
            for c in changes {
                match c.field {
                    Field::DisplayName => a.display_name = c.after.clone(),
                    Field::Email => a.email = c.after.clone(),
                }
            }
            Ok(())
        })
    }

    async fn rename_user(&self, from: &str, to: &str) -> Result<(), ConnectorError> {
        self.write(&[from, to], |st| {
            if st.accounts.contains_key(&name_key(to)) {
                return Err(ConnectorError::new(
                    ErrorKind::Conflict,
                    format!("user {to} exists"),
                ));
            }
            let mut a = st
                .accounts
                .remove(&name_key(from))
                .ok_or_else(|| not_found(from))?;
            a.username = to.to_string();
            if let Some(tag) = st.avatars.remove(&name_key(from)) {
                st.avatars.insert(name_key(to), tag);
            }
            st.accounts.insert(name_key(to), a);
            Ok(())
        })
    }

    async fn set_active(&self, username: &str, active: bool) -> Result<(), ConnectorError> {
        self.write(&[username], |st| {
            st.accounts
                .get_mut(&name_key(username))
                .ok_or_else(|| not_found(username))?
                .active = active;
            Ok(())
        })
    }

    async fn delete_user(&self, username: &str) -> Result<(), ConnectorError> {
        self.write(&[username], |st| {
            st.accounts
                .remove(&name_key(username))
                .ok_or_else(|| not_found(username))?;
            st.avatars.remove(&name_key(username));
            Ok(())
        })
    }

    async fn create_group(&self, name: &str) -> Result<(), ConnectorError> {
        self.write(&[], |st| {
            let k = name_key(name);
            if st.groups.contains_key(&k) {
                return Err(ConnectorError::new(
                    ErrorKind::Conflict,
                    format!("group {name} exists"),
                ));
            }
            st.groups.insert(
                k,
                TargetGroup {
                    name: name.to_string(),
                },
            );
            Ok(())
        })
    }

    async fn delete_group(&self, name: &str) -> Result<(), ConnectorError> {
        self.write(&[], |st| {
            let k = name_key(name);
            st.groups.remove(&k).ok_or_else(|| not_found(name))?;
            for a in st.accounts.values_mut() {
                a.groups.retain(|g| name_key(g) != k);
            }
            Ok(())
        })
    }

    async fn add_members(&self, group: &str, usernames: &[String]) -> Result<(), ConnectorError> {
        let names: Vec<&str> = usernames.iter().map(String::as_str).collect();
        self.write(&names, |st| {
            let gname = st
                .groups
                .get(&name_key(group))
                .ok_or_else(|| not_found(group))?
                .name
                .clone();
            if let Some(u) = usernames
                .iter()
                .find(|u| !st.accounts.contains_key(&name_key(u)))
            {
                return Err(not_found(u));
            }
            for u in usernames {
                let a = st.accounts.get_mut(&name_key(u)).expect("checked above");
                if !a.groups.iter().any(|g| name_key(g) == name_key(&gname)) {
                    a.groups.insert(gname.clone());
                }
            }
            Ok(())
        })
    }

    async fn remove_member(&self, group: &str, username: &str) -> Result<(), ConnectorError> {
        self.write(&[username], |st| {
            let a = st
                .accounts
                .get_mut(&name_key(username))
                .ok_or_else(|| not_found(username))?;
            a.groups.retain(|g| name_key(g) != name_key(group));
            Ok(())
        })
    }

    async fn set_avatar(&self, username: &str, photo: &Photo) -> Result<(), ConnectorError> {
        self.write(&[username], |st| {
            if !st.accounts.contains_key(&name_key(username)) {
                return Err(not_found(username));
            }
            st.avatars.insert(name_key(username), photo.tag.clone());
            Ok(())
        })
    }

    fn supports_targeted_reads(&self) -> bool {
        true
    }

    async fn read_account(&self, username: &str) -> Result<Option<TargetAccount>, ConnectorError> {
        let mut st = self.state.lock().expect("fake lock");
        st.single_reads += 1;
        Ok(st.accounts.get(&name_key(username)).cloned())
    }

    async fn group_exists(&self, name: &str) -> Result<bool, ConnectorError> {
        let mut st = self.state.lock().expect("fake lock");
        st.single_reads += 1;
        Ok(st.groups.contains_key(&name_key(name)))
    }
}

/// A source serving a fixed snapshot; photos are generated from each user's photo tag.
#[derive(Debug, Clone, Default)]
pub struct FakeSource {
    /// The snapshot `read` returns.
    pub snapshot: SourceSnapshot,
}

#[async_trait]
impl SourceDirectory for FakeSource {
    async fn read(&self, _state: Option<SourceSyncState>) -> Result<SourceRead, ConnectorError> {
        Ok(SourceRead {
            snapshot: std::sync::Arc::new(self.snapshot.clone()),
            next_state: SourceSyncState::default(),
            stats: ReadStats {
                mode: ReadMode::default(),
                requests: 1,
                throttled: 0,
            },
        })
    }

    async fn photo(&self, source_id: &str) -> Result<Option<Photo>, ConnectorError> {
        let user = self.snapshot.users.iter().find(|u| u.id == source_id);
        Ok(user.and_then(|u| u.photo.as_ref()).map(|p| Photo {
            content_type: "image/png".into(),
            bytes: p.tag.as_bytes().to_vec(),
            tag: p.tag.clone(),
        }))
    }
}
