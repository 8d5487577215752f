//! Request counts, wall time and peak RSS of an initial and a no-change read of a generated
//! tenant, against the in-process Graph emulator.
//!
//! `cargo run --release -p usersync-connectors --example graph_read_bench -- s|m|l [photos]`
//!
//! Peak RSS (`VmHWM`) covers the whole process, i.e. the emulator's directory as well.

use secrecy::SecretString;
use std::time::Instant;
use usersync_connectors::graph::{GraphCloud, GraphCredential, GraphSource, GraphSourceConfig};
use usersync_core::ports::SourceDirectory;
use usersync_emulators::graph::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, GraphConfig, GraphEmulator,
    RequestStats, TenantSize,
};

#[path = "support/rss.rs"]
mod rss;
use rss::vm_hwm;

fn print_stats(label: &str, st: &RequestStats, minimum: &[(&str, u64)]) {
    println!("  {label}: {} HTTP requests", st.total());
    for (k, v) in &st.counts {
        if k == "requests" || *v == 0 {
            continue;
        }
        let min = minimum
            .iter()
            .find(|(m, _)| m == k)
            .map(|(_, n)| format!("  (theoretical minimum {n})"))
            .unwrap_or_default();
        println!("    {k:<16} {v:>7}{min}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let size: TenantSize = args.next().unwrap_or_else(|| "s".into()).parse()?;
    let photos = args.next().as_deref() == Some("photos");
    let (u, g, m) = size.counts();
    let gc = GraphConfig::sized(size, 42);
    let (page, members_page) = (gc.delta_page_size as u64, gc.delta_members_per_page as u64);
    let t0 = Instant::now();
    let emu = GraphEmulator::start(gc).await?;
    println!(
        "tenant {size:?}: {u} users, {g} groups, ~{m} memberships (generated in {:.1?})",
        t0.elapsed()
    );
    println!("emulator delta page: {page} objects, {members_page} members@delta entries per page");

    let mut cfg = GraphSourceConfig::new(
        DEFAULT_TENANT_ID,
        DEFAULT_CLIENT_ID,
        GraphCredential::Secret(SecretString::from(DEFAULT_CLIENT_SECRET)),
    );
    cfg.cloud = GraphCloud::Custom {
        login_url: emu.login_url(),
        graph_url: emu.graph_url(),
        scope: None,
    };
    cfg.read_photos = photos;
    let src = GraphSource::new(cfg)?;

    let (u, g) = (u as u64, g as u64);
    println!(
        "theoretical minimum at Graph's documented maximum page of 999: users {} + groups {} requests",
        u.div_ceil(999),
        g.div_ceil(999)
    );

    emu.reset_stats();
    let t = Instant::now();
    let first = src.read(None).await?;
    let d1 = t.elapsed();
    println!(
        "initial read ({}): {:.2?}, {} users, {} groups, {} memberships, complete={}",
        first.stats.mode,
        d1,
        first.snapshot.users.len(),
        first.snapshot.groups.len(),
        first
            .snapshot
            .groups
            .iter()
            .map(|g| g.member_users.len() + g.member_groups.len())
            .sum::<usize>(),
        first.snapshot.complete
    );
    // Lower bounds at the emulator's page sizes: every users page holds `page` users; every
    // groups page holds at most `page` groups and `members_page` member entries.
    let edges = first
        .snapshot
        .groups
        .iter()
        .map(|g| (g.member_users.len() + g.member_groups.len()) as u64)
        .sum::<u64>();
    let min_initial = [
        ("token", 1),
        ("users.delta", u.div_ceil(page)),
        (
            "groups.delta",
            g.div_ceil(page).max(edges.div_ceil(members_page)),
        ),
        ("batch", if photos { u.div_ceil(20) } else { 0 }),
    ];
    print_stats("initial", &emu.stats(), &min_initial);
    println!("  peak RSS after initial read: {}", vm_hwm());

    emu.reset_stats();
    let t = Instant::now();
    let second = src.read(Some(first.next_state)).await?;
    let d2 = t.elapsed();
    println!(
        "no-change read ({}): {:.2?}, complete={}",
        second.stats.mode, d2, second.snapshot.complete
    );
    print_stats(
        "no-change",
        &emu.stats(),
        &[("users.delta", 1), ("groups.delta", 1)],
    );
    println!("  peak RSS: {}", vm_hwm());
    Ok(())
}
