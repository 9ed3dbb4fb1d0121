//! `wrk`, when it is installed, as the warm path's load generator: an external C client on a
//! core of its own (`taskset -c 0` where available), so that the harness's own client can
//! never be the bottleneck the ratio measures. Its Lua script cycles through the same paths and
//! sends the same `Authorization` header as the harness's client.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::client::Endpoint;
use super::BenchError;

#[derive(Debug, Clone, Default)]
pub struct WrkResult {
    pub per_second: f64,
    pub requests: u64,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    pub non_2xx: u64,
    pub socket_errors: u64,
}

fn on_path(exe: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(exe))
            .find(|p| p.is_file())
    })
}

/// `wrk`, if installed.
pub fn available() -> Option<PathBuf> {
    on_path("wrk")
}

/// Whether `wrk` runs pinned to core 0.
pub fn pinned() -> bool {
    on_path("taskset").is_some()
}

/// The core the servers under test run on while `wrk` has core 0: the gateway child (all its
/// threads: worker, cache housekeeping, log writer) and the bare handler's worker thread alike,
/// so that neither shares a core with the client nor moves between runs.
pub fn server_core() -> Option<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (pinned() && cores >= 2).then_some(1)
}

/// Pins the calling thread to `core` (best effort: an error leaves it where it was).
pub fn pin_current_thread(core: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: `set` is a plain bit set owned by this frame; the call only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = core;
}

/// One closed-loop run of `wrk` (1 thread, `concurrency` connections, `duration`).
pub async fn run(
    wrk: &Path,
    endpoint: &Endpoint,
    paths: &[String],
    concurrency: usize,
    duration: Duration,
    dir: &Path,
) -> Result<WrkResult, BenchError> {
    let io = |what: &str, e: std::io::Error| BenchError::Measure(format!("wrk {what}: {e}"));
    std::fs::create_dir_all(dir).map_err(|e| io("dir", e))?;
    let script = dir.join("paths.lua");
    let quoted: Vec<String> = paths.iter().map(|p| format!("{p:?}")).collect();
    let headers = match endpoint.authorization() {
        Some(a) => format!("{{[\"Authorization\"] = {a:?}}}"),
        None => "{}".into(),
    };
    std::fs::write(
        &script,
        format!(
            "local paths = {{{}}}\nlocal n = #paths\nlocal i = 0\nlocal headers = {headers}\n\
             request = function()\n  i = i % n + 1\n  return wrk.format(\"GET\", paths[i], headers)\nend\n",
            quoted.join(", ")
        ),
    )
    .map_err(|e| io("script", e))?;
    let url = format!("http://{}", endpoint.addr);
    let mut cmd = if pinned() {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").arg(wrk);
        c
    } else {
        Command::new(wrk)
    };
    cmd.arg("-t1")
        .arg(format!("-c{}", concurrency.max(1)))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--latency")
        .arg("-s")
        .arg(&script)
        .arg(&url);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(|e| BenchError::Measure(format!("wrk: {e}")))?
        .map_err(|e| io("run", e))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(BenchError::Measure(format!(
            "wrk exited {}: {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    parse(&text).ok_or_else(|| BenchError::Measure(format!("wrk output not understood: {text}")))
}

/// The numbers of `wrk --latency`'s report.
pub fn parse(text: &str) -> Option<WrkResult> {
    let mut r = WrkResult::default();
    let mut seen_rate = false;
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => {
                r.per_second = v.parse().ok()?;
                seen_rate = true;
            }
            (Some("50%"), Some(v)) => r.p50 = duration(v),
            (Some("99%"), Some(v)) => r.p99 = duration(v),
            (Some(n), Some("requests")) => r.requests = n.parse().unwrap_or(0),
            _ => {}
        }
        if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = n.trim().parse().unwrap_or(0);
        }
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            r.socket_errors = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
        }
    }
    seen_rate.then_some(r)
}

/// `123.45us`, `1.20ms`, `2.00s`.
fn duration(v: &str) -> Option<Duration> {
    let (number, unit) = v
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| v.split_at(i))?;
    let n: f64 = number.parse().ok()?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrks_report_is_read() {
        let text = "Running 5s test @ http://127.0.0.1:1\n  1 threads and 64 connections\n\
                    Thread Stats   Avg      Stdev     Max   +/- Stdev\n\
                    Latency     1.10ms  200.00us   5.00ms   90.00%\n\
                    Latency Distribution\n     50%  987.00us\n     75%    1.10ms\n\
                    90%    1.30ms\n     99%    2.50ms\n\
                    289012 requests in 5.00s, 200.00MB read\n\
                    Socket errors: connect 0, read 2, write 0, timeout 1\n\
                    Non-2xx or 3xx responses: 4\n\
                    Requests/sec:  57802.40\nTransfer/sec:     40.00MB\n";
        let r = parse(text).expect("parsed");
        assert_eq!(r.requests, 289_012);
        assert!((r.per_second - 57_802.4).abs() < 1e-6);
        assert_eq!(r.p50, Some(Duration::from_micros(987)));
        assert_eq!(r.p99, Some(Duration::from_micros(2500)));
        assert_eq!((r.non_2xx, r.socket_errors), (4, 3));
        assert!(parse("no numbers").is_none());
    }
}
