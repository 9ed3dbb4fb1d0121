//! The one middleware every request passes through. In order: the request id (the caller's
//! when sane, else generated) and the request's tracing span; the route, resolved once
//! (`http::route`); size limits; the inbound rate limit (before auth, so guessing tokens is
//! rate limited too); authentication and scope. Then, on the handler's answer or a refusal
//! alike: the rate-limit headers (not on a size refusal, which is answered before the limiter),
//! `X-Request-Id`, the HTTP metrics (every final status, refusals included) and the access
//! log line.
//!
//! One middleware rather than five `from_fn` layers: each layer boxed a future and a service
//! call, the route was matched three times, the `Authorization` header parsed twice and each
//! metric's labels looked up per request. The answer's metric series are bound once per
//! worker and kind of answer instead.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{ready, Ready};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use actix_web::http::Method;
use actix_web::{Error, HttpMessage};
use futures::future::LocalBoxFuture;
use tracing::Instrument;

use super::access_log::AccessLog;
use super::auth::{parse_credential, Authenticator};
use super::rate_limit::{FailedAuthLimiter, InboundLimiter, EXEMPT};
use super::refusals::Refusals;
use super::request_id::{RequestId, HEADER};
use super::route::{self, UNMATCHED};
use crate::config::LimitsConfig;
use crate::metrics::{HttpSeries, Metrics};

/// What the gate needs, shared by every worker.
pub struct GateState {
    pub limits: LimitsConfig,
    pub limiter: Option<Arc<InboundLimiter>>,
    pub auth: Option<Arc<Authenticator>>,
    pub failed_auth: Arc<FailedAuthLimiter>,
    pub refusals: Arc<Refusals>,
    pub access_log: AccessLog,
    pub metrics: Arc<Metrics>,
}

#[derive(Clone)]
pub struct Gate(Arc<GateState>);

impl Gate {
    pub fn new(state: GateState) -> Self {
        Self(Arc::new(state))
    }
}

/// A worker's bound metric series, by route template, method and status.
type SeriesCache = RefCell<HashMap<(&'static str, &'static str, u16), HttpSeries>>;

/// The method as a metric label: the standard ones, and `OTHER` for any extension method, so
/// that a client inventing methods cannot create series.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    STANDARD
        .into_iter()
        .find(|m| *m == method.as_str())
        .unwrap_or("OTHER")
}

impl<S, B> Transform<S, ServiceRequest> for Gate
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Transform = GateService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(GateService {
            service: Rc::new(service),
            state: self.0.clone(),
            series: Rc::default(),
        }))
    }
}

pub struct GateService<S> {
    service: Rc<S>,
    state: Arc<GateState>,
    series: Rc<SeriesCache>,
}

impl<S, B> Service<ServiceRequest> for GateService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let (service, state, series) = (
            self.service.clone(),
            self.state.clone(),
            self.series.clone(),
        );
        Box::pin(async move {
            let started = Instant::now();
            let id = RequestId::from_header(req.headers().get(HEADER));
            let route = route::template(req.match_info().as_str());
            let method = method_label(req.method());
            let span = tracing::info_span!(
                "http_request",
                request_id = %id.0,
                method = %req.method(),
                route = route.unwrap_or(UNMATCHED),
            );
            req.extensions_mut().insert(id.clone());
            let answered = pass(req, route, &id, &service, &state)
                .instrument(span)
                .await;
            let status = match &answered {
                Ok(res) => res.status().as_u16(),
                Err(e) => e.as_response_error().status_code().as_u16(),
            };
            let elapsed = started.elapsed();
            let key = (route.unwrap_or(UNMATCHED), method, status);
            let bound = series.borrow().get(&key).cloned();
            let bound = bound.unwrap_or_else(|| {
                let made = state.metrics.http_series(key.0, key.1, status);
                series.borrow_mut().insert(key, made.clone());
                made
            });
            bound.observe(elapsed);
            let mut res = answered?;
            if let Ok(value) = HeaderValue::from_str(&id.0) {
                res.headers_mut()
                    .insert(HeaderName::from_static(HEADER), value);
            }
            state.access_log.record(&res, &id.0, elapsed);
            Ok(res)
        })
    }
}

/// Limits, rate limit and auth, then the handler: the answer, or the refusal.
async fn pass<S, B>(
    req: ServiceRequest,
    route: Option<&'static str>,
    id: &RequestId,
    service: &S,
    state: &GateState,
) -> Result<ServiceResponse<BoxBody>, Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody + 'static,
{
    if let Some(refused) = super::limits::refuse(&state.limits, &req, &id.0) {
        return Ok(req.into_response(refused));
    }
    let credential = parse_credential(req.headers().get(AUTHORIZATION));
    let limiter = state
        .limiter
        .as_deref()
        .filter(|_| !EXEMPT.contains(&req.path()));
    let mut remaining = None;
    if let Some(limiter) = limiter {
        match limiter.admit(&req, &credential, &state.refusals, &id.0) {
            Ok(r) => remaining = Some(r),
            Err(refused) => return Ok(req.into_response(*refused)),
        }
    }
    let mut res = match &state.auth {
        Some(auth) => match auth.check(
            &req,
            route,
            &credential,
            &state.failed_auth,
            &state.refusals,
            &id.0,
        ) {
            Ok(caller) => {
                if let Some(caller) = caller {
                    req.extensions_mut().insert(caller);
                }
                service.call(req).await?.map_into_boxed_body()
            }
            Err(refused) => req.into_response(*refused),
        },
        None => service.call(req).await?.map_into_boxed_body(),
    };
    if let (Some(limiter), Some(remaining)) = (limiter, remaining) {
        limiter.stamp(res.headers_mut(), remaining);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        for invented in ["FOO1", "FOO2", "get"] {
            let m = Method::from_bytes(invented.as_bytes()).unwrap();
            assert_eq!(method_label(&m), "OTHER", "{invented}");
        }
    }
}
