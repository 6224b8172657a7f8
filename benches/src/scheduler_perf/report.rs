//! scheduler-perf output: a markdown table with upstream's floor beside each result, the
//! JSON of every result, and an SVG plot of throughput over time.

use std::fmt::Write;
use std::path::Path;

use super::Result;

/// The results as a markdown table (what the README shows).
pub fn markdown(results: &[Result]) -> String {
    let mut out = String::new();
    out.push_str("| workload | mode | nodes | measured pods | Average pods/s | Perc50 | Perc90 | Perc99 | upstream floor | vs floor | latency p50 / p99 | CPU per pod | peak RSS |\n");
    out.push_str(
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |\n",
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
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {:.0} / {:.0} ms | {:.3} ms | {:.0} MiB |",
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
            r.cpu_ms_per_pod,
            r.peak_rss_mib,
        );
    }
    server_load(results, &mut out);
    out
}

/// The servers' work, for the runs that measured it from outside (processes mode).
fn server_load(results: &[Result], out: &mut String) {
    let measured: Vec<(&Result, &super::ServerLoad)> = results
        .iter()
        .filter_map(|r| Some((r, r.server.as_ref()?)))
        .collect();
    if measured.is_empty() {
        return;
    }
    out.push_str("\n| workload | mode | apiserver writes/s | writes | watch events/s | watch events per write | apiserver CPU per write | apiserver / scheduler CPU per pod |\n");
    out.push_str("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |\n");
    for (r, s) in measured {
        let writes: Vec<String> = s.writes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {:.0} | {:.1} | {:.0} us | {:.3} / {:.3} ms |",
            r.workload,
            r.mode,
            s.writes_per_s,
            writes.join(", "),
            s.watch_events_per_s,
            s.watch_events_per_write,
            s.apiserver_cpu_us_per_write,
            s.apiserver_cpu_ms_per_pod,
            s.scheduler_cpu_ms_per_pod,
        );
    }
}

/// A chart of every result's Average beside its workload's upstream floor: one row of bars
/// per workload (a bar per mode) on a logarithmic pods/s axis with ticks, and each floor as
/// a black bar across its row. Drawn with plotters into an SVG string.
pub fn svg(results: &[Result]) -> String {
    let mut out = String::new();
    if let Err(e) = draw(results, &mut out) {
        // Drawing into a string fails only on a layout plotters cannot make; say so in
        // the file rather than fail the benchmark run.
        return format!("<svg xmlns=\"http://www.w3.org/2000/svg\"><text>{e}</text></svg>\n");
    }
    out
}

fn draw(
    results: &[Result],
    out: &mut String,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let mut workloads: Vec<&str> = Vec::new();
    let mut modes: Vec<&str> = Vec::new();
    for r in results {
        if !workloads.contains(&r.workload.as_str()) {
            workloads.push(&r.workload);
        }
        if !modes.contains(&r.mode.as_str()) {
            modes.push(&r.mode);
        }
    }
    let top = results
        .iter()
        .flat_map(|r| [r.average, r.threshold])
        .fold(10.0, f64::max)
        * 2.0;
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
    ];
    let n = workloads.len().max(1);
    let row_px = 14 * modes.len().max(1) as u32 + 16;
    // One row per workload and an empty top row for the legend.
    let root =
        SVGBackend::with_string(out, (1000, 110 + row_px * (n as u32 + 1))).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "scheduler_perf: Average pods/s by workload and mode, and upstream's floor",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(230)
        // A segmented range's segments include both ends: rows 0..=n, row n the legend's.
        .build_cartesian_2d((1f64..top).log_scale(), (0..n).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n + 1)
        .y_label_formatter(&|y| match y {
            SegmentValue::CenterOf(i) => workloads.get(*i).map_or("", |w| *w).to_owned(),
            _ => String::new(),
        })
        .x_desc("pods/s (log scale)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    // Bars one above another inside a workload's row, placed by pixel margins.
    let row = f64::from(chart.plotting_area().dim_in_pixel().1) / (n + 1) as f64;
    let height = 0.8 / modes.len().max(1) as f64;
    for (j, mode) in modes.iter().enumerate() {
        let color = colors[j % colors.len()];
        let above = (row * (0.1 + height * j as f64)) as u32;
        let below = (row * (0.9 - height * (j + 1) as f64)).max(0.0) as u32;
        let bars = results.iter().filter(|r| r.mode == *mode).map(|r| {
            let i = workloads.iter().position(|w| *w == r.workload).unwrap_or(0);
            let mut bar = Rectangle::new(
                [
                    (1.0, SegmentValue::Exact(i + 1)),
                    (r.average.max(1.0), SegmentValue::Exact(i)),
                ],
                color.filled(),
            );
            bar.set_margin(above, below, 0, 0);
            bar
        });
        chart
            .draw_series(bars)?
            .label(*mode)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    let floors = workloads.iter().enumerate().filter_map(|(i, w)| {
        let floor = results.iter().find(|r| r.workload == *w)?.threshold;
        (floor > 0.0).then(|| {
            PathElement::new(
                vec![
                    (floor, SegmentValue::Exact(i)),
                    (floor, SegmentValue::Exact(i + 1)),
                ],
                BLACK.stroke_width(3),
            )
        })
    });
    chart
        .draw_series(floors)?
        .label("upstream floor")
        .legend(|(x, y)| {
            PathElement::new(vec![(x + 5, y - 6), (x + 5, y + 6)], BLACK.stroke_width(3))
        });
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
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
