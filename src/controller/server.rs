//! The controller's own small HTTP server: `/metrics`, `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpResponse, HttpServer};
use tokio::sync::watch;

use super::metrics::ControllerMetrics;

struct State {
    metrics: Arc<ControllerMetrics>,
    ready: watch::Receiver<bool>,
}

async fn metrics_text(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

async fn readyz(state: web::Data<State>) -> HttpResponse {
    if *state.ready.borrow() {
        HttpResponse::Ok().body("ready")
    } else {
        HttpResponse::ServiceUnavailable()
            .body("not ready: the Kubernetes API has not answered yet")
    }
}

/// Binds and returns the server (to spawn) and its address (the port may have been 0).
pub fn bind(
    addr: SocketAddr,
    metrics: Arc<ControllerMetrics>,
    ready: watch::Receiver<bool>,
) -> std::io::Result<(Server, ServerHandle, SocketAddr)> {
    let state = web::Data::new(State { metrics, ready });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(metrics_text))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    let server = server.run();
    let handle = server.handle();
    Ok((server, handle, bound))
}
