//! `inventory-gateway bench`: the gateway measured against the simulators on loopback, next to
//! references measured in the same run. One Markdown table on stdout; with `--out`, a
//! BENCHMARKS.md with the table, the command, the machine and how every number was obtained.
//!
//! Layout: the simulators and a bare actix-web handler run in this process; the gateway runs as
//! `inventory-gateway serve` in a child process (its memory and CPU are its own); the load
//! generator runs on its own current-thread runtime, i.e. one OS thread. Sections:
//! `warm` (cache hits vs the bare handler), `cold` (lookups vs the critical path derived in
//! `critical_path`), `coalescing`, `fanout`, `memory` (peak RSS with the cache filled).

use std::path::PathBuf;
use std::time::Duration;

use crate::domain::SystemKind;

pub mod client;
pub mod coalescing;
pub mod cold;
pub mod critical_path;
pub mod fanout;
pub mod fleet;
pub mod machine;
pub mod memory;
pub mod report;
pub mod stack;
pub mod warm;
pub mod wrk;

use client::{get_once, Endpoint, LoadSpec};
use machine::Machine;
use report::{mib, ms, thousands, Row};
use stack::{vendor_param, Gateway, GatewaySpec, Memory, Sims, Upstreams, KINDS};

/// Server workers of the gateway and of the bare handler alike: on 2 cores, one server thread
/// leaves the other core to the client thread.
pub const WORKERS: usize = 1;
/// Names per simulator cycled through by the warm path.
const WARM_NAMES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid option: {0}")]
    Options(String),
    #[error("setup failed: {0}")]
    Setup(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("{0}")]
    Measure(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Measured time of the warm path per target (gateway, bare handler), e.g. `10s`, `500ms`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Concurrent connections of the warm path and of the cache fill.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Latency L the simulators add to every call on the cold path (at least 5).
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    /// Distinct records put in the cache before reading the gateway's RSS.
    #[arg(long, default_value_t = 100_000)]
    pub records: usize,
    /// Sequential cold lookups per vendor (and no-hint lookups of the fan-out).
    #[arg(long, default_value_t = 20)]
    pub cold_lookups: usize,
    /// Concurrent cold requests for one name in the coalescing test.
    #[arg(long, default_value_t = 1000)]
    pub coalesce: usize,
    /// Servers per simulated system in the fleet-index run (sweeps, reverse and bulk lookups);
    /// 0 skips it.
    #[arg(long, default_value_t = 10_000)]
    pub fleet_servers: usize,
    /// Also write the table and its context to this file (e.g. BENCHMARKS.md).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `10s`, `500ms`, `2m`, or bare seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 10s or 500ms)"))?;
    let secs = match unit.trim() {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        other => return Err(format!("unknown unit {other:?} (ms, s, m)")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl BenchArgs {
    fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::Options(m.to_owned()));
        if self.concurrency == 0 || self.concurrency > 4096 {
            return bad("--concurrency must be within 1..=4096");
        }
        if self.latency_ms < 5 {
            return bad("--latency-ms must be at least 5 (rounds are told apart at ~1 ms)");
        }
        if self.records == 0 || self.cold_lookups == 0 || self.coalesce == 0 {
            return bad("--records, --cold-lookups and --coalesce must be at least 1");
        }
        if self.coalesce > 10_000 {
            return bad("--coalesce must be at most 10000 (one connection each)");
        }
        Ok(())
    }

    /// Warm-up per phase: a fifth of the measured time, within 0.2-2 s.
    fn warmup(&self) -> Duration {
        (self.duration / 5).clamp(Duration::from_millis(200), Duration::from_secs(2))
    }
}

/// Which server indices of every fleet each section uses, so that no section's lookups are
/// warmed by another's.
struct Layout {
    cold: usize,
    fill: [usize; 3],
    reserve: usize,
    fleet: usize,
}

impl Layout {
    fn new(args: &BenchArgs) -> Self {
        let cold = args.cold_lookups;
        // warm | cold | fan-out | coalescing | fill
        let reserve = WARM_NAMES + 2 * cold + 1;
        let fill = [0, 1, 2].map(|i| args.records / 3 + usize::from(i < args.records % 3));
        let fleet = reserve + fill[0];
        Self {
            cold,
            fill,
            reserve,
            fleet,
        }
    }

    fn warm<'a>(&self, up: &'a Upstreams, kind: SystemKind) -> &'a [String] {
        slice(up.names(kind), 0, WARM_NAMES)
    }

    fn cold<'a>(&self, up: &'a Upstreams, kind: SystemKind) -> &'a [String] {
        slice(up.names(kind), WARM_NAMES, self.cold)
    }

    fn fanout<'a>(&self, up: &'a Upstreams) -> &'a [String] {
        slice(up.names(fanout::OWNER), WARM_NAMES + self.cold, self.cold)
    }

    fn coalescing<'a>(&self, up: &'a Upstreams) -> Option<&'a String> {
        up.names(coalescing::SYSTEM).get(WARM_NAMES + 2 * self.cold)
    }

    fn fill(&self, up: &Upstreams) -> Vec<String> {
        KINDS
            .iter()
            .zip(self.fill)
            .flat_map(|(&kind, n)| {
                slice(up.names(kind), self.reserve, n)
                    .iter()
                    .map(move |name| format!("/servers/{name}?vendor={}", vendor_param(kind)))
            })
            .collect()
    }
}

fn slice(names: &[String], from: usize, len: usize) -> &[String] {
    let from = from.min(names.len());
    &names[from..(from + len).min(names.len())]
}

/// What the gateway was running with, found out over HTTP rather than assumed.
struct Features {
    auth: String,
    metrics: String,
}

async fn detect_features(gateway: &Endpoint, probe_name: &str) -> Features {
    let path = format!("/servers/{probe_name}");
    let auth = match get_once(&gateway.anonymous(), &path).await {
        Ok(r) if r.status == 401 => "ON (a bearer token is sent with every request)".to_owned(),
        Ok(r) => format!("OFF (answered {} without a token)", r.status),
        Err(e) => format!("unknown ({e})"),
    };
    let metrics = match get_once(gateway, "/metrics").await {
        Ok(r)
            if r.status == 200
                && String::from_utf8_lossy(&r.body).contains("inventory_gateway_http") =>
        {
            "ON (per-request HTTP metrics middleware; /metrics answers)".to_owned()
        }
        Ok(r) => format!("not detected (/metrics answered {})", r.status),
        Err(e) => format!("unknown ({e})"),
    };
    Features { auth, metrics }
}

/// Everything the client thread measured; a failed section keeps its error.
struct Measured {
    features: Features,
    warm: Result<warm::WarmResult, String>,
    /// The warm path at the shipped log settings (`info`: access log on).
    warm_shipped: Option<Result<warm::WarmResult, String>>,
    cold: Vec<(SystemKind, Result<cold::ColdResult, String>)>,
    /// Median of a direct simulator call delayed L (no gateway in between).
    direct_call: Result<Duration, String>,
    coalescing: Result<coalescing::CoalescingResult, String>,
    fanout: Result<fanout::FanoutResult, String>,
    rss: Result<memory::RssResult, String>,
    /// None when skipped (`--fleet-servers 0`).
    fleet: Option<Result<fleet::FleetResult, String>>,
    load_at_end: String,
}

struct ClientCtx {
    args: BenchArgs,
    gateway: Endpoint,
    gateway_pid: u32,
    idle: Option<Memory>,
    upstreams: Upstreams,
    layout: Layout,
}

async fn measure_all(ctx: ClientCtx) -> Measured {
    let ClientCtx {
        args,
        gateway,
        gateway_pid,
        idle,
        upstreams: up,
        layout,
    } = ctx;
    let probe = up
        .names(SystemKind::Oneview)
        .first()
        .cloned()
        .unwrap_or_default();
    let features = detect_features(&gateway, &probe).await;

    eprintln!(
        "bench: warm path ({:?} per target, {} connections)",
        args.duration, args.concurrency
    );
    let warm_paths = warm_paths(&layout, &up);
    let spec = LoadSpec {
        concurrency: args.concurrency,
        warmup: args.warmup(),
        duration: args.duration,
    };
    let warm = warm::measure(&gateway, gateway_pid, &warm_paths, spec, WORKERS)
        .await
        .map_err(|e| e.to_string());

    let mut cold_results = Vec::new();
    for kind in KINDS {
        eprintln!(
            "bench: cold path {kind} ({} lookups, L = {} ms)",
            layout.cold, args.latency_ms
        );
        let names = layout.cold(&up, kind);
        let r = cold::measure(&gateway, &up, kind, names, args.latency_ms).await;
        cold_results.push((kind, r.map_err(|e| e.to_string())));
    }

    let direct_call = cold::direct_call(
        &up,
        SystemKind::Oneview,
        "/rest/version",
        args.latency_ms,
        10,
    )
    .await
    .map_err(|e| e.to_string());

    eprintln!("bench: coalescing ({} concurrent requests)", args.coalesce);
    let coalescing = match layout.coalescing(&up) {
        Some(name) => coalescing::measure(&gateway, &up, name, args.coalesce)
            .await
            .map_err(|e| e.to_string()),
        None => Err("no name left in the fleet".into()),
    };

    eprintln!("bench: fan-out ({} lookups)", layout.cold);
    let fanout = fanout::measure(&gateway, &up, layout.fanout(&up))
        .await
        .map_err(|e| e.to_string());

    let fill = layout.fill(&up);
    eprintln!("bench: filling the cache with {} records", fill.len());
    let rss = memory::measure(&gateway, gateway_pid, idle, &fill, args.concurrency)
        .await
        .map_err(|e| e.to_string());

    Measured {
        features,
        warm,
        cold: cold_results,
        direct_call,
        coalescing,
        fanout,
        rss,
        fleet: None,
        warm_shipped: None,
        load_at_end: machine::load_average(),
    }
}

/// Runs the whole benchmark. `gateway_exe` is this program (run as `serve` for the gateway);
/// `argv` is the command line, quoted in BENCHMARKS.md.
pub async fn run(args: BenchArgs, gateway_exe: PathBuf, argv: &[String]) -> Result<(), BenchError> {
    args.validate()?;
    let machine = Machine::describe();
    let layout = Layout::new(&args);
    eprintln!(
        "bench: {} simulated servers per system, gateway {} (child process)",
        layout.fleet,
        gateway_exe.display()
    );
    let sims = Sims::start(layout.fleet)?;
    let dir = std::env::temp_dir().join(format!("inventory-gateway-bench-{}", std::process::id()));
    let spec = GatewaySpec {
        exe: &gateway_exe,
        dir: &dir,
        workers: WORKERS,
        max_entries: (args.records + 6 * layout.reserve + 1000) as u64,
        fleet: false,
        shipped_logs: false,
    };
    let outcome = match Gateway::start(&spec, &sims).await {
        Ok(mut gateway) => {
            let ctx = ClientCtx {
                args: args.clone(),
                gateway: gateway.endpoint.clone(),
                gateway_pid: gateway.pid,
                idle: gateway.memory(),
                upstreams: sims.upstreams.clone(),
                layout: Layout::new(&args),
            };
            let measured = on_client_thread(move || measure_all(ctx)).await;
            let config = gateway.config_text.clone();
            gateway.stop();
            measured.map(|m| (m, config))
        }
        Err(e) => Err(e),
    };
    // The warm path again at the shipped log settings: a gateway of its own, same paths.
    let warm_shipped = if outcome.is_ok() {
        let shipped = GatewaySpec {
            shipped_logs: true,
            ..spec
        };
        eprintln!("bench: warm path at the shipped log settings (info, access log on)");
        Some(
            warm_at(&shipped, &sims, &args, &layout)
                .await
                .map_err(|e| e.to_string()),
        )
    } else {
        None
    };
    sims.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    let (mut measured, config) = outcome?;
    measured.warm_shipped = warm_shipped;
    if args.fleet_servers > 0 {
        let fleet = fleet::measure(&gateway_exe, args.fleet_servers, args.latency_ms)
            .await
            .map_err(|e| e.to_string());
        measured.fleet = Some(fleet);
        measured.load_at_end = machine::load_average();
    }

    let rows = rows(&args, &measured);
    let table = report::table(&rows);
    println!("{table}");
    println!(
        "gateway: auth {}; metrics {}; {} actix worker(s), bare handler the same.",
        measured.features.auth, measured.features.metrics, WORKERS
    );
    if let Some(Ok(w)) = &measured.warm_shipped {
        println!(
            "warm path at the shipped log settings (info, access log on): ratio {:.2}",
            w.ratio()
        );
    }
    println!(
        "build: {}; load average at start {}, at end {}",
        machine.build, machine.load_at_start, measured.load_at_end
    );
    if let Some(path) = &args.out {
        let text = markdown(&args, argv, &machine, &layout, &measured, &rows, &config);
        std::fs::write(path, text).map_err(|source| BenchError::Write {
            path: path.clone(),
            source,
        })?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(())
}

/// The warm path alone, on a gateway started from `spec`.
async fn warm_at(
    spec: &GatewaySpec<'_>,
    sims: &Sims,
    args: &BenchArgs,
    layout: &Layout,
) -> Result<warm::WarmResult, BenchError> {
    let mut gateway = Gateway::start(spec, sims).await?;
    let paths = warm_paths(layout, &sims.upstreams);
    let endpoint = gateway.endpoint.clone();
    let pid = gateway.pid;
    let load = LoadSpec {
        concurrency: args.concurrency,
        warmup: args.warmup(),
        duration: args.duration,
    };
    let result = on_client_thread(move || async move {
        warm::measure(&endpoint, pid, &paths, load, WORKERS).await
    })
    .await
    .and_then(|r| r);
    gateway.stop();
    result
}

fn warm_paths(layout: &Layout, up: &Upstreams) -> Vec<String> {
    KINDS
        .iter()
        .flat_map(|&k| layout.warm(up, k).iter().map(|n| format!("/servers/{n}")))
        .collect()
}

/// Runs the measurements on a dedicated OS thread with a current-thread runtime, so that the
/// load generator costs one thread and never competes with the servers' runtimes.
async fn on_client_thread<F, Fut, T>(work: F) -> Result<T, BenchError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-client".into())
        .spawn(move || {
            let out = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(work()));
            let _ = tx.send(out);
        })
        .map_err(|e| BenchError::Setup(format!("client thread: {e}")))?;
    match rx.await {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(BenchError::Setup(format!("client runtime: {e}"))),
        Err(_) => Err(BenchError::Setup("the client thread panicked".into())),
    }
}

fn vendor_label(kind: SystemKind) -> String {
    let name = match kind {
        SystemKind::Oneview => "OneView",
        SystemKind::Ucsm => "UCS Manager",
        SystemKind::UcsCentral => "UCS Central",
        SystemKind::Ome => "OME",
        SystemKind::Intersight => "Intersight",
        SystemKind::Redfish => "Redfish BMCs",
    };
    format!("cold path: {} ({name})", vendor_param(kind))
}

fn pct(part: Option<Duration>, whole: Duration) -> String {
    match part {
        Some(p) if !whole.is_zero() => {
            format!("{:.0}%", 100.0 * p.as_secs_f64() / whole.as_secs_f64())
        }
        _ => "n/a".into(),
    }
}

fn throughput_row(measure: String, w: &warm::WarmResult, target: f64) -> Row {
    let ratio = w.ratio();
    let (gw, bare) = match &w.external {
        Some(Ok((gw, bare))) => (gw.per_second, bare.per_second),
        _ => (w.gateway.per_second(), w.bare.per_second()),
    };
    let by = if matches!(w.external, Some(Ok(_))) {
        " (wrk)"
    } else {
        ""
    };
    Row {
        measure,
        gateway: format!("{} req/s{by}", thousands(gw)),
        reference: format!(
            "bare actix-web, same bytes and headers: {} req/s{by}",
            thousands(bare)
        ),
        ratio: format!("{ratio:.2}"),
        target: format!("≥ {target:.2}"),
        met: Some(ratio >= target && w.gateway.non_ok == 0 && w.gateway.errors == 0),
    }
}

fn latency_row(label: &str, connections: usize, l: &warm::Latencies) -> Row {
    let pair = |(p50, p99): (Option<Duration>, Option<Duration>)| {
        let show = |d: Option<Duration>| d.map_or("n/a".into(), ms);
        format!("{} / {}", show(p50), show(p99))
    };
    Row {
        measure: format!("{label} p50 / p99, c = {connections} ({})", l.client),
        gateway: pair(l.gateway),
        reference: pair(l.bare),
        ratio: "–".into(),
        target: "–".into(),
        met: None,
    }
}

fn rows(args: &BenchArgs, m: &Measured) -> Vec<Row> {
    let [l_rps, l_lat, _, _, _, l_coal, l_fan, l_rss, ..] = report::ROW_LABELS;
    let mut rows = Vec::new();
    match &m.warm {
        Ok(w) => {
            rows.push(throughput_row(
                format!(
                    "{l_rps}, `GET /servers/{{name}}` cache hit, c = {}",
                    args.concurrency
                ),
                w,
                0.90,
            ));
            let at = match &w.external {
                Some(Ok(runs)) => warm::Latencies::of_wrk(runs),
                _ => warm::Latencies::of_client(&w.gateway, &w.bare),
            };
            rows.push(latency_row(l_lat, args.concurrency, &at));
            rows.push(match &w.wide {
                Ok(wide) => latency_row(l_lat, warm::WIDE, wide),
                Err(e) => Row::failed(format!("{l_lat} c = {}", warm::WIDE), e, "–"),
            });
            let shipped = format!(
                "{l_rps} at the shipped log settings (`info`, access log on), c = {}",
                args.concurrency
            );
            match &m.warm_shipped {
                Some(Ok(s)) => rows.push(throughput_row(shipped, s, 0.75)),
                Some(Err(e)) => rows.push(Row::failed(shipped, e, "≥ 0.75")),
                None => {}
            }
        }
        Err(e) => {
            rows.push(Row::failed(l_rps.into(), e, "≥ 0.90"));
            rows.push(Row::failed(l_lat.into(), e, "–"));
        }
    }
    for (kind, r) in &m.cold {
        let label = vendor_label(*kind);
        match r {
            Ok(c) => {
                let ratio = c.ratio;
                let unusual = if c.unusual > 0 {
                    let other = if c.rounds_range.0 == c.rounds {
                        c.rounds_range.1
                    } else {
                        c.rounds_range.0
                    };
                    format!(
                        "; {} of {} lookups took {other} rounds",
                        c.unusual, c.lookups
                    )
                } else {
                    String::new()
                };
                rows.push(Row {
                    measure: format!(
                        "{label}, L = {} ms, median of {}",
                        args.latency_ms, c.lookups
                    ),
                    gateway: format!("{} (max {})", ms(c.median), ms(c.max)),
                    reference: format!(
                        "critical path {} round(s) × {} = {} ({:.1} calls/lookup{unusual})",
                        c.rounds,
                        ms(c.latency),
                        ms(c.critical),
                        c.calls_per_lookup
                    ),
                    ratio: format!("{ratio:.2}"),
                    target: "≤ 1.15".into(),
                    met: Some(ratio <= 1.15),
                });
            }
            Err(e) => rows.push(Row::failed(label, e, "≤ 1.15")),
        }
    }
    match &m.coalescing {
        Ok(c) => rows.push(Row {
            measure: format!(
                "{l_coal}: {} concurrent cold requests, one name",
                c.requests
            ),
            gateway: format!(
                "{} upstream lookup(s) ({} calls); {} × 200 ({} joined the flight, {} cache hits)",
                c.query_calls, c.total_calls, c.ok, c.joined, c.hits
            ),
            reference: "1 lookup".into(),
            ratio: "–".into(),
            target: "exactly 1".into(),
            met: Some(c.query_calls == 1 && c.ok == c.requests),
        }),
        Err(e) => rows.push(Row::failed(l_coal.into(), e, "exactly 1")),
    }
    match &m.fanout {
        Ok(f) => rows.push(Row {
            measure: format!(
                "{l_fan}: no-hint cold lookup, systems at {}/{}/{} ms, median of {}",
                fanout::latency_ms(SystemKind::Oneview),
                fanout::latency_ms(SystemKind::Ucsm),
                fanout::latency_ms(SystemKind::Ome),
                f.lookups
            ),
            gateway: ms(f.measured),
            reference: format!("slowest system {}; sum {}", ms(f.slowest), ms(f.sum)),
            ratio: format!("{:.2} × slowest", f.ratio),
            target: "≈ slowest (≤ 1.15), not the sum".into(),
            met: Some(f.ratio <= 1.15 && f.measured < f.sum),
        }),
        Err(e) => rows.push(Row::failed(l_fan.into(), e, "≈ slowest")),
    }
    match &m.rss {
        Ok(r) => {
            let mem =
                |m: Option<Memory>, f: fn(Memory) -> u64| m.map_or("n/a".into(), |m| mib(f(m)));
            rows.push(Row {
                measure: format!("{l_rss}, {} cached records", thousands(r.records as f64)),
                gateway: format!(
                    "VmHWM {} (VmRSS {})",
                    mem(r.after, |m| m.hwm),
                    mem(r.after, |m| m.rss)
                ),
                reference: format!(
                    "RSS idle {}, before fill {}; ≈ {} per record",
                    mem(r.idle, |m| m.rss),
                    mem(r.before, |m| m.rss),
                    r.bytes_per_record()
                        .map_or("n/a".into(), |b| format!("{:.2} KiB", b as f64 / 1024.0))
                ),
                ratio: "–".into(),
                target: "≤ 1 KiB per record".into(),
                met: Some(r.ok == r.records && r.bytes_per_record().is_some_and(|b| b <= 1024)),
            });
        }
        Err(e) => rows.push(Row::failed(l_rss.into(), e, "≤ 1 KiB per record")),
    }
    if let Some(fleet) = &m.fleet {
        rows.extend(fleet_rows(fleet));
    }
    rows
}

/// What the replaced operator spent on one lookup of one name in a system of `n` servers,
/// counted from its code (`roiblum1/BareMetalHostUCS`, `src/*_server_strategy.py`): it logged
/// in and out per lookup and listed every profile to find one.
fn operator_calls(kind: SystemKind, n: u64) -> String {
    match kind {
        // login + every profile page (count=-1: the appliance's 64) + the hardware + logout.
        SystemKind::Oneview => format!("{} calls per lookup", n.div_ceil(64) + 3),
        // Central: login, sys, lsServer (all n in one answer), logout; the domain: 3 login
        // calls, 2 children queries, logout; plus the profile's DN.
        SystemKind::UcsCentral => "11 calls per lookup (one answer holds all n profiles)".into(),
        // login, profiles by 130 and devices by 40 up to the match (half-way on average),
        // the NIC inventory, logout.
        SystemKind::Ome => format!(
            "≈ {} calls per lookup",
            3 + (n / 2).div_ceil(130) + (n / 2).div_ceil(40)
        ),
        SystemKind::Ucsm | SystemKind::Intersight | SystemKind::Redfish => "not supported".into(),
    }
}

fn fleet_rows(fleet: &Result<fleet::FleetResult, String>) -> Vec<Row> {
    let [.., l_sweep, l_index, l_mac, l_bulk] = report::ROW_LABELS;
    let f = match fleet {
        Ok(f) => f,
        Err(e) => {
            return [l_sweep, l_index, l_mac, l_bulk]
                .into_iter()
                .map(|l| Row::failed(l.into(), e, "report"))
                .collect()
        }
    };
    let n = f.servers_per_system as u64;
    // Paged reads of at least 64 items (OneView's page; the others read 200-1,000), two
    // collections at most per system, plus logins and the few fixed calls of each protocol.
    let bound = 2 * n.div_ceil(64) + 16;
    // OME has no bulk read of NIC inventory: one per device, on the first sweep only.
    let ome_first = n + 2 * n.div_ceil(500) + 1;
    let mut rows = Vec::new();
    let sweeps = f
        .sweeps
        .iter()
        .map(|s| (s, ""))
        .chain(f.ome_again.iter().map(|s| (s, ", again (unchanged)")));
    for (s, again) in sweeps {
        let first_ome = s.kind == SystemKind::Ome && again.is_empty();
        let target = if first_ome {
            format!("≤ n + 2⌈n/500⌉ + 1 = {ome_first} (no bulk NIC read)")
        } else {
            format!("O(n / page): ≤ 2⌈n/64⌉ + 16 = {bound}")
        };
        let limit = if first_ome { ome_first } else { bound };
        rows.push(match &s.error {
            Some(e) => Row::failed(
                format!("{l_sweep}: {}{again}", vendor_label(s.kind)),
                e,
                &target,
            ),
            None => Row {
                measure: format!(
                    "{l_sweep}: {}{again}, n = {} servers, L = {} ms",
                    vendor_label(s.kind).trim_start_matches("cold path: "),
                    thousands(n as f64),
                    f.latency_ms
                ),
                gateway: format!(
                    "{} calls, {:.1} s, {} servers indexed",
                    thousands(s.calls as f64),
                    s.wall.as_secs_f64(),
                    thousands(s.servers as f64)
                ),
                reference: format!("replaced operator: {}", operator_calls(s.kind, n)),
                ratio: "–".into(),
                target,
                met: Some(s.servers == n && s.calls <= limit),
            },
        });
    }
    let mem = |m: Option<Memory>| m.map_or("n/a".into(), |m| mib(m.rss));
    rows.push(Row {
        measure: format!("{l_index}, {} servers indexed", thousands(f.indexed as f64)),
        gateway: f
            .rss_per_10k()
            .map_or("n/a".into(), |b| format!("≈ {} per 10,000 servers", mib(b))),
        reference: format!(
            "RSS before the sweeps {}, after {}",
            mem(f.before),
            mem(f.after)
        ),
        ratio: "–".into(),
        target: "report".into(),
        met: None,
    });
    let p = |v: &[u64], q: f64| ms(Duration::from_micros(client::percentile(v, q)));
    let total_lookups = (n * KINDS.len() as u64) as f64;
    rows.push(Row {
        measure: format!(
            "{l_mac}: `GET /servers?mac=`, {} servers indexed, p50 / p99 of {}",
            thousands(total_lookups),
            f.mac.len()
        ),
        gateway: format!(
            "{} / {} ({} of {} found exactly one server)",
            p(&f.mac, 50.0),
            p(&f.mac, 99.0),
            f.mac_exact,
            f.mac.len()
        ),
        reference: "replaced operator: no reverse lookup".into(),
        ratio: "–".into(),
        target: "every MAC found once".into(),
        met: Some(f.mac_exact == f.mac.len() && !f.mac.is_empty()),
    });
    let requests = f.bulk.len();
    let operator_per_lookup = n.div_ceil(64) + 3;
    rows.push(Row {
        measure: format!(
            "{l_bulk}: `POST /servers/lookup`, {} names from the index, p50 / p99 of {requests}",
            thousands(fleet::BULK_NAMES as f64)
        ),
        gateway: format!(
            "{} / {} ({} of {} names found, {} from the index)",
            p(&f.bulk, 50.0),
            p(&f.bulk, 99.0),
            thousands(f.bulk_found as f64),
            thousands((requests * fleet::BULK_NAMES) as f64),
            thousands(f.bulk_from_index as f64)
        ),
        reference: format!(
            "replaced operator (OneView, one name at a time): {} calls ≈ {:.0} min at L",
            thousands((fleet::BULK_NAMES as u64 * operator_per_lookup) as f64),
            (fleet::BULK_NAMES as u64 * operator_per_lookup * f.latency_ms) as f64 / 60_000.0
        ),
        ratio: "–".into(),
        target: "every name found, from the index".into(),
        met: Some(
            f.bulk_found == requests * fleet::BULK_NAMES
                && f.bulk_from_index == f.bulk_found
                && requests > 0,
        ),
    });
    rows
}

#[allow(clippy::too_many_arguments)]
fn markdown(
    args: &BenchArgs,
    argv: &[String],
    machine: &Machine,
    layout: &Layout,
    m: &Measured,
    rows: &[Row],
    config: &str,
) -> String {
    let command = {
        let mut parts: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
        if let Some(first) = parts.first_mut() {
            *first = std::path::Path::new(first.as_str())
                .file_name()
                .map_or(first.clone(), |f| f.to_string_lossy().into_owned());
        }
        parts.join(" ")
    };
    let mut out = String::from("# Benchmarks\n\n");
    out.push_str(&format!(
        "Produced by `{command}` (the release binary: `cargo build --release`, then \
         `target/release/{command}`), on {}.\n\n",
        machine.date
    ));
    out.push_str(&report::table(rows));
    out.push_str("\n## Machine\n\n");
    out.push_str(&format!(
        "- CPU: {} × {}\n- Memory: {}\n- Kernel: {}\n- Build: {}\n- Load average (1/5/15 min) at start: {}; at end: {}\n",
        machine.nproc, machine.cpu_model, machine.mem_total, machine.kernel, machine.build,
        machine.load_at_start, m.load_at_end
    ));
    out.push_str("\n## Setup\n\n");
    out.push_str(&format!(
        "- **Load generator**: the harness's own HTTP/1.1 client (`src/bench/client.rs`, on \
         hyper 1.x's connection API): {} keep-alive connections, each sending its next request \
         as soon as the previous answer is read (closed loop), for a fixed time after a warm-up. \
         It runs on its own current-thread tokio runtime, i.e. **one OS thread**, so that it \
         takes one core and leaves the other to the server under test. Every latency is kept \
         and sorted; percentiles are exact (nearest rank).\n",
        args.concurrency
    ));
    out.push_str(&format!(
        "- **Gateway**: this binary as `inventory-gateway serve`, in a **child process** (own \
         RSS, own CPU accounting), `[server] workers = {WORKERS}`. Auth: {}. Metrics: {}. The \
         inbound rate limit is enabled with limits out of reach (its cost is measured, it \
         refuses nothing); the outbound throttle is raised (10⁶ req/s, 512 in flight) so the \
         cache fill is not paced at the default 100 req/s; cache `max_entries` = {}; log \
         filter `warn`. The full config is at the end.\n",
        m.features.auth,
        m.features.metrics,
        args.records + 6 * layout.reserve + 1000
    ));
    out.push_str(&format!(
        "- **Bare reference**: an actix-web app in the harness process, {WORKERS} worker, \
         `GET /servers/{{name}}` answering, from memory, the gateway's own answer for that path \
         (body bytes and headers captured from the gateway when the run starts; only \
         `content-length` and `date` are its own){}.\n",
        match &m.warm {
            Ok(w) => format!(
                " ({} bytes against the gateway's {})",
                w.bare.body_bytes, w.gateway.body_bytes
            ),
            Err(_) => String::new(),
        }
    ));
    out.push_str(&format!(
        "- **Simulators**: OneView, UCS Manager and OME simulators in the harness process \
         (actix-web, 2 workers each, plain HTTP on 127.0.0.1), {} generated servers each.\n\
         - Everything shares the machine's {} core(s) over loopback: absolute req/s depend on \
         the machine; the ratios, measured in the same run, are the point.\n",
        thousands(layout.fleet as f64),
        machine.nproc
    ));
    if let Ok(w) = &m.warm {
        let half = args.duration / 2;
        out.push_str(&format!(
            "- **Warm path**: {} names cached first (one no-hint lookup each), then cycled; \
             phases interleaved bare, gateway, bare, gateway, each {:?} warm-up + {:?} \
             measured ({:?} per target). {} of {} gateway answers were `X-Cache: hit`; \
             non-200: {}; transport errors: {}. Client thread busy {} of the measured time \
             (bare phases) and {} (gateway phases); gateway process CPU {} of one core during \
             its phases.\n",
            w.names,
            args.warmup(),
            half,
            args.duration,
            thousands(w.gateway.cache_hits as f64),
            thousands(w.gateway.requests() as f64),
            w.gateway.non_ok,
            w.gateway.errors,
            pct(w.bare.client_cpu, w.bare.measured),
            pct(w.gateway.client_cpu, w.gateway.measured),
            pct(w.gateway_cpu, w.gateway_wall),
        ));
        out.push_str(&match &w.external {
            Some(Ok((gw, bare))) => format!(
                "- **Warm path, external client**: `wrk` (1 thread, {} connections{}), same \
                 paths and token, interleaved bare, gateway, bare, gateway: gateway {} req/s \
                 (p50 {} / p99 {}, non-2xx {}, socket errors {}), bare {} req/s (p50 {} / p99 \
                 {}); ratio {:.2}. The harness's own client measured {:.2}. The table's warm \
                 rows are `wrk`'s. The latency at {} connections is measured after, in the same \
                 way (bare, gateway, bare, gateway).\n",
                args.concurrency,
                match (wrk::pinned(), wrk::server_core()) {
                    (true, Some(core)) => format!(
                        ", pinned to core 0 with `taskset`; the gateway child and the bare \
                         handler's worker pinned to core {core}"
                    ),
                    (true, None) => ", pinned to core 0 with `taskset`".to_owned(),
                    _ => String::new(),
                },
                thousands(gw.per_second),
                gw.p50.map_or_else(|| "n/a".into(), ms),
                gw.p99.map_or_else(|| "n/a".into(), ms),
                gw.non_2xx,
                gw.socket_errors,
                thousands(bare.per_second),
                bare.p50.map_or_else(|| "n/a".into(), ms),
                bare.p99.map_or_else(|| "n/a".into(), ms),
                w.ratio(),
                w.internal_ratio(),
                warm::WIDE,
            ),
            Some(Err(e)) => format!("- **Warm path, external client**: `wrk` failed: {e}\n"),
            None => "- **Warm path, external client**: `wrk` is not installed; the table's warm \
                     row is the harness's own client (busy time above).\n"
                .into(),
        });
    }
    match &m.warm_shipped {
        Some(Ok(w)) => {
            out.push_str(&format!(
            "- **Warm path at the shipped log settings** (a second gateway, log filter `info`: \
             one access log line per request; same paths, same bare reference bytes): ratio \
             {:.2} ({}; the harness client's {:.2}); gateway {} req/s.\n",
            w.ratio(),
            if matches!(w.external, Some(Ok(_))) { "`wrk`" } else { "harness client" },
            w.internal_ratio(),
            thousands(match &w.external {
                Some(Ok((gw, _))) => gw.per_second,
                _ => w.gateway.per_second(),
            }),
        ))
        }
        Some(Err(e)) => out.push_str(&format!(
            "- **Warm path at the shipped log settings**: failed: {e}\n"
        )),
        None => {}
    }
    out.push_str("\n## How the references are derived\n\n");
    out.push_str(&format!(
        "- **Cold path**: every call to the system is delayed L = {} ms by the simulator \
         (`/_sim/faults` `latency_ms`); {} sequential lookups per vendor of names never looked \
         up before, with the vendor hint (only that system asked), one keep-alive connection, \
         sessions already open. The critical path is *dependent rounds × L*, and the rounds \
         are read from the simulators' counters, not assumed: a simulator counts a call when \
         it arrives (before the delay); the harness samples every simulator's count about \
         once a millisecond during each lookup and timestamps each increase; arrivals more \
         than L/2 apart belong to different rounds (a call that needs an earlier answer \
         arrives ≥ L after it), arrivals within a millisecond or two are concurrent calls of \
         one round. Seen in this run:\n",
        args.latency_ms, layout.cold
    ));
    for (kind, r) in &m.cold {
        let (calls, rounds) = critical_path::protocol_minimum(*kind);
        match r {
            Ok(c) => out.push_str(&format!(
                "  - {kind}: {:.1} calls per lookup, {} dependent round(s) (range {}-{}); the \
                 protocol needs at least {calls} calls in {rounds} rounds{}.\n",
                c.calls_per_lookup,
                c.rounds,
                c.rounds_range.0,
                c.rounds_range.1,
                if c.rounds > rounds {
                    " — **more rounds than needed: calls that could run together do not**"
                } else {
                    ""
                }
            )),
            Err(e) => out.push_str(&format!("  - {kind}: not measured ({e})\n")),
        }
    }
    out.push_str(
        "  The protocols: OneView = profile query, then its server hardware; UCS Manager = \
         `configResolveClass lsServer`, then `configResolveDns` of its blade/rack unit; OME = \
         profile query, then the device and its NICs fetched concurrently (3 calls, 2 rounds), \
         except for a profile bound to a service tag rather than a device id: device by tag, \
         then its NICs (3 calls, 3 rounds). Each lookup is compared with its own rounds × L; \
         the ratio is the median of those per-lookup ratios.\n",
    );
    if let Ok(d) = &m.direct_call {
        out.push_str(&format!(
            "  For scale: a direct GET to a simulator delayed L = {} ms, no gateway in \
             between, takes {} (median of 10): the simulator's timer rounds each sleep up to \
             the next millisecond, so up to ~1 ms per round of the difference above the \
             critical path is the simulator's, not the gateway's.\n",
            args.latency_ms,
            ms(*d)
        ));
    }
    out.push_str(&format!(
        "- **Fan-out**: simulators at {}/{}/{} ms (OneView/UCSM/OME); names owned by OneView \
         (the fastest), looked up without a vendor hint and never before, so every system is \
         asked at once and the answer waits for the slower ones' \"not found\". Per lookup, \
         each system's rounds are derived as above; *slowest* = the largest rounds × L among \
         the systems, *sum* = what asking them one after another would cost.{}\n",
        fanout::latency_ms(SystemKind::Oneview),
        fanout::latency_ms(SystemKind::Ucsm),
        fanout::latency_ms(SystemKind::Ome),
        match &m.fanout {
            Ok(f) => format!(
                " A typical lookup: {}.",
                f.systems
                    .iter()
                    .map(|(k, calls, rounds)| format!("{k} {calls} call(s) in {rounds} round(s)"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(_) => String::new(),
        }
    ));
    out.push_str(&format!(
        "- **Coalescing**: OneView delayed {} ms per call so the lookup is still in flight \
         while the burst arrives; {} connections opened first, then one request on each at \
         once (`?vendor=hpe`, a name never looked up). An upstream lookup = a call to `{}` \
         (the query every OneView lookup starts with), counted by the simulator; all calls \
         are counted too.{}\n",
        coalescing::LATENCY.as_millis(),
        args.coalesce,
        coalescing::QUERY_KEY,
        match &m.coalescing {
            Ok(c) => format!(" The burst took {}.", ms(c.elapsed)),
            Err(_) => String::new(),
        }
    ));
    out.push_str(&format!(
        "- **Peak RSS**: the gateway child's `/proc/<pid>/status`: VmRSS when idle after \
         start, VmRSS just before the fill (after the sections above), then VmRSS and VmHWM \
         (the peak over the process's life) after filling the cache with {} distinct records \
         ({} per system, vendor hint, {} connections){}.\n",
        thousands(args.records as f64),
        thousands(layout.fill[0] as f64),
        args.concurrency,
        match &m.rss {
            Ok(r) => format!(
                ": {} answered 200, {} did not; the fill took {:.1} s; /metrics reports {} \
                 cache entries (the warm, cold, fan-out and coalescing records included)",
                thousands(r.ok as f64),
                r.failed,
                r.fill_time.as_secs_f64(),
                r.cache_entries
                    .map_or("n/a".into(), |n| thousands(n as f64))
            ),
            Err(_) => String::new(),
        }
    ));
    if let Some(Ok(f)) = &m.fleet {
        out.push_str(&format!(
            "- **Fleet index** (its own run, after the sections above): a second set of \
             simulators, {} servers each, every call delayed L = {} ms (the CIMCs behind \
             Intersight too), and a second gateway child with `[fleet]` on, the shipped \
             outbound throttle (100 req/s, 16 in flight per system) and sweep share (25 %: \
             25 req/s, 4 in flight), sweeps on demand only, and `max_response_bytes` raised to \
             64 MiB for every system (one simulated UCS Manager domain of that size answers its \
             class query with ~21 MB; real domains hold at most a few hundred servers). Each \
             system swept once with `POST /fleet/sweep?system=`, one after the other (wall time \
             measured by the client; calls as the gateway counts them, logins included), then \
             OME again with nothing changed. Index RSS: the gateway's VmRSS before the first \
             sweep and after the last, scaled to 10,000 servers. Then {} `GET /servers?mac=` \
             of random MACs and {} `POST /servers/lookup` of {} random names, one request at a \
             time on one keep-alive connection (reqwest), from the index (no system called). \
             The replaced operator's costs are counted from its code \
             (`roiblum1/BareMetalHostUCS`, `src/*_server_strategy.py`): it logs in and out per \
             lookup and lists profiles until the match (OneView: every page, the appliance's \
             page of 64).\n",
            thousands(f.servers_per_system as f64),
            f.latency_ms,
            f.mac.len(),
            f.bulk.len(),
            thousands(fleet::BULK_NAMES as f64),
        ));
    }
    out.push_str("\n## Targets missed\n\n");
    let missed: Vec<&Row> = rows.iter().filter(|r| r.met == Some(false)).collect();
    if missed.is_empty() {
        out.push_str("None in this run.\n");
    } else {
        for r in missed {
            out.push_str(&format!(
                "- {}: {} against {} (target {}).\n",
                r.measure, r.gateway, r.reference, r.target
            ));
        }
        if let Ok(w) = &m.warm {
            if w.ratio() < 0.9 {
                out.push_str(&format!(
                    "  Warm path context: the gateway answers {} bytes against the bare \
                     handler's {}, and passes every request through its one middleware (request \
                     id, route, size limits, rate limit, auth with SHA-256 of the token, \
                     metrics) and a cache read before answering bytes rendered when the record \
                     was fetched; the client thread was busy {} of the time in the bare phases.\n",
                    w.gateway.body_bytes,
                    w.bare.body_bytes,
                    pct(w.bare.client_cpu, w.bare.measured)
                ));
            }
        }
        if let (Ok(r), Ok(w)) = (&m.rss, &m.warm) {
            if r.bytes_per_record().is_some_and(|b| b > 1024) {
                out.push_str(&format!(
                    "  Memory context: the cache keeps each record as the JSON it answers (the \
                     warm path's answers here are {} bytes each), so that a hit serialises \
                     nothing; the rest is the cache entry, its key and the per-name \"not here\" \
                     memory, and the allocator's own overhead.\n",
                    w.gateway.body_bytes
                ));
            }
        }
    }
    out.push_str("\n## Gateway config used\n\n```toml\n");
    out.push_str(&redact_paths(config));
    out.push_str("```\n");
    out
}

/// Temporary paths in the config say nothing to a reader.
fn redact_paths(config: &str) -> String {
    config
        .lines()
        .map(|l| {
            if l.starts_with("tokens_file") {
                "tokens_file = \"<temporary tokens file: one read-scoped token>\"".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '=' | ':' | ',')
        })
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("1h").is_err());
    }

    #[test]
    fn sections_use_disjoint_names() {
        let args = BenchArgs {
            duration: Duration::from_secs(1),
            concurrency: 4,
            latency_ms: 20,
            records: 10,
            cold_lookups: 3,
            coalesce: 10,
            fleet_servers: 0,
            out: None,
        };
        let layout = Layout::new(&args);
        assert_eq!(layout.fill, [4, 3, 3]);
        let names: Vec<String> = (1..=layout.fleet).map(|i| format!("n{i}")).collect();
        let up_names = &names;
        let warm = slice(up_names, 0, WARM_NAMES);
        let cold = slice(up_names, WARM_NAMES, layout.cold);
        let fan = slice(up_names, WARM_NAMES + layout.cold, layout.cold);
        let coal = &up_names[WARM_NAMES + 2 * layout.cold];
        let fill = slice(up_names, layout.reserve, layout.fill[0]);
        assert_eq!(fill.len(), 4);
        let mut all: Vec<&String> = warm.iter().chain(cold).chain(fan).chain(fill).collect();
        all.push(coal);
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("--out"), "--out");
        assert_eq!(shell_quote("a b"), "'a b'");
    }
}
