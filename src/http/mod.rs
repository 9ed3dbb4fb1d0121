//! The actix-web application: routes, auth, limits, metrics, request ids, problem+json errors,
//! the OpenAPI document and Swagger UI.

use std::sync::Arc;

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
pub mod gate;
pub mod limits;
pub mod openapi;
pub mod page;
pub mod problem;
pub mod rate_limit;
pub mod refusals;
pub mod request_id;
pub mod route;
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
            // The hot route first: the router tries resources in this order. `lookup` before
            // `{name}`, which would match it too.
            .service(
                web::resource("/servers/lookup")
                    .route(web::post().to(fleet::lookup_servers))
                    // `GET /servers/{name}` for a server named `lookup`: documented there, so
                    // this resource's own `Allow` names only its POST.
                    .route(web::get().to(routes::get_server_named_lookup))
                    .default_service(routes::method_not_allowed("POST")),
            )
            .service(
                web::resource("/servers/{name}")
                    .route(web::get().to(routes::get_server))
                    .default_service(routes::method_not_allowed("GET")),
            )
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

/// Builds the HTTP server on an already-bound listener (port 0 in tests). Every request passes
/// `gate` (request id, route, limits, rate limit, auth, metrics, access log), then the routes.
pub fn server(
    lookup: Arc<LookupService>,
    listener: std::net::TcpListener,
    config: &Config,
    metrics: Arc<Metrics>,
    authenticator: Option<Arc<auth::Authenticator>>,
    readiness: Arc<routes::Readiness>,
    refusals: Arc<refusals::Refusals>,
) -> std::io::Result<actix_web::dev::Server> {
    let routes = configure(lookup, metrics.clone(), readiness);
    let rate_limit = &config.server.rate_limit;
    let auth = authenticator.clone().map(web::Data::from);
    let gate = gate::Gate::new(gate::GateState {
        limits: config.server.limits.clone(),
        limiter: rate_limit
            .enabled
            .then(|| Arc::new(rate_limit::InboundLimiter::new(rate_limit))),
        auth: authenticator,
        failed_auth: Arc::new(rate_limit::FailedAuthLimiter::new(rate_limit)),
        refusals,
        access_log: access_log::AccessLog::from_config(&config.telemetry),
        metrics,
    });
    let mut server = HttpServer::new(move || {
        // Handlers ask whether auth is on (`refuse_unless_admin`).
        let app = match &auth {
            Some(a) => App::new().app_data(a.clone()),
            None => App::new(),
        };
        app.wrap(gate.clone())
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use actix_web::dev::Service;
    use actix_web::test::{call_service, init_service, TestRequest};

    use super::*;
    use crate::lookup::{LookupConfig, NoEvents};

    /// `route::template` must name the resource the router picks, for every path: it decides
    /// the scope auth demands, and labels the metrics.
    #[actix_web::test]
    async fn the_route_table_names_what_the_router_matches() {
        let config = Config::from_toml_str(
            "[auth]\nenabled = false\n[[systems]]\nname = \"ov\"\nkind = \"oneview\"\n\
             endpoint = \"https://127.0.0.1\"\nusername = \"u\"\npassword = \"p\"\n",
        )
        .unwrap();
        let lookup = Arc::new(LookupService::new(
            Vec::new(),
            LookupConfig::from_config(&config),
            Arc::new(NoEvents),
        ));
        let metrics = Arc::new(Metrics::new(Arc::new(NoEvents)).unwrap());
        let seen = Rc::new(RefCell::new(Vec::new()));
        let record = seen.clone();
        let app = init_service(
            App::new()
                .wrap_fn(move |req, srv| {
                    let (path, ours) = (
                        req.path().to_owned(),
                        route::template(req.match_info().as_str()),
                    );
                    let record = record.clone();
                    let answer = srv.call(req);
                    async move {
                        let res = answer.await?;
                        // After routing: the pattern of the resource the router picked.
                        let actix = res.request().match_pattern();
                        record.borrow_mut().push((path, actix, ours));
                        Ok(res)
                    }
                })
                .configure(configure(lookup, metrics, Arc::default()))
                .default_service(web::to(routes::not_found)),
        )
        .await;
        let paths = [
            "/",
            "/ui/app.js",
            "/ui/style.css",
            "/ui/other.js",
            "/metrics",
            "/metrics/",
            "/api-docs/openapi.json",
            "/swagger-ui/",
            "/swagger-ui/index.html",
            "/swagger-ui/a/b.css",
            "/swagger-uix",
            "/servers",
            "/servers/",
            "/servers/lookup",
            "/servers/web-01",
            "/servers/web-01/",
            "/servers/web-01/cache",
            "/servers/web-01/cache/",
            "/servers/web-01/other",
            "/servers//cache",
            "/servers/a%2Fb",
            "/servers/lookup/cache",
            "/fleet",
            "/fleet/",
            "/fleet/conflicts",
            "/fleet/sweep",
            "/fleet/other",
            "/vendors",
            "/healthz",
            "/healthz/deep",
            "/healthz/deeper",
            "/readyz",
            "/nothing",
            "//servers/x",
            // Escapes of unreserved characters: the router decodes them.
            "/fleet/%73weep",
            "/servers/x/%63ache",
            "/servers/%6Cookup",
            "/%73ervers/x",
        ];
        for path in paths {
            for method in [
                actix_web::http::Method::GET,
                actix_web::http::Method::DELETE,
            ] {
                let req = TestRequest::default().method(method).uri(path).to_request();
                call_service(&app, req).await;
            }
        }
        let seen = seen.borrow();
        assert_eq!(seen.len(), paths.len() * 2);
        for (path, actix, ours) in seen.iter() {
            assert_eq!(actix.as_deref(), *ours, "{path}");
        }
    }
}
