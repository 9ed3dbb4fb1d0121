//! The actix-web application: routes, auth, limits, metrics, request ids, problem+json errors,
//! the OpenAPI document and Swagger UI.

use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Config;
use crate::lookup::LookupService;
use crate::metrics::Metrics;

pub mod access_log;
pub mod auth;
pub mod extractors;
pub mod fleet;
pub mod limits;
pub mod observe;
pub mod openapi;
pub mod page;
pub mod problem;
pub mod rate_limit;
pub mod refusals;
pub mod request_id;
pub mod routes;

/// Registers the API on an actix `ServiceConfig`; shared by the server and by in-process tests.
///
/// Each path is a resource whose other methods get 405 with `Allow`; extractor failures
/// (path, query, JSON) are problem+json like every other error.
pub fn configure(
    lookup: Arc<LookupService>,
    metrics: Arc<Metrics>,
    readiness: Arc<routes::Readiness>,
) -> impl Fn(&mut web::ServiceConfig) + Clone {
    let data = web::Data::from(lookup);
    let metrics = web::Data::from(metrics);
    let readiness = web::Data::from(readiness);
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(data.clone())
            .app_data(metrics.clone())
            .app_data(readiness.clone())
            .app_data(extractors::path_config())
            .app_data(extractors::query_config())
            .app_data(extractors::json_config())
            .service(
                web::resource("/")
                    .route(web::get().to(page::index))
                    .default_service(routes::method_not_allowed("GET")),
            )
            .service(
                web::resource("/ui/app.js")
                    .route(web::get().to(page::app_js))
                    .default_service(routes::method_not_allowed("GET")),
            )
            .service(
                web::resource("/ui/style.css")
                    .route(web::get().to(page::style_css))
                    .default_service(routes::method_not_allowed("GET")),
            )
            .service(
                web::resource("/metrics")
                    .route(web::get().to(routes::metrics))
                    .default_service(routes::method_not_allowed("GET")),
            )
            .service(
                SwaggerUi::new("/swagger-ui/{_:.*}")
                    .url("/api-docs/openapi.json", openapi::ApiDoc::openapi()),
            )
            .service(
                web::resource("/servers")
                    .route(web::get().to(fleet::list_servers))
                    .default_service(routes::method_not_allowed("GET")),
            )
            .service(
                web::resource("/servers/lookup")
                    .route(web::post().to(fleet::lookup_servers))
                    // `GET /servers/{name}` for a server named `lookup`: documented there, so
                    // this resource's own `Allow` names only its POST.
                    .route(web::get().to(routes::get_server_named_lookup))
                    .default_service(routes::method_not_allowed("POST")),
            )
            .service(
                web::resource("/fleet")
                    .route(web::get().to(fleet::fleet_status))
                    .default_service(routes::method_not_allowed("GET")),
            )
            .service(
                web::resource("/fleet/conflicts")
                    .route(web::get().to(fleet::fleet_conflicts))
                    .default_service(routes::method_not_allowed("GET")),
            )
            .service(
                web::resource("/fleet/sweep")
                    .route(web::post().to(fleet::sweep_now))
                    .default_service(routes::method_not_allowed("POST")),
            )
            .service(
                web::resource("/servers/{name}")
                    .route(web::get().to(routes::get_server))
                    .default_service(routes::method_not_allowed("GET")),
            )
            .service(
                web::resource("/servers/{name}/cache")
                    .route(web::delete().to(routes::purge_server))
                    .default_service(routes::method_not_allowed("DELETE")),
            )
            .service(
                web::resource("/vendors")
                    .route(web::get().to(routes::list_vendors))
                    .default_service(routes::method_not_allowed("GET")),
            )
            .service(
                web::resource("/healthz")
                    .route(web::get().to(routes::healthz))
                    .default_service(routes::method_not_allowed("GET")),
            )
            .service(
                web::resource("/healthz/deep")
                    .route(web::get().to(routes::healthz_deep))
                    .default_service(routes::method_not_allowed("GET")),
            )
            .service(
                web::resource("/readyz")
                    .route(web::get().to(routes::readyz))
                    .default_service(routes::method_not_allowed("GET")),
            );
    }
}

/// Builds the HTTP server on an already-bound listener (port 0 in tests).
///
/// Middleware, outermost first: request id and access log (so every log line of the request
/// carries the id), metrics (sees every final status, refusals included), size limits, inbound
/// rate limit (before auth, so guessing tokens is rate limited too), auth, then the routes.
pub fn server(
    lookup: Arc<LookupService>,
    listener: std::net::TcpListener,
    config: &Config,
    metrics: Arc<Metrics>,
    authenticator: Option<Arc<auth::Authenticator>>,
    readiness: Arc<routes::Readiness>,
    refusals: Arc<refusals::Refusals>,
) -> std::io::Result<actix_web::dev::Server> {
    let routes = configure(lookup, metrics, readiness);
    let rate_limit = &config.server.rate_limit;
    let limiter = rate_limit
        .enabled
        .then(|| web::Data::new(rate_limit::InboundLimiter::new(rate_limit)));
    let failed_auth = web::Data::new(rate_limit::FailedAuthLimiter::new(rate_limit));
    let auth = authenticator.map(web::Data::from);
    let limits = web::Data::new(config.server.limits.clone());
    let refusals = web::Data::from(refusals);
    let access_log = web::Data::new(access_log::AccessLog::from_config(&config.telemetry));
    let mut server = HttpServer::new(move || {
        let app = match &limiter {
            Some(l) => App::new().app_data(l.clone()),
            None => App::new(),
        };
        let app = match &auth {
            Some(a) => app.app_data(a.clone()).app_data(failed_auth.clone()),
            None => app,
        };
        let app = app
            .app_data(limits.clone())
            .app_data(refusals.clone())
            .app_data(access_log.clone())
            .wrap(from_fn(auth::middleware));
        app.wrap(from_fn(rate_limit::middleware))
            .wrap(from_fn(limits::middleware))
            .wrap(from_fn(observe::middleware))
            .wrap(from_fn(request_id::middleware))
            .configure(routes.clone())
            .default_service(web::to(routes::not_found))
    })
    .disable_signals()
    .client_request_timeout(config.server.limits.client_request_timeout)
    .keep_alive(config.server.limits.keep_alive)
    .shutdown_timeout(config.server.limits.shutdown_timeout.as_secs().max(1))
    .listen(listener)?;
    if let Some(n) = config.server.workers {
        server = server.workers(n);
    }
    Ok(server.run())
}
