//! Microsoft Entra ID source connector over Microsoft Graph v1.0.
//!
//! - [`GraphSourceConfig`] / [`GraphCloud`] / [`GraphCredential`]: tenant, app, secret or
//!   certificate, national cloud or explicit endpoints.
//! - [`GraphSource`]: implements [`usersync_core::ports::SourceDirectory`] with delta queries
//!   (see [`source`] for the request strategy and the completeness rules).
//! - [`test_connection`]: Save and Test Connection, one verdict per check.
//! - [`explain_aadsts`] / [`explain_graph_error`]: error codes in plain words with the fix.
//!
//! The cursor persisted in `SourceSyncState.cursor` is [`delta::Cursor`] as JSON.

pub mod auth;
pub mod batch;
pub mod client;
pub mod config;
pub mod connection;
pub mod delta;
pub mod errors;
pub mod source;

pub use config::{AssertionAlgorithm, GraphCloud, GraphCredential, GraphSourceConfig};
pub use connection::test_connection;
pub use errors::{explain_aadsts, explain_graph_error, explain_graph_error_for};
pub use source::GraphSource;
