//! Creating and deleting a controller's pods, as upstream's PodControl (controller_utils.go):
//! the pod a template describes (`pod_from_template`, upstream's GetPodFromTemplate), and
//! `PodControl`, which creates pods in slow-start batches and deletes them, records each
//! outcome as an event on the owner and keeps the owner's expectations honest: a pod that
//! was not created or deleted will never be observed, so it is counted as observed at once.

use std::sync::Arc;

use common::events::{Involved, Recorder};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Resource, ResourceExt};

use super::expectations::Expectations;
use super::worker::api_message;
use crate::controllers::podutil;
use common::api_errors::is_not_found;

/// Event reasons, as upstream's controller package names them.
pub const SUCCESSFUL_CREATE: &str = "SuccessfulCreate";
pub const FAILED_CREATE: &str = "FailedCreate";
pub const SUCCESSFUL_DELETE: &str = "SuccessfulDelete";
pub const FAILED_DELETE: &str = "FailedDelete";

/// The status cause of a create refused because the namespace is being deleted.
const NAMESPACE_TERMINATING_CAUSE: &str = "NamespaceTerminating";

/// The longest pod name; a generateName prefix must leave room for the random suffix.
const MAX_NAME_LEN: usize = 253;

/// The pod `owner` creates from `template`: the template's labels, annotations, finalizers
/// and spec, in the owner's namespace, named `<owner>-<random>`, with a controller reference
/// (blockOwnerDeletion set) to the owner. Controllers add their own labels, names or
/// finalizers to it.
pub fn pod_from_template<K: Resource<DynamicType = ()>>(
    owner: &K,
    template: &PodTemplateSpec,
) -> Pod {
    let tm = template.metadata.clone().unwrap_or_default();
    let mut pod = Pod {
        metadata: Default::default(),
        spec: template.spec.clone(),
        status: None,
    };
    pod.metadata.generate_name = Some(generate_name_prefix(&owner.name_any()));
    pod.metadata.namespace = owner.meta().namespace.clone();
    pod.metadata.labels = tm.labels;
    pod.metadata.annotations = tm.annotations;
    pod.metadata.finalizers = tm.finalizers;
    pod.metadata.owner_references = Some(vec![podutil::owner_ref_to(owner)]);
    pod
}

/// `<name>-`, or the bare name when the dash would make the prefix too long to be a pod
/// name (upstream's getPodsPrefix).
fn generate_name_prefix(name: &str) -> String {
    if name.len() < MAX_NAME_LEN {
        format!("{name}-")
    } else {
        name.to_owned()
    }
}

/// Sizes of the creation batches: 1, 2, 4, ... so that a failing create (quota, bad
/// template) fails fast instead of n times (upstream's slowStartBatch).
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut remaining, mut size) = (count, 1usize);
    while remaining > 0 {
        let b = size.min(remaining);
        out.push(b);
        remaining -= b;
        size *= 2;
    }
    out
}

/// The create failed only because the namespace is going away: every other create there
/// fails too, and that is no news worth an event or a retry.
fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.details.as_ref().is_some_and(|d| {
        d.causes.iter().any(|c| c.reason == NAMESPACE_TERMINATING_CAUSE)
    }))
}

/// What one create came to.
enum Created {
    Yes,
    /// Refused because the namespace is terminating: not an error, but no pod either.
    NamespaceTerminating,
}

/// Creates and deletes the pods of one controller, reporting as its event recorder and
/// counting in its expectations (keyed by the owner's work-queue key).
pub struct PodControl {
    client: kube::Client,
    recorder: Arc<Recorder>,
    expectations: Arc<Expectations>,
}

impl PodControl {
    pub fn new(
        client: kube::Client,
        recorder: Arc<Recorder>,
        expectations: Arc<Expectations>,
    ) -> PodControl {
        PodControl {
            client,
            recorder,
            expectations,
        }
    }

    fn api(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Creates `pods` (each from `pod_from_template`) for `owner`, whose key is `key`:
    /// expects them all, then creates them in slow-start batches, each batch at once. After
    /// a batch with a failure the rest are not attempted; the failed and the skipped are
    /// counted as observed, and the first error is returned.
    pub async fn create_pods<K: Resource<DynamicType = ()>>(
        &self,
        key: &str,
        owner: &K,
        pods: Vec<Pod>,
    ) -> crate::Result<()> {
        if pods.is_empty() {
            return Ok(());
        }
        let total = pods.len();
        self.expectations.expect_creations(key, total);
        let api = self.api(&owner.namespace().unwrap_or_default());
        let mut pods = pods.into_iter();
        let mut created = 0;
        for size in slow_start_batches(total) {
            let batch: Vec<Pod> = pods.by_ref().take(size).collect();
            let results =
                futures::future::join_all(batch.iter().map(|p| self.create_pod(&api, owner, p)))
                    .await;
            let mut first_error = None;
            for r in results {
                match r {
                    Ok(Created::Yes) => created += 1,
                    Ok(Created::NamespaceTerminating) => self.expectations.creation_observed(key),
                    Err(e) => {
                        self.expectations.creation_observed(key);
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                // The pods not attempted will never be observed either.
                for _ in pods {
                    self.expectations.creation_observed(key);
                }
                return Err(e.context(format!(
                    "creating pods for {key} ({created} of {total} created)"
                )));
            }
        }
        Ok(())
    }

    /// One create, recorded as SuccessfulCreate or FailedCreate on the owner.
    async fn create_pod<K: Resource<DynamicType = ()>>(
        &self,
        api: &Api<Pod>,
        owner: &K,
        pod: &Pod,
    ) -> crate::Result<Created> {
        if pod.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            crate::error::invalid!("unable to create pods, no labels");
        }
        match api.create(&PostParams::default(), pod).await {
            Ok(p) => {
                self.recorder.normal(
                    &Involved::of(owner),
                    SUCCESSFUL_CREATE,
                    format!("Created pod: {}", p.name_any()),
                );
                Ok(Created::Yes)
            }
            Err(e) if namespace_terminating(&e) => Ok(Created::NamespaceTerminating),
            Err(e) => {
                self.recorder.warning(
                    &Involved::of(owner),
                    FAILED_CREATE,
                    format!("Error creating: {}", api_message(&e)),
                );
                Err(e.into())
            }
        }
    }

    /// Deletes `pods` of `owner`, whose key is `key`, all at once: expects their deletions,
    /// counts a failed one as observed, and returns the first error other than NotFound (a
    /// pod already gone is what was wanted).
    pub async fn delete_pods<K: Resource<DynamicType = ()>, P: AsRef<Pod>>(
        &self,
        key: &str,
        owner: &K,
        pods: &[P],
    ) -> crate::Result<()> {
        if pods.is_empty() {
            return Ok(());
        }
        let uid = |p: &P| p.as_ref().metadata.uid.clone().unwrap_or_default();
        self.expectations
            .expect_deletions(key, pods.iter().map(uid));
        let api = self.api(&owner.namespace().unwrap_or_default());
        let results = futures::future::join_all(
            pods.iter()
                .map(|p| self.delete_pod(&api, owner, p.as_ref())),
        )
        .await;
        let mut first_error = None;
        for (p, r) in pods.iter().zip(results) {
            if let Err(e) = r {
                self.expectations.deletion_observed(key, &uid(p));
                if !is_not_found(&e) {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(crate::Error::from(e).context(format!("deleting pods for {key}"))),
            None => Ok(()),
        }
    }

    /// One delete, recorded as SuccessfulDelete or FailedDelete on the owner; a pod already
    /// gone is no event.
    async fn delete_pod<K: Resource<DynamicType = ()>>(
        &self,
        api: &Api<Pod>,
        owner: &K,
        pod: &Pod,
    ) -> Result<(), kube::Error> {
        let name = pod.name_any();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                self.recorder.normal(
                    &Involved::of(owner),
                    SUCCESSFUL_DELETE,
                    format!("Deleted pod: {name}"),
                );
                Ok(())
            }
            Err(e) if is_not_found(&e) => Err(e),
            Err(e) => {
                self.recorder.warning(
                    &Involved::of(owner),
                    FAILED_DELETE,
                    format!("Error deleting: {}", api_message(&e)),
                );
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use serde_json::json;

    /// The pod `owner` (a ReplicaSet) makes from `template` is `expected` (less its kind).
    fn check(
        owner: serde_json::Value,
        template: serde_json::Value,
        mut expected: serde_json::Value,
    ) {
        let owner: ReplicaSet = serde_json::from_value(owner).unwrap();
        let template: PodTemplateSpec = serde_json::from_value(template).unwrap();
        let pod = pod_from_template(&owner, &template);
        expected["apiVersion"] = json!("v1");
        expected["kind"] = json!("Pod");
        assert_eq!(serde_json::to_value(&pod).unwrap(), expected);
    }

    #[test]
    fn the_pod_carries_the_template_and_a_controller_reference() {
        check(
            json!({"metadata": {"name": "web", "namespace": "ns", "uid": "u1"}}),
            json!({
                "metadata": {
                    "name": "ignored",
                    "labels": {"app": "web"},
                    "annotations": {"a": "b"},
                    "finalizers": ["example.com/keep"],
                },
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            }),
            json!({
                "metadata": {
                    "generateName": "web-",
                    "namespace": "ns",
                    "labels": {"app": "web"},
                    "annotations": {"a": "b"},
                    "finalizers": ["example.com/keep"],
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                        "uid": "u1", "controller": true, "blockOwnerDeletion": true,
                    }],
                },
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            }),
        );
    }

    #[test]
    fn a_template_without_metadata_gives_a_bare_pod() {
        check(
            json!({"metadata": {"name": "web", "namespace": "ns", "uid": "u1"}}),
            json!({}),
            json!({
                "metadata": {
                    "generateName": "web-",
                    "namespace": "ns",
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                        "uid": "u1", "controller": true, "blockOwnerDeletion": true,
                    }],
                },
            }),
        );
    }

    #[test]
    fn the_name_prefix_keeps_room_for_a_pod_name() {
        assert_eq!(generate_name_prefix("web"), "web-");
        let long = "a".repeat(MAX_NAME_LEN);
        assert_eq!(generate_name_prefix(&long), long);
        let almost = "a".repeat(MAX_NAME_LEN - 1);
        assert_eq!(generate_name_prefix(&almost), format!("{almost}-"));
    }

    #[test]
    fn batches_double() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(1000).iter().sum::<usize>(), 1000);
    }

    #[test]
    fn only_the_namespace_terminating_cause_counts() {
        let status = |causes: serde_json::Value| {
            kube::Error::Api(Box::new(
                serde_json::from_value(json!({
                    "status": "Failure", "code": 403, "reason": "Forbidden",
                    "message": "pods is forbidden",
                    "details": {"kind": "pods", "causes": causes},
                }))
                .unwrap(),
            ))
        };
        assert!(namespace_terminating(&status(json!([
            {"reason": "NamespaceTerminating", "message": "namespace ns is being terminated"}
        ]))));
        assert!(!namespace_terminating(&status(json!([]))));
        assert!(!namespace_terminating(&status(json!([
            {"reason": "FieldValueForbidden", "field": "spec"}
        ]))));
    }
}
