//! ControllerRevisions, the revision history of DaemonSets and StatefulSets: one revision
//! per distinct pod template, named `<owner>-<hash>`, numbered in the order templates were
//! used (a template used again gets the next number, as a rollback does). `kubectl rollout
//! history` and `undo` read them.

use common::api_errors::is_already_exists;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::controllers::deployment::util::template_hash;
use crate::controllers::podutil;
use crate::runtime::Informer;

pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// The revision data for a template, as upstream stores it: a patch replacing the template.
pub fn revision_data(template: &PodTemplateSpec) -> serde_json::Value {
    let mut t = serde_json::to_value(template).unwrap_or_default();
    t["$patch"] = json!("replace");
    json!({"spec": {"template": t}})
}

/// The template a revision holds.
fn template_of(rev: &ControllerRevision) -> Option<serde_json::Value> {
    let mut t = rev.data.as_ref()?.0["spec"]["template"].clone();
    t.as_object_mut()?.remove("$patch");
    Some(t)
}

/// The owner's revisions from the cache, lowest revision first.
pub fn owned(
    revisions: &Informer<ControllerRevision>,
    ns: &str,
    owner_uid: &str,
) -> Vec<Arc<ControllerRevision>> {
    let mut out: Vec<Arc<ControllerRevision>> = revisions
        .list_namespace(ns)
        .into_iter()
        .filter(|r| podutil::controller_ref(&r.metadata).is_some_and(|o| o.uid == owner_uid))
        .collect();
    out.sort_by_key(|r| r.revision);
    out
}

/// Makes sure the owner's current template has the newest revision and answers its name
/// (the value pods carry in controller-revision-hash) and the revision number.
pub async fn ensure_current<K: Resource<DynamicType = ()>>(
    client: &kube::Client,
    revisions: &Informer<ControllerRevision>,
    owner: &K,
    template: &PodTemplateSpec,
    labels: std::collections::BTreeMap<String, String>,
) -> crate::Result<(String, i64)> {
    let ns = owner.meta().namespace.clone().unwrap_or_default();
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let existing = owned(revisions, &ns, &uid);
    let max = existing.iter().map(|r| r.revision).max().unwrap_or(0);
    let want = serde_json::to_value(template)?;
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    if let Some(r) = existing
        .iter()
        .find(|r| template_of(r).as_ref() == Some(&want))
    {
        let hash = r
            .labels()
            .get(REVISION_HASH_LABEL)
            .cloned()
            .unwrap_or_else(|| r.name_any());
        if r.revision < max {
            let mut bumped = (**r).clone();
            bumped.revision = max + 1;
            api.replace(&r.name_any(), &PostParams::default(), &bumped)
                .await?;
            return Ok((hash, max + 1));
        }
        return Ok((hash, r.revision));
    }
    let owner_name = owner.meta().name.clone().unwrap_or_default();
    let hash = template_hash(template, None);
    let mut rev = ControllerRevision {
        data: Some(RawExtension(revision_data(template))),
        revision: max + 1,
        metadata: Default::default(),
    };
    rev.metadata.name = Some(format!("{owner_name}-{hash}"));
    rev.metadata.namespace = Some(ns);
    let mut labels = labels;
    labels.insert(REVISION_HASH_LABEL.into(), hash.clone());
    rev.metadata.labels = Some(labels);
    rev.metadata.owner_references = Some(vec![podutil::owner_ref_to(owner)]);
    match api.create(&PostParams::default(), &rev).await {
        Ok(_) => Ok((hash, max + 1)),
        // Created by a sync our cache has not seen yet: same name, same template.
        Err(e) if is_already_exists(&e) => Ok((hash, max + 1)),
        Err(e) => Err(e.into()),
    }
}
