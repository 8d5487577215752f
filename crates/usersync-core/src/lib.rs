//! usersync's pure sync engine. Owns the data model, the mapping from source users to target
//! accounts, scope, the planner, simulate/apply and the run report, plus the traits that
//! connectors and the store implement. It performs no I/O and starts no runtime: no tokio,
//! reqwest or sqlx here, so the planner is deterministic and fast to test.

pub mod check;
pub mod config;
pub mod desired;
pub mod engine;
pub mod items;
pub mod journal;
pub mod link;
pub mod mapping;
pub mod model;
pub mod plan;
pub mod ports;
pub mod report;
pub mod run;
pub mod schedule;
pub mod scope;
pub mod target_state;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
