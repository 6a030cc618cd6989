//! A fresh PostgreSQL database per stack, dropped afterwards.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::env_or;

/// A database created for one test; dropped (with its connections) when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

fn admin_url() -> String {
    env_or("OXVAULT_TEST_DATABASE_URL", || {
        "postgres://postgres@127.0.0.1:5432/postgres".to_owned()
    })
}

impl TestDatabase {
    /// Creates `oxvault_test_<random>` on the server `OXVAULT_TEST_DATABASE_URL` names.
    pub async fn create() -> Self {
        Self::create_on(admin_url()).await
    }

    /// Creates `oxvault_test_<random>` on the server whose admin URL (ending in a database
    /// name, e.g. `/postgres`) is given.
    pub async fn create_on(admin_url: String) -> Self {
        let name = format!("oxvault_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "PostgreSQL must be reachable at OXVAULT_TEST_DATABASE_URL={admin_url}: {err}"
                )
            });
        // The name is ours (a UUID), never input, so formatting it into SQL is safe.
        let create = format!(r#"CREATE DATABASE "{name}""#);
        sqlx::raw_sql(AssertSqlSafe(create))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("OXVAULT_TEST_DATABASE_URL must end in /<database>"),
        };
        Self {
            admin_url,
            name,
            url,
        }
    }

    /// The URL of this test's database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived
        // thread with its own runtime does the cleanup.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let drop = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                    let _ = sqlx::raw_sql(AssertSqlSafe(drop)).execute(&mut admin).await;
                }
            });
        });
        let _ = done.join();
    }
}
