//! A pod's status from what the runtime reports, as upstream's kubelet computes it: the
//! phase, conditions, container statuses (state, last state, restarts, readiness), pod and
//! host IPs, start time and QoS class. Pure: the worker gathers the inputs.

use std::collections::BTreeMap;

use common::scheduling::qos::pod_qos_class;
use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// What the worker knows of one container.
#[derive(Clone, Debug, Default)]
pub struct ContainerView {
    /// The current attempt, if one was created.
    pub current: Option<cri::ContainerStatus>,
    /// The attempt before it, if it terminated.
    pub previous: Option<cri::ContainerStatus>,
    pub restart_count: i32,
    /// Why it is not running (ErrImagePull, CrashLoopBackOff, ...), with the message.
    pub waiting: Option<(String, String)>,
    /// What the readiness and startup probes say (None: no such probe).
    pub ready: Option<bool>,
    pub started: Option<bool>,
}

/// What the worker knows of the pod's sandbox.
#[derive(Clone, Debug, Default)]
pub struct SandboxView {
    pub ready: bool,
    pub ip: String,
}

fn time_from_nanos(ns: i64) -> Option<Time> {
    (ns > 0).then(|| {
        Time(k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(ns)).unwrap_or_default())
    })
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn terminated(s: &cri::ContainerStatus) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: s.exit_code,
        reason: Some(if s.reason.is_empty() {
            if s.exit_code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            }
        } else {
            s.reason.clone()
        }),
        message: (!s.message.is_empty()).then(|| s.message.clone()),
        started_at: time_from_nanos(s.started_at),
        finished_at: time_from_nanos(s.finished_at),
        container_id: Some(format!("containerd://{}", s.id)),
        signal: None,
    }
}

fn container_status(name: &str, image: &str, v: &ContainerView) -> ContainerStatus {
    let running = v
        .current
        .as_ref()
        .filter(|s| s.state == cri::ContainerState::ContainerRunning as i32);
    let state = if let Some((reason, message)) = &v.waiting {
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: Some(message.clone()).filter(|m| !m.is_empty()),
            }),
            ..Default::default()
        }
    } else if let Some(s) = running {
        ContainerState {
            running: Some(ContainerStateRunning {
                started_at: time_from_nanos(s.started_at),
            }),
            ..Default::default()
        }
    } else if let Some(s) = v
        .current
        .as_ref()
        .filter(|s| s.state == cri::ContainerState::ContainerExited as i32)
    {
        ContainerState {
            terminated: Some(terminated(s)),
            ..Default::default()
        }
    } else {
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("ContainerCreating".into()),
                message: None,
            }),
            ..Default::default()
        }
    };
    let last_state = v.previous.as_ref().map(|s| ContainerState {
        terminated: Some(terminated(s)),
        ..Default::default()
    });
    let current = v.current.as_ref();
    ContainerStatus {
        name: name.into(),
        image: image.into(),
        image_id: current.map(|s| s.image_ref.clone()).unwrap_or_default(),
        container_id: current.map(|s| format!("containerd://{}", s.id)),
        ready: running.is_some() && v.waiting.is_none() && v.ready.unwrap_or(true),
        started: Some(running.is_some() && v.started.unwrap_or(true)),
        restart_count: v.restart_count,
        state: Some(state),
        last_state: Some(last_state.unwrap_or_default()),
        ..Default::default()
    }
}

fn condition(type_: &str, ok: bool, old: &[PodCondition]) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let transition = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(now);
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        last_transition_time: Some(transition),
        reason: (!ok && (type_ == "Ready" || type_ == "ContainersReady"))
            .then(|| "ContainersNotReady".into()),
        message: None,
        last_probe_time: None,
        observed_generation: None,
    }
}

/// The pod's status now.
pub fn pod_status(
    pod: &Pod,
    sandbox: &SandboxView,
    init: &BTreeMap<String, ContainerView>,
    containers: &BTreeMap<String, ContainerView>,
    host_ip: &str,
) -> PodStatus {
    build(pod, sandbox, init, containers, host_ip, false)
}

/// The final status of a pod the kubelet has stopped for good (deleted while it ran): no
/// container runs or will run again, whatever the restart policy. As upstream's terminal
/// sync and TerminatePod: a container of an initialized pod that shows no end is reported
/// terminated with 137 and ContainerStatusUnknown, and the phase is Succeeded when every
/// container ended with 0, Failed otherwise.
pub fn terminal_status(
    pod: &Pod,
    sandbox: &SandboxView,
    init: &BTreeMap<String, ContainerView>,
    containers: &BTreeMap<String, ContainerView>,
    host_ip: &str,
) -> PodStatus {
    build(pod, sandbox, init, containers, host_ip, true)
}

fn build(
    pod: &Pod,
    sandbox: &SandboxView,
    init: &BTreeMap<String, ContainerView>,
    containers: &BTreeMap<String, ContainerView>,
    host_ip: &str,
    terminal: bool,
) -> PodStatus {
    let old = pod.status.clone().unwrap_or_default();
    let old_conditions = old.conditions.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let mut statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| {
            container_status(
                &c.name,
                c.image.as_deref().unwrap_or(""),
                &containers.get(&c.name).cloned().unwrap_or_default(),
            )
        })
        .collect();
    let restart = spec.restart_policy.as_deref().unwrap_or("Always");
    // Init containers not reached yet wait for the ones before them.
    let not_reached = ContainerView {
        waiting: Some(("PodInitializing".into(), String::new())),
        ..Default::default()
    };
    let init_statuses: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| {
            let v = init.get(&c.name).unwrap_or(&not_reached);
            container_status(&c.name, c.image.as_deref().unwrap_or(""), v)
        })
        .collect();
    let terminated = |s: &ContainerStatus| s.state.as_ref().and_then(|st| st.terminated.clone());
    let incomplete: Vec<&str> = init_statuses
        .iter()
        .filter(|s| terminated(s).is_none_or(|t| t.exit_code != 0))
        .map(|s| s.name.as_str())
        .collect();
    if terminal && incomplete.is_empty() {
        for s in statuses.iter_mut() {
            if terminated(s).is_none() {
                s.state = Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 137,
                        reason: Some("ContainerStatusUnknown".into()),
                        message: Some(
                            "The container could not be located when the pod was terminated".into(),
                        ),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
        }
    }
    if terminal {
        for s in statuses.iter_mut() {
            s.ready = false;
            s.started = Some(false);
        }
    }
    let init_failed = restart == "Never"
        && init_statuses
            .iter()
            .any(|s| terminated(s).is_some_and(|t| t.exit_code != 0));
    let (mut running, mut waiting, mut failed) = (0, 0, 0);
    for s in &statuses {
        let st = s.state.clone().unwrap_or_default();
        if st.running.is_some() {
            running += 1;
        } else if let Some(t) = st.terminated {
            if t.exit_code != 0 {
                failed += 1;
            }
        } else if s
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .is_some()
        {
            // Waiting to restart after a run: it counts as what it last did.
            running += 1;
        } else {
            waiting += 1;
        }
    }
    let phase = if terminal {
        let succeeded = |s: &ContainerStatus| terminated(s).is_some_and(|t| t.exit_code == 0);
        if !init_failed && !statuses.is_empty() && statuses.iter().all(succeeded) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if init_failed {
        "Failed"
    } else if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if statuses.is_empty() {
        "Pending"
    } else {
        match restart {
            "Always" => "Running",
            "OnFailure" if failed > 0 => "Running",
            _ if failed > 0 => "Failed",
            _ => "Succeeded",
        }
    };
    let all_ready = !statuses.is_empty() && statuses.iter().all(|s| s.ready);
    let mut conditions = vec![
        condition("PodReadyToStartContainers", sandbox.ready, &old_conditions),
        {
            let mut c = condition("Initialized", incomplete.is_empty(), &old_conditions);
            if !incomplete.is_empty() {
                c.reason = Some("ContainersNotInitialized".into());
                c.message = Some(format!(
                    "containers with incomplete status: [{}]",
                    incomplete.join(" ")
                ));
            }
            c
        },
        condition("Ready", all_ready, &old_conditions),
        condition("ContainersReady", all_ready, &old_conditions),
    ];
    if phase == "Succeeded" {
        // Upstream's reason once every container completed.
        for c in conditions.iter_mut().filter(|c| c.status == "False") {
            if c.type_ == "Ready" || c.type_ == "ContainersReady" {
                c.reason = Some("PodCompleted".into());
            }
        }
    }
    // The scheduler's condition stays as it is.
    conditions.extend(
        old_conditions
            .iter()
            .filter(|c| c.type_ == "PodScheduled")
            .cloned(),
    );
    let pod_ip = if super::spec::host_network(pod) {
        host_ip.to_owned()
    } else {
        sandbox.ip.clone()
    };
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        host_ip: (!host_ip.is_empty()).then(|| host_ip.to_owned()),
        host_ips: (!host_ip.is_empty()).then(|| {
            vec![HostIP {
                ip: host_ip.to_owned(),
            }]
        }),
        pod_ip: (!pod_ip.is_empty()).then(|| pod_ip.clone()),
        pod_ips: (!pod_ip.is_empty()).then(|| vec![PodIP { ip: pod_ip }]),
        start_time: old.start_time.or_else(|| Some(now())),
        qos_class: Some(pod_qos_class(pod).as_str().into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(restart: &str) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .unwrap()
    }

    fn cri_status(state: cri::ContainerState, exit: i32) -> cri::ContainerStatus {
        cri::ContainerStatus {
            id: "abc".into(),
            state: state as i32,
            exit_code: exit,
            started_at: 1_700_000_000_000_000_000,
            finished_at: 1_700_000_001_000_000_000,
            image_ref: "sha256:x".into(),
            ..Default::default()
        }
    }

    fn view(
        current: Option<cri::ContainerStatus>,
        waiting: Option<(&str, &str)>,
    ) -> BTreeMap<String, ContainerView> {
        [(
            "c".to_owned(),
            ContainerView {
                current,
                previous: None,
                restart_count: 0,
                waiting: waiting.map(|(r, m)| (r.into(), m.into())),
                ..Default::default()
            },
        )]
        .into()
    }

    #[test]
    fn phases_and_reasons_follow_the_containers() {
        let sandbox = SandboxView {
            ready: true,
            ip: "10.244.0.5".into(),
        };
        let s = pod_status(
            &pod("Always"),
            &sandbox,
            &BTreeMap::new(),
            &view(None, None),
            "10.0.0.1",
        );
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(
            s.container_statuses.as_ref().unwrap()[0]
                .state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ContainerCreating")
        );

        let s = pod_status(
            &pod("Always"),
            &sandbox,
            &BTreeMap::new(),
            &view(
                Some(cri_status(cri::ContainerState::ContainerRunning, 0)),
                None,
            ),
            "10.0.0.1",
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.0.5"));
        let ready = s
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(
            s.container_statuses.as_ref().unwrap()[0]
                .container_id
                .as_deref(),
            Some("containerd://abc")
        );
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));

        let done = pod_status(
            &pod("Never"),
            &sandbox,
            &BTreeMap::new(),
            &view(
                Some(cri_status(cri::ContainerState::ContainerExited, 0)),
                None,
            ),
            "",
        );
        assert_eq!(done.phase.as_deref(), Some("Succeeded"));
        let t = done.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(t.reason.as_deref(), Some("Completed"));
        let failed = pod_status(
            &pod("Never"),
            &sandbox,
            &BTreeMap::new(),
            &view(
                Some(cri_status(cri::ContainerState::ContainerExited, 2)),
                None,
            ),
            "",
        );
        assert_eq!(failed.phase.as_deref(), Some("Failed"));

        let missing = pod_status(
            &pod("Always"),
            &sandbox,
            &BTreeMap::new(),
            &view(None, Some(("ErrImagePull", "no registry"))),
            "",
        );
        assert_eq!(missing.phase.as_deref(), Some("Pending"));
        let w = missing.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .waiting
            .unwrap();
        assert_eq!(
            (w.reason.as_deref(), w.message.as_deref()),
            (Some("ErrImagePull"), Some("no registry"))
        );
    }

    #[test]
    fn a_stopped_pod_is_terminal_whatever_its_restart_policy() {
        let sandbox = SandboxView::default();
        let killed = pod_status_of(terminal_status(
            &pod("Always"),
            &sandbox,
            &BTreeMap::new(),
            &view(
                Some(cri_status(cri::ContainerState::ContainerExited, 137)),
                None,
            ),
            "",
        ));
        assert_eq!(
            killed,
            ("Failed".into(), Some(137), "ContainersNotReady".into())
        );
        let done = pod_status_of(terminal_status(
            &pod("OnFailure"),
            &sandbox,
            &BTreeMap::new(),
            &view(
                Some(cri_status(cri::ContainerState::ContainerExited, 0)),
                None,
            ),
            "",
        ));
        assert_eq!(done, ("Succeeded".into(), Some(0), "PodCompleted".into()));
        // A container the runtime no longer knows is reported lost, not successful.
        let lost = terminal_status(
            &pod("Always"),
            &sandbox,
            &BTreeMap::new(),
            &view(None, None),
            "",
        );
        let t = lost.container_statuses.clone().unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(t.reason.as_deref(), Some("ContainerStatusUnknown"));
        assert_eq!(pod_status_of(lost).0, "Failed");
    }

    /// (phase, the container's exit code, the Ready condition's reason)
    fn pod_status_of(s: PodStatus) -> (String, Option<i32>, String) {
        let c = &s.container_statuses.as_ref().unwrap()[0];
        assert!(!c.ready);
        let ready = s
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "False");
        (
            s.phase.clone().unwrap(),
            c.state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.exit_code),
            ready.reason.clone().unwrap_or_default(),
        )
    }
}
