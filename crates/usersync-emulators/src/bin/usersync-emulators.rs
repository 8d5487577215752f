//! Runs the emulators as a stand-alone process (for the Python client checks, the demo and
//! manual testing).

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "usersync-emulators",
    about = "Graph and Atlassian Data Center emulators"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the Entra ID login endpoint and Microsoft Graph.
    Graph(usersync_emulators::graph::cli::Args),
    /// Serve an Atlassian Data Center product's REST API.
    Atlassian(usersync_emulators::atlassian::cli::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Graph(a) => usersync_emulators::graph::cli::run(a).await,
        Cmd::Atlassian(a) => usersync_emulators::atlassian::cli::run(a).await,
    }
}
