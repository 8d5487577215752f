//! Integration tests of the Entra ID source over real HTTP against the in-process Graph
//! emulator (`usersync_emulators::graph`). One test binary for link time; the cases live in
//! `tests/graph/`.

#[path = "graph/common.rs"]
mod common;
#[path = "graph/connection.rs"]
mod connection;
#[path = "graph/faults.rs"]
mod faults;
#[path = "graph/pages.rs"]
mod pages;
#[path = "graph/plan.rs"]
mod plan;
#[path = "graph/read.rs"]
mod read;
