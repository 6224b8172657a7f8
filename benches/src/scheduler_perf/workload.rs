//! Workloads as data, in the shape of upstream's scheduler_perf performance-config: named
//! params and a list of ops (createNodes, createNamespaces, createPods, churn) whose
//! objects come from YAML templates under benches/workloads/templates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use serde::Deserialize;

/// One workload file.
#[derive(Clone, Debug, Deserialize)]
pub struct Workload {
    pub name: String,
    /// upstream's floor (Average pods/s); 0 when upstream publishes none.
    #[serde(default)]
    pub threshold: f64,
    pub params: BTreeMap<String, usize>,
    pub ops: Vec<Op>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "opcode", rename_all = "camelCase")]
pub enum Op {
    #[serde(rename_all = "camelCase")]
    CreateNodes {
        count_param: String,
        node_template_path: String,
        label_node_prepare_strategy: Option<LabelStrategy>,
    },
    #[serde(rename_all = "camelCase")]
    CreateNamespaces { prefix: String, count: usize },
    #[serde(rename_all = "camelCase")]
    CreatePods {
        count_param: String,
        pod_template_path: String,
        #[serde(default)]
        namespace: Option<String>,
        #[serde(default)]
        collect_metrics: bool,
        #[serde(default)]
        skip_wait_to_completion: bool,
    },
    /// Every interval, each template's object is created and the previous one deleted.
    #[serde(rename_all = "camelCase")]
    Churn {
        interval_milliseconds: u64,
        template_paths: Vec<String>,
    },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelStrategy {
    pub label_key: String,
    pub label_values: Vec<String>,
}

/// An object a churn op recreates.
#[derive(Clone, Debug)]
pub enum ChurnObject {
    Node(Box<Node>),
    Pod(Box<Pod>),
    Service(Box<Service>),
}

/// The directory holding the workload files.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads")
}

impl Workload {
    pub fn load(name: &str) -> anyhow::Result<Workload> {
        let path = dir().join(format!("{name}.yaml"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("workload {name}: reading {}: {e}", path.display()))?;
        serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("workload {name}: {e}"))
    }

    /// Every workload in benches/workloads, by name.
    pub fn all() -> anyhow::Result<Vec<Workload>> {
        let mut names: Vec<String> = std::fs::read_dir(dir())?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".yaml")
                    .map(str::to_owned)
            })
            .collect();
        names.sort();
        names.iter().map(|n| Workload::load(n)).collect()
    }

    /// The nodes a createNodes op makes at `scale`, numbered from `first`.
    pub fn nodes(
        &self,
        count_param: &str,
        template: &str,
        strategy: Option<&LabelStrategy>,
        scale: f64,
        first: usize,
    ) -> anyhow::Result<Vec<Node>> {
        nodes(template, self.count(count_param, scale)?, first, strategy)
    }

    /// The value of `$param`, multiplied by `scale` (at least 1 when the param is not 0).
    pub fn count(&self, param: &str, scale: f64) -> anyhow::Result<usize> {
        let key = param.trim_start_matches('$');
        let n = *self
            .params
            .get(key)
            .ok_or_else(|| anyhow::anyhow!("{}: no param {key}", self.name))?;
        Ok(if n == 0 {
            0
        } else {
            ((n as f64 * scale).round() as usize).max(1)
        })
    }
}

fn read_template<T: serde::de::DeserializeOwned>(path: &str) -> anyhow::Result<T> {
    let full = dir().join(path);
    let text = std::fs::read_to_string(&full)
        .map_err(|e| anyhow::anyhow!("template {}: {e}", full.display()))?;
    serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("template {path}: {e}"))
}

/// `count` nodes named `<prefix><i>` from the template, labeled round-robin by the strategy.
pub fn nodes(
    template: &str,
    count: usize,
    first: usize,
    labels: Option<&LabelStrategy>,
) -> anyhow::Result<Vec<Node>> {
    let base: Node = read_template(template)?;
    let prefix = base
        .metadata
        .generate_name
        .clone()
        .unwrap_or_else(|| "node-".into());
    Ok((first..first + count)
        .map(|i| {
            let mut n = base.clone();
            let name = format!("{prefix}{i}");
            n.metadata.generate_name = None;
            let l = n.metadata.labels.get_or_insert_with(Default::default);
            l.insert("kubernetes.io/hostname".into(), name.clone());
            if let Some(s) = labels {
                l.insert(
                    s.label_key.clone(),
                    s.label_values[i % s.label_values.len()].clone(),
                );
            }
            n.metadata.name = Some(name);
            n
        })
        .collect())
}

/// `count` pods from the template in `namespace`, named `<prefix><i>`.
pub fn pods(
    template: &str,
    count: usize,
    first: usize,
    namespace: &str,
) -> anyhow::Result<Vec<Pod>> {
    let base: Pod = read_template(template)?;
    let prefix = base
        .metadata
        .generate_name
        .clone()
        .unwrap_or_else(|| "pod-".into());
    Ok((first..first + count)
        .map(|i| {
            let mut p = base.clone();
            p.metadata.generate_name = None;
            p.metadata.name = Some(format!("{prefix}{i}"));
            p.metadata.namespace = Some(namespace.to_owned());
            p
        })
        .collect())
}

/// The object of a churn template.
pub fn churn_object(template: &str) -> anyhow::Result<ChurnObject> {
    let v: serde_json::Value = read_template(template)?;
    Ok(match v["kind"].as_str() {
        Some("Node") => ChurnObject::Node(Box::new(serde_json::from_value(v)?)),
        Some("Pod") => ChurnObject::Pod(Box::new(serde_json::from_value(v)?)),
        Some("Service") => ChurnObject::Service(Box::new(serde_json::from_value(v)?)),
        other => anyhow::bail!("churn template {template}: unsupported kind {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_and_template_loads() {
        let all = Workload::all().unwrap();
        assert!(all.len() >= 10, "{}", all.len());
        for w in &all {
            for op in &w.ops {
                match op {
                    Op::CreateNodes {
                        count_param,
                        node_template_path,
                        ..
                    } => {
                        w.count(count_param, 1.0).unwrap();
                        nodes(node_template_path, 1, 0, None).unwrap();
                    }
                    Op::CreatePods {
                        count_param,
                        pod_template_path,
                        ..
                    } => {
                        w.count(count_param, 1.0).unwrap();
                        pods(pod_template_path, 1, 0, "default").unwrap();
                    }
                    Op::Churn { template_paths, .. } => {
                        for t in template_paths {
                            churn_object(t).unwrap();
                        }
                    }
                    Op::CreateNamespaces { .. } => {}
                }
            }
        }
    }
}
