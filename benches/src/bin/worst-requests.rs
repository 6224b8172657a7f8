//! worst-requests: time and peak memory of the costliest requests the apiserver accepts from
//! one authenticated client (deepest nesting, largest body, largest patches), each sent
//! through the whole router in this process. Prints a Markdown table for the README.

use std::time::{Duration, Instant};

use apiserver::auth::Trusted;
use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The process's resident and peak resident memory (VmRSS, VmHWM), in KiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets VmHWM to the current RSS (Linux: `5` to clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
    /// Answers the case must get: proof it was accepted (or refused, for the limits).
    expect: u16,
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn cases() -> Vec<Case> {
    let cms = "/api/v1/namespaces/default/configmaps".to_owned();
    // Arrays nested 120 deep, as many as the container bound allows, in a field the server
    // drops (with a warning).
    let deep: Vec<String> = (0..540).map(|_| nested(120)).collect();
    let deep_json = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"deep"}},"x":[{}]}}"#,
        deep.join(",")
    );
    let deep_yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: deep-yaml}}\nx: [{}]\n",
        (0..540).map(|_| nested(120)).collect::<Vec<_>>().join(",")
    );
    // As many small objects as the container bound allows.
    let shallow = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"shallow"}},"x":[{}]}}"#,
        vec![r#"{"a":"bb"}"#; 65_000].join(",")
    );
    // As many values as 3 MiB holds: 1.5 million numbers.
    let scalars = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"scalars"}},"x":[{}0]}}"#,
        "0,".repeat(1_500_000)
    );
    // The largest body: 1 MiB of data (ConfigMap's own limit) and padding up to 3 MiB.
    let largest = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "large"},
        "data": {"d": "x".repeat(1024 * 1024 - 100)},
        "padding": "p".repeat(2 * 1024 * 1024 - 200)});
    // 10,000 JSON patch operations, about 900 KB of added data.
    let ops: Vec<Value> = (0..10_000)
        .map(|i| json!({"op": "add", "path": format!("/data/k{i}"), "value": "v".repeat(80)}))
        .collect();
    // 10,000 operations of copies: the copy limit (3 MiB) refuses it partway.
    let mut copies = vec![json!({"op": "add", "path": "/data/src", "value": "c".repeat(400)})];
    copies.extend(
        (0..9_999)
            .map(|i| json!({"op": "copy", "from": "/data/src", "path": format!("/data/c{i}")})),
    );
    // A 3 MiB strategic merge patch of 20,000 keys.
    let keys: serde_json::Map<String, Value> = (0..20_000)
        .map(|i| (format!("m{i}"), json!("s".repeat(40))))
        .collect();
    let smp = json!({"data": keys, "padding": "a".repeat(2 * 1024 * 1024)});
    vec![
        Case {
            name: "deepest nesting, JSON (540 arrays 120 deep)",
            method: "POST",
            path: cms.clone(),
            content_type: "application/json",
            body: deep_json.into_bytes(),
            expect: 201,
        },
        Case {
            name: "deepest nesting, YAML (540 sequences 120 deep)",
            method: "POST",
            path: cms.clone(),
            content_type: "application/yaml",
            body: deep_yaml.into_bytes(),
            expect: 201,
        },
        Case {
            name: "most objects (65,000 in one body)",
            method: "POST",
            path: cms.clone(),
            content_type: "application/json",
            body: shallow.into_bytes(),
            expect: 201,
        },
        Case {
            name: "most values (1.5 million numbers in one body)",
            method: "POST",
            path: cms.clone(),
            content_type: "application/json",
            body: scalars.into_bytes(),
            expect: 201,
        },
        Case {
            name: "largest body (3 MiB ConfigMap, 1 MiB of data)",
            method: "POST",
            path: cms.clone(),
            content_type: "application/json",
            body: largest.to_string().into_bytes(),
            expect: 201,
        },
        Case {
            name: "largest JSON patch (10,000 operations)",
            method: "PATCH",
            path: format!("{cms}/target"),
            content_type: "application/json-patch+json",
            body: Value::Array(ops).to_string().into_bytes(),
            expect: 200,
        },
        Case {
            name: "JSON patch of copies (refused at 3 MiB of copies)",
            method: "PATCH",
            path: format!("{cms}/target"),
            content_type: "application/json-patch+json",
            body: Value::Array(copies).to_string().into_bytes(),
            expect: 422,
        },
        Case {
            name: "largest strategic merge patch (3 MiB, 20,000 keys)",
            method: "PATCH",
            path: format!("{cms}/target"),
            content_type: "application/strategic-merge-patch+json",
            body: smp.to_string().into_bytes(),
            expect: 200,
        },
    ]
}

#[global_allocator]
static ALLOCATOR: common::Allocator = common::ALLOCATOR;

/// Runs each case in a process of its own (`worst-requests CASE`), so that memory one case
/// freed does not hide the next one's peak.
fn main() -> anyhow::Result<()> {
    if let Some(case) = std::env::args().nth(1) {
        return measure(case.parse()?);
    }
    println!(
        "| request | body | answer | time (median of 3) | peak memory above the idle server |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for i in 0..cases().len() {
        let out = std::process::Command::new(std::env::current_exe()?)
            .arg(i.to_string())
            .stderr(std::process::Stdio::inherit())
            .output()?;
        anyhow::ensure!(out.status.success(), "case {i} failed");
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn measure(index: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = apiserver::testing::spawn(dir.path()).await;
    let app = apiserver::server::router(server.state.clone()).layer(axum::Extension(Trusted));
    let send = |case: &Case| {
        let request = axum::http::Request::builder()
            .method(case.method)
            .uri(&case.path)
            .header("content-type", case.content_type)
            .body(Body::from(case.body.clone()))
            .expect("a request");
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await.expect("infallible");
            let code = response.status().as_u16();
            let body = response.into_body().collect().await.expect("a body");
            (code, body.to_bytes())
        }
    };
    if let Some(case) = cases().into_iter().nth(index) {
        let mut times = Vec::new();
        let mut peaks = Vec::new();
        for run in 0..3 {
            // Each run starts from the same object.
            let target = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "target"}, "data": {}});
            let cms = "/api/v1/namespaces/default/configmaps";
            let setup = |method: &'static str, path: String, body: Vec<u8>| Case {
                name: "",
                method,
                path,
                content_type: "application/json",
                body,
                expect: 0,
            };
            for name in ["target", "deep", "deep-yaml", "large", "shallow", "scalars"] {
                let _ = send(&setup("DELETE", format!("{cms}/{name}"), Vec::new())).await;
            }
            let _ = send(&setup("POST", cms.into(), target.to_string().into_bytes())).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            reset_peak();
            let (before, _) = memory();
            let start = Instant::now();
            let (code, body) = send(&case).await;
            let took = start.elapsed();
            let (_, peak) = memory();
            if code != case.expect {
                anyhow::bail!(
                    "{} (run {run}): expected {}, got {code}: {}",
                    case.name,
                    case.expect,
                    String::from_utf8_lossy(&body[..body.len().min(400)])
                );
            }
            times.push(took);
            peaks.push(peak.saturating_sub(before));
        }
        times.sort();
        peaks.sort();
        println!(
            "| {} | {:.1} MiB | {} | {:.0} ms | {:.0} MiB |",
            case.name,
            case.body.len() as f64 / (1024.0 * 1024.0),
            case.expect,
            times[1].as_secs_f64() * 1000.0,
            // The first run's: later runs reuse what it freed.
            peaks[2] as f64 / 1024.0
        );
    }
    server.stop();
    Ok(())
}
