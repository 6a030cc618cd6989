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
pub mod secret_requests;
pub mod secrets;
pub mod sessions;
pub mod shares;
pub mod statements;
pub mod usage;
pub mod users;
pub mod vaults;
pub mod view_reader;

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

impl StoreError {
    /// Whether the database could not serve the statement for now (down, restarting, out of
    /// connections) rather than refusing it: the caller gets a 503 to retry, never a 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(err) => is_unavailable(err),
            _ => false,
        }
    }
}

fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| unavailable_sqlstate(&code)),
        _ => false,
    }
}

/// SQLSTATEs a restart, failover or overload produces: class 08 (connection exception), class
/// 53 (insufficient resources, e.g. too many connections), and from class 57 the shutdown and
/// start-up codes (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now).
fn unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || matches!(code, "57P01" | "57P02" | "57P03")
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

/// The connections of the batched secret-read lookups ([`view_reader`]): `config
/// .view_connections` of them, each planning its statements once (generic plans).
pub fn view_pool(config: &DatabaseConfig) -> Result<StatementPool, StoreError> {
    let options = connect_options(config)?.options([("plan_cache_mode", "force_generic_plan")]);
    Ok(StatementPool::new(
        options,
        config.view_connections,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_failovers_and_overload_are_unavailable() {
        for code in [
            "08006", "08001", "08P01", "53300", "57P01", "57P02", "57P03",
        ] {
            assert!(unavailable_sqlstate(code), "{code}");
        }
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(StoreError::Database(sqlx::Error::Io(reset)).is_unavailable());
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_unavailable());
    }

    #[test]
    fn refusals_and_bugs_are_not_unavailable() {
        // unique violation, check violation, syntax error, query canceled by statement timeout
        for code in ["23505", "23514", "42601", "57014"] {
            assert!(!unavailable_sqlstate(code), "{code}");
        }
        assert!(!StoreError::Conflict("vaults_org_name".to_owned()).is_unavailable());
        assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_unavailable());
    }
}
