//! The planner: a pure, deterministic function from (source snapshot, target snapshot, link
//! table, settings, target capabilities, now) to an ordered plan. No I/O.

pub mod approval;
mod build;
mod groups;
mod guard;
mod leavers;
mod links;
mod memberships;
mod types;
mod users;

pub use build::plan_desired;
pub use types::*;

use crate::config::SyncSettings;
use crate::link::LinkTable;
use crate::model::{SourceSnapshot, TargetSnapshot};
use crate::ports::TargetCapabilities;
use serde::{Deserialize, Serialize};

/// Everything the planner looks at.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// What the source says.
    pub source: &'a SourceSnapshot,
    /// What the target holds now.
    pub target: &'a TargetSnapshot,
    /// What usersync manages.
    pub links: &'a LinkTable,
    /// Mapping, scope and policy.
    pub settings: &'a SyncSettings,
    /// What the target can do.
    pub capabilities: &'a TargetCapabilities,
    /// Current time (unix ms), for grace periods. A parameter so tests control it.
    pub now_ms: i64,
}

/// The plan: operations in apply order, plus everything the report needs to explain it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Operations, in dependency order.
    pub ops: Vec<Operation>,
    /// Set when the run is held (mass-removal guard or configuration error): nothing may be
    /// written.
    #[serde(default, deserialize_with = "types::held_compat")]
    pub held: Option<HoldReason>,
    /// Copied from the source snapshot; when false the plan has no removals.
    pub source_complete: bool,
    /// Product name, from the target capabilities (for reports).
    #[serde(default)]
    pub product: String,
    /// Usernames of synced users that need no change (sorted).
    #[serde(default)]
    pub unchanged: Vec<String>,
    /// Conflicts: users and groups not synced until someone resolves them.
    #[serde(default)]
    pub conflicts: Vec<Conflict>,
    /// Users skipped, with the reason.
    #[serde(default)]
    pub skipped: Vec<SkippedUser>,
    /// Unmanaged target accounts that match no source user (sorted; information only).
    #[serde(default)]
    pub target_only: Vec<String>,
    /// Things the admin should know (incomplete read, rename unsupported, fallbacks, …).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Figures.
    #[serde(default)]
    pub counts: PlanCounts,
}

impl Plan {
    /// True when the plan has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Computes the plan. Pure and deterministic. A configuration error (e.g. a scope regex that
/// does not compile) yields an empty plan that is held, with the error as the reason.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    match crate::desired::desired_state(input.source, input.settings, input.capabilities) {
        Ok(desired) => plan_desired(input, &desired),
        Err(e) => Plan {
            held: Some(HoldReason::Configuration {
                error: e.to_string(),
            }),
            source_complete: input.source.complete,
            product: input.capabilities.product.clone(),
            warnings: vec![e.to_string()],
            ..Plan::default()
        },
    }
}
