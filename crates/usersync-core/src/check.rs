//! Test Connection results: one verdict per check, each with the fix an admin can act on.
//! Shared by the source and target connectors so the CLI, API and UI render them one way.

use serde::{Deserialize, Serialize};

/// Verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Works.
    Pass,
    /// Works, but something needs attention soon (e.g. a secret expiring in 20 days).
    Warn,
    /// Broken; see `fix`.
    Fail,
    /// Not checked because an earlier check failed.
    Skipped,
}

/// One check of a connection test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable identifier, e.g. `login_endpoint`, `credentials`, `permission.Directory.Read.All`.
    pub id: String,
    /// What was checked, in words.
    pub title: String,
    /// Verdict.
    pub verdict: Verdict,
    /// What was found (error codes and messages included).
    pub detail: String,
    /// What the admin should do, when the verdict is not `pass`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A passing check.
    pub fn pass(id: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            verdict: Verdict::Pass,
            detail: detail.into(),
            fix: None,
        }
    }
    /// A warning with a fix.
    pub fn warn(id: &str, title: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            verdict: Verdict::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    /// A failure with a fix.
    pub fn fail(id: &str, title: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            verdict: Verdict::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    /// A check not run because an earlier one failed.
    pub fn skipped(id: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            verdict: Verdict::Skipped,
            detail: detail.into(),
            fix: None,
        }
    }
}

/// The result of a connection test: all checks, in the order they ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConnectionReport {
    /// What was tested ("Entra ID tenant 1234…", "Jira Data Center at https://…").
    pub subject: String,
    /// The checks.
    pub checks: Vec<Check>,
}

impl ConnectionReport {
    /// True when no check failed.
    pub fn ok(&self) -> bool {
        !self.checks.iter().any(|c| c.verdict == Verdict::Fail)
    }
}
