//! The machine a run happened on, for BENCHMARKS.md: cores, memory, CPU model, kernel, load.

pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total: String,
    pub kernel: String,
    pub date: String,
    pub load_at_start: String,
    /// Release or debug build of the harness (and of the gateway it runs: the same binary).
    pub build: &'static str,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_total = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| format!("{:.1} GiB", kb as f64 / (1024.0 * 1024.0)))
            .unwrap_or_else(|| "unknown".into());
        Self {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            mem_total,
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            load_at_start: load_average(),
            build: if cfg!(debug_assertions) {
                "debug (NOT representative: build with --release)"
            } else {
                "release"
            },
        }
    }
}

/// `/proc/loadavg`'s 1/5/15-minute averages.
pub fn load_average() -> String {
    let text = read_trimmed("/proc/loadavg");
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}
