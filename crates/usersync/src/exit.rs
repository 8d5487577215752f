//! Exit codes, so scripts and CI pipelines can tell outcomes apart without parsing output.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (a simulation, a sync with every operation applied, all checks passed) |
//! | 1 | unexpected internal error |
//! | 2 | command-line usage error |
//! | 3 | partial failure: the sync ran, some operations failed (see the report) |
//! | 4 | held (mass-removal guard, or removals beyond an approval): nothing was written; review the run (`usersync runs --show ID`) and approve it with `usersync sync --approve ID` |
//! | 5 | configuration error: the message names the field and the fix (also: an empty or foreign database file) |
//! | 6 | connection error: a source or target is unreachable or rejected the credentials (the run is recorded as failed, with the reason) |
//! | 7 | incomplete source read: part of the directory could not be read, so no account was deactivated, deleted or removed from a group (removals withheld); every other change was applied. The report names what failed |
//! | 8 | busy: another run of the same connector–target pair holds its lease (the message names that run); nothing was done |
//!
//! When several targets run, the exit code is the most serious of theirs, in the order
//! 6, 5, 8, 4, 3, 7, 0. Every run that started is in `usersync runs` with the same status
//! (`succeeded`, `partial`, `incomplete`, `held`, `failed`, `interrupted`).

use std::process::ExitCode;

/// Process outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Code {
    /// 0
    Success,
    /// 1
    Internal,
    /// 7
    Incomplete,
    /// 3
    PartialFailure,
    /// 4
    Held,
    /// 8
    Busy,
    /// 5
    Config,
    /// 6
    Connection,
    /// 2
    Usage,
}

impl Code {
    /// The numeric code.
    pub fn as_u8(self) -> u8 {
        match self {
            Code::Success => 0,
            Code::Internal => 1,
            Code::PartialFailure => 3,
            Code::Held => 4,
            Code::Config => 5,
            Code::Connection => 6,
            Code::Incomplete => 7,
            Code::Busy => 8,
            Code::Usage => 2,
        }
    }

    /// The code a finished run's status implies; `stopped` when an apply stopped on a
    /// systemic (connection) error.
    pub fn of(status: usersync_core::run::RunStatus, stopped: bool) -> Code {
        use usersync_core::run::RunStatus as S;
        match status {
            S::Succeeded => Code::Success,
            S::Held => Code::Held,
            S::Partial if stopped => Code::Connection,
            S::Partial => Code::PartialFailure,
            S::Incomplete => Code::Incomplete,
            S::Failed => Code::Connection,
            S::Running | S::Interrupted | S::Cancelled => Code::Internal,
        }
    }
}

impl From<Code> for ExitCode {
    fn from(c: Code) -> Self {
        ExitCode::from(c.as_u8())
    }
}

/// An error that knows its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Classified {
    /// Exit code.
    pub code: Code,
    /// Message.
    pub message: String,
}

/// A configuration error.
pub fn config_err(message: impl Into<String>) -> anyhow::Error {
    Classified {
        code: Code::Config,
        message: message.into(),
    }
    .into()
}

/// A connection error.
pub fn connection_err(message: impl Into<String>) -> anyhow::Error {
    Classified {
        code: Code::Connection,
        message: message.into(),
    }
    .into()
}

/// Another run holds the pair's lease.
pub fn busy_err(message: impl Into<String>) -> anyhow::Error {
    Classified {
        code: Code::Busy,
        message: message.into(),
    }
    .into()
}

/// A command-line usage error.
pub fn usage_err(message: impl Into<String>) -> anyhow::Error {
    Classified {
        code: Code::Usage,
        message: message.into(),
    }
    .into()
}

/// Picks the exit code for an error.
pub fn classify(e: &anyhow::Error) -> Code {
    e.chain()
        .find_map(|c| c.downcast_ref::<Classified>().map(|c| c.code))
        .unwrap_or(Code::Internal)
}

/// The error and its causes on one line each, without a backtrace.
pub fn render(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for (i, c) in e.chain().enumerate() {
        if i > 0 {
            out.push_str("\n  caused by: ");
        }
        out.push_str(&c.to_string());
    }
    out
}
