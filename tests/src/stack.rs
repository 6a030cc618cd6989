//! A stack as a test sees it (database + token + origin + edge, its own or the shared one),
//! with typed calls for what many tests do.

use reqwest::Method;
use serde_json::{Value, json};

use crate::process::{log_shows, read_log};
use crate::shared::{SharedStack, StackAddresses};
use crate::{Edge, EdgeSettings, Origin, OriginSettings, SoftHsmToken, TestDatabase};

/// The password every test user signs up with.
pub const PASSWORD: &str = "correct horse battery staple";

/// A signed-up user's tokens.
#[derive(Debug, Clone)]
pub struct Session {
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl Session {
    /// The session of `email` that an answer with `access_token` and `refresh_token` opened.
    fn from_answer(email: &str, body: &Value) -> Self {
        let token = |name: &str| body[name].as_str().expect(name).to_owned();
        Self {
            email: email.to_owned(),
            access_token: token("access_token"),
            refresh_token: token("refresh_token"),
        }
    }
}

type Adjust<T> = Box<dyn FnOnce(&mut T) + Send>;

/// How a stack of a test's own starts: [`TestStack::builder`], the changes, then
/// [`StackBuilder::start`]. Unchanged, it is a healthy stack with generous rate limits.
#[must_use = "a builder does nothing until started"]
pub struct StackBuilder {
    token: Option<SoftHsmToken>,
    database_server: Option<String>,
    origins: usize,
    adjust_origin: Vec<Adjust<OriginSettings>>,
    adjust_edge: Vec<Adjust<EdgeSettings>>,
}

impl std::fmt::Debug for StackBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackBuilder")
            .field("token", &self.token)
            .field("database server", &self.database_server)
            .field("origins", &self.origins)
            .field("origin changes", &self.adjust_origin.len())
            .field("edge changes", &self.adjust_edge.len())
            .finish()
    }
}

impl StackBuilder {
    /// Another token than a fresh initialised one (e.g. [`SoftHsmToken::empty`]).
    pub fn token(mut self, token: SoftHsmToken) -> Self {
        self.token = Some(token);
        self
    }

    /// Creates the stack's database on another server than `OXVAULT_TEST_DATABASE_URL`'s
    /// (e.g. a [`crate::PrivatePostgres`] the test restarts), given by its admin URL.
    pub fn database_server(mut self, admin_url: String) -> Self {
        self.database_server = Some(admin_url);
        self
    }

    /// Runs `count` origins (at least one) on the one database and token, with the same
    /// settings, and the edge spreading requests over them in turn (`ORIGIN_URL` lists them
    /// all). The first is [`OwnParts::origin`], the others [`OwnParts::other_origins`].
    pub fn origins(mut self, count: usize) -> Self {
        self.origins = count.max(1);
        self
    }

    /// Changes the origins' settings (their environment, PIN, database, ...).
    pub fn origin(mut self, adjust: impl FnOnce(&mut OriginSettings) + Send + 'static) -> Self {
        self.adjust_origin.push(Box::new(adjust));
        self
    }

    /// Sets one more environment variable of the origins' (a setting such as
    /// `OXVAULT_HSM_CALL_TIMEOUT_MS`).
    pub fn origin_env(self, name: &str, value: &str) -> Self {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.origin(move |settings| settings.extra_env.push((name, value)))
    }

    /// Changes the edge's bindings (e.g. rate limits).
    pub fn edge(mut self, adjust: impl FnOnce(&mut EdgeSettings) + Send + 'static) -> Self {
        self.adjust_edge.push(Box::new(adjust));
        self
    }

    /// Starts the stack. The edge and the origin share a fresh random secret, so the origin
    /// trusts the client address the edge reports (as in production, where the secret is a
    /// Worker secret).
    pub async fn start(self) -> TestStack {
        let token = self.token.unwrap_or_else(SoftHsmToken::initialized);
        let database = match self.database_server {
            Some(admin_url) => TestDatabase::create_on(admin_url).await,
            None => TestDatabase::create().await,
        };
        let edge_secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut settings = OriginSettings::new(database.url(), &token);
        settings
            .extra_env
            .push(("OXVAULT_EDGE_SHARED_SECRET".to_owned(), edge_secret.clone()));
        for adjust in self.adjust_origin {
            adjust(&mut settings);
        }
        let (origin, other_origins) = tokio::task::spawn_blocking({
            let count = self.origins;
            move || {
                let first = Origin::start(&settings);
                // The first migrated; the others start on the schema as it is.
                settings.migrate = false;
                let others: Vec<Origin> = (1..count).map(|_| Origin::start(&settings)).collect();
                (first, others)
            }
        })
        .await
        .expect("origin start");
        let origin_urls: Vec<&str> = std::iter::once(&origin)
            .chain(&other_origins)
            .map(Origin::url)
            .collect();
        let mut edge_settings = EdgeSettings::new(&origin_urls.join(","));
        edge_settings.var("ORIGIN_SHARED_SECRET", &edge_secret);
        for adjust in self.adjust_edge {
            adjust(&mut edge_settings);
        }
        let edge = tokio::task::spawn_blocking(move || Edge::start_with(&edge_settings))
            .await
            .expect("edge start");
        TestStack::with_parts(Parts::Own(Box::new(OwnParts {
            edge,
            origin,
            other_origins,
            token,
            database,
        })))
    }
}

/// The parts of a stack a test owns: it may stop, break or reconfigure any of them.
#[derive(Debug)]
pub struct OwnParts {
    // Field order is drop order: the edge and origin stop before their database goes.
    pub edge: Edge,
    pub origin: Origin,
    /// The origins past the first, when [`StackBuilder::origins`] asked for several.
    pub other_origins: Vec<Origin>,
    pub token: SoftHsmToken,
    pub database: TestDatabase,
}

#[derive(Debug)]
enum Parts {
    Own(Box<OwnParts>),
    Shared(&'static SharedStack),
}

/// A running oxvault: talk to its edge as a client would.
#[derive(Debug)]
pub struct TestStack {
    parts: Parts,
    /// Where the parts answer and log, whoever owns them.
    addresses: StackAddresses,
    /// Makes this test's email addresses its own (see [`TestStack::email`]).
    tag: String,
    pub client: reqwest::Client,
}

impl TestStack {
    /// The stack shared by the tests of this binary (started by the first that asks). Work in
    /// organisations of your own, with addresses from [`TestStack::email`].
    pub async fn shared() -> Self {
        let shared = tokio::task::spawn_blocking(crate::shared::stack)
            .await
            .expect("the shared stack");
        Self::with_parts(Parts::Shared(shared))
    }

    /// A healthy stack of the test's own: fresh database, initialised token, origin, edge
    /// ([`TestStack::builder`] with nothing changed).
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// A stack of the test's own, with parts changed before it starts.
    pub fn builder() -> StackBuilder {
        StackBuilder {
            token: None,
            database_server: None,
            origins: 1,
            adjust_origin: Vec::new(),
            adjust_edge: Vec::new(),
        }
    }

    fn with_parts(parts: Parts) -> Self {
        let addresses = match &parts {
            Parts::Shared(shared) => shared.addresses.clone(),
            Parts::Own(own) => StackAddresses {
                edge_url: own.edge.url().to_owned(),
                origin_url: own.origin.url().to_owned(),
                database_url: own.database.url().to_owned(),
                origin_log: own.origin.log_path().to_owned(),
                edge_log: own.edge.log_path().to_owned(),
            },
        };
        let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        Self {
            parts,
            addresses,
            tag,
            client: crate::client(),
        }
    }

    /// Where the parts answer and log.
    pub fn addresses(&self) -> &StackAddresses {
        &self.addresses
    }

    /// The parts of a stack this test started; panics on the shared stack, which no test may
    /// stop, break or reconfigure.
    pub fn own(&self) -> &OwnParts {
        match &self.parts {
            Parts::Own(own) => own,
            Parts::Shared(_) => panic!("this test needs a stack of its own: TestStack::start"),
        }
    }

    /// [`TestStack::own`], to stop or signal a part.
    pub fn own_mut(&mut self) -> &mut OwnParts {
        match &mut self.parts {
            Parts::Own(own) => own,
            Parts::Shared(_) => panic!("this test needs a stack of its own: TestStack::start"),
        }
    }

    /// `address` made this test's own: `ada@example.com` becomes `ada+<tag>@example.com`, the
    /// same every time for this stack handle and different for every other, so tests on the
    /// shared stack never meet each other's accounts. Case is kept (the tag is lower case).
    pub fn email(&self, address: &str) -> String {
        match address.rsplit_once('@') {
            Some((local, domain)) => format!("{local}+{}@{domain}", self.tag),
            None => panic!("{address:?} is not an email address"),
        }
    }

    /// The edge's base URL, e.g. `http://127.0.0.1:8787`.
    pub fn edge_base(&self) -> &str {
        &self.addresses.edge_url
    }

    /// The origin's base URL (behind the edge; tests use it only to compare).
    pub fn origin_base(&self) -> &str {
        &self.addresses.origin_url
    }

    /// The text of the origin's `/metrics` (its metrics listener; a stack of the test's own).
    pub async fn origin_metrics(&self) -> String {
        let response = self
            .client
            .get(self.own().origin.metrics_url())
            .send()
            .await
            .expect("the origin's metrics listener answers");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.text().await.expect("metrics text")
    }

    /// A counter without labels from the origin's `/metrics`, e.g. `oxvault_hsm_calls_total`.
    pub async fn origin_counter(&self, name: &str) -> u64 {
        let text = self.origin_metrics().await;
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    }

    /// The URL of the stack's database, to look at what was stored.
    pub fn database_url(&self) -> &str {
        &self.addresses.database_url
    }

    /// Everything the origin logged so far (on the shared stack, for every test).
    pub fn origin_log(&self) -> String {
        read_log(&self.addresses.origin_log)
    }

    /// Whether the origin's log contains `needle` within a few seconds.
    pub async fn origin_logged(&self, needle: &str) -> bool {
        log_shows(&self.addresses.origin_log, needle).await
    }

    /// Everything wrangler printed so far.
    pub fn edge_log(&self) -> String {
        read_log(&self.addresses.edge_log)
    }

    /// An absolute URL at the edge.
    pub fn edge_url(&self, path: &str) -> String {
        format!("{}{path}", self.edge_base())
    }

    /// An absolute URL at the origin (behind the edge; tests use it only to compare).
    pub fn origin_url(&self, path: &str) -> String {
        format!("{}{path}", self.origin_base())
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

impl TestStack {
    /// A request through the edge with the caller's bearer token.
    pub fn request(&self, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.edge_url(path))
            .bearer_auth(token)
    }

    /// A call through the edge with the caller's token and an optional JSON body: the status
    /// and the body (`Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (reqwest::StatusCode, Value) {
        let mut request = self.request(method, path, token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|err| panic!("{path} through the edge failed: {err}"));
        let status = response.status();
        let text = response.text().await.expect("response body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, body)
    }

    /// Creates a vault as the holder of `token`; returns its id.
    pub async fn create_vault(&self, token: &str, name: &str) -> String {
        let (status, vault) = self
            .call(
                Method::POST,
                "/v1/vaults",
                token,
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{vault}");
        vault["id"].as_str().expect("vault id").to_owned()
    }

    /// Signs up `email`, who makes a vault `shared` holding `value` at `path` (asserting 201):
    /// the owner's session, the vault's id and the secret's id.
    pub async fn owner_with_secret(
        &self,
        email: &str,
        path: &str,
        value: &str,
    ) -> (Session, String, String) {
        let owner = self.signup(email).await;
        let vault = self.create_vault(&owner.access_token, "shared").await;
        let (status, secret) = self
            .put_secret(&owner.access_token, &vault, path, json!({"value": value}))
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{secret}");
        let secret_id = secret["id"].as_str().expect("secret id").to_owned();
        (owner, vault, secret_id)
    }

    /// `GET /v1/vaults/{vault}/secrets/{path}` as the holder of `token`.
    pub async fn get_secret(
        &self,
        token: &str,
        vault: &str,
        path: &str,
    ) -> (reqwest::StatusCode, Value) {
        self.call(
            Method::GET,
            &format!("/v1/vaults/{vault}/secrets/{path}"),
            token,
            None,
        )
        .await
    }

    /// `PUT /v1/vaults/{vault}/secrets/{path}` with `body` as the holder of `token`.
    pub async fn put_secret(
        &self,
        token: &str,
        vault: &str,
        path: &str,
        body: Value,
    ) -> (reqwest::StatusCode, Value) {
        self.call(
            Method::PUT,
            &format!("/v1/vaults/{vault}/secrets/{path}"),
            token,
            Some(body),
        )
        .await
    }

    /// POSTs JSON through the edge without credentials.
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.edge_url(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|err| panic!("POST {path} through the edge failed: {err}"))
    }

    /// Signs up `email` (a new org, owner) and returns its tokens.
    pub async fn signup(&self, email: &str) -> Session {
        let response = self
            .post_json(
                "/v1/auth/signup",
                &json!({"email": email, "password": PASSWORD, "display_name": "Test User"}),
            )
            .await;
        assert_eq!(response.status(), 200, "signup of {email} failed");
        let body: Value = response.json().await.expect("signup body");
        Session::from_answer(email, &body)
    }

    /// Logs `email` in with [`PASSWORD`].
    pub async fn login(&self, email: &str) -> Session {
        let response = self
            .post_json(
                "/v1/auth/token",
                &json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(response.status(), 200, "login of {email} failed");
        let body: Value = response.json().await.expect("login body");
        Session::from_answer(email, &body)
    }

    /// `GET /v1/auth/me` as the holder of `token`.
    pub async fn me(&self, token: &str) -> (reqwest::StatusCode, Value) {
        self.call(Method::GET, "/v1/auth/me", token, None).await
    }

    /// The id of the user holding `token` (`GET /v1/auth/me`).
    pub async fn user_id(&self, token: &str) -> String {
        let (status, me) = self.me(token).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{me}");
        me["id"].as_str().expect("user id").to_owned()
    }

    /// A `member` of `owner`'s org: invited, signed up (in an org of its own), then moved in by
    /// accepting the mailed token. Its session in the owner's org and its user id.
    pub async fn invite_member(&self, owner: &Session, email: &str) -> (Session, String) {
        let (status, body) = self.invite(&owner.access_token, email, "member").await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        let invited = self.signup(email).await;
        let token = self.invitation_token(email).await;
        let session = self.accept_invitation(&invited, &token).await;
        let id = self.user_id(&session.access_token).await;
        (session, id)
    }

    /// `POST /v1/org/invite` of `email` as `role`, as the holder of `token`.
    pub async fn invite(
        &self,
        token: &str,
        email: &str,
        role: &str,
    ) -> (reqwest::StatusCode, Value) {
        self.call(
            Method::POST,
            "/v1/org/invite",
            token,
            Some(json!({"email": email, "role": role})),
        )
        .await
    }

    /// The token of the newest invitation mail queued for `email`, read from the outbox as
    /// the mail relay would (stacks without a relay keep the body there).
    pub async fn invitation_token(&self, email: &str) -> String {
        use sqlx::Connection as _;
        let mut db = sqlx::PgConnection::connect(self.database_url())
            .await
            .expect("test database");
        let body: String = sqlx::query_scalar(
            "SELECT body_text FROM mail_outbox WHERE kind = 'invite' AND recipient = $1 \
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(email.trim().to_lowercase())
        .fetch_one(&mut db)
        .await
        .expect("an invitation mail with its body");
        invitation_token_in(&body)
    }

    /// Accepts an invitation as `session`; panics unless it succeeds. The session in the new
    /// org (the old one ended).
    pub async fn accept_invitation(&self, session: &Session, token: &str) -> Session {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/org/invitations/accept",
                &session.access_token,
                Some(json!({ "token": token })),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        Session::from_answer(&session.email, &body)
    }

    /// Creates an agent as the holder of `token` with `body` (at least `name`) and exchanges
    /// its key: the agent's id and an access token for it.
    pub async fn create_agent_with(&self, token: &str, body: Value) -> (String, String) {
        let (status, created) = self
            .call(Method::POST, "/v1/agents", token, Some(body))
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
        let response = self
            .post_json(
                "/v1/auth/agent-token",
                &json!({"api_key": created["api_key"]}),
            )
            .await;
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let exchanged: Value = response.json().await.expect("agent token body");
        (
            created["agent"]["id"]
                .as_str()
                .expect("agent id")
                .to_owned(),
            exchanged["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
        )
    }

    /// [`TestStack::create_agent_with`] an agent called `name`.
    pub async fn create_agent(&self, token: &str, name: &str) -> (String, String) {
        self.create_agent_with(token, json!({"name": name})).await
    }

    /// Gives agent `agent_id` `permissions` on the paths of `vault` matching `pattern`, through
    /// the policy endpoint as the holder of `token` (asserting 201).
    pub async fn grant_agent(
        &self,
        token: &str,
        vault: &str,
        agent_id: &str,
        pattern: &str,
        permissions: &[&str],
    ) {
        let body = json!({"principal_type": "agent", "principal_id": agent_id,
                          "secret_path_pattern": pattern, "permissions": permissions});
        let (status, body) = self.create_policy(token, vault, body).await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    }

    /// Deactivates agent `agent_id` through `PATCH /v1/agents/{id}` as the holder of `token`
    /// (asserting 200).
    pub async fn deactivate_agent(&self, token: &str, agent_id: &str) {
        let (status, body) = self
            .call(
                Method::PATCH,
                &format!("/v1/agents/{agent_id}"),
                token,
                Some(json!({"is_active": false})),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    }

    /// `POST /v1/vaults/{vault}/policies` with `body` as the holder of `token`.
    pub async fn create_policy(
        &self,
        token: &str,
        vault: &str,
        body: Value,
    ) -> (reqwest::StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/v1/vaults/{vault}/policies"),
            token,
            Some(body),
        )
        .await
    }
}

/// The `oiv_` token in an invitation mail's text.
pub fn invitation_token_in(body: &str) -> String {
    let start = body.find("oiv_").expect("an oiv_ token in the mail");
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        .collect()
}
