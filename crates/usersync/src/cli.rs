//! Command-line interface: argument definitions and dispatch to the runner.

use crate::exit::Code;
use crate::{config, demo, exit, output, runner};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Keeps Atlassian Data Center user directories in step with Microsoft Entra ID.
#[derive(Debug, Parser)]
#[command(name = "usersync", version, about, long_about = None)]
pub struct Cli {
    /// The TOML configuration file.
    #[arg(
        short,
        long,
        global = true,
        env = "USERSYNC_CONFIG",
        default_value = "usersync.toml"
    )]
    pub config: PathBuf,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// More log output (to stderr).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Logs as JSON lines (to stderr).
    #[arg(long, global = true)]
    pub log_json: bool,
    /// Start a new state store in an existing but empty (0-byte) database file. Without it an
    /// empty file is refused: a new store would treat every account as unmanaged.
    #[arg(long, global = true)]
    pub init_store: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable summary.
    Text,
    /// The versioned JSON report (docs/report-schema.md).
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a sync would change, without writing to any target.
    Simulate(RunArgs),
    /// Apply the changes (a full sync).
    Sync(SyncArgs),
    /// Check the source and target connections: endpoints, credentials, permissions.
    TestConnection(TargetSel),
    /// Run history.
    Runs(RunsArgs),
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Try usersync with no tenant and no Atlassian server: starts the bundled emulators,
    /// simulates, syncs, changes a few users and syncs again.
    #[cfg_attr(not(feature = "demo"), command(hide = true))]
    Demo(DemoArgs),
}

/// Which targets.
#[derive(Debug, clap::Args)]
pub struct TargetSel {
    /// Only this target (by name); default all.
    #[arg(long)]
    pub target: Option<String>,
}

/// Arguments of `simulate`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Which targets.
    #[command(flatten)]
    pub sel: TargetSel,
    /// Ignore saved delta state and read the whole source directory.
    #[arg(long)]
    pub full: bool,
}

/// Arguments of `sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Common run arguments.
    #[command(flatten)]
    pub run: RunArgs,
    /// Approve held run RUN after reviewing it (`usersync runs --show RUN`): apply the
    /// removals it listed, and only those; any further removal holds the run again.
    #[arg(long, value_name = "RUN")]
    pub approve: Option<i64>,
    /// Who approves, recorded with the approval (default: the OS user).
    #[arg(long, value_name = "NAME", requires = "approve")]
    pub approved_by: Option<String>,
    /// Refused: it approved whatever the new run computed, not what was reviewed. Use
    /// `--approve RUN`.
    #[arg(long, hide = true)]
    pub allow_mass_removal: bool,
}

/// Arguments of `runs`.
#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// Show one run: its summary and a page of its operations and subjects (text), or the
    /// summary then every matching row as NDJSON (`--format json`).
    #[arg(long)]
    pub show: Option<i64>,
    /// How many runs to list (default 20), or with `--show` rows per page (default 50).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Only runs of this target.
    #[arg(long)]
    pub target: Option<String>,
    /// With `--show`: only rows of this kind (create, adopt, update, rename, reactivate,
    /// deactivate, delete, create_group, adopt_group, delete_group, add_member,
    /// remove_member, avatar, unchanged, conflict, skipped, target_only).
    #[arg(long, requires = "show")]
    pub kind: Option<String>,
    /// With `--show`: only rows whose user or group name contains this (any case).
    #[arg(long, requires = "show")]
    pub search: Option<String>,
    /// With `--show`: which page (from 1).
    #[arg(long, requires = "show", conflicts_with = "offset")]
    pub page: Option<u64>,
    /// With `--show`: skip this many matching rows.
    #[arg(long, requires = "show")]
    pub offset: Option<u64>,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate the configuration file and that every secret can be read.
    Check,
}

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Users in the generated tenant.
    #[arg(long, default_value_t = 300)]
    pub users: usize,
    /// Keep the emulators running at the end (Ctrl-C to stop).
    #[arg(long)]
    pub keep_running: bool,
}

/// Runs a parsed command line.
pub async fn dispatch(cli: Cli) -> anyhow::Result<Code> {
    let format = cli.format;
    match cli.command {
        Command::Demo(a) => demo::run(a, format).await,
        Command::Config(ConfigCmd::Check) => {
            let cfg = load(&cli.config)?;
            runner::resolve_all_secrets(&cfg)?;
            output::config_ok(&cfg, &cli.config, format);
            Ok(Code::Success)
        }
        Command::TestConnection(sel) => {
            let cfg = load(&cli.config)?;
            runner::test_connection(&cfg, sel.target.as_deref(), format).await
        }
        Command::Simulate(a) => {
            let cfg = load(&cli.config)?;
            let opts = runner::RunOptions {
                apply: false,
                full: a.full,
                target: a.sel.target,
                init_store: cli.init_store,
                ..Default::default()
            };
            runner::run(&cfg, &opts, format).await
        }
        Command::Sync(a) => {
            if a.allow_mass_removal {
                return Err(exit::usage_err(
                    "--allow-mass-removal is no longer accepted: it approved whatever the new run computed, not what was reviewed. \
                     Review the held run (`usersync runs --show RUN`), then approve it by its id: `usersync sync --approve RUN`",
                ));
            }
            let cfg = load(&cli.config)?;
            let opts = runner::RunOptions {
                apply: true,
                full: a.run.full,
                approve: a.approve,
                approved_by: a.approved_by,
                target: a.run.sel.target,
                init_store: cli.init_store,
            };
            runner::run(&cfg, &opts, format).await
        }
        Command::Runs(a) => {
            let cfg = load(&cli.config)?;
            runner::runs(&cfg, &a, format, cli.init_store).await
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<config::FileConfig> {
    config::load(path).map_err(|e| exit::config_err(exit::render(&e)))
}
