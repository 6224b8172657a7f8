//! scheduler-perf output: a markdown table with upstream's floor beside each result, the
//! JSON of every result, and an SVG plot of throughput over time.

use std::fmt::Write;
use std::path::Path;

use super::Result;

/// The results as a markdown table (what the README shows).
pub fn markdown(results: &[Result]) -> String {
    let mut out = String::new();
    out.push_str("| workload | mode | nodes | measured pods | Average pods/s | Perc50 | Perc90 | Perc99 | upstream floor | vs floor | latency p50 / p99 | peak RSS |\n");
    out.push_str(
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n",
    );
    for r in results {
        let (floor, ratio) = if r.threshold > 0.0 {
            (
                format!("{:.0}", r.threshold),
                format!("{:.1}x", r.average / r.threshold),
            )
        } else {
            ("none".to_owned(), "-".to_owned())
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {:.0} / {:.0} ms | {:.0} MiB |",
            r.workload,
            r.mode,
            r.nodes,
            r.measured_pods,
            r.average,
            r.perc50,
            r.perc90,
            r.perc99,
            floor,
            ratio,
            r.latency_p50_ms,
            r.latency_p99_ms,
            r.peak_rss_mib,
        );
    }
    out
}

/// A line plot of each result's samples (pods/s over seconds).
pub fn svg(results: &[Result]) -> String {
    let (w, h, pad) = (800.0, 400.0, 50.0);
    let max_t = results
        .iter()
        .map(|r| r.samples.len() as f64 * r.sample_interval_s)
        .fold(1.0, f64::max);
    let max_y = results
        .iter()
        .flat_map(|r| r.samples.iter().copied())
        .fold(1.0, f64::max);
    let colors = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    ];
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let x = |t: f64| pad + t / max_t * (w - 2.0 * pad);
    let y = |v: f64| h - pad - v / max_y * (h - 2.0 * pad);
    let _ = writeln!(
        out,
        "<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
        h - pad,
        w - pad,
        h - pad
    );
    let _ = writeln!(
        out,
        "<line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"black\"/>",
        h - pad
    );
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\">seconds ({max_t:.1})</text>",
        w / 2.0,
        h - 15.0
    );
    let _ = writeln!(
        out,
        "<text x=\"5\" y=\"{}\">{max_y:.0} pods/s</text>",
        pad - 10.0
    );
    for (i, r) in results.iter().enumerate() {
        let color = colors[i % colors.len()];
        let points: Vec<String> = r
            .samples
            .iter()
            .enumerate()
            .map(|(k, v)| {
                format!(
                    "{:.1},{:.1}",
                    x((k as f64 + 1.0) * r.sample_interval_s),
                    y(*v)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{} [{}]</text>",
            pad + 10.0,
            pad + 15.0 * (i as f64 + 1.0),
            r.workload,
            r.mode
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Writes results.json, results.md and throughput.svg into `dir`.
pub fn write(dir: &Path, results: &[Result]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(results)?,
    )?;
    std::fs::write(dir.join("results.md"), markdown(results))?;
    std::fs::write(dir.join("throughput.svg"), svg(results))?;
    Ok(())
}
