//! The last known state of a target, kept between runs so a run whose source read was a delta
//! can read from the target only what changed (an *incremental* run) instead of the whole
//! directory (a *full reconcile*).
//!
//! [`TargetState`] is the in-memory form: written whole from a full read, patched by fresh
//! single-object reads ([`TargetState::observe_account`]) and by applied operations
//! ([`TargetState::apply`]); it remembers what it changed so the store writes only those rows.
//! [`ObservingTarget`] wraps a target and records every single-object read made during an apply
//! (the engine's re-reads before destructive writes), so those fresh facts patch the state too.
//!
//! Safety does not rest on this state being right: the link table stays the record of what is
//! managed, and the engine re-reads every object before a destructive write
//! (`engine::recheck`), so a stale state can cost a missed change until the next full
//! reconcile, never a wrong removal.

use crate::model::{TargetAccount, TargetGroup, TargetSnapshot, name_key};
use crate::plan::{AccountSpec, FieldChange, OpKind, OpOutcome, Operation};
use crate::ports::{
    AccountRef, ConnectorError, Created, Photo, TargetCapabilities, TargetDirectory,
};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

/// Why a run read the whole target rather than only what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetFullReason {
    /// Asked for (`sync --full`, `simulate --full`).
    Forced,
    /// No stored target state for this pair (first run, or the store was reset).
    NoState,
    /// The source read was full, so there is no delta to follow.
    SourceFullRead,
    /// The last apply failed, stopped, was partial or was interrupted, so the stored state may
    /// not match what was written.
    PreviousRunUnfinished,
    /// The pair's configuration (target, mapping, scope, policy) changed since the state was
    /// read.
    ConfigChanged,
    /// The last full read is older than `reconcile_every_hours`.
    PeriodicReconcile,
    /// The product's connector cannot read single objects.
    NotSupported,
    /// An incremental read found an account the stored state held gone from its name
    /// (deleted or renamed outside usersync); only a full read can tell which.
    StateDiverged,
    /// The incremental read would re-read more objects one by one than a full read costs in
    /// requests (a large change, or repeated simulations into a target nothing was applied to).
    TooManyToReRead,
}

impl TargetFullReason {
    /// Short text for reports.
    pub fn text(self) -> &'static str {
        match self {
            TargetFullReason::Forced => "forced",
            TargetFullReason::NoState => "no stored target state",
            TargetFullReason::SourceFullRead => "the source read was full",
            TargetFullReason::PreviousRunUnfinished => "the previous apply did not finish cleanly",
            TargetFullReason::ConfigChanged => "configuration changed",
            TargetFullReason::PeriodicReconcile => "periodic reconcile",
            TargetFullReason::NotSupported => "the target cannot read single objects",
            TargetFullReason::StateDiverged => {
                "an account the stored state held was deleted or renamed in the target"
            }
            TargetFullReason::TooManyToReRead => {
                "more objects to re-read one by one than a full read costs"
            }
        }
    }
}

/// Whether re-reading `objects` accounts and groups one request each costs more than a full
/// read of `snapshot`, estimated at the products' largest pages (1,000 accounts a page, one
/// request per group, 50 members a page: Jira's), never below `floor` so a small change stays
/// incremental on a small directory.
pub fn re_read_costs_more(objects: usize, snapshot: &TargetSnapshot, floor: usize) -> bool {
    let memberships: usize = snapshot.accounts.iter().map(|a| a.groups.len()).sum();
    let full = snapshot.accounts.len().div_ceil(1_000) + snapshot.groups.len() + memberships / 50;
    objects > full.max(floor)
}

/// How a run read the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "mode", content = "reason", rename_all = "snake_case")]
pub enum TargetReadMode {
    /// Everything was read (a full reconcile), and why.
    Full(TargetFullReason),
    /// Only the objects the source delta and the plan touched were read; the rest came from
    /// the stored state.
    Incremental,
}

impl std::fmt::Display for TargetReadMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetReadMode::Incremental => f.write_str("incremental"),
            TargetReadMode::Full(r) => write!(f, "full reconcile ({})", r.text()),
        }
    }
}

/// Figures about one target read, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetReadStats {
    /// Full reconcile (and why) or incremental.
    pub mode: TargetReadMode,
    /// Accounts read one by one (incremental runs).
    #[serde(default)]
    pub accounts_read: u64,
    /// Groups checked one by one (incremental runs).
    #[serde(default)]
    pub groups_read: u64,
}

/// Decides how to read the target. Inputs are plain facts so the rule is testable.
#[derive(Debug, Clone, Default)]
pub struct ReadDecision {
    /// `--full` was given.
    pub forced: bool,
    /// The source read was a delta read.
    pub source_delta: bool,
    /// The connector supports targeted reads.
    pub supported: bool,
    /// The stored state's bookkeeping, if there is a stored state.
    pub stored: Option<StoredMeta>,
    /// Fingerprint of the pair's configuration now.
    pub fingerprint: String,
    /// Now (unix ms).
    pub now_ms: i64,
    /// How often a full reconcile is due (ms).
    pub reconcile_every_ms: i64,
}

/// Bookkeeping stored with a pair's target state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMeta {
    /// When the last full read was made (unix ms).
    pub full_read_ms: i64,
    /// Fingerprint of the configuration it was read and planned with.
    pub fingerprint: String,
    /// False while an apply is running or after one that did not finish cleanly.
    pub clean: bool,
}

impl ReadDecision {
    /// Full (and why) or incremental. The order gives the most useful reason first.
    pub fn mode(&self) -> TargetReadMode {
        use TargetFullReason as R;
        let full = |r| TargetReadMode::Full(r);
        if self.forced {
            return full(R::Forced);
        }
        if !self.supported {
            return full(R::NotSupported);
        }
        let Some(meta) = &self.stored else {
            return full(R::NoState);
        };
        if !self.source_delta {
            return full(R::SourceFullRead);
        }
        if !meta.clean {
            return full(R::PreviousRunUnfinished);
        }
        if meta.fingerprint != self.fingerprint {
            return full(R::ConfigChanged);
        }
        if self.now_ms.saturating_sub(meta.full_read_ms) >= self.reconcile_every_ms {
            return full(R::PeriodicReconcile);
        }
        TargetReadMode::Incremental
    }
}

/// The identity of a stored account: the product's key where it has one, else the name.
pub fn account_ident(a: &TargetAccount) -> String {
    match &a.key {
        Some(k) => format!("k:{k}"),
        None => format!("n:{}", name_key(&a.username)),
    }
}

/// What changed in a [`TargetState`] since it was loaded: the rows the store must write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetStateChanges {
    /// Accounts to write (insert or replace), by identity.
    pub upsert_accounts: Vec<(String, TargetAccount)>,
    /// Identities of accounts to delete.
    pub remove_accounts: Vec<String>,
    /// Groups to write.
    pub upsert_groups: Vec<TargetGroup>,
    /// Name keys of groups to delete.
    pub remove_groups: Vec<String>,
}

impl TargetStateChanges {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.upsert_accounts.is_empty()
            && self.remove_accounts.is_empty()
            && self.upsert_groups.is_empty()
            && self.remove_groups.is_empty()
    }
}

/// A target's state in memory, patchable, remembering what was patched.
#[derive(Debug, Clone, Default)]
pub struct TargetState {
    accounts: BTreeMap<String, TargetAccount>,
    by_name: HashMap<String, String>,
    groups: BTreeMap<String, TargetGroup>,
    touched_accounts: BTreeSet<String>,
    touched_groups: BTreeSet<String>,
}

impl TargetState {
    /// The state of a snapshot (a full read, or what the store held).
    pub fn from_snapshot(s: TargetSnapshot) -> Self {
        let mut st = TargetState::default();
        for g in s.groups {
            st.groups.insert(name_key(&g.name), g);
        }
        for a in s.accounts {
            st.insert_account(a);
        }
        st.touched_accounts.clear();
        st.touched_groups.clear();
        st
    }

    /// The snapshot the planner reads (sorted by identity, so planning is deterministic).
    pub fn snapshot(&self) -> TargetSnapshot {
        TargetSnapshot {
            accounts: self.accounts.values().cloned().collect(),
            groups: self.groups.values().cloned().collect(),
        }
    }

    /// Number of accounts held.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// The account with this username (case-insensitive), if held.
    pub fn account(&self, username: &str) -> Option<&TargetAccount> {
        self.by_name
            .get(&name_key(username))
            .and_then(|id| self.accounts.get(id))
    }

    /// Whether a group of that name is held.
    pub fn has_group(&self, name: &str) -> bool {
        self.groups.contains_key(&name_key(name))
    }

    fn insert_account(&mut self, a: TargetAccount) {
        let id = account_ident(&a);
        // Another held account with the same name is stale (renamed or deleted and the name
        // reused): the fresh one wins.
        if let Some(old) = self.by_name.get(&name_key(&a.username)).cloned()
            && old != id
        {
            self.remove_ident(&old);
        }
        if let Some(prev) = self.accounts.get(&id)
            && name_key(&prev.username) != name_key(&a.username)
        {
            self.by_name.remove(&name_key(&prev.username));
        }
        self.by_name.insert(name_key(&a.username), id.clone());
        self.touched_accounts.insert(id.clone());
        self.accounts.insert(id, a);
    }

    fn remove_ident(&mut self, id: &str) {
        if let Some(a) = self.accounts.remove(id) {
            self.by_name.remove(&name_key(&a.username));
        }
        self.touched_accounts.insert(id.to_string());
    }

    fn edit(&mut self, username: &str, f: impl FnOnce(&mut TargetAccount)) {
        let Some(id) = self.by_name.get(&name_key(username)).cloned() else {
            return;
        };
        if let Some(a) = self.accounts.get_mut(&id) {
            f(a);
            self.touched_accounts.insert(id);
        }
    }

    /// A fresh read of one account: `None` means no account has that name any more.
    pub fn observe_account(&mut self, username: &str, fresh: Option<TargetAccount>) {
        match fresh {
            Some(a) => {
                // Groups the state does not know yet are learnt from the account's list.
                for g in &a.groups {
                    if !self.has_group(g) {
                        self.set_group(g, true);
                    }
                }
                self.insert_account(a)
            }
            None => {
                if let Some(id) = self.by_name.get(&name_key(username)).cloned() {
                    self.remove_ident(&id);
                }
            }
        }
    }

    /// A fresh check of one group's existence.
    pub fn observe_group(&mut self, name: &str, exists: bool) {
        self.set_group(name, exists);
    }

    fn set_group(&mut self, name: &str, exists: bool) {
        let k = name_key(name);
        self.touched_groups.insert(k.clone());
        if exists {
            self.groups.entry(k).or_insert_with(|| TargetGroup {
                name: name.to_string(),
            });
        } else if self.groups.remove(&k).is_some() {
            let ids: Vec<String> = self
                .accounts
                .iter()
                .filter(|(_, a)| a.groups.iter().any(|g| name_key(g) == k))
                .map(|(id, _)| id.clone())
                .collect();
            for id in ids {
                if let Some(a) = self.accounts.get_mut(&id) {
                    a.groups.retain(|g| name_key(g) != k);
                }
                self.touched_accounts.insert(id);
            }
        }
    }

    /// Patches the state with an operation's outcome. Only applied operations change it;
    /// a failed or skipped one leaves the state as it was (a failed run forces a full read
    /// next time anyway).
    pub fn apply(&mut self, op: &Operation, outcome: &OpOutcome) {
        let OpOutcome::Applied { target_key } = outcome else {
            return;
        };
        match &op.kind {
            OpKind::CreateUser { account, .. } => self.insert_account(created(account, target_key)),
            OpKind::AdoptUser { .. } | OpKind::AdoptGroup { .. } | OpKind::SetAvatar { .. } => {}
            OpKind::RenameUser { from, to, .. } => {
                if let Some(id) = self.by_name.get(&name_key(from)).cloned()
                    && let Some(mut a) = self.accounts.get(&id).cloned()
                {
                    a.username = to.clone();
                    self.remove_ident(&id);
                    self.insert_account(a);
                }
            }
            OpKind::UpdateUser {
                username, changes, ..
            } => self.edit(username, |a| apply_changes(a, changes)),
            OpKind::ReactivateUser { username, .. } => self.edit(username, |a| a.active = true),
            OpKind::DeactivateUser { username, .. } => self.edit(username, |a| a.active = false),
            OpKind::DeleteUser { username, .. } => {
                if let Some(id) = self.by_name.get(&name_key(username)).cloned() {
                    self.remove_ident(&id);
                }
            }
            OpKind::CreateGroup { name, .. } => self.set_group(name, true),
            OpKind::DeleteGroup { name, .. } => self.set_group(name, false),
            OpKind::AddMembers { group, usernames } => {
                for u in usernames {
                    self.edit(u, |a| {
                        if !a.groups.iter().any(|g| name_key(g) == name_key(group)) {
                            a.groups.insert(group.clone());
                        }
                    });
                }
            }
            OpKind::RemoveMember { group, username } => self.edit(username, |a| {
                a.groups.retain(|g| name_key(g) != name_key(group));
            }),
        }
    }

    /// The rows changed since the state was loaded, and forgets them (the store has them).
    pub fn take_changes(&mut self) -> TargetStateChanges {
        let mut c = TargetStateChanges::default();
        for id in std::mem::take(&mut self.touched_accounts) {
            match self.accounts.get(&id) {
                Some(a) => c.upsert_accounts.push((id, a.clone())),
                None => c.remove_accounts.push(id),
            }
        }
        for k in std::mem::take(&mut self.touched_groups) {
            match self.groups.get(&k) {
                Some(g) => c.upsert_groups.push(g.clone()),
                None => c.remove_groups.push(k),
            }
        }
        c
    }
}

fn created(spec: &AccountSpec, key: &Option<String>) -> TargetAccount {
    TargetAccount {
        username: spec.username.clone(),
        key: key.clone(),
        display_name: spec.display_name.clone(),
        email: spec.email.clone(),
        active: true,
        groups: BTreeSet::new(),
    }
}

fn apply_changes(a: &mut TargetAccount, changes: &[FieldChange]) {
    for ch in changes {
        match ch.field {
            crate::plan::Field::DisplayName => a.display_name = ch.after.clone(),
            crate::plan::Field::Email => a.email = ch.after.clone(),
        }
    }
}

/// What an incremental run must read fresh before planning: usernames and group names, each
/// by its name key (deduplicated case-insensitively) with the spelling first seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    /// Usernames whose accounts are read.
    pub accounts: BTreeMap<String, String>,
    /// Group names whose existence is checked.
    pub groups: BTreeMap<String, String>,
}

impl Touched {
    /// Adds every account and group an operation names.
    pub fn add_op(&mut self, op: &OpKind) {
        match op {
            OpKind::CreateUser { account, .. } => self.user(&account.username),
            OpKind::AdoptUser { username, .. }
            | OpKind::UpdateUser { username, .. }
            | OpKind::ReactivateUser { username, .. }
            | OpKind::DeactivateUser { username, .. }
            | OpKind::DeleteUser { username, .. }
            | OpKind::SetAvatar { username, .. } => self.user(username),
            OpKind::RenameUser { from, to, .. } => {
                self.user(from);
                self.user(to);
            }
            OpKind::CreateGroup { name, .. }
            | OpKind::AdoptGroup { name, .. }
            | OpKind::DeleteGroup { name, .. } => self.group(name),
            OpKind::AddMembers { group, usernames } => {
                self.group(group);
                for u in usernames {
                    self.user(u);
                }
            }
            OpKind::RemoveMember { group, username } => {
                self.group(group);
                self.user(username);
            }
        }
    }

    /// Adds an account by username.
    pub fn user(&mut self, username: &str) {
        self.accounts
            .entry(name_key(username))
            .or_insert_with(|| username.to_string());
    }

    /// Adds a group by name.
    pub fn group(&mut self, name: &str) {
        self.groups
            .entry(name_key(name))
            .or_insert_with(|| name.to_string());
    }
}

/// One fresh single-object read seen by [`ObservingTarget`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// `read_account(username)` answered this.
    Account(String, Option<TargetAccount>),
    /// `group_exists(name)` answered this.
    Group(String, bool),
}

/// Wraps a target and records the answers of its single-object reads (the engine's re-reads
/// before destructive writes), so the stored state learns from them. Every other call is
/// passed through unchanged, including the by-key writes.
pub struct ObservingTarget<'a> {
    inner: &'a dyn TargetDirectory,
    seen: Mutex<Vec<Observation>>,
}

impl<'a> ObservingTarget<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a dyn TargetDirectory) -> Self {
        Self {
            inner,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// The reads seen so far, in order, and forgets them.
    pub fn take(&self) -> Vec<Observation> {
        std::mem::take(&mut *self.seen.lock().expect("observations lock"))
    }

    fn note(&self, o: Observation) {
        self.seen.lock().expect("observations lock").push(o);
    }
}

#[async_trait]
impl TargetDirectory for ObservingTarget<'_> {
    fn capabilities(&self) -> TargetCapabilities {
        self.inner.capabilities()
    }
    async fn read(&self) -> Result<TargetSnapshot, ConnectorError> {
        self.inner.read().await
    }
    async fn create_user(&self, spec: &AccountSpec) -> Result<Created, ConnectorError> {
        self.inner.create_user(spec).await
    }
    async fn update_user(&self, u: &str, ch: &[FieldChange]) -> Result<(), ConnectorError> {
        self.inner.update_user(u, ch).await
    }
    async fn rename_user(&self, from: &str, to: &str) -> Result<(), ConnectorError> {
        self.inner.rename_user(from, to).await
    }
    async fn set_active(&self, u: &str, active: bool) -> Result<(), ConnectorError> {
        self.inner.set_active(u, active).await
    }
    async fn delete_user(&self, u: &str) -> Result<(), ConnectorError> {
        self.inner.delete_user(u).await
    }
    async fn update_user_ref(
        &self,
        a: AccountRef<'_>,
        ch: &[FieldChange],
    ) -> Result<(), ConnectorError> {
        self.inner.update_user_ref(a, ch).await
    }
    async fn set_active_ref(&self, a: AccountRef<'_>, active: bool) -> Result<(), ConnectorError> {
        self.inner.set_active_ref(a, active).await
    }
    async fn delete_user_ref(&self, a: AccountRef<'_>) -> Result<(), ConnectorError> {
        self.inner.delete_user_ref(a).await
    }
    async fn create_group(&self, name: &str) -> Result<(), ConnectorError> {
        self.inner.create_group(name).await
    }
    async fn delete_group(&self, name: &str) -> Result<(), ConnectorError> {
        self.inner.delete_group(name).await
    }
    async fn add_members(&self, g: &str, us: &[String]) -> Result<(), ConnectorError> {
        self.inner.add_members(g, us).await
    }
    async fn remove_member(&self, g: &str, u: &str) -> Result<(), ConnectorError> {
        self.inner.remove_member(g, u).await
    }
    async fn set_avatar(&self, u: &str, photo: &Photo) -> Result<(), ConnectorError> {
        self.inner.set_avatar(u, photo).await
    }
    fn supports_targeted_reads(&self) -> bool {
        self.inner.supports_targeted_reads()
    }
    async fn read_account(&self, u: &str) -> Result<Option<TargetAccount>, ConnectorError> {
        let r = self.inner.read_account(u).await?;
        self.note(Observation::Account(u.to_string(), r.clone()));
        Ok(r)
    }
    async fn group_exists(&self, name: &str) -> Result<bool, ConnectorError> {
        let r = self.inner.group_exists(name).await?;
        self.note(Observation::Group(name.to_string(), r));
        Ok(r)
    }
}

impl TargetState {
    /// Patches the state with a fresh read seen by [`ObservingTarget`].
    pub fn observe(&mut self, o: Observation) {
        match o {
            Observation::Account(u, a) => self.observe_account(&u, a),
            Observation::Group(g, e) => self.observe_group(&g, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan of 290,000 creates against a target nothing was applied to (repeated simulations)
    /// must read in full (5 requests), not re-read 290,000 accounts one by one; a small change
    /// on a large directory stays incremental; the floor keeps small directories incremental.
    #[test]
    fn re_reading_one_by_one_only_while_cheaper_than_a_full_read() {
        let empty = TargetSnapshot::default();
        assert!(re_read_costs_more(290_000, &empty, 1_000));
        assert!(!re_read_costs_more(999, &empty, 1_000));
        let big = TargetSnapshot {
            accounts: (0..50_000)
                .map(|i| acct(&format!("u{i}"), &format!("k{i}"), &["g1", "g2"]))
                .collect(),
            groups: (0..5_000)
                .map(|i| TargetGroup {
                    name: format!("g{i}"),
                })
                .collect(),
        };
        // Full read: 50 account pages + 5,000 groups + 100,000 / 50 member pages = 7,050.
        assert!(!re_read_costs_more(7_050, &big, 1_000));
        assert!(re_read_costs_more(7_051, &big, 1_000));
    }

    fn acct(name: &str, key: &str, groups: &[&str]) -> TargetAccount {
        TargetAccount {
            username: name.into(),
            key: Some(key.into()),
            display_name: name.into(),
            email: format!("{name}@example.com"),
            active: true,
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn op(kind: OpKind) -> Operation {
        Operation {
            seq: 0,
            kind,
            reason: String::new(),
        }
    }

    #[test]
    fn decision_order() {
        let meta = StoredMeta {
            full_read_ms: 1_000,
            fingerprint: "f".into(),
            clean: true,
        };
        let d = ReadDecision {
            forced: false,
            source_delta: true,
            supported: true,
            stored: Some(meta.clone()),
            fingerprint: "f".into(),
            now_ms: 2_000,
            reconcile_every_ms: 10_000,
        };
        assert_eq!(d.mode(), TargetReadMode::Incremental);
        let full = |r| TargetReadMode::Full(r);
        assert_eq!(
            ReadDecision {
                forced: true,
                ..d.clone()
            }
            .mode(),
            full(TargetFullReason::Forced)
        );
        assert_eq!(
            ReadDecision {
                stored: None,
                ..d.clone()
            }
            .mode(),
            full(TargetFullReason::NoState)
        );
        assert_eq!(
            ReadDecision {
                source_delta: false,
                ..d.clone()
            }
            .mode(),
            full(TargetFullReason::SourceFullRead)
        );
        let dirty = StoredMeta {
            clean: false,
            ..meta.clone()
        };
        assert_eq!(
            ReadDecision {
                stored: Some(dirty),
                ..d.clone()
            }
            .mode(),
            full(TargetFullReason::PreviousRunUnfinished)
        );
        assert_eq!(
            ReadDecision {
                fingerprint: "g".into(),
                ..d.clone()
            }
            .mode(),
            full(TargetFullReason::ConfigChanged)
        );
        assert_eq!(
            ReadDecision {
                now_ms: 11_000,
                ..d.clone()
            }
            .mode(),
            full(TargetFullReason::PeriodicReconcile)
        );
        assert_eq!(
            ReadDecision {
                supported: false,
                ..d
            }
            .mode(),
            full(TargetFullReason::NotSupported)
        );
    }

    #[test]
    fn patches_follow_operations_and_fresh_reads() {
        let mut st = TargetState::from_snapshot(TargetSnapshot {
            accounts: vec![acct("alice", "K1", &["devs"]), acct("bob", "K2", &["devs"])],
            groups: vec![TargetGroup {
                name: "devs".into(),
            }],
        });
        assert!(st.take_changes().is_empty());
        st.apply(
            &op(OpKind::RemoveMember {
                group: "DEVS".into(),
                username: "Alice".into(),
            }),
            &OpOutcome::Applied { target_key: None },
        );
        st.apply(
            &op(OpKind::RenameUser {
                source_id: "s2".into(),
                from: "bob".into(),
                to: "robert".into(),
            }),
            &OpOutcome::Applied { target_key: None },
        );
        // A failed op changes nothing.
        st.apply(
            &op(OpKind::DeleteGroup {
                source_id: "g".into(),
                name: "devs".into(),
            }),
            &OpOutcome::Failed {
                kind: crate::ports::ErrorKind::Other,
                message: "x".into(),
            },
        );
        assert!(st.account("alice").unwrap().groups.is_empty());
        assert!(st.account("bob").is_none());
        assert_eq!(st.account("robert").unwrap().key.as_deref(), Some("K2"));
        assert!(st.has_group("devs"));
        // An admin deleted alice: the fresh read says so.
        st.observe_account("alice", None);
        assert!(st.account("alice").is_none());
        let c = st.take_changes();
        assert_eq!(c.remove_accounts, vec!["k:K1".to_string()]);
        assert_eq!(c.upsert_accounts.len(), 1);
        assert_eq!(c.upsert_accounts[0].1.username, "robert");
        // A name reused by a new account replaces the stale holder.
        st.observe_account("robert", Some(acct("robert", "K9", &[])));
        assert_eq!(st.account_count(), 1);
        assert_eq!(st.account("robert").unwrap().key.as_deref(), Some("K9"));
    }
}
