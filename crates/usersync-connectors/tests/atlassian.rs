//! Tests of the Atlassian Data Center targets: error-body parsing against documented payloads
//! (fixtures) and, over real HTTP on 127.0.0.1, every target against the Atlassian emulator.
//! One test binary; the product modules live in `tests/atlassian/`.

#[path = "atlassian/check.rs"]
mod check;
#[path = "atlassian/common.rs"]
mod common;
#[path = "atlassian/faults.rs"]
mod faults;
#[path = "atlassian/fixtures.rs"]
mod fixtures;
#[path = "atlassian/lifecycle.rs"]
mod lifecycle;
#[path = "atlassian/policy.rs"]
mod policy;
#[path = "atlassian/products.rs"]
mod products;
#[path = "atlassian/targeted.rs"]
mod targeted;
