//! `oxvault-origin`: `serve` runs the HTTP service, `migrate` applies database migrations,
//! `openapi` prints the OpenAPI document. All configuration comes from the environment
//! (see README.md); this file only parses the command line and reports failures.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use oxvault_origin::config::{Config, DatabaseConfig};
use oxvault_origin::startup::{Application, shutdown_signal};
use oxvault_origin::{http, store, telemetry};

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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let outcome = match cli.command {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::Openapi => print_openapi(),
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

fn print_openapi() -> Result<(), String> {
    let text = http::openapi_document()
        .to_pretty_json()
        .map_err(|err| err.to_string())?;
    println!("{text}");
    Ok(())
}
