//! The run report: a versioned JSON document (`schema_version` 1, every field documented in
//! `docs/report-schema.md`) and a readable text summary. Built from a plan, plus per-operation
//! outcomes after an apply; simulate and sync share this code.

use crate::items::ItemKind;
use crate::model::name_key;
use crate::plan::{
    Conflict, FieldChange, OpKind, OpOutcome, Operation, Plan, PlanCounts, SkippedUser,
};
use crate::ports::ReadStats;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Version of the JSON report format. Bumped on incompatible changes.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// Entries per list in the text summary; the JSON report always has every entry.
const TEXT_LIST_LIMIT: usize = 50;

pub use crate::run::{RunMode, RunStatus};

/// Run metadata; the engine fills `mode` and `product`, the caller the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Simulate or sync.
    pub mode: RunMode,
    /// Target product name.
    pub product: String,
    /// Connector / pair name, when the caller sets it.
    pub connector: Option<String>,
    /// Run start (RFC 3339), when the caller sets it.
    pub started_at: Option<String>,
    /// Run end (RFC 3339), when the caller sets it.
    pub finished_at: Option<String>,
    /// How the source read went, when the caller sets it.
    pub source_read: Option<ReadStats>,
    /// How the target was read (full reconcile and why, or incremental), when the caller
    /// sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_read: Option<crate::target_state::TargetReadStats>,
    /// How the run ended, when the caller sets it (the same status as the run history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    /// Wall time of the run's steps, when the caller measures them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<RunTimings>,
}

/// Wall time of a run's steps in milliseconds (for benchmarks and slow-run diagnosis).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTimings {
    /// Source read (shared by every target of the run).
    pub source_read_ms: u64,
    /// Target read.
    pub target_read_ms: u64,
    /// Planning (mapping, scope and the diff).
    pub plan_ms: u64,
    /// Apply (0 for a simulate or a held run).
    pub apply_ms: u64,
}

/// A user named in a change list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    /// Target username.
    pub username: String,
    /// Source object ID.
    pub source_id: String,
    /// Why.
    pub reason: String,
}

/// A user whose display name or e-mail changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModifiedUser {
    /// Target username.
    pub username: String,
    /// Source object ID.
    pub source_id: String,
    /// Before → after per field.
    pub changes: Vec<FieldChange>,
}

/// A renamed account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenamedUser {
    /// Source object ID.
    pub source_id: String,
    /// Old username.
    pub from: String,
    /// New username.
    pub to: String,
}

/// A membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Group name.
    pub group: String,
    /// Username.
    pub username: String,
}

/// User changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserChanges {
    /// Accounts created.
    pub added: Vec<UserEntry>,
    /// Existing accounts linked (adoption, or confirming an interrupted create).
    pub adopted: Vec<UserEntry>,
    /// Accounts with field changes.
    pub modified: Vec<ModifiedUser>,
    /// Renamed accounts.
    pub renamed: Vec<RenamedUser>,
    /// Reactivated accounts.
    pub reactivated: Vec<UserEntry>,
    /// Deactivated accounts.
    pub deactivated: Vec<UserEntry>,
    /// Deleted accounts.
    pub deleted: Vec<UserEntry>,
    /// Usernames of synced users with nothing to change.
    pub unchanged: Vec<String>,
}

/// Group changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupChanges {
    /// Groups created.
    pub added: Vec<String>,
    /// Existing groups adopted.
    pub adopted: Vec<String>,
    /// Groups deleted.
    pub removed: Vec<String>,
}

/// Membership changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipChanges {
    /// Memberships added.
    pub added: Vec<Membership>,
    /// Memberships removed.
    pub removed: Vec<Membership>,
}

/// Outcome figures (all zero in a simulation except `planned`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeCounts {
    /// Operations in the plan.
    pub planned: usize,
    /// Applied.
    pub applied: usize,
    /// Failed.
    pub failed: usize,
    /// Not attempted.
    pub skipped: usize,
}

/// One operation and, after an apply, its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRecord {
    /// The operation (seq, op, fields, reason).
    #[serde(flatten)]
    pub op: Operation,
    /// Outcome; absent in a simulation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<OpOutcome>,
}

/// The run report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Run metadata.
    pub run: RunInfo,
    /// Why the run was held (nothing written), if it was.
    pub held: Option<String>,
    /// Why an apply stopped early (systemic error), if it did.
    pub stopped: Option<String>,
    /// False when the source read was incomplete (nothing was removed).
    pub source_complete: bool,
    /// What failed in the source read, when it was incomplete (the caller sets it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_failures: Vec<String>,
    /// Plan figures.
    pub counts: PlanCounts,
    /// Outcome figures.
    pub outcomes: OutcomeCounts,
    /// User changes (after an apply: only the applied ones).
    pub users: UserChanges,
    /// Group changes.
    pub groups: GroupChanges,
    /// Membership changes.
    pub memberships: MembershipChanges,
    /// Usernames whose avatar is set.
    pub avatars_set: Vec<String>,
    /// Conflicts.
    pub conflicts: Vec<Conflict>,
    /// Skipped users.
    pub skipped: Vec<SkippedUser>,
    /// Unmanaged target accounts matching no source user.
    pub target_only: Vec<String>,
    /// Warnings.
    pub warnings: Vec<String>,
    /// Every operation, in plan order, with its outcome after an apply.
    pub operations: Vec<OpRecord>,
}

impl Report {
    /// Builds the report of `plan`; `outcomes` (one per op, in plan order) after an apply.
    pub fn build(
        plan: &Plan,
        mode: RunMode,
        outcomes: Option<&[OpOutcome]>,
        stopped: Option<String>,
    ) -> Report {
        let mut r = Report {
            schema_version: REPORT_SCHEMA_VERSION,
            run: RunInfo {
                mode,
                product: plan.product.clone(),
                connector: None,
                started_at: None,
                finished_at: None,
                source_read: None,
                target_read: None,
                status: None,
                timings: None,
            },
            held: plan.held.as_ref().map(ToString::to_string),
            stopped,
            source_complete: plan.source_complete,
            source_failures: Vec::new(),
            counts: plan.counts.clone(),
            outcomes: OutcomeCounts {
                planned: plan.ops.len(),
                ..OutcomeCounts::default()
            },
            users: UserChanges {
                unchanged: plan.unchanged.clone(),
                ..UserChanges::default()
            },
            groups: GroupChanges::default(),
            memberships: MembershipChanges::default(),
            avatars_set: Vec::new(),
            conflicts: plan.conflicts.clone(),
            skipped: plan.skipped.clone(),
            target_only: plan.target_only.clone(),
            warnings: plan.warnings.clone(),
            operations: Vec::with_capacity(plan.ops.len()),
        };
        // Accounts that do not exist under their planned name because their create, adopt or
        // rename did not apply. The engine drops them from membership batches, so the report
        // must not list those memberships as added.
        let absent: std::collections::BTreeSet<String> = match outcomes {
            Some(o) => plan
                .ops
                .iter()
                .zip(o)
                .filter(|(_, out)| !matches!(out, OpOutcome::Applied { .. }))
                .filter_map(|(op, _)| match &op.kind {
                    OpKind::CreateUser { account, .. } => Some(name_key(&account.username)),
                    OpKind::AdoptUser { username, .. } => Some(name_key(username)),
                    OpKind::RenameUser { to, .. } => Some(name_key(to)),
                    _ => None,
                })
                .collect(),
            None => Default::default(),
        };
        for (i, op) in plan.ops.iter().enumerate() {
            let outcome = outcomes.and_then(|o| o.get(i)).cloned();
            match &outcome {
                Some(OpOutcome::Applied { .. }) => r.outcomes.applied += 1,
                Some(OpOutcome::Failed { .. }) => r.outcomes.failed += 1,
                Some(OpOutcome::Skipped { .. }) => r.outcomes.skipped += 1,
                None => {}
            }
            // Change lists show what happened: everything in a simulation, applied ops after.
            if outcome
                .as_ref()
                .is_none_or(|o| matches!(o, OpOutcome::Applied { .. }))
            {
                r.add_change(op, &absent);
            }
            r.operations.push(OpRecord {
                op: op.clone(),
                outcome,
            });
        }
        if outcomes.is_some() {
            // After an apply the change figures count what was applied, like the lists.
            let c = &mut r.counts;
            c.users_created = r.users.added.len();
            c.users_adopted = r.users.adopted.len();
            c.users_updated = r.users.modified.len();
            c.users_renamed = r.users.renamed.len();
            c.users_reactivated = r.users.reactivated.len();
            c.users_deactivated = r.users.deactivated.len();
            c.users_deleted = r.users.deleted.len();
            c.groups_created = r.groups.added.len();
            c.groups_adopted = r.groups.adopted.len();
            c.groups_deleted = r.groups.removed.len();
            c.memberships_added = r.memberships.added.len();
            c.memberships_removed = r.memberships.removed.len();
            c.avatars_set = r.avatars_set.len();
        }
        r
    }

    fn add_change(&mut self, op: &Operation, absent: &std::collections::BTreeSet<String>) {
        let entry = |sid: &str, name: &str| UserEntry {
            username: name.to_string(),
            source_id: sid.to_string(),
            reason: op.reason.clone(),
        };
        match &op.kind {
            OpKind::CreateUser { source_id, account } => {
                self.users.added.push(entry(source_id, &account.username))
            }
            OpKind::AdoptUser {
                source_id,
                username,
                ..
            } => self.users.adopted.push(entry(source_id, username)),
            OpKind::RenameUser {
                source_id,
                from,
                to,
            } => self.users.renamed.push(RenamedUser {
                source_id: source_id.clone(),
                from: from.clone(),
                to: to.clone(),
            }),
            OpKind::UpdateUser {
                source_id,
                username,
                changes,
                ..
            } => self.users.modified.push(ModifiedUser {
                username: username.clone(),
                source_id: source_id.clone(),
                changes: changes.clone(),
            }),
            OpKind::ReactivateUser {
                source_id,
                username,
                ..
            } => self.users.reactivated.push(entry(source_id, username)),
            OpKind::DeactivateUser {
                source_id,
                username,
                ..
            } => self.users.deactivated.push(entry(source_id, username)),
            OpKind::DeleteUser {
                source_id,
                username,
                ..
            } => self.users.deleted.push(entry(source_id, username)),
            OpKind::CreateGroup { name, .. } => self.groups.added.push(name.clone()),
            OpKind::AdoptGroup { name, .. } => self.groups.adopted.push(name.clone()),
            OpKind::DeleteGroup { name, .. } => self.groups.removed.push(name.clone()),
            OpKind::AddMembers { group, usernames } => self.memberships.added.extend(
                usernames
                    .iter()
                    .filter(|u| !absent.contains(&name_key(u)))
                    .map(|u| Membership {
                        group: group.clone(),
                        username: u.clone(),
                    }),
            ),
            OpKind::RemoveMember { group, username } => self.memberships.removed.push(Membership {
                group: group.clone(),
                username: username.clone(),
            }),
            OpKind::SetAvatar { username, .. } => self.avatars_set.push(username.clone()),
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }

    /// A readable summary: figures, then the changes, conflicts, warnings and failures. Long
    /// lists are cut at 50 entries (the JSON report has them all).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        write_header(
            &mut s,
            &Header {
                run: &self.run,
                held: self.held.as_deref(),
                stopped: self.stopped.as_deref(),
                source_complete: self.source_complete,
                source_failures: &self.source_failures,
                counts: &self.counts,
                outcomes: &self.outcomes,
            },
        );
        let u = &self.users;
        section(
            &mut s,
            "Added users",
            u.added
                .iter()
                .map(|e| format!("+ {} ({})", e.username, e.reason)),
        );
        section(
            &mut s,
            "Adopted users",
            u.adopted
                .iter()
                .map(|e| format!("= {} ({})", e.username, e.reason)),
        );
        section(
            &mut s,
            "Modified users",
            u.modified.iter().map(|m| {
                let diffs: Vec<String> = m
                    .changes
                    .iter()
                    .map(|ch| {
                        let f = match ch.field {
                            crate::plan::Field::DisplayName => "display name",
                            crate::plan::Field::Email => "e-mail",
                        };
                        format!("{f} {:?} → {:?}", ch.before, ch.after)
                    })
                    .collect();
                format!("~ {}: {}", m.username, diffs.join("; "))
            }),
        );
        section(
            &mut s,
            "Renamed users",
            u.renamed.iter().map(|r| format!("> {} → {}", r.from, r.to)),
        );
        section(
            &mut s,
            "Reactivated users",
            u.reactivated
                .iter()
                .map(|e| format!("^ {} ({})", e.username, e.reason)),
        );
        section(
            &mut s,
            "Deactivated users",
            u.deactivated
                .iter()
                .map(|e| format!("v {} ({})", e.username, e.reason)),
        );
        section(
            &mut s,
            "Deleted users",
            u.deleted
                .iter()
                .map(|e| format!("- {} ({})", e.username, e.reason)),
        );
        section(
            &mut s,
            "Groups added",
            self.groups.added.iter().map(|g| format!("+ {g}")),
        );
        section(
            &mut s,
            "Groups adopted",
            self.groups.adopted.iter().map(|g| format!("= {g}")),
        );
        section(
            &mut s,
            "Groups removed",
            self.groups.removed.iter().map(|g| format!("- {g}")),
        );
        section(
            &mut s,
            "Memberships added",
            self.memberships
                .added
                .iter()
                .map(|m| format!("+ {} ∈ {}", m.username, m.group)),
        );
        section(
            &mut s,
            "Memberships removed",
            self.memberships
                .removed
                .iter()
                .map(|m| format!("- {} ∉ {}", m.username, m.group)),
        );
        section(
            &mut s,
            "Avatars set",
            self.avatars_set.iter().map(|a| format!("* {a}")),
        );
        section(
            &mut s,
            "Conflicts — not synced",
            self.conflicts.iter().map(|c| {
                let kind = serde_json::to_value(c.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                format!(
                    "! {kind} {:?} [{}]: {}",
                    c.name,
                    c.source_ids.join(", "),
                    c.detail
                )
            }),
        );
        section(
            &mut s,
            "Skipped users",
            self.skipped
                .iter()
                .map(|k| format!("? {} [{}]: {}", k.upn, k.source_id, k.reason)),
        );
        section(
            &mut s,
            "Target-only accounts — not managed, left alone",
            self.target_only.iter().map(|t| format!(". {t}")),
        );
        section(
            &mut s,
            "Warnings",
            self.warnings.iter().map(|w| format!("* {w}")),
        );
        section(
            &mut s,
            "Failed operations",
            self.operations.iter().filter_map(|r| match &r.outcome {
                Some(OpOutcome::Failed { kind, message }) => Some(format!(
                    "x #{} {}: {:?}: {message}",
                    r.op.seq,
                    describe(&r.op.kind),
                    kind
                )),
                _ => None,
            }),
        );
        s
    }
}

/// The parts of a report its text header shows (shared by [`Report`] and [`ReportSummary`]).
struct Header<'a> {
    run: &'a RunInfo,
    held: Option<&'a str>,
    stopped: Option<&'a str>,
    source_complete: bool,
    source_failures: &'a [String],
    counts: &'a PlanCounts,
    outcomes: &'a OutcomeCounts,
}

fn write_header(s: &mut String, h: &Header<'_>) {
    let mode = match h.run.mode {
        RunMode::Simulate => "simulation (nothing written)",
        RunMode::Sync => "sync",
    };
    let _ = writeln!(s, "usersync {mode} — {}", h.run.product);
    if let Some(c) = &h.run.connector {
        let _ = writeln!(s, "Connector: {c}");
    }
    if let Some(rs) = &h.run.source_read {
        let _ = writeln!(
            s,
            "Source read: {}, {} requests ({} throttled)",
            rs.mode, rs.requests, rs.throttled
        );
    }
    if let Some(tr) = &h.run.target_read {
        let _ = match tr.mode {
            crate::target_state::TargetReadMode::Incremental => writeln!(
                s,
                "Target read: incremental ({} accounts, {} groups read; the rest from the stored state)",
                tr.accounts_read, tr.groups_read
            ),
            m => writeln!(s, "Target read: {m}"),
        };
    }
    if let Some(st) = h.run.status {
        let _ = writeln!(s, "Status: {}", st.describe());
    }
    if !h.source_complete {
        let _ = writeln!(s, "Source read INCOMPLETE: nothing is removed in this run");
        for f in h.source_failures {
            let _ = writeln!(s, "  failed: {f}");
        }
    }
    if let Some(held) = h.held {
        let _ = writeln!(s, "HELD: {held}");
    }
    if let Some(st) = h.stopped {
        let _ = writeln!(s, "STOPPED: {st}");
    }
    let c = h.counts;
    let _ = writeln!(
        s,
        "Users: {} added, {} adopted, {} modified, {} renamed, {} reactivated, {} deactivated, {} deleted, {} unchanged",
        c.users_created,
        c.users_adopted,
        c.users_updated,
        c.users_renamed,
        c.users_reactivated,
        c.users_deactivated,
        c.users_deleted,
        c.users_unchanged
    );
    let _ = writeln!(
        s,
        "Groups: {} added, {} adopted, {} removed",
        c.groups_created, c.groups_adopted, c.groups_deleted
    );
    let _ = writeln!(
        s,
        "Memberships: {} added, {} removed",
        c.memberships_added, c.memberships_removed
    );
    let _ = writeln!(s, "Avatars: {} set", c.avatars_set);
    let _ = writeln!(
        s,
        "Conflicts: {}, skipped: {}, target-only accounts: {}",
        c.conflicts, c.skipped, c.target_only
    );
    if h.run.mode == RunMode::Sync {
        let o = h.outcomes;
        let _ = writeln!(
            s,
            "Operations: {} planned, {} applied, {} failed, {} not attempted",
            o.planned, o.applied, o.failed, o.skipped
        );
    }
}

/// A report without its lists: what the store keeps on the run row, while the lists are rows
/// ([`crate::items::RunItem`]). Small whatever the run's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportSummary {
    /// Always [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Run metadata.
    pub run: RunInfo,
    /// Why the run was held (nothing written), if it was.
    pub held: Option<String>,
    /// Why an apply stopped early (systemic error), if it did.
    pub stopped: Option<String>,
    /// False when the source read was incomplete (nothing was removed).
    pub source_complete: bool,
    /// What failed in the source read, when it was incomplete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_failures: Vec<String>,
    /// Plan figures (after an apply: what was applied).
    pub counts: PlanCounts,
    /// Outcome figures.
    pub outcomes: OutcomeCounts,
    /// Warnings.
    pub warnings: Vec<String>,
    /// Rows stored per kind (the planned operations and the other subjects), so a view can
    /// show totals without counting rows.
    #[serde(default)]
    pub items: BTreeMap<ItemKind, u64>,
    /// The first and last `seq` of each kind's rows: rows are in plan order, which groups
    /// them by kind, so a kind's rows are read as one range.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ranges: BTreeMap<ItemKind, [u32; 2]>,
}

impl ReportSummary {
    /// The summary of a plan before it is simulated or applied (no outcomes yet).
    pub fn of_plan(plan: &Plan, mode: RunMode) -> ReportSummary {
        ReportSummary {
            schema_version: REPORT_SCHEMA_VERSION,
            run: RunInfo {
                mode,
                product: plan.product.clone(),
                connector: None,
                started_at: None,
                finished_at: None,
                source_read: None,
                target_read: None,
                status: None,
                timings: None,
            },
            held: plan.held.as_ref().map(ToString::to_string),
            stopped: None,
            source_complete: plan.source_complete,
            source_failures: Vec::new(),
            counts: plan.counts.clone(),
            outcomes: OutcomeCounts {
                planned: plan.ops.len(),
                ..OutcomeCounts::default()
            },
            warnings: plan.warnings.clone(),
            items: BTreeMap::new(),
            ranges: BTreeMap::new(),
        }
    }

    /// Figures, held/stopped reasons and warnings as text; the rows are listed by the caller.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        write_header(
            &mut s,
            &Header {
                run: &self.run,
                held: self.held.as_deref(),
                stopped: self.stopped.as_deref(),
                source_complete: self.source_complete,
                source_failures: &self.source_failures,
                counts: &self.counts,
                outcomes: &self.outcomes,
            },
        );
        section(
            &mut s,
            "Warnings",
            self.warnings.iter().map(|w| format!("* {w}")),
        );
        s
    }
}

impl Report {
    /// This report without its lists (see [`ReportSummary`]); `items` and `ranges` are left
    /// empty.
    pub fn summary(&self) -> ReportSummary {
        ReportSummary {
            schema_version: self.schema_version,
            run: self.run.clone(),
            held: self.held.clone(),
            stopped: self.stopped.clone(),
            source_complete: self.source_complete,
            source_failures: self.source_failures.clone(),
            counts: self.counts.clone(),
            outcomes: self.outcomes.clone(),
            warnings: self.warnings.clone(),
            items: BTreeMap::new(),
            ranges: BTreeMap::new(),
        }
    }
}

/// A short description of an operation, for the text summary.
pub fn describe(kind: &OpKind) -> String {
    match kind {
        OpKind::CreateUser { account, .. } => format!("create user {}", account.username),
        OpKind::AdoptUser { username, .. } => format!("adopt user {username}"),
        OpKind::AdoptGroup { name, .. } => format!("adopt group {name}"),
        OpKind::RenameUser { from, to, .. } => format!("rename {from} to {to}"),
        OpKind::UpdateUser { username, .. } => format!("update user {username}"),
        OpKind::ReactivateUser { username, .. } => format!("reactivate {username}"),
        OpKind::DeactivateUser { username, .. } => format!("deactivate {username}"),
        OpKind::DeleteUser { username, .. } => format!("delete user {username}"),
        OpKind::CreateGroup { name, .. } => format!("create group {name}"),
        OpKind::DeleteGroup { name, .. } => format!("delete group {name}"),
        OpKind::AddMembers { group, usernames } => {
            format!("add {} to {group}", usernames.join(", "))
        }
        OpKind::RemoveMember { group, username } => format!("remove {username} from {group}"),
        OpKind::SetAvatar { username, .. } => format!("set avatar of {username}"),
    }
}

fn section(s: &mut String, title: &str, items: impl Iterator<Item = String>) {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n{title} ({}):", items.len());
    for it in items.iter().take(TEXT_LIST_LIMIT) {
        let _ = writeln!(s, "  {it}");
    }
    if items.len() > TEXT_LIST_LIMIT {
        let _ = writeln!(
            s,
            "  … and {} more (see the JSON report)",
            items.len() - TEXT_LIST_LIMIT
        );
    }
}
