//! Exit codes, so scripts and CI pipelines can tell outcomes apart without parsing output.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (a simulation, a sync with every operation applied, all checks passed) |
//! | 1 | unexpected internal error |
//! | 2 | command-line usage error |
//! | 3 | partial failure: the sync ran, some operations failed (see the report) |
//! | 4 | held by the mass-removal guard: nothing was written; re-run with `--allow-mass-removal` after review |
//! | 5 | configuration error: the message names the field and the fix |
//! | 6 | connection error: a source or target is unreachable or rejected the credentials |

use std::process::ExitCode;

/// Process outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Code {
    /// 0
    Success,
    /// 1
    Internal,
    /// 3
    PartialFailure,
    /// 4
    Held,
    /// 5
    Config,
    /// 6
    Connection,
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
