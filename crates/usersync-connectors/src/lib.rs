//! usersync's I/O adapters, kept thin: the Microsoft Graph source (`graph`) and the Atlassian
//! Data Center targets (`atlassian`), plus the shared HTTP policy (`http`: retries, throttling,
//! `Retry-After`, redaction). Each adapter implements a trait from `usersync_core::ports`; all
//! decisions about what to change live in `usersync-core`.

pub mod atlassian;
pub mod graph;
pub mod http;
