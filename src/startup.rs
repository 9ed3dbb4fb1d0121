//! Builds the whole gateway from a `Config`: backends, lookup service, HTTP server. Used by
//! `serve`, `demo` and the integration tests alike, so tests exercise the real wiring.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};

use crate::config::Config;
use crate::http::refusals::Refusals;
use crate::http::routes::Readiness;
use crate::lookup::{LookupConfig, LookupEvents, LookupService, NoEvents};
use crate::resilience::CircuitBreaker;
use crate::vendors::{build_backends, BackendError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Auth(#[from] crate::http::auth::AuthError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
}

pub struct Application {
    port: u16,
    server: Server,
    lookup: Arc<LookupService>,
    readiness: Arc<Readiness>,
    refusals: Arc<Refusals>,
    refusal_summary_interval: std::time::Duration,
}

impl Application {
    pub fn build(config: &Config) -> Result<Self, StartupError> {
        Self::build_with(config, Arc::new(NoEvents))
    }

    pub fn build_with(
        config: &Config,
        events: Arc<dyn LookupEvents>,
    ) -> Result<Self, StartupError> {
        // One metrics value observes the lookups, the vendor exchanges and the breakers.
        let metrics = Arc::new(crate::metrics::Metrics::new(events)?);
        let authenticator = crate::http::auth::Authenticator::from_config(&config.auth)?;
        let backends = build_backends(config, metrics.clone(), Some(metrics.breaker_observer()))?;
        let systems = backends
            .into_iter()
            .zip(&config.systems)
            .map(|(backend, sys)| {
                let breaker =
                    CircuitBreaker::new(sys.name.clone(), sys.breaker_or(&config.breaker).clone())
                        .with_observer(metrics.breaker_observer());
                (backend, breaker)
            })
            .collect();
        let lookup = Arc::new(LookupService::new(
            systems,
            LookupConfig::from_config(config),
            metrics.clone(),
        ));
        let addr = config.server.listen;
        let listener =
            TcpListener::bind(addr).map_err(|source| StartupError::Bind { addr, source })?;
        let port = listener.local_addr()?.port();
        let readiness = Arc::new(Readiness::default());
        let refusals = Arc::new(Refusals::new(metrics.clone()));
        let server = crate::http::server(
            lookup.clone(),
            listener,
            config,
            metrics,
            authenticator,
            readiness.clone(),
            refusals.clone(),
        )?;
        Ok(Self {
            port,
            server,
            lookup,
            readiness,
            refusals,
            refusal_summary_interval: config.telemetry.refusal_summary_interval,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Flip it (`begin_shutdown`) when shutdown starts: `/readyz` answers 503 from then on.
    pub fn readiness(&self) -> Arc<Readiness> {
        self.readiness.clone()
    }

    /// Serves until the server is stopped (through its handle), then logs out of every system.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let summaries = self.refusals.spawn_summaries(self.refusal_summary_interval);
        let sweepers = self.lookup.fleet().spawn_sweepers();
        let result = self.server.await;
        summaries.abort();
        for sweeper in sweepers {
            sweeper.abort();
        }
        self.refusals.log_summary(self.refusal_summary_interval);
        self.lookup.logout_all().await;
        result
    }
}
