//! The actix-web application: routes, request ids, problem+json errors.

use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::lookup::LookupService;

pub mod problem;
pub mod rate_limit;
pub mod request_id;
pub mod routes;

/// Registers the API on an actix `ServiceConfig`; shared by the server and by in-process tests.
pub fn configure(lookup: Arc<LookupService>) -> impl Fn(&mut web::ServiceConfig) + Clone {
    let data = web::Data::from(lookup);
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(data.clone())
            .route("/servers/{name}", web::get().to(routes::get_server))
            .route(
                "/servers/{name}/cache",
                web::delete().to(routes::purge_server),
            )
            .route("/vendors", web::get().to(routes::list_vendors))
            .route("/healthz", web::get().to(routes::healthz))
            .route("/readyz", web::get().to(routes::readyz));
    }
}

/// Builds the HTTP server on an already-bound listener (port 0 in tests).
pub fn server(
    lookup: Arc<LookupService>,
    listener: std::net::TcpListener,
    workers: Option<usize>,
    rate_limit: &crate::config::InboundRateLimit,
) -> std::io::Result<actix_web::dev::Server> {
    let routes = configure(lookup);
    let limiter = rate_limit
        .enabled
        .then(|| web::Data::new(rate_limit::InboundLimiter::new(rate_limit)));
    let mut server = HttpServer::new(move || {
        let app = match &limiter {
            Some(l) => App::new().app_data(l.clone()),
            None => App::new(),
        };
        app.wrap(from_fn(rate_limit::middleware))
            .wrap(from_fn(request_id::middleware))
            .configure(routes.clone())
            .default_service(web::to(routes::not_found))
    })
    .disable_signals()
    .listen(listener)?;
    if let Some(n) = workers {
        server = server.workers(n);
    }
    Ok(server.run())
}
