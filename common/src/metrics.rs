//! Prometheus text-format metrics for the components: labeled counters, gauges and
//! histograms, rendered on /metrics. Small and lock-per-series; not for per-node hot loops.

use std::collections::BTreeMap;
use std::fmt::Write;

use parking_lot::Mutex;

/// A labeled family of monotonically increasing values.
pub struct Counter {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, f64>>,
}

impl Counter {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Counter {
        Counter {
            name,
            help,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1.0);
    }

    pub fn add(&self, labels: &[&str], by: f64) {
        let key = labels.iter().map(|s| (*s).to_owned()).collect();
        *self.values.lock().entry(key).or_default() += by;
    }

    pub fn get(&self, labels: &[&str]) -> f64 {
        let key: Vec<String> = labels.iter().map(|s| (*s).to_owned()).collect();
        self.values.lock().get(&key).copied().unwrap_or(0.0)
    }

    /// Replaces every series with `values`: for counts something else keeps (the kernel's
    /// packet counters), read periodically; a series that is gone stops being reported.
    pub fn replace(&self, values: impl IntoIterator<Item = (Vec<String>, f64)>) {
        *self.values.lock() = values.into_iter().collect();
    }

    pub fn render(&self, out: &mut String) {
        render_family(
            out,
            self.name,
            self.help,
            "counter",
            self.labels,
            &self.values.lock(),
        );
    }
}

/// A labeled family of values that go up and down.
pub struct Gauge(Counter);

impl Gauge {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Gauge {
        Gauge(Counter::new(name, help, labels))
    }

    pub fn set(&self, labels: &[&str], value: f64) {
        let key = labels.iter().map(|s| (*s).to_owned()).collect();
        self.0.values.lock().insert(key, value);
    }

    pub fn get(&self, labels: &[&str]) -> f64 {
        self.0.get(labels)
    }

    pub fn render(&self, out: &mut String) {
        let c = &self.0;
        render_family(out, c.name, c.help, "gauge", c.labels, &c.values.lock());
    }
}

fn label_text(names: &[&str], values: &[String], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    if let Some((n, v)) = extra {
        parts.push(format!("{n}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn render_family(
    out: &mut String,
    name: &str,
    help: &str,
    kind: &str,
    labels: &[&str],
    values: &BTreeMap<Vec<String>, f64>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (k, v) in values {
        let _ = writeln!(out, "{name}{} {v}", label_text(labels, k, None));
    }
}

#[derive(Clone, Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: Vec<u64>,
}

/// A labeled family of distributions over fixed bucket bounds.
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    bounds: &'static [f64],
    series: Mutex<BTreeMap<Vec<String>, Series>>,
}

impl Histogram {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Histogram {
        Histogram {
            name,
            help,
            labels,
            bounds,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn observe(&self, labels: &[&str], value: f64) {
        let key = labels.iter().map(|s| (*s).to_owned()).collect();
        let mut map = self.series.lock();
        let s = map.entry(key).or_insert_with(|| Series {
            buckets: vec![0; self.bounds.len()],
            ..Default::default()
        });
        s.count += 1;
        s.sum += value;
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            s.buckets[i] += 1;
        }
    }

    pub fn count(&self, labels: &[&str]) -> u64 {
        let key: Vec<String> = labels.iter().map(|s| (*s).to_owned()).collect();
        self.series.lock().get(&key).map_or(0, |s| s.count)
    }

    pub fn render(&self, out: &mut String) {
        let name = self.name;
        let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} histogram", self.help);
        for (k, s) in self.series.lock().iter() {
            let mut cumulative = 0;
            for (b, n) in self.bounds.iter().zip(&s.buckets) {
                cumulative += n;
                let le = b.to_string();
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {cumulative}",
                    label_text(self.labels, k, Some(("le", &le)))
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{} {}",
                label_text(self.labels, k, Some(("le", "+Inf"))),
                s.count
            );
            let _ = writeln!(
                out,
                "{name}_sum{} {}",
                label_text(self.labels, k, None),
                s.sum
            );
            let _ = writeln!(
                out,
                "{name}_count{} {}",
                label_text(self.labels, k, None),
                s.count
            );
        }
    }
}

/// Exponential bucket bounds: `start`, `start*factor`, ... (`count` of them).
pub const fn exponential<const N: usize>(start: f64, factor: f64) -> [f64; N] {
    let mut out = [0.0; N];
    let mut v = start;
    let mut i = 0;
    while i < N {
        out[i] = v;
        v *= factor;
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let c = Counter::new("x_total", "X.", &["result"]);
        c.inc(&["ok"]);
        c.inc(&["ok"]);
        let h = Histogram::new("d_seconds", "D.", &[], &[0.1, 1.0]);
        h.observe(&[], 0.05);
        h.observe(&[], 0.5);
        h.observe(&[], 5.0);
        let mut out = String::new();
        c.render(&mut out);
        h.render(&mut out);
        assert!(out.contains("x_total{result=\"ok\"} 2"), "{out}");
        assert!(out.contains("d_seconds_bucket{le=\"0.1\"} 1"), "{out}");
        assert!(out.contains("d_seconds_bucket{le=\"1\"} 2"), "{out}");
        assert!(out.contains("d_seconds_bucket{le=\"+Inf\"} 3"), "{out}");
        assert!(out.contains("d_seconds_count 3"), "{out}");
    }
}
