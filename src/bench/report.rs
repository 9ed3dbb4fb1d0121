//! The one table the harness prints, and BENCHMARKS.md around it.

use std::time::Duration;

/// First-column labels, in table order (the integration test checks every one is printed).
pub const ROW_LABELS: [&str; 12] = [
    "warm path: throughput",
    "warm path: latency",
    "cold path: hpe",
    "cold path: cisco",
    "cold path: dell",
    "coalescing",
    "fan-out",
    "peak RSS",
    "fleet sweep",
    "fleet index RSS",
    "reverse lookup",
    "bulk lookup",
];

pub struct Row {
    pub measure: String,
    pub gateway: String,
    pub reference: String,
    pub ratio: String,
    pub target: String,
    /// None = no target, just a number.
    pub met: Option<bool>,
}

impl Row {
    /// A row for a section that could not be measured.
    pub fn failed(measure: String, error: &str, target: &str) -> Self {
        Self {
            measure,
            gateway: format!("NOT MEASURED: {error}"),
            reference: "–".into(),
            ratio: "–".into(),
            target: target.into(),
            met: Some(false),
        }
    }
}

pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| Measure | Gateway | Reference | Ratio | Target | Met |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            cell(&r.measure),
            cell(&r.gateway),
            cell(&r.reference),
            cell(&r.ratio),
            cell(&r.target),
            met
        ));
    }
    out
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// 12345.6 → "12,346".
pub fn thousands(v: f64) -> String {
    let n = v.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(ms(Duration::from_micros(1500)), "1.50 ms");
        assert_eq!(ms(Duration::from_millis(41)), "41.0 ms");
        let t = table(&[Row::failed("x".into(), "a|b", "t")]);
        assert!(t.contains("a\\|b"), "{t}");
    }
}
