//! tetsu's benchmark harnesses: shared measurement helpers (latency percentiles, result
//! tables, memory), the scheduler-perf, controller-perf and pod-startup harnesses.

pub mod controller_perf;
pub mod dns_perf;
pub mod netpol_sync;
pub mod pod_startup;
pub mod proxy_sync;
pub mod scheduler_perf;

use std::time::Duration;

/// Latency samples, summarized as upstream's SLO documents quote them.
#[derive(Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    /// The q-th quantile (0.0..=1.0), in milliseconds.
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.sort();
        let i = ((self.0.len() - 1) as f64 * q).round() as usize;
        self.0[i].as_secs_f64() * 1000.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One line of a results table.
pub struct Row {
    pub what: String,
    pub backend: &'static str,
    pub value: String,
}

/// Prints rows as a markdown table and returns them as JSON.
pub fn report(title: &str, rows: &[Row]) -> serde_json::Value {
    println!("\n### {title}\n");
    println!("| measurement | backend | result |");
    println!("| --- | --- | --- |");
    for r in rows {
        println!("| {} | {} | {} |", r.what, r.backend, r.value);
    }
    serde_json::Value::Array(
        rows.iter()
            .map(|r| serde_json::json!({"measurement": r.what, "backend": r.backend, "result": r.value}))
            .collect(),
    )
}

/// The resident set size of this process, in MiB.
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// CPU seconds this process (server, clients and writers alike) has used: /proc/self/stat's
/// utime + stime, in clock ticks of 10 ms.
pub fn cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat")
}

/// CPU seconds process `pid` has used (0 once it is gone).
pub fn process_cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

fn stat_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name, which ends with the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are the 14th and 15th fields; the 3rd is the first after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds every process of the machine has used (/proc/stat's first line: user, nice,
/// system, irq and softirq; idle, iowait and steal are not work done here).
pub fn machine_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0.0);
    (at(0) + at(1) + at(2) + at(5) + at(6)) / 100.0
}

/// The peak resident set size of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
