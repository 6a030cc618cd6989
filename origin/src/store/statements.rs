//! A small pool of connections for single autocommit reads on the hot path — the principal
//! check of every authenticated request, and (a pool of its own, [`super::view_pool`]) the
//! secret read's batched lookup — that gives a connection back without a round trip.
//!
//! sqlx's pool pings every connection it takes back (a `Sync` and its `ReadyForQuery`): one
//! more round trip, and one more wake-up of a PostgreSQL backend, per statement. The ping is
//! there to flush the rollback of a transaction dropped mid-flight and to weed out a
//! connection whose query was cancelled half-way. Neither can reach this pool:
//! - only autocommit reads run here, never a transaction;
//! - a connection comes back only when its work ended with a result or with an error the
//!   server answered; one whose work was cancelled (the future dropped) or broke on the wire
//!   is closed instead.
//!
//! Idle connections are reused newest first, so a light load keeps few backends busy, and
//! ones idle for [`IDLE_TIMEOUT`] or open for [`MAX_LIFETIME`] are closed. As with the main
//! pool (no test before acquire), a connection that died while idle (a restarted server)
//! fails its next statement once, as an I/O error (503), and is closed.
//!
//! Measured (issue 10, 2 cores, 32 connections): with the principal check and the read on this
//! pool, SQL round trips per read fell from 6 to 4 and hot reads rose by about a fifth.
//! BENCHMARKS.md has the run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::StoreError;

/// Idle connections older than this are closed rather than reused (as sqlx's pool does).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Connections open longer than this are closed when they come back.
pub const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// See the module docs. Cheap to clone: every clone shares the same connections.
#[derive(Clone)]
pub struct StatementPool {
    inner: Arc<Inner>,
}

struct Inner {
    options: PgConnectOptions,
    /// One permit per lease. A lease takes an idle connection before it opens one, so at most
    /// `size` connections are ever open.
    permits: Arc<Semaphore>,
    /// Idle connections, most recently returned last.
    idle: Mutex<Vec<Idle>>,
    acquire_timeout: Duration,
}

struct Idle {
    conn: PgConnection,
    opened: Instant,
    returned: Instant,
}

impl std::fmt::Debug for StatementPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementPool")
            .field("available", &self.inner.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl StatementPool {
    /// A pool of at most `size` connections (none opened yet). Waiting longer than
    /// `acquire_timeout` for one fails as `PoolTimedOut` (503), as sqlx's pool does.
    pub fn new(options: PgConnectOptions, size: u32, acquire_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                options,
                permits: Arc::new(Semaphore::new(size.max(1) as usize)),
                idle: Mutex::new(Vec::new()),
                acquire_timeout,
            }),
        }
    }

    /// A connection for autocommit reads — no transaction. End the lease with
    /// [`Lease::finish`] and the statement's result: dropped otherwise, it closes the connection.
    pub async fn acquire(&self) -> Result<Lease, StoreError> {
        let permit = tokio::time::timeout(
            self.inner.acquire_timeout,
            Arc::clone(&self.inner.permits).acquire_owned(),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
        .map_err(|_| sqlx::Error::PoolClosed)?;
        let (conn, opened) = match self.inner.take_idle() {
            Some(idle) => (idle.conn, idle.opened),
            None => {
                // Boxed: connecting is a large future, rare once the pool is warm, and every
                // statement's future would otherwise carry its size (and copy it as it moves).
                let connecting = Box::pin(self.inner.options.connect());
                let conn = tokio::time::timeout(self.inner.acquire_timeout, connecting)
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)??;
                (conn, Instant::now())
            }
        };
        Ok(Lease {
            pool: Arc::clone(&self.inner),
            conn,
            opened,
            permit,
        })
    }

    /// Closes the idle connections (at shutdown; leased ones close as they come back).
    pub async fn close(&self) {
        self.inner.permits.close();
        let idle = std::mem::take(&mut *self.inner.lock_idle());
        for idle in idle {
            let _ = idle.conn.close().await;
        }
    }
}

impl Inner {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // The list is valid whatever a panicking holder did: push and pop only.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The most recently returned idle connection still young enough, closing stale ones.
    fn take_idle(&self) -> Option<Idle> {
        let now = Instant::now();
        let mut stale = Vec::new();
        let fresh = {
            let mut idle = self.lock_idle();
            stale.extend(idle.extract_if(.., |conn| conn.is_stale(now)));
            idle.pop()
        };
        close_in_background(stale);
        fresh
    }

    fn give_back(&self, conn: PgConnection, opened: Instant) {
        let now = Instant::now();
        if self.permits.is_closed() || now.duration_since(opened) >= MAX_LIFETIME {
            close_in_background(vec![Idle {
                conn,
                opened,
                returned: now,
            }]);
            return;
        }
        self.lock_idle().push(Idle {
            conn,
            opened,
            returned: now,
        });
    }
}

impl Idle {
    fn is_stale(&self, now: Instant) -> bool {
        now.duration_since(self.returned) >= IDLE_TIMEOUT
            || now.duration_since(self.opened) >= MAX_LIFETIME
    }
}

/// Says goodbye to the server (a `Terminate`) off the request's path.
fn close_in_background(conns: Vec<Idle>) {
    if conns.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for idle in conns {
            let _ = idle.conn.close().await;
        }
    });
}

/// A connection lent for one piece of work. Dropped without [`Lease::finish`] (the work was
/// cancelled), it closes the connection instead of returning it: no `Drop` of its own, the
/// connection's closes the socket.
pub struct Lease {
    pool: Arc<Inner>,
    conn: PgConnection,
    opened: Instant,
    /// Held for the lease: released when it ends, after the connection is back.
    permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").finish_non_exhaustive()
    }
}

impl Lease {
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Ends the lease with the work's `result`: the connection goes back to the pool when the
    /// server answered (a result or a statement error), else it is closed.
    pub fn finish<T>(self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if reusable(&result) {
            // The permit is released after the connection is back, so a waiter finds it.
            let Self {
                pool,
                conn,
                opened,
                permit,
            } = self;
            pool.give_back(conn, opened);
            drop(permit);
        }
        result
    }
}

/// Whether a connection whose work ended so is fit for the next statement: the server
/// answered the work, and not with "this session is over".
fn reusable<T>(result: &Result<T, StoreError>) -> bool {
    match result {
        Ok(_) | Err(StoreError::Conflict(_)) => true,
        Err(StoreError::Database(sqlx::Error::RowNotFound)) => true,
        Err(err @ StoreError::Database(sqlx::Error::Database(_))) => !session_over(err),
        Err(_) => false,
    }
}

/// A server error that ends the session: SQLSTATE class 08 (connection exception) or 57
/// (operator intervention: shutdown, termination).
fn session_over(err: &StoreError) -> bool {
    match err {
        StoreError::Database(sqlx::Error::Database(db)) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    //! Against a real PostgreSQL (`OXVAULT_TEST_DATABASE_URL`, else the local server): the
    //! statements need no schema, so they run in the admin database itself.

    use std::time::Duration;

    use sqlx::postgres::{PgConnectOptions, PgConnection};

    use super::{Lease, StatementPool};
    use crate::store::StoreError;

    fn options() -> PgConnectOptions {
        std::env::var("OXVAULT_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
            .parse()
            .expect("OXVAULT_TEST_DATABASE_URL is a PostgreSQL URL")
    }

    fn pool(size: u32) -> StatementPool {
        StatementPool::new(options(), size, Duration::from_millis(500))
    }

    async fn backend_pid(conn: &mut PgConnection) -> Result<i32, StoreError> {
        Ok(sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(conn)
            .await?)
    }

    /// Runs `SELECT pg_backend_pid()` on a leased connection and ends the lease.
    async fn pid_of(pool: &StatementPool) -> i32 {
        let mut lease = pool.acquire().await.expect("a connection");
        let pid = backend_pid(lease.conn()).await;
        lease.finish(pid).expect("the statement runs")
    }

    #[tokio::test]
    async fn a_connection_that_answered_is_reused() {
        let pool = pool(2);
        let first = pid_of(&pool).await;
        assert_eq!(pid_of(&pool).await, first);
        assert_eq!(pid_of(&pool).await, first);
    }

    #[tokio::test]
    async fn a_statement_error_keeps_the_connection() {
        let pool = pool(1);
        let first = pid_of(&pool).await;
        let mut lease = pool.acquire().await.unwrap();
        let failed = sqlx::query_scalar::<_, i32>("SELECT 1 / 0")
            .fetch_one(lease.conn())
            .await
            .map_err(StoreError::from);
        assert!(lease.finish(failed).is_err());
        assert_eq!(pid_of(&pool).await, first);
    }

    #[tokio::test]
    async fn cancelled_work_closes_its_connection() {
        let pool = pool(1);
        let first = pid_of(&pool).await;
        let mut lease = pool.acquire().await.unwrap();
        let sleeping = sqlx::query("SELECT pg_sleep(3)").execute(lease.conn());
        assert!(
            tokio::time::timeout(Duration::from_millis(100), sleeping)
                .await
                .is_err()
        );
        drop(lease);
        // A new connection, answering at once: nothing waits for the abandoned statement.
        let started = std::time::Instant::now();
        assert_ne!(pid_of(&pool).await, first);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_connection_the_server_ended_fails_once_then_is_replaced() {
        let pool = pool(1);
        let first = pid_of(&pool).await;
        let mut admin = sqlx::ConnectOptions::connect(&options()).await.unwrap();
        let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(first)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert!(ended);
        // The server needs a moment to end the backend and close the socket.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut lease = pool.acquire().await.unwrap();
        let broken = backend_pid(lease.conn()).await;
        assert!(
            lease.finish(broken).is_err(),
            "the ended session fails its statement"
        );
        let second = pid_of(&pool).await;
        assert_ne!(second, first);
        assert_eq!(pid_of(&pool).await, second);
    }

    #[tokio::test]
    async fn leases_are_bounded_by_the_size() {
        let pool = pool(1);
        let held: Lease = pool.acquire().await.unwrap();
        let waited = pool.acquire().await;
        assert!(matches!(
            waited,
            Err(StoreError::Database(sqlx::Error::PoolTimedOut))
        ));
        drop(held);
        pool.acquire()
            .await
            .expect("free again once the lease ends");
    }
}
