//! Building and running the origin: wire config -> pool, keyring -> router, bind the
//! listener, serve until a shutdown signal, then drain in-flight requests for a bounded time.
//!
//! `Application::build` binds before it returns, so tests (and `serve` with port 0) learn the
//! real port from [`Application::local_addr`] before any request is sent.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, DatabaseConfig};
use crate::crypto::Keyring;
use crate::crypto::Pkcs11Hsm;
use crate::http::{self, AppState, Shared};
use crate::mail::{MailDelivery, MailSetupError};
use crate::service::agents::AgentsService;
use crate::service::api_keys::ApiKeyService;
use crate::service::audit::{AuditLog, AuditService, AuditTask};
use crate::service::auth::{AuthService, AuthSettings};
use crate::service::billing::{BillingService, Tiers};
use crate::service::google::GoogleVerifier;
use crate::service::invitations::InvitationService;
use crate::service::org::OrgService;
use crate::service::passwords::Passwords;
use crate::service::policies::PoliciesService;
use crate::service::secret_requests::SecretRequestsService;
use crate::service::secrets::SecretsService;
use crate::service::shares::SharesService;
use crate::service::tokens::Tokens;
use crate::service::vaults::VaultsService;
use crate::store::view_reader::ViewReader;
use crate::store::{self, StoreError};

/// Why the origin could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("password hashing cannot start: {0}")]
    Passwords(String),
    #[error("Google sign-in cannot start: {0}")]
    Google(String),
    #[error("mail delivery cannot start: {0}")]
    Mail(#[from] MailSetupError),
    #[error("the server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// A built origin, bound and ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    /// `/metrics`, on its own address (`None`: turned off).
    metrics_listener: Option<TcpListener>,
    state: AppState,
    shutdown_grace: Duration,
    /// The outbox's delivery loop, stopped after the server has drained.
    mail: MailDelivery,
    /// The billing meter's writer, flushed and stopped after the server has drained.
    meter: http::metering::MeterTask,
    /// The audit appender, stopped once no request can append any more.
    audit: AuditTask,
}

impl Application {
    /// Connects the pool (lazily), runs migrations when asked, prepares the HSM and binds.
    ///
    /// Neither a down database nor a down HSM stops the start: the origin serves health
    /// (reporting `degraded`) and recovers when they return. A bad configuration does stop it.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let pool = store::connect_lazy(&config.database)?;
        if config.migrate_on_start {
            store::migrate(&pool).await?;
            tracing::info!("migrations applied");
        }

        let hsm = Arc::new(Pkcs11Hsm::new(config.hsm.clone()));
        let connecting = Arc::clone(&hsm);
        // Connect now so a misconfigured HSM shows in the log at start; off the executor,
        // because loading the module and logging in block.
        match tokio::task::spawn_blocking(move || connecting.connect_now()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "starting without the HSM"),
            Err(err) => tracing::error!(error = %err, "the HSM connection task failed"),
        }
        let keyring = Keyring::new(hsm.clone(), hsm.clone(), config.hsm.sessions)
            .with_call_timeout(config.hsm.call_timeout)
            .with_audit_mac(hsm)
            .with_dek_cache(config.hsm.dek_cache);
        let passwords = Passwords::new(config.password_hash_concurrency)
            .map_err(|err| StartupError::Passwords(err.to_string()))?;
        let google = config
            .google
            .clone()
            .map(GoogleVerifier::new)
            .transpose()
            .map_err(|err| StartupError::Google(err.to_string()))?;
        // The appender's own connections: acts wait for it while holding connections of the
        // main pool, so it must never have to wait for one of those.
        let appender_db = DatabaseConfig {
            max_connections: 1,
            read_connections: 1,
            ..config.database.clone()
        };
        let (audit, audit_task) = AuditLog::start(
            store::connect_lazy(&appender_db)?,
            store::statement_pool(&appender_db)?,
            keyring.clone(),
        );
        let statements = store::statement_pool(&config.database)?;
        let auth = AuthService::new(
            pool.clone(),
            statements.clone(),
            audit.clone(),
            passwords,
            Tokens::new(keyring.clone()),
            AuthSettings::default(),
            google,
        );

        let listener = bind(config.listen_addr).await?;
        let metrics_listener = match config.metrics_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        // After the bind, so an origin that cannot serve does not start delivering either.
        let mail = MailDelivery::start(pool.clone(), &config.mail)?;
        let (meter, meter_task) = http::metering::start(pool.clone(), &config.billing.meter);
        let tiers = Tiers::new(config.billing.tiers.clone());
        let views = ViewReader::start(store::view_pool(&config.database)?);
        let secrets =
            SecretsService::new(pool.clone(), views.clone(), keyring.clone(), audit.clone())
                .with_tiers(tiers.clone())
                .with_max_versions(config.max_secret_versions);
        Ok(Self {
            listener,
            metrics_listener,
            state: AppState::new(Shared {
                org: OrgService::new(pool.clone(), audit.clone()),
                invitations: InvitationService::new(
                    pool.clone(),
                    audit.clone(),
                    auth.clone(),
                    config.public_url.clone(),
                ),
                api_keys: ApiKeyService::new(pool.clone(), auth.clone()),
                secrets: secrets.clone(),
                secret_requests: SecretRequestsService::new(pool.clone(), secrets, audit.clone()),
                vaults: VaultsService::new(pool.clone(), audit.clone()).with_tiers(tiers.clone()),
                policies: PoliciesService::new(pool.clone(), audit.clone()),
                shares: SharesService::new(
                    pool.clone(),
                    views,
                    keyring.clone(),
                    audit.clone(),
                    auth.passwords().clone(),
                ),
                agents: AgentsService::new(pool.clone(), auth.clone()).with_tiers(tiers.clone()),
                audit_trail: AuditService::new(pool.clone(), keyring.clone()),
                billing: BillingService::new(pool.clone(), tiers),
                edge_trust: http::client::EdgeTrust::new(
                    config.edge_shared_secret.as_ref(),
                    &config.public_url,
                ),
                throttle: http::throttle::Throttle::new(config.origin_rate_limit),
                meter,
                health: crate::service::health::Health::new(pool.clone(), keyring.clone()),
                pool,
                statements,
                keyring,
                audit,
                auth,
            }),
            audit: audit_task,
            shutdown_grace: config.shutdown_grace,
            mail,
            meter: meter_task,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where `/metrics` is served, when it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
    /// finish for up to the configured grace period.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let (stopping_tx, mut stopping_rx) = watch::channel(false);
        let metrics = self.metrics_listener.map(|listener| {
            let app = http::metrics::router(self.state.clone());
            let mut stopping = stopping_tx.subscribe();
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = stopping.wait_for(|stopping| *stopping).await;
                };
                let serving = axum::serve(listener, app).with_graceful_shutdown(stopped);
                // The upkeep lives as long as the listener: without a recorder (metrics off)
                // nothing is recorded and there is nothing to drain.
                tokio::select! {
                    result = serving.into_future() => {
                        if let Err(err) = result {
                            tracing::error!(error = %err, "the metrics listener failed");
                        }
                    }
                    () = http::metrics::keep_up() => {}
                }
            })
        });
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            // Nobody listening only means the grace timer is gone too.
            let _ = stopping_tx.send(true);
        };
        let app = http::router(self.state.clone());
        // TCP_NODELAY: an answer goes out in more than one write, and with Nagle on the rest
        // waits for the client's delayed ACK (measured: an edge that opens a connection per
        // request saw ~6 ms per request added).
        let listener = self.listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::warn!(error = %err, "cannot set TCP_NODELAY on a connection");
            }
        });
        let server = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal);
        let grace = self.shutdown_grace;
        let deadline = async move {
            // Waits for the signal; a dropped sender never fires, leaving the server to end.
            if stopping_rx.wait_for(|stopping| *stopping).await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = server => result.map_err(StartupError::Serve)?,
            () = deadline => {
                tracing::warn!(grace_secs = grace.as_secs(), "grace period over; closing remaining connections");
            }
        }
        // Requests drained may have queued mail: the loop stops between messages, and
        // whatever is unsent stays in the outbox for the next start.
        self.mail.stop().await;
        // Every drained request has been metered by now: write them all before the pool goes.
        self.meter.stop().await;
        self.audit.stop().await;
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        self.state.statements.close().await;
        self.state.pool.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
