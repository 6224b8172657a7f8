//! Pod spec to CRI configuration: the sandbox (metadata, labels CRI objects are found by,
//! host or pod network, log directory) and each container (image, command, args, env,
//! working directory, log path), as upstream's kuberuntime builds them.

use std::collections::HashMap;
use std::path::Path;

use common::scheduling::qos::{QosClass, pod_qos_class};
use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod};

pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";

pub fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(
        POD_NAME.into(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        POD_NAMESPACE.into(),
        pod.metadata.namespace.clone().unwrap_or_default(),
    );
    labels.insert(POD_UID.into(), uid(pod).into());
    labels
}

/// spec.terminationGracePeriodSeconds (30 s by default).
pub fn termination_grace(pod: &Pod) -> std::time::Duration {
    let seconds = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    std::time::Duration::from_secs(seconds.max(0) as u64)
}

pub fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// `/var/log/pods/<namespace>_<name>_<uid>` under `log_root`.
pub fn log_directory(log_root: &Path, pod: &Pod) -> std::path::PathBuf {
    log_root.join(format!(
        "{}_{}_{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or(""),
        uid(pod)
    ))
}

/// The sandbox for `pod`, attempt `attempt`, resolving names as `dns` says.
pub fn sandbox_config(
    pod: &Pod,
    log_root: &Path,
    attempt: u32,
    dns: &super::dns::Settings,
) -> cri::PodSandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_net = host_network(pod);
    let hostname = if host_net {
        String::new()
    } else {
        super::hosts::hostname(pod)
    };
    let mode = |host: bool| if host { cri::NamespaceMode::Node } else { cri::NamespaceMode::Pod } as i32;
    let pod_security = spec.security_context.as_ref();
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: uid(pod).into(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            attempt,
        }),
        hostname,
        dns_config: super::dns::pod_dns(pod, dns),
        log_directory: log_directory(log_root, pod).display().to_string(),
        labels: pod_labels(pod),
        annotations: pod
            .metadata
            .annotations
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: mode(host_net),
                    pid: mode(spec.host_pid.unwrap_or(false)),
                    ipc: mode(spec.host_ipc.unwrap_or(false)),
                    ..Default::default()
                }),
                // A privileged container needs a privileged sandbox.
                privileged: spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
                    .any(privileged),
                run_as_user: pod_security
                    .and_then(|p| p.run_as_user)
                    .map(|value| cri::Int64Value { value }),
                run_as_group: pod_security
                    .and_then(|p| p.run_as_group)
                    .map(|value| cri::Int64Value { value }),
                supplemental_groups: supplemental_groups(pod),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn privileged(c: &Container) -> bool {
    c.security_context.as_ref().and_then(|s| s.privileged) == Some(true)
}

/// The pod's supplementalGroups and fsGroup: every container process gets them.
fn supplemental_groups(pod: &Pod) -> Vec<i64> {
    let sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let mut groups: Vec<i64> = sc
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default();
    groups.extend(sc.and_then(|s| s.fs_group));
    groups
}

/// The user a container runs as, if the pod says: the container's securityContext first,
/// then the pod's.
fn run_as_user(pod: &Pod, c: &Container) -> Option<i64> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    c.security_context
        .as_ref()
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_sc.and_then(|s| s.run_as_user))
}

/// runAsNonRoot, checked before the container is created as upstream does (the images
/// here are all built to run as root, so an unset runAsUser is root).
pub fn verify_non_root(pod: &Pod, c: &Container) -> Result<(), String> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let non_root = c
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod_sc.and_then(|s| s.run_as_non_root))
        .unwrap_or(false);
    match run_as_user(pod, c) {
        _ if !non_root => Ok(()),
        Some(0) => Err("container's runAsUser breaks non-root policy".into()),
        Some(_) => Ok(()),
        None => Err(format!(
            "container has runAsNonRoot and image will run as root (pod: \"{}_{}({})\", container: {})",
            pod.metadata.name.as_deref().unwrap_or(""),
            pod.metadata.namespace.as_deref().unwrap_or(""),
            uid(pod),
            c.name
        )),
    }
}

/// The container's securityContext in CRI terms: user, group, capabilities, privileged,
/// read-only root filesystem, no_new_privs.
pub fn security_context(pod: &Pod, c: &Container) -> cri::LinuxContainerSecurityContext {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = c.security_context.clone().unwrap_or_default();
    let caps = sc.capabilities.clone().unwrap_or_default();
    cri::LinuxContainerSecurityContext {
        capabilities: Some(cri::Capability {
            add_capabilities: caps.add.unwrap_or_default(),
            drop_capabilities: caps.drop.unwrap_or_default(),
            ..Default::default()
        }),
        privileged: sc.privileged.unwrap_or(false),
        run_as_user: run_as_user(pod, c).map(|value| cri::Int64Value { value }),
        run_as_group: sc
            .run_as_group
            .or_else(|| pod_sc.and_then(|s| s.run_as_group))
            .map(|value| cri::Int64Value { value }),
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: supplemental_groups(pod),
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        ..Default::default()
    }
}

/// A downward-API field a pod has without any volume: metadata.name, metadata.namespace,
/// metadata.uid, spec.nodeName, spec.serviceAccountName, status.podIP, status.hostIP,
/// metadata.labels['x'], metadata.annotations['x'].
pub fn field_value(pod: &Pod, path: &str, pod_ip: &str, host_ip: &str) -> Option<String> {
    let m = &pod.metadata;
    let lookup = |map: &Option<std::collections::BTreeMap<String, String>>, prefix: &str| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        map.as_ref()?.get(key).cloned()
    };
    match path {
        "metadata.name" => m.name.clone(),
        "metadata.namespace" => m.namespace.clone(),
        "metadata.uid" => m.uid.clone(),
        "spec.nodeName" => pod.spec.as_ref()?.node_name.clone(),
        "spec.serviceAccountName" => pod.spec.as_ref()?.service_account_name.clone(),
        "status.podIP" => Some(pod_ip.to_owned()),
        "status.hostIP" => Some(host_ip.to_owned()),
        p if p.starts_with("metadata.labels['") => lookup(&m.labels, "metadata.labels['"),
        p if p.starts_with("metadata.annotations['") => {
            lookup(&m.annotations, "metadata.annotations['")
        }
        _ => None,
    }
}

/// A resourceFieldRef's value (limits.cpu, requests.memory, ...) divided by its divisor,
/// rounded up as upstream does; a missing limit reads as the node's allocatable, which we
/// leave to the caller as `None`.
pub fn resource_value(c: &Container, resource: &str, divisor: Option<&str>) -> Option<String> {
    let (kind, name) = resource.split_once('.')?;
    let r = c.resources.as_ref()?;
    let map = if kind == "limits" {
        r.limits.as_ref()?
    } else {
        r.requests.as_ref()?
    };
    let q = common::quantity::Quantity::parse(&map.get(name)?.0).ok()?;
    let div = divisor.and_then(|d| common::quantity::Quantity::parse(d).ok());
    Some(if name == "cpu" {
        let milli = q.milli_value();
        let per = div.map_or(1000, |d| d.milli_value().max(1));
        ((milli + per - 1) / per).to_string()
    } else {
        let v = q.value();
        let per = div.map_or(1, |d| d.value().max(1));
        ((v + per - 1) / per).to_string()
    })
}

/// cgroup settings from the container's resources, as upstream computes them: CPU shares
/// from the request (2 when none), a CFS quota from the limit, the memory limit, and an
/// OOM score by QoS class (never negative: PLATFORM.md - root here may not lower it).
pub fn linux_resources(pod: &Pod, c: &Container) -> cri::LinuxContainerResources {
    let r = c.resources.clone().unwrap_or_default();
    let get = |m: &Option<
        std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
               k: &str| {
        m.as_ref()?
            .get(k)
            .and_then(|q| common::quantity::Quantity::parse(&q.0).ok())
    };
    let cpu_request = get(&r.requests, "cpu")
        .or_else(|| get(&r.limits, "cpu"))
        .map(|q| q.milli_value());
    let cpu_limit = get(&r.limits, "cpu").map(|q| q.milli_value());
    let memory_limit = get(&r.limits, "memory").map(|q| q.value()).unwrap_or(0);
    const PERIOD: i64 = 100_000;
    let oom = match pod_qos_class(pod) {
        QosClass::Guaranteed => 0,
        QosClass::BestEffort => 1000,
        _ => {
            // Burstable: 1000 - 1000 * request / node memory, kept in 2..=999.
            let request = get(&r.requests, "memory").map_or(0, |q| q.value());
            let node = crate::node::Machine::read(Path::new("/"))
                .memory_bytes
                .max(1) as i64;
            (1000 - 1000 * request / node).clamp(2, 999)
        }
    };
    cri::LinuxContainerResources {
        cpu_period: if cpu_limit.is_some() { PERIOD } else { 0 },
        cpu_quota: cpu_limit.map_or(0, |m| (m * PERIOD / 1000).max(1000)),
        cpu_shares: cpu_request.map_or(2, |m| (m * 1024 / 1000).max(2)),
        memory_limit_in_bytes: memory_limit,
        oom_score_adj: oom,
        ..Default::default()
    }
}

/// The CRI config for container `c` of `pod`, its `attempt`-th run.
pub fn container_config(
    pod: &Pod,
    c: &Container,
    attempt: u32,
    envs: Vec<cri::KeyValue>,
) -> cri::ContainerConfig {
    let mut labels = HashMap::new();
    labels.insert(CONTAINER_NAME.into(), c.name.clone());
    labels.insert(
        POD_NAME.into(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        POD_NAMESPACE.into(),
        pod.metadata.namespace.clone().unwrap_or_default(),
    );
    labels.insert(POD_UID.into(), uid(pod).into());
    let mut annotations = HashMap::new();
    annotations.insert(
        "io.kubernetes.container.restartCount".into(),
        attempt.to_string(),
    );
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: c.name.clone(),
            attempt,
        }),
        image: Some(cri::ImageSpec {
            image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: c.command.clone().unwrap_or_default(),
        args: c.args.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs,
        labels,
        annotations,
        log_path: format!("{}/{attempt}.log", c.name),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(linux_resources(pod, c)),
            security_context: Some(security_context(pod, c)),
        }),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_get_command_env_and_identity_labels() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
                "command": ["sh", "-c"], "args": ["echo hi"], "workingDir": "/tmp",
                "env": [{"name": "A", "value": "1"},
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}]}}))
        .unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let envs =
            super::super::env::resolve(&pod, c, "10.244.1.5", "10.0.0.1", &Default::default())
                .unwrap();
        let cfg = container_config(&pod, c, 2, envs);
        assert_eq!(cfg.command, ["sh", "-c"]);
        assert_eq!(cfg.args, ["echo hi"]);
        assert_eq!(cfg.log_path, "c/2.log");
        let env: Vec<(String, String)> =
            cfg.envs.into_iter().map(|kv| (kv.key, kv.value)).collect();
        assert_eq!(
            env,
            [
                ("A".into(), "1".into()),
                ("POD".into(), "p".into()),
                ("APP".into(), "web".into()),
                ("IP".into(), "10.244.1.5".into())
            ]
        );
        assert_eq!(cfg.labels[POD_UID], "u1");
        let sandbox = sandbox_config(&pod, Path::new("/var/log/pods"), 0, &Default::default());
        assert_eq!(sandbox.log_directory, "/var/log/pods/ns_p_u1");
        assert_eq!(sandbox.hostname, "p");
        assert_eq!(sandbox.labels["app"], "web");
    }
}
