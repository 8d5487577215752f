//! What a run is and how it ended: one [`RunMode`] and one [`RunStatus`] for the store, the
//! report, the CLI's exit code and (later) the API and UI, so they can never disagree.

use serde::{Deserialize, Serialize};

/// Simulate (no writes) or sync (apply).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RunMode {
    /// Planned only.
    Simulate,
    /// Planned and applied.
    Sync,
}

impl RunMode {
    /// The stable name (stored in the database, shown in lists).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How a run stands or ended. Stored as the snake_case name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RunStatus {
    /// Started and not finished; its owner holds the pair's lease.
    Running,
    /// Held (mass-removal guard or configuration): nothing written; waits for review and an
    /// approval of this run by its id.
    Held,
    /// Every planned operation applied (or, in a simulation, planned) from a complete read.
    Succeeded,
    /// The run went through but some operations failed or were not attempted.
    Partial,
    /// The source read was incomplete: no removals were planned (they are withheld); every
    /// other operation applied.
    Incomplete,
    /// Nothing applied: the source or target could not be read, or the run could not start.
    Failed,
    /// Its process stopped (killed, crashed) before the run finished, and its lease expired.
    Interrupted,
    /// Stopped on request before it finished.
    Cancelled,
}

impl RunStatus {
    /// The stable name (stored in the database, shown in lists).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// True once the run has ended.
    pub fn is_final(self) -> bool {
        self != RunStatus::Running
    }

    /// True when nothing needs an admin's attention.
    pub fn is_success(self) -> bool {
        self == RunStatus::Succeeded
    }

    /// A short explanation for lists and text reports.
    pub fn describe(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Held => "held: nothing written, waiting for approval",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial: some operations failed",
            RunStatus::Incomplete => "incomplete: source read incomplete, removals withheld",
            RunStatus::Failed => "failed: nothing applied",
            RunStatus::Interrupted => "interrupted: its process stopped",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// The status of a finished plan-and-apply (or simulation): `held` when the plan was held,
    /// `stopped`/`failed_ops` after an apply, `source_complete` from the read.
    pub fn of_outcome(
        held: bool,
        stopped: bool,
        failed_ops: usize,
        source_complete: bool,
    ) -> RunStatus {
        if held {
            RunStatus::Held
        } else if stopped || failed_ops > 0 {
            RunStatus::Partial
        } else if !source_complete {
            RunStatus::Incomplete
        } else {
            RunStatus::Succeeded
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray as _;

    #[test]
    fn names_round_trip_and_match_serde() {
        for s in RunStatus::VARIANTS {
            let name = s.as_str();
            assert_eq!(name.parse::<RunStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), name);
        }
        assert_eq!(RunStatus::Incomplete.as_str(), "incomplete");
        assert_eq!(RunMode::Simulate.as_str(), "simulate");
        assert!("partially_failed".parse::<RunStatus>().is_err());
    }

    #[test]
    fn outcome_precedence() {
        assert_eq!(RunStatus::of_outcome(true, true, 3, false), RunStatus::Held);
        assert_eq!(
            RunStatus::of_outcome(false, false, 1, false),
            RunStatus::Partial
        );
        assert_eq!(
            RunStatus::of_outcome(false, true, 0, true),
            RunStatus::Partial
        );
        assert_eq!(
            RunStatus::of_outcome(false, false, 0, false),
            RunStatus::Incomplete
        );
        assert_eq!(
            RunStatus::of_outcome(false, false, 0, true),
            RunStatus::Succeeded
        );
    }
}
