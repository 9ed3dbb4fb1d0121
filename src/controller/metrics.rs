//! The controller's Prometheus metrics, in their own registry (served on the controller's own
//! port, never mixed with a gateway's).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

const NAMESPACE: &str = "bmhgen_controller";

pub struct ControllerMetrics {
    registry: Registry,
    pub hosts_created: IntCounterVec,
    pub buffer_length: IntGauge,
    pub in_flight: IntGauge,
    pub in_flight_peak: IntGauge,
    pub buffer_wait: Histogram,
    pub releases: IntCounter,
    pub reconcile_duration: HistogramVec,
    pub reconcile_errors: IntCounterVec,
    pub phase_transitions: IntCounterVec,
    pub leader: IntGauge,
    /// NIC rules files refused (neither format, or invalid); the last good rules stay.
    pub rules_rejected: IntCounter,
}

impl ControllerMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace(NAMESPACE);
        let hosts_created = IntCounterVec::new(
            opts(
                "hosts_created_total",
                "BareMetalHosts created (first apply), by vendor.",
            ),
            &["vendor"],
        )?;
        let buffer_length = IntGauge::with_opts(opts(
            "buffer_length",
            "Generators waiting for an admission slot.",
        ))?;
        let in_flight = IntGauge::with_opts(opts(
            "in_flight",
            "Hosts in flight: observed in a counted provisioning state plus admitted and not yet observed.",
        ))?;
        let in_flight_peak = IntGauge::with_opts(opts(
            "in_flight_peak",
            "Highest in-flight count since the controller started.",
        ))?;
        let buffer_wait = Histogram::with_opts(
            HistogramOpts::new(
                "buffer_wait_seconds",
                "Time from bufferedAt to admission, for generators that were buffered.",
            )
            .namespace(NAMESPACE)
            .buckets(vec![
                1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0,
            ]),
        )?;
        let releases = IntCounter::with_opts(opts(
            "releases_total",
            "Buffered generators released for admission.",
        ))?;
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "reconcile_duration_seconds",
                "Reconcile duration, by outcome.",
            )
            .namespace(NAMESPACE)
            .buckets(vec![
                0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0,
            ]),
            &["outcome"],
        )?;
        let reconcile_errors = IntCounterVec::new(
            opts("reconcile_errors_total", "Reconcile failures, by cause."),
            &["cause"],
        )?;
        let phase_transitions = IntCounterVec::new(
            opts(
                "phase_transitions_total",
                "Generator phase changes, by new phase.",
            ),
            &["phase"],
        )?;
        let leader = IntGauge::with_opts(opts(
            "leader",
            "1 while this replica holds the leader Lease (or runs without leader election).",
        ))?;
        registry.register(Box::new(hosts_created.clone()))?;
        registry.register(Box::new(buffer_length.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(in_flight_peak.clone()))?;
        registry.register(Box::new(buffer_wait.clone()))?;
        registry.register(Box::new(releases.clone()))?;
        registry.register(Box::new(reconcile_duration.clone()))?;
        registry.register(Box::new(reconcile_errors.clone()))?;
        registry.register(Box::new(phase_transitions.clone()))?;
        let rules_rejected = IntCounter::with_opts(opts(
            "profile_rules_rejected_total",
            "NIC rules files refused on reload (the last good rules stay in force).",
        ))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(rules_rejected.clone()))?;
        Ok(Self {
            registry,
            hosts_created,
            buffer_length,
            in_flight,
            in_flight_peak,
            buffer_wait,
            releases,
            reconcile_duration,
            reconcile_errors,
            phase_transitions,
            leader,
            rules_rejected,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
