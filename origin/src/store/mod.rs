//! The store layer: PostgreSQL access. SQL lives here and only here, in small functions that
//! take a pool or transaction; services above never see SQL, and handlers never see the store.

pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod idempotency;
pub mod invites;
pub mod outbox;
pub mod policies;
pub mod principals;
pub mod read_view;
pub mod rewrap;
pub mod secrets;
pub mod sessions;
pub mod shares;
pub mod statements;
pub mod usage;
pub mod users;
pub mod vaults;

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::config::DatabaseConfig;
pub use statements::StatementPool;

/// The schema migrations, compiled into the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL")]
    InvalidUrl(#[source] sqlx::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A unique constraint refused the write; holds the constraint's name.
    #[error("unique constraint {0} refused the write")]
    Conflict(String),
}

/// Turns a unique-constraint violation into [`StoreError::Conflict`] naming the constraint,
/// so services decide by constraint name, never by message text.
pub(crate) fn on_unique(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
        && let Some(constraint) = db.constraint()
    {
        return StoreError::Conflict(constraint.to_owned());
    }
    StoreError::Database(err)
}

/// A stored value that does not parse (a name this build does not know): reported like any
/// column that does not decode.
pub(crate) fn undecodable(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(Box::new(err)))
}

/// A connection pool that connects lazily: the origin starts (and reports `degraded`) while
/// the database is down, and recovers by itself when it comes back.
pub fn connect_lazy(config: &DatabaseConfig) -> Result<PgPool, StoreError> {
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        // No ping before every acquire: it is one more round trip on every statement a
        // request runs. A connection that died (a restarted server) fails its next statement
        // once, as an I/O error (503), and is dropped from the pool; idle ones are
        // recycled before a server or proxy would time them out.
        .test_before_acquire(false)
        .idle_timeout(std::time::Duration::from_secs(300))
        .connect_lazy_with(connect_options(config)?))
}

/// A pool of connections for autocommit statements (see [`statements`]) of
/// `config.read_connections`. Connects lazily too.
pub fn statement_pool(config: &DatabaseConfig) -> Result<StatementPool, StoreError> {
    Ok(StatementPool::new(
        connect_options(config)?,
        config.read_connections,
        config.acquire_timeout,
    ))
}

fn connect_options(config: &DatabaseConfig) -> Result<PgConnectOptions, StoreError> {
    let options: PgConnectOptions = config
        .url
        .expose_secret()
        .parse()
        .map_err(StoreError::InvalidUrl)?;
    // Statement logging would print SQL at INFO for every query; failures are logged by us.
    Ok(options.disable_statement_logging())
}

/// Applies every pending migration. Safe to run from several origins at once: sqlx takes a
/// PostgreSQL advisory lock for the duration.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// A round trip to the database.
pub async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}
