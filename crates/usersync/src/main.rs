//! The `usersync` binary: command line, configuration, logging and wiring. Sync logic lives in
//! `usersync-core`; I/O adapters in `usersync-connectors`; state in `usersync-store`.

mod cli;
mod config;
#[cfg(feature = "demo")]
mod demo;
/// Builds without the `demo` feature (a packaged build) bundle no emulators; `usersync demo`
/// is hidden from `--help` and says why it cannot run.
#[cfg(not(feature = "demo"))]
mod demo {
    use crate::cli::{DemoArgs, Format};
    use crate::exit::Code;

    /// Explains that this build has no demo.
    pub async fn run(_: DemoArgs, _: Format) -> anyhow::Result<Code> {
        anyhow::bail!(
            "this build of usersync has no demo (built without the `demo` feature); run it from \
             a source checkout with `cargo run --release -- demo`"
        )
    }
}
mod exit;
mod output;
mod runner;
mod target_read;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // reqwest brings rustls with aws-lc-rs; install it as the process default so no code path
    // has to pick a provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = cli::Cli::parse();
    init_logging(&args);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::Code::Internal.into();
        }
    };
    match rt.block_on(cli::dispatch(args)) {
        Ok(code) => code.into(),
        Err(e) => {
            let code = exit::classify(&e);
            eprintln!("error: {}", exit::render(&e));
            code.into()
        }
    }
}

fn init_logging(args: &cli::Cli) {
    use tracing_subscriber::EnvFilter;
    let default = if args.verbose {
        "info,usersync=debug"
    } else {
        "warn"
    };
    // USERSYNC_LOG, else the conventional RUST_LOG, else the default.
    let filter = EnvFilter::try_from_env("USERSYNC_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}
