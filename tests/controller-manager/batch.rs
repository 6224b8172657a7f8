//! Jobs and CronJobs against a real apiserver; the test plays the kubelet by setting pod
//! phases and container exit codes.

use crate::support;

use std::time::Duration;

use controller_manager::runtime::Options;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use support::{Cluster, apiserver, eventually};

const T: Duration = Duration::from_secs(30);

async fn cluster() -> Cluster {
    let mut c = apiserver().await;
    let options = Options {
        job_backoff_base: Duration::from_millis(100),
        ..Options::default()
    };
    c.start_controllers_with(&["job", "cronjob", "ttl-after-finished"], options)
        .await;
    c
}

fn job(name: &str, spec: serde_json::Value) -> serde_json::Value {
    let mut s = json!({"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox"}]}}});
    for (k, v) in spec.as_object().unwrap() {
        s[k] = v.clone();
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"}, "spec": s})
}

/// Plays the kubelet: the pod ends with `phase` and the main container's `exit_code`.
async fn finish(c: &Cluster, pod: &str, phase: &str, exit_code: i32) {
    let patch = json!({"status": {"phase": phase, "containerStatuses": [{"name": "main", "ready": false,
        "restartCount": 0, "image": "busybox", "imageID": "",
        "state": {"terminated": {"exitCode": exit_code, "reason": if exit_code == 0 { "Completed" } else { "Error" }}}}]}});
    c.pods("default")
        .patch_status(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn active_pods(c: &Cluster, job: &str) -> Vec<k8s_openapi::api::core::v1::Pod> {
    c.live_pods("default", &format!("batch.kubernetes.io/job-name={job}"))
        .await
        .into_iter()
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .collect()
}

fn condition(j: &Job, t: &str) -> Option<(String, String)> {
    j.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_pods_to_its_completions_with_parallelism() {
    let c = cluster().await;
    c.create(job("pi", json!({"completions": 3, "parallelism": 2})))
        .await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    for round in 0..3 {
        // Two run at once while two or more completions are missing, then one.
        let want_running = if round < 2 { 2 } else { 1 };
        let pods = eventually("active pods", T, || async {
            let pods = active_pods(&c, "pi").await;
            (pods.len() == want_running).then_some(pods)
        })
        .await;
        if round == 0 {
            assert_eq!(pods.len(), 2, "parallelism 2");
            assert!(
                pods[0]
                    .finalizers()
                    .iter()
                    .any(|f| f == "batch.kubernetes.io/job-tracking")
            );
        }
        finish(&c, &pods[0].name_any(), "Succeeded", 0).await;
        let want = round + 1;
        eventually("succeeded counted", T, || async {
            let s = jobs.get("pi").await.unwrap().status?;
            (s.succeeded == Some(want)).then_some(())
        })
        .await;
    }
    let out = c
        .kubectl_ok(&[
            "wait",
            "--for=condition=complete",
            "job/pi",
            "--timeout=30s",
        ])
        .await;
    assert!(out.contains("condition met"), "{out}");
    let j = jobs.get("pi").await.unwrap();
    let s = j.status.clone().unwrap();
    assert_eq!(
        (s.succeeded, s.failed, s.active),
        (Some(3), Some(0), Some(0))
    );
    assert!(s.completion_time.is_some() && s.start_time.is_some());
    assert_eq!(condition(&j, "Complete").unwrap().0, "CompletionsReached");
    // Counted pods are released.
    let pods = c
        .pods("default")
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=pi"))
        .await
        .unwrap();
    assert!(pods.items.iter().all(|p| p.finalizers().is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_until_the_backoff_limit_and_policy_rules_apply() {
    let c = cluster().await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    c.create(job("flaky", json!({"backoffLimit": 1}))).await;
    for attempt in 0..2 {
        let pod = eventually("a pod to fail", T, || async {
            active_pods(&c, "flaky").await.pop()
        })
        .await;
        finish(&c, &pod.name_any(), "Failed", 1).await;
        eventually("failure counted", T, || async {
            (jobs.get("flaky").await.unwrap().status?.failed == Some(attempt + 1)).then_some(())
        })
        .await;
    }
    let j = eventually("Failed", T, || async {
        let j = jobs.get("flaky").await.unwrap();
        condition(&j, "Failed")
    })
    .await;
    assert_eq!(
        j,
        (
            "BackoffLimitExceeded".into(),
            "Job has reached the specified backoff limit".into()
        )
    );

    c.create(job("strict", json!({"backoffLimit": 6, "podFailurePolicy": {"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}}]}}))).await;
    let pod = eventually("a pod", T, || async {
        active_pods(&c, "strict").await.pop()
    })
    .await;
    finish(&c, &pod.name_any(), "Failed", 42).await;
    let (reason, message) = eventually("Failed by policy", T, || async {
        condition(&jobs.get("strict").await.unwrap(), "Failed")
    })
    .await;
    assert_eq!(reason, "PodFailurePolicy");
    assert_eq!(
        message,
        format!(
            "Container main for pod default/{} failed with exit code 42 matching FailJob rule at index 0",
            pod.name_any()
        )
    );

    c.create(job("slow", json!({"activeDeadlineSeconds": 1})))
        .await;
    let (reason, _) = eventually("DeadlineExceeded", T, || async {
        condition(&jobs.get("slow").await.unwrap(), "Failed")
    })
    .await;
    assert_eq!(reason, "DeadlineExceeded");
    eventually("its pod deleted", T, || async {
        active_pods(&c, "slow").await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_jobs_give_each_pod_its_index() {
    let c = cluster().await;
    c.create(job(
        "idx",
        json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}),
    ))
    .await;
    let pods = eventually("3 pods", T, || async {
        let pods = active_pods(&c, "idx").await;
        (pods.len() == 3).then_some(pods)
    })
    .await;
    let mut indexes: Vec<String> = pods
        .iter()
        .map(|p| p.annotations()["batch.kubernetes.io/job-completion-index"].clone())
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2"]);
    let one = pods
        .iter()
        .find(|p| p.annotations()["batch.kubernetes.io/job-completion-index"] == "1")
        .unwrap();
    assert!(one.name_any().starts_with("idx-1-"), "{}", one.name_any());
    assert_eq!(
        one.spec.as_ref().unwrap().hostname.as_deref(),
        Some("idx-1")
    );
    let env = one.spec.as_ref().unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    assert!(env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX"));
    finish(&c, &one.name_any(), "Succeeded", 0).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    eventually("completedIndexes 1", T, || async {
        (jobs
            .get("idx")
            .await
            .unwrap()
            .status?
            .completed_indexes
            .as_deref()
            == Some("1"))
        .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cronjob_starts_a_job_per_activation_and_keeps_history() {
    let c = cluster().await;
    c.create(json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick", "namespace": "default"},
        "spec": {"schedule": "* * * * *", "successfulJobsHistoryLimit": 0,
            "jobTemplate": {"metadata": {"labels": {"from": "tick"}}, "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox"}]}}}}}})).await;
    // Pretend the last run was five minutes ago: the latest activation is due now.
    let cronjobs: Api<CronJob> = Api::namespaced(c.client.clone(), "default");
    let past = (chrono::Utc::now() - chrono::Duration::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    cronjobs
        .patch_status(
            "tick",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"lastScheduleTime": past}})),
        )
        .await
        .unwrap();
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let j = eventually("a Job", T, || async {
        jobs.list(&ListParams::default().labels("from=tick"))
            .await
            .unwrap()
            .items
            .pop()
    })
    .await;
    let minute = chrono::Utc::now().timestamp() / 60;
    let n: i64 = j.name_any().strip_prefix("tick-").unwrap().parse().unwrap();
    assert!(
        (minute - 1..=minute).contains(&n),
        "named after its scheduled minute: {}",
        j.name_any()
    );
    assert!(
        j.annotations()
            .contains_key("batch.kubernetes.io/cronjob-scheduled-timestamp")
    );
    eventually("status.active lists it", T, || async {
        let s = cronjobs.get("tick").await.unwrap().status?;
        (s.active?.iter().any(|r| r.name == j.metadata.name) && s.last_schedule_time.is_some())
            .then_some(())
    })
    .await;
    // The Job completes: it leaves status.active, sets lastSuccessfulTime, and with a history
    // limit of 0 is deleted.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    jobs.patch_status(&j.name_any(), &PatchParams::default(), &Patch::Merge(&json!({"status": {
        "conditions": [{"type": "Complete", "status": "True"}], "completionTime": now, "startTime": now, "succeeded": 1}}))).await.unwrap();
    eventually("history pruned", T, || async {
        let s = cronjobs.get("tick").await.unwrap().status?;
        let gone = jobs.get_opt(&j.name_any()).await.unwrap().is_none();
        (s.active.is_none() && s.last_successful_time.is_some() && gone).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_go_after_their_ttl() {
    let c = cluster().await;
    c.create(job("brief", json!({"ttlSecondsAfterFinished": 2})))
        .await;
    let pod = eventually("a pod", T, || async {
        active_pods(&c, "brief").await.pop()
    })
    .await;
    finish(&c, &pod.name_any(), "Succeeded", 0).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let done = eventually("Complete", T, || async {
        let j = jobs.get("brief").await.unwrap();
        condition(&j, "Complete").map(|_| std::time::Instant::now())
    })
    .await;
    // Without a garbage collector the foreground delete leaves the Job terminating.
    eventually("deleted after the TTL", T, || async {
        let j = jobs.get_opt("brief").await.unwrap();
        j.is_none_or(|j| j.metadata.deletion_timestamp.is_some())
            .then_some(())
    })
    .await;
    // Condition times have whole seconds, so the TTL counts from up to a second earlier.
    assert!(
        done.elapsed() >= Duration::from_millis(1000),
        "deleted before its TTL"
    );
}

/// A Job deleted while its pod runs lets the pod go: the tracking finalizer is removed from
/// pods whose Job is gone, so they do not stay Terminating (upstream's orphan-pod handling).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_jobs_pods_lose_the_tracking_finalizer() {
    let c = cluster().await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let tracked = |p: &k8s_openapi::api::core::v1::Pod| {
        p.finalizers()
            .iter()
            .any(|f| f == "batch.kubernetes.io/job-tracking")
    };
    // Deleted outright (its object gone at once: no garbage collector runs here), and
    // deleted orphaning its pods (the Job stays, terminating, until the collector acts).
    for (name, params) in [
        ("gone", kube::api::DeleteParams::default()),
        ("orphaning", kube::api::DeleteParams::orphan()),
    ] {
        c.create(job(name, json!({"parallelism": 1}))).await;
        let pod = eventually("a running pod with the finalizer", T, || async {
            active_pods(&c, name).await.into_iter().find(|p| tracked(p))
        })
        .await;
        jobs.delete(name, &params).await.unwrap();
        eventually("the finalizer removed", T, || async {
            let p = c.pods("default").get(&pod.name_any()).await.ok()?;
            (!tracked(&p)).then_some(())
        })
        .await;
    }
    let pod = c
        .live_pods("default", "batch.kubernetes.io/job-name=gone")
        .await
        .remove(0);
    // Deleted now, the pod goes away instead of staying Terminating.
    c.pods("default")
        .delete(
            &pod.name_any(),
            &kube::api::DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    eventually("the pod gone", T, || async {
        c.pods("default")
            .get_opt(&pod.name_any())
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}
