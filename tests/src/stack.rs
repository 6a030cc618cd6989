//! The whole stack for one test: database + token + origin + edge.

use crate::{Edge, Origin, OriginSettings, SoftHsmToken, TestDatabase};

/// A running oxvault: talk to [`TestStack::edge`] as a client would.
#[derive(Debug)]
pub struct TestStack {
    // Field order is drop order: the edge and origin stop before their database goes.
    pub edge: Edge,
    pub origin: Origin,
    pub token: SoftHsmToken,
    pub database: TestDatabase,
    pub client: reqwest::Client,
}

impl TestStack {
    /// A healthy stack: fresh database, initialised token, origin, edge.
    pub async fn start() -> Self {
        Self::start_with(SoftHsmToken::initialized(), |_| {}).await
    }

    /// A stack with the given token, after `adjust` has changed the origin's settings.
    pub async fn start_with(token: SoftHsmToken, adjust: impl FnOnce(&mut OriginSettings)) -> Self {
        let database = TestDatabase::create().await;
        let mut settings = OriginSettings::new(database.url(), &token);
        adjust(&mut settings);
        let origin = tokio::task::spawn_blocking(move || Origin::start(&settings))
            .await
            .expect("origin start");
        let origin_url = origin.url().to_owned();
        let edge = tokio::task::spawn_blocking(move || Edge::start(&origin_url))
            .await
            .expect("edge start");
        Self {
            edge,
            origin,
            token,
            database,
            client: reqwest::Client::new(),
        }
    }

    /// An absolute URL at the edge.
    pub fn edge_url(&self, path: &str) -> String {
        format!("{}{path}", self.edge.url())
    }

    /// An absolute URL at the origin (behind the edge; tests use it only to compare).
    pub fn origin_url(&self, path: &str) -> String {
        format!("{}{path}", self.origin.url())
    }

    /// GET through the edge.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.edge_url(path))
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {path} through the edge failed: {err}"))
    }
}
