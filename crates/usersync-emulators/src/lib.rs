//! Stand-alone, in-memory HTTP emulators of the vendor APIs usersync talks to, for tests,
//! benchmarks and the demo: Microsoft Entra ID + Graph (`graph`) and the Atlassian Data Center
//! REST surfaces of Jira, Confluence, Bitbucket and Crowd (`atlassian`).
//!
//! This crate owns its own wire types, written from the vendors' documentation, and never
//! depends on `usersync-connectors`: a misunderstanding in the client must not be copied into
//! the fake. Each behaviour cites the documentation page it follows.

pub mod atlassian;
pub mod graph;
