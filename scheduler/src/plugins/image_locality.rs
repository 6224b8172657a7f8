//! ImageLocality: prefers nodes that already have the pod's images, weighted by image size
//! and scaled down for images that are on many nodes (so pods do not pile up where a
//! common image happens to be).

use std::sync::Arc;

use crate::cache::Snapshot;
use crate::framework::types::normalized_image_name;
use crate::framework::{
    CycleState, Handle, MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo, PreScorePlugin, ScorePlugin,
    Status,
};

pub const NAME: &str = "ImageLocality";

const MB: i64 = 1024 * 1024;
/// Below this total the score is 0 (upstream's minThreshold).
const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container; at this total the score is 100.
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

pub struct ImageLocality;

pub fn factory(_: Option<&serde_json::Value>, _: &Arc<Handle>) -> crate::Result<Arc<dyn Plugin>> {
    Ok(Arc::new(ImageLocality))
}

/// The pod's images (normalized) with the share of nodes that have each.
struct PreScoreState {
    images: Vec<(String, f64)>,
    containers: i64,
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreScorePlugin for ImageLocality {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &[&NodeInfo],
        snapshot: &Snapshot,
    ) -> Status {
        let spec = pod.spec();
        let total = snapshot.nodes.len().max(1) as f64;
        let all = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers);
        let mut images = Vec::new();
        let mut containers = 0;
        for c in all {
            containers += 1;
            let name = normalized_image_name(c.image.as_deref().unwrap_or(""));
            let spread = snapshot.image_nodes.get(&name).copied().unwrap_or(0) as f64 / total;
            images.push((name, spread));
        }
        // No node has any of the images: every score would be 0.
        if images.iter().all(|(_, spread)| *spread == 0.0) {
            return Status::skip();
        }
        state.write(PreScoreState { images, containers });
        Status::success()
    }
}

impl ScorePlugin for ImageLocality {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<PreScoreState>() else {
            return 0;
        };
        if node.images.is_empty() {
            return 0;
        }
        let sum: i64 = s
            .images
            .iter()
            .filter_map(|(name, spread)| {
                node.images
                    .get(name)
                    .map(|i| (i.size as f64 * spread) as i64)
            })
            .sum();
        let max = MAX_CONTAINER_THRESHOLD * s.containers.max(1);
        let clamped = sum.clamp(MIN_THRESHOLD, max);
        MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_util::score;
    use crate::testing::{make_node, make_pod};

    #[test]
    fn nodes_with_big_images_score_higher() {
        let nodes = || {
            vec![
                make_node("a").image("docker.io/app:v1", 500 * MB).info(),
                make_node("b")
                    .image("docker.io/app:v1", 500 * MB)
                    .image("tiny", 10 * MB)
                    .info(),
                make_node("c").info(),
                make_node("d").info(),
            ]
        };
        // Half the nodes have it: 250 MB counts -> (250-23)*100/(1000-23) = 23.
        let pod = make_pod("p").image("docker.io/app:v1").info();
        assert_eq!(
            score(&ImageLocality, &pod, nodes()).unwrap(),
            vec![23, 23, 0, 0]
        );
        // Small images stay under the threshold; `tiny` means `tiny:latest`.
        let pod = make_pod("p").image("tiny:latest").info();
        assert_eq!(
            score(&ImageLocality, &pod, nodes()).unwrap(),
            vec![0, 0, 0, 0]
        );
    }
}
