//! The Prometheus registry and every metric family the gateway exports at `/metrics`.
//!
//! One `Metrics` value is the observer of everything: it implements `LookupEvents` (cache,
//! coalescing, retries, evictions), `UpstreamObserver` (every vendor exchange), the circuit
//! breakers' transition callback, and is fed by the HTTP middleware. Gauges that mirror state
//! held elsewhere (cache entries, breaker states) are refreshed when scraped, so they are never
//! out of date and cost nothing between scrapes.
//!
//! Label values are small fixed vocabularies (route templates, system names from the config,
//! endpoint classes chosen by the backends), never raw paths or server names, so the number of
//! series stays bounded whatever callers send.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::lookup::{LookupEvents, LookupService};
use crate::resilience::BreakerState;
use crate::vendors::upstream::UpstreamObserver;

const NAMESPACE: &str = "inventory_gateway";

/// What `CircuitBreaker::with_observer` takes: (system, from, to).
pub use crate::resilience::BreakerObserver;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metric registration: {0}")]
    Register(#[from] prometheus::Error),
}

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    upstream_requests: IntCounterVec,
    upstream_duration: HistogramVec,
    retries: IntCounterVec,
    breaker_state: IntGaugeVec,
    breaker_transitions: IntCounterVec,
    cache_lookups: IntCounterVec,
    /// `cache_lookups`' series of each outcome the lookup service reports, bound at start:
    /// one is counted per request.
    cache_outcomes: Vec<(&'static str, IntCounter)>,
    cache_evictions: IntCounter,
    cache_entries: IntGauge,
    coalesced: IntCounter,
    rate_limited: IntCounterVec,
    sessions: IntCounterVec,
    /// Systems that have logged in once already: a later login is a re-login.
    logged_in: Mutex<HashSet<String>>,
    /// Forwarded to, so that callers of `build_with` keep their own observer.
    inner_events: Arc<dyn LookupEvents>,
    http_refusals: IntCounterVec,
    fleet_servers: IntGaugeVec,
    fleet_age: IntGaugeVec,
    fleet_conflicts: IntGaugeVec,
    bmc_refusing: IntGaugeVec,
    bmc_suspended: IntGaugeVec,
    fleet_sweeps: IntCounterVec,
    fleet_sweep_duration: HistogramVec,
    fleet_sweep_calls: IntCounterVec,
    fleet_last_sweep_calls: IntGaugeVec,
}

fn gauge_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help).namespace(NAMESPACE), labels)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help).namespace(NAMESPACE), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help)
            .namespace(NAMESPACE)
            .buckets(buckets),
        labels,
    )?;
    r.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    pub fn new(inner_events: Arc<dyn LookupEvents>) -> Result<Self, MetricsError> {
        let r = Registry::new();
        // Warm-path answers take well under a millisecond; cold ones are bounded by vendors
        // that may take seconds: buckets span both.
        let latency = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0,
        ];
        let mut m = Self {
            http_requests: counter_vec(
                &r,
                "http_requests_total",
                "HTTP requests answered, by route template, method and status code.",
                &["route", "method", "status"],
            )?,
            http_duration: histogram_vec(
                &r,
                "http_request_duration_seconds",
                "Time to answer an HTTP request, by route template and method.",
                &["route", "method"],
                latency.clone(),
            )?,
            upstream_requests: counter_vec(
                &r,
                "upstream_requests_total",
                "Requests to management systems, by system, endpoint class and outcome \
                 (ok, http_4xx, http_5xx, timeout, connect, throttled).",
                &["system", "endpoint", "outcome"],
            )?,
            upstream_duration: histogram_vec(
                &r,
                "upstream_request_duration_seconds",
                "Duration of one request to a management system, body included.",
                &["system", "endpoint"],
                latency,
            )?,
            retries: counter_vec(
                &r,
                "upstream_retries_total",
                "Lookups retried against a system after a transient failure.",
                &["system"],
            )?,
            breaker_state: gauge_vec(
                &r,
                "circuit_breaker_state",
                "1 for the state each system's circuit breaker is in, 0 for the others.",
                &["system", "state"],
            )?,
            breaker_transitions: counter_vec(
                &r,
                "circuit_breaker_transitions_total",
                "Circuit breaker state changes, by system and from/to state.",
                &["system", "from", "to"],
            )?,
            cache_lookups: counter_vec(
                &r,
                "cache_requests_total",
                "Lookups by cache outcome: hit, index (answered from the fleet index), miss, stale (served after a failure), negative_hit.",
                &["outcome"],
            )?,
            cache_evictions: {
                let c = IntCounter::with_opts(
                    Opts::new(
                        "cache_evictions_total",
                        "Records evicted from the cache (expired or size bound).",
                    )
                    .namespace(NAMESPACE),
                )?;
                r.register(Box::new(c.clone()))?;
                c
            },
            cache_entries: {
                let g = IntGauge::with_opts(
                    Opts::new("cache_entries", "Entries in the lookup cache.").namespace(NAMESPACE),
                )?;
                r.register(Box::new(g.clone()))?;
                g
            },
            coalesced: {
                let c = IntCounter::with_opts(
                    Opts::new(
                        "coalesced_requests_total",
                        "Lookups that waited for an identical lookup already under way instead \
                         of asking the systems themselves.",
                    )
                    .namespace(NAMESPACE),
                )?;
                r.register(Box::new(c.clone()))?;
                c
            },
            rate_limited: counter_vec(
                &r,
                "rate_limited_requests_total",
                "Requests refused or shed by a rate limit: inbound (callers, 429) or outbound \
                 (the per-system throttle).",
                &["direction"],
            )?,
            sessions: counter_vec(
                &r,
                "upstream_sessions_total",
                "Session operations on management systems: login, relogin (a later login, \
                 e.g. after expiry), logout; by outcome.",
                &["system", "operation", "outcome"],
            )?,
            logged_in: Mutex::new(HashSet::new()),
            inner_events,
            http_refusals: counter_vec(
                &r,
                "http_refusals_total",
                "Requests refused before reaching a route, by reason (no_token, \
                 malformed_authorization, invalid_token, insufficient_scope, \
                 auth_failures_limited, rate_limited). Logged only as periodic summaries.",
                &["reason"],
            )?,
            fleet_servers: gauge_vec(
                &r,
                "fleet_index_servers",
                "Servers in each system's fleet index (from its last successful sweep).",
                &["system"],
            )?,
            fleet_age: gauge_vec(
                &r,
                "fleet_index_age_seconds",
                "Age of each system's fleet index: seconds since the sweep it comes from started.",
                &["system"],
            )?,
            bmc_refusing: gauge_vec(
                &r,
                "bmc_credential_refusing_bmcs",
                "BMCs that refused a credential within its hold period (it is not sent to them \
                 again until then), per system and credential name.",
                &["system", "credential"],
            )?,
            bmc_suspended: gauge_vec(
                &r,
                "bmc_credential_suspended",
                "1 while a credential is suspended for every BMC of a system (refused by too many).",
                &["system", "credential"],
            )?,
            fleet_conflicts: gauge_vec(
                &r,
                "fleet_conflicts",
                "MACs (kind=mac) or BMC addresses (kind=bmc) claimed by two or more indexed servers.",
                &["kind"],
            )?,
            fleet_sweeps: counter_vec(
                &r,
                "fleet_sweeps_total",
                "Fleet sweeps, by system and outcome (ok, error).",
                &["system", "outcome"],
            )?,
            fleet_sweep_duration: histogram_vec(
                &r,
                "fleet_sweep_duration_seconds",
                "Wall time of one fleet sweep, by system.",
                &["system"],
                vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0],
            )?,
            fleet_sweep_calls: counter_vec(
                &r,
                "fleet_sweep_calls_total",
                "Requests fleet sweeps sent to each system (and the systems it reaches through).",
                &["system"],
            )?,
            fleet_last_sweep_calls: gauge_vec(
                &r,
                "fleet_last_sweep_calls",
                "Requests the last fleet sweep of each system sent.",
                &["system"],
            )?,
            cache_outcomes: Vec::new(),
            registry: r,
        };
        // Zero series from the start, so that rate() and alerts work before the first refusal.
        for direction in ["inbound", "outbound"] {
            m.rate_limited.with_label_values(&[direction]);
        }
        for reason in crate::http::refusals::RefusalKind::ALL {
            m.http_refusals.with_label_values(&[reason.as_str()]);
        }
        m.cache_outcomes = ["hit", "index", "miss", "stale", "negative_hit"]
            .into_iter()
            .map(|o| (o, m.cache_lookups.with_label_values(&[o])))
            .collect();
        #[cfg(target_os = "linux")]
        m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(m)
    }

    /// The series one kind of answer (route, method, status) is counted in, to be kept and
    /// reused: looking the labels up costs more than counting. `route` must be a template
    /// (`/servers/{name}`), never a path.
    pub fn http_series(&self, route: &str, method: &str, status: u16) -> HttpSeries {
        HttpSeries {
            requests: self
                .http_requests
                .with_label_values(&[route, method, &status.to_string()]),
            duration: self.http_duration.with_label_values(&[route, method]),
            rate_limited: (status == 429)
                .then(|| self.rate_limited.with_label_values(&["inbound"])),
        }
    }

    /// One request refused by auth or the inbound limiter (`reason` from `RefusalKind`).
    pub fn http_refusal(&self, reason: &str) {
        self.http_refusals.with_label_values(&[reason]).inc();
    }

    /// The callback circuit breakers call on every state change.
    pub fn breaker_observer(self: &Arc<Self>) -> BreakerObserver {
        let me = Arc::clone(self);
        Arc::new(move |system: &str, from: BreakerState, to: BreakerState| {
            me.breaker_transitions
                .with_label_values(&[system, from.as_str(), to.as_str()])
                .inc();
        })
    }

    /// The text exposition, with state gauges refreshed from `lookup` first.
    pub fn render(&self, lookup: &LookupService) -> Result<String, MetricsError> {
        self.cache_entries
            .set(i64::try_from(lookup.cached_entries()).unwrap_or(i64::MAX));
        for status in lookup.statuses() {
            for c in &status.credentials {
                let labels = [status.name.as_str(), c.name.as_str()];
                self.bmc_refusing
                    .with_label_values(&labels)
                    .set(i64::try_from(c.refused_by).unwrap_or(i64::MAX));
                self.bmc_suspended
                    .with_label_values(&labels)
                    .set(i64::from(c.suspended_until.is_some()));
            }
            // UCS Central's domains have breakers of their own, labelled `<central>/<address>`.
            let members = status.domains.iter().map(|d| (&d.name, d.breaker));
            for (name, breaker) in std::iter::once((&status.name, status.breaker)).chain(members) {
                for state in [
                    BreakerState::Closed,
                    BreakerState::Open,
                    BreakerState::HalfOpen,
                ] {
                    self.breaker_state
                        .with_label_values(&[name, state.as_str()])
                        .set(i64::from(breaker == state));
                }
            }
        }
        let fleet = lookup.fleet();
        for (system, servers, age) in fleet.gauges() {
            self.fleet_servers
                .with_label_values(&[&system])
                .set(i64::try_from(servers).unwrap_or(i64::MAX));
            self.fleet_age
                .with_label_values(&[&system])
                .set(i64::try_from(age.as_secs()).unwrap_or(i64::MAX));
        }
        let conflicts = fleet.conflicts();
        for kind in [
            crate::fleet::ConflictKind::Mac,
            crate::fleet::ConflictKind::Bmc,
        ] {
            let n = conflicts.iter().filter(|c| c.kind == kind).count();
            self.fleet_conflicts
                .with_label_values(&[kind.as_str()])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// The session operation an endpoint class is, if any. The classes are the fixed strings the
/// backends pass to `Upstream::exchange`.
fn session_operation(endpoint: &str) -> Option<&'static str> {
    match endpoint {
        "POST /rest/login-sessions"
        | "aaaLogin"
        | "POST /api/SessionService/Sessions"
        | "POST /redfish/v1/SessionService/Sessions" => Some("login"),
        e if e == "aaaLogout"
            || e.starts_with("DELETE /rest/login-sessions")
            || e.starts_with("DELETE /api/SessionService/Sessions")
            || e.starts_with("DELETE /redfish/v1/SessionService/Sessions") =>
        {
            Some("logout")
        }
        _ => None,
    }
}

impl UpstreamObserver for Metrics {
    fn exchange(&self, system: &str, endpoint: &str, outcome: &str, elapsed: Duration) {
        self.upstream_requests
            .with_label_values(&[system, endpoint, outcome])
            .inc();
        if outcome == "throttled" {
            self.rate_limited.with_label_values(&["outbound"]).inc();
        } else {
            self.upstream_duration
                .with_label_values(&[system, endpoint])
                .observe(elapsed.as_secs_f64());
        }
        if let Some(op) = session_operation(endpoint) {
            let op = match (op, self.logged_in.lock()) {
                ("login", Ok(mut seen)) => {
                    let before = seen.contains(system);
                    if outcome == "ok" {
                        seen.insert(system.to_owned());
                    }
                    if before {
                        "relogin"
                    } else {
                        "login"
                    }
                }
                (op, _) => op,
            };
            self.sessions
                .with_label_values(&[system, op, outcome])
                .inc();
        }
    }
}

impl LookupEvents for Metrics {
    fn cache(&self, outcome: &str) {
        match self.cache_outcomes.iter().find(|(o, _)| *o == outcome) {
            Some((_, counter)) => counter.inc(),
            None => self.cache_lookups.with_label_values(&[outcome]).inc(),
        }
        self.inner_events.cache(outcome);
    }
    fn coalesced(&self) {
        self.coalesced.inc();
        self.inner_events.coalesced();
    }
    fn retry(&self, system: &str) {
        self.retries.with_label_values(&[system]).inc();
        self.inner_events.retry(system);
    }
    fn eviction(&self) {
        self.cache_evictions.inc();
        self.inner_events.eviction();
    }
    fn sweep(&self, system: &str, outcome: &str, elapsed: Duration, calls: u64) {
        self.fleet_sweeps
            .with_label_values(&[system, outcome])
            .inc();
        self.fleet_sweep_duration
            .with_label_values(&[system])
            .observe(elapsed.as_secs_f64());
        self.fleet_sweep_calls
            .with_label_values(&[system])
            .inc_by(calls);
        self.fleet_last_sweep_calls
            .with_label_values(&[system])
            .set(i64::try_from(calls).unwrap_or(i64::MAX));
        self.inner_events.sweep(system, outcome, elapsed, calls);
    }
}

/// One kind of HTTP answer's metrics, bound to their labels.
#[derive(Clone)]
pub struct HttpSeries {
    requests: prometheus::IntCounter,
    duration: prometheus::Histogram,
    rate_limited: Option<prometheus::IntCounter>,
}

impl HttpSeries {
    pub fn observe(&self, elapsed: Duration) {
        self.requests.inc();
        self.duration.observe(elapsed.as_secs_f64());
        if let Some(c) = &self.rate_limited {
            c.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::NoEvents;

    #[test]
    fn second_login_is_a_relogin() {
        let m = Metrics::new(Arc::new(NoEvents)).unwrap();
        let d = Duration::from_millis(3);
        m.exchange("ov", "POST /rest/login-sessions", "ok", d);
        m.exchange("ov", "POST /rest/login-sessions", "ok", d);
        m.exchange("ucs", "aaaLogin", "ok", d);
        m.exchange("ucs", "aaaLogout", "ok", d);
        m.exchange("ucs", "configResolveClass", "throttled", Duration::ZERO);
        let get = |labels: &[&str]| m.sessions.with_label_values(labels).get();
        assert_eq!(get(&["ov", "login", "ok"]), 1);
        assert_eq!(get(&["ov", "relogin", "ok"]), 1);
        assert_eq!(get(&["ucs", "login", "ok"]), 1);
        assert_eq!(get(&["ucs", "logout", "ok"]), 1);
        assert_eq!(m.rate_limited.with_label_values(&["outbound"]).get(), 1);
    }

    #[test]
    fn lookup_events_are_counted_and_forwarded() {
        struct Count(std::sync::atomic::AtomicUsize);
        impl LookupEvents for Count {
            fn coalesced(&self) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let inner = Arc::new(Count(Default::default()));
        let m = Metrics::new(inner.clone()).unwrap();
        m.coalesced();
        m.cache("hit");
        assert_eq!(m.coalesced.get(), 1);
        assert_eq!(m.cache_lookups.with_label_values(&["hit"]).get(), 1);
        assert_eq!(inner.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
