//! `oxvault-origin`: `serve` runs the HTTP service, `migrate` applies database migrations,
//! `openapi` prints the OpenAPI document, `rotate-kek` moves every data key under a new HSM
//! key-encryption key. All configuration comes from the environment (see README.md); this
//! file only parses the command line and reports failures.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use oxvault_origin::config::{Config, DatabaseConfig, KekRotationConfig};
use oxvault_origin::crypto::{Keyring, Pkcs11Hsm};
use oxvault_origin::service::kek_rotation::{self, RotationOptions};
use oxvault_origin::startup::{Application, shutdown_signal};
use oxvault_origin::{http, store, telemetry};

mod allocator;

#[derive(Debug, Parser)]
#[command(name = "oxvault-origin", version, about = "The oxvault origin service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI 3.1 document and exit.
    Openapi,
    /// Create a new KEK in the HSM and re-wrap every data key under it, online and in
    /// batches; prints progress as JSON log lines and a JSON summary last.
    RotateKek(RotateKekArgs),
}

#[derive(Debug, clap::Args)]
struct RotateKekArgs {
    /// Secret versions per batch (one transaction each).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
    /// Finish an interrupted rotation: move what is left under the current KEK, create none.
    #[arg(long)]
    resume: bool,
    /// Afterwards, destroy the old KEKs once no secret version is wrapped under them.
    #[arg(long)]
    retire_old: bool,
    /// With --retire-old: seconds to wait after fencing the old KEKs for writes that wrapped
    /// under them just before to commit.
    #[arg(long, default_value_t = 10)]
    settle_secs: u64,
}

fn main() -> ExitCode {
    // Before the runtime starts its threads: the allocator's options are not thread safe.
    allocator::return_freed_pages_at_once();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("oxvault-origin: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let outcome = match cli.command {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::Openapi => print_openapi(),
        Command::RotateKek(args) => rotate_kek(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!(error = %message, "oxvault-origin failed");
            eprintln!("oxvault-origin: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), String> {
    let config = Config::from_env().map_err(|err| err.to_string())?;
    let app = Application::build(config)
        .await
        .map_err(|err| err.to_string())?;
    let addr = app.local_addr().map_err(|err| err.to_string())?;
    if let Some(metrics_addr) = app.metrics_addr() {
        tracing::info!(addr = %metrics_addr, "oxvault-origin metrics listening");
    }
    tracing::info!(%addr, version = oxvault_core::VERSION, "oxvault-origin listening");
    app.run_until(shutdown_signal())
        .await
        .map_err(|err| err.to_string())
}

async fn migrate() -> Result<(), String> {
    let config = DatabaseConfig::from_env().map_err(|err| err.to_string())?;
    let pool = store::connect_lazy(&config).map_err(|err| err.to_string())?;
    store::migrate(&pool).await.map_err(|err| err.to_string())?;
    tracing::info!("migrations applied");
    Ok(())
}

async fn rotate_kek(args: RotateKekArgs) -> Result<(), String> {
    let config = KekRotationConfig::from_env().map_err(|err| err.to_string())?;
    let pool = store::connect_lazy(&config.database).map_err(|err| err.to_string())?;
    let hsm = Arc::new(Pkcs11Hsm::new(config.hsm.clone()));
    let connecting = Arc::clone(&hsm);
    tokio::task::spawn_blocking(move || connecting.connect_now())
        .await
        .map_err(|err| err.to_string())?
        .map_err(|err| err.to_string())?;
    let keyring = Keyring::new(hsm.clone(), hsm.clone(), config.hsm.sessions)
        .with_call_timeout(config.hsm.call_timeout);
    let options = RotationOptions {
        batch: args.batch,
        resume: args.resume,
        retire_old: args.retire_old,
        settle: Duration::from_secs(args.settle_secs),
    };
    let summary = kek_rotation::rotate(&pool, hsm, &keyring, &options)
        .await
        .map_err(|err| err.to_string())?;
    let text = serde_json::to_string(&serde_json::json!({ "kek_rotation": summary }))
        .map_err(|err| err.to_string())?;
    println!("{text}");
    if summary.complete() {
        Ok(())
    } else {
        Err(format!(
            "{} secret versions are still under older KEKs ({} did not open); rerun with --resume",
            summary.remaining, summary.failed
        ))
    }
}

fn print_openapi() -> Result<(), String> {
    let text =
        serde_json::to_string_pretty(&http::openapi_document()).map_err(|err| err.to_string())?;
    println!("{text}");
    Ok(())
}
