//! /stats/summary: the node's CPU and memory (from /proc) and each pod's containers (from
//! CRI ListContainerStats), in the shape of upstream's stats/v1alpha1 Summary.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Kubelet, error};
use crate::pods::spec::{CONTAINER_NAME, POD_NAME, POD_NAMESPACE, POD_UID};

/// Nanoseconds of CPU the machine has spent outside idle and iowait since boot.
fn node_cpu_nanos() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let busy: u64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    // USER_HZ is 100 on Linux.
    Some(busy * 10_000_000)
}

/// (total, available) bytes of memory.
fn node_memory() -> Option<(u64, u64)> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = info.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|kb| kb * 1024)
    };
    Some((field("MemTotal:")?, field("MemAvailable:")?))
}

pub async fn summary(State(k): State<Arc<Kubelet>>) -> Response {
    let stats = match k.runtime.cri.container_stats().await {
        Ok(s) => s,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut pods: BTreeMap<String, Value> = BTreeMap::new();
    for s in stats {
        let Some(attrs) = &s.attributes else { continue };
        let label = |k: &str| attrs.labels.get(k).cloned().unwrap_or_default();
        let uid = label(POD_UID);
        let pod = pods.entry(uid.clone()).or_insert_with(|| {
            json!({
                "podRef": { "name": label(POD_NAME), "namespace": label(POD_NAMESPACE), "uid": uid },
                "containers": [],
            })
        });
        let cpu = s.cpu.as_ref();
        let memory = s.memory.as_ref();
        let value = |v: Option<&k8s_cri::v1::UInt64Value>| v.map(|v| v.value);
        pod["containers"].as_array_mut().expect("built above").push(json!({
            "name": label(CONTAINER_NAME),
            "cpu": {
                "time": now,
                "usageCoreNanoSeconds": value(cpu.and_then(|c| c.usage_core_nano_seconds.as_ref())),
                "usageNanoCores": value(cpu.and_then(|c| c.usage_nano_cores.as_ref())),
            },
            "memory": {
                "time": now,
                "workingSetBytes": value(memory.and_then(|m| m.working_set_bytes.as_ref())),
                "usageBytes": value(memory.and_then(|m| m.usage_bytes.as_ref())),
                "rssBytes": value(memory.and_then(|m| m.rss_bytes.as_ref())),
            },
        }));
    }
    let (total, available) = node_memory().unwrap_or_default();
    Json(json!({
        "node": {
            "nodeName": k.node_name,
            "startTime": k.started,
            "cpu": { "time": now, "usageCoreNanoSeconds": node_cpu_nanos() },
            "memory": {
                "time": now,
                "availableBytes": available,
                "usageBytes": total.saturating_sub(available),
                "workingSetBytes": total.saturating_sub(available),
            },
        },
        "pods": pods.into_values().collect::<Vec<_>>(),
    }))
    .into_response()
}
