//! The node IPAM controller (upstream's range allocator): gives every Node a pod CIDR from
//! --cluster-cidr, of size --node-cidr-mask-size, never handing one out twice, and takes it
//! back when the Node is deleted.

use std::net::Ipv4Addr;
use std::sync::Arc;

use async_trait::async_trait;
use common::events::{Involved, Recorder};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use parking_lot::Mutex;
use serde_json::json;

use crate::runtime::{Change, Context, Informer, Reconcile, Requeue, WorkQueue};

/// The subnets of a cluster CIDR, as a bitmap of which are taken.
#[derive(Debug)]
pub struct CidrSet {
    base: u32,
    cluster_prefix: u8,
    node_prefix: u8,
    used: Vec<bool>,
    /// Where the next search starts, so freed ranges are not reused at once.
    next: usize,
}

impl CidrSet {
    /// "10.244.0.0/16" split into /`node_prefix` subnets.
    pub fn new(cluster_cidr: &str, node_prefix: u8) -> crate::Result<CidrSet> {
        let (ip, prefix) = parse_cidr(cluster_cidr)?;
        if node_prefix < prefix || node_prefix == 0 || node_prefix > 32 {
            crate::error::invalid!(
                "--node-cidr-mask-size {node_prefix} must be between the cluster CIDR's prefix length {prefix} and 32"
            );
        }
        if node_prefix - prefix > 20 {
            crate::error::invalid!(
                "--cluster-cidr {cluster_cidr} with --node-cidr-mask-size {node_prefix} makes more than 2^20 subnets"
            );
        }
        Ok(CidrSet {
            base: u32::from(ip) & prefix_mask(prefix),
            cluster_prefix: prefix,
            node_prefix,
            used: vec![false; 1 << (node_prefix - prefix)],
            next: 0,
        })
    }

    fn cidr(&self, index: usize) -> String {
        let ip = self.base + ((index as u32) << (32 - u32::from(self.node_prefix)));
        format!("{}/{}", Ipv4Addr::from(ip), self.node_prefix)
    }

    fn index_of(&self, cidr: &str) -> Option<usize> {
        let (ip, prefix) = parse_cidr(cidr).ok()?;
        let ip = u32::from(ip);
        if prefix != self.node_prefix || ip & prefix_mask(self.cluster_prefix) != self.base {
            return None;
        }
        Some(((ip - self.base) >> (32 - u32::from(self.node_prefix))) as usize)
    }

    /// Takes the next free subnet, or `None` when all are taken.
    pub fn allocate(&mut self) -> Option<String> {
        let n = self.used.len();
        let i = (0..n)
            .map(|k| (self.next + k) % n)
            .find(|&i| !self.used[i])?;
        self.used[i] = true;
        self.next = (i + 1) % n;
        Some(self.cidr(i))
    }

    /// Marks a subnet (already on a Node) as taken; false if it is not in this set.
    pub fn occupy(&mut self, cidr: &str) -> bool {
        match self.index_of(cidr) {
            Some(i) => {
                self.used[i] = true;
                true
            }
            None => false,
        }
    }

    pub fn release(&mut self, cidr: &str) {
        if let Some(i) = self.index_of(cidr) {
            self.used[i] = false;
        }
    }
}

fn prefix_mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn parse_cidr(s: &str) -> crate::Result<(Ipv4Addr, u8)> {
    let (ip, prefix) = s
        .split_once('/')
        .ok_or_else(|| crate::Error::Invalid(format!("invalid CIDR address: {s}")))?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| {
        crate::Error::Invalid(format!(
            "invalid CIDR address: {s} (only IPv4 is supported)"
        ))
    })?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| crate::Error::Invalid(format!("invalid CIDR address: {s}")))?;
    Ok((ip, prefix))
}

fn pod_cidr(node: &Node) -> Option<&str> {
    node.spec
        .as_ref()?
        .pod_cidr
        .as_deref()
        .filter(|c| !c.is_empty())
}

pub struct NodeIpamController {
    client: kube::Client,
    nodes: Arc<Informer<Node>>,
    /// None until the first sync marks the CIDRs existing Nodes already have.
    cidrs: Mutex<Option<CidrSet>>,
    cluster_cidr: String,
    mask: u8,
    recorder: Arc<Recorder>,
}

/// Starts node IPAM when --allocate-node-cidrs is set; otherwise does nothing, as upstream.
pub fn start(ctx: &Context) -> crate::Result<BoxFuture<'static, ()>> {
    if !ctx.options.allocate_node_cidrs {
        tracing::info!("node ipam: --allocate-node-cidrs is false; not allocating pod CIDRs");
        return Ok(Box::pin(async {}));
    }
    let Some(cluster_cidr) = ctx.options.cluster_cidr.clone() else {
        crate::error::invalid!("--cluster-cidr is required when --allocate-node-cidrs=true");
    };
    // Check the flags before anything starts.
    CidrSet::new(&cluster_cidr, ctx.options.node_cidr_mask_size)?;
    let c = Arc::new(NodeIpamController {
        client: ctx.client.clone(),
        nodes: ctx.informers.get::<Node>(),
        cidrs: Mutex::new(None),
        cluster_cidr,
        mask: ctx.options.node_cidr_mask_size,
        recorder: ctx.recorder("cidrAllocator"),
    });
    let queue = WorkQueue::new("node_ipam");
    let (q, me) = (queue.clone(), c.clone());
    c.nodes.on_change(move |change| match change {
        Change::Added(n) | Change::Updated { new: n, .. } => {
            if pod_cidr(n).is_none() {
                q.add(n.name_any());
            }
        }
        Change::Deleted(n) => {
            if let (Some(cidr), Some(set)) = (pod_cidr(n), me.cidrs.lock().as_mut()) {
                tracing::info!(node = %n.name_any(), %cidr, "released pod CIDR");
                set.release(cidr);
            }
        }
    });
    // One worker: allocation is a serial decision.
    Ok(crate::runtime::run_workers(queue, c, 1))
}

impl NodeIpamController {
    fn allocate(&self) -> crate::Result<Option<String>> {
        let mut guard = self.cidrs.lock();
        if guard.is_none() {
            let mut set = CidrSet::new(&self.cluster_cidr, self.mask)?;
            for n in self.nodes.list() {
                if let Some(c) = pod_cidr(&n)
                    && !set.occupy(c)
                {
                    tracing::warn!(node = %n.name_any(), cidr = c, "node's pod CIDR is outside --cluster-cidr");
                }
            }
            *guard = Some(set);
        }
        Ok(guard.as_mut().and_then(CidrSet::allocate))
    }
}

#[async_trait]
impl Reconcile for NodeIpamController {
    async fn sync(&self, name: &str) -> crate::Result<Requeue> {
        let Some(node) = self.nodes.get(name) else {
            return Ok(None);
        };
        if pod_cidr(&node).is_some() {
            return Ok(None);
        }
        let Some(cidr) = self.allocate()? else {
            self.recorder.warning(
                &Involved::of(&*node),
                "CIDRNotAvailable",
                format!("Node {name} status is now: CIDRNotAvailable"),
            );
            crate::error::unfinished!("no pod CIDR left in {} for node {name}", self.cluster_cidr);
        };
        let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
        let api: Api<Node> = Api::all(self.client.clone());
        if let Err(e) = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            if let Some(set) = self.cidrs.lock().as_mut() {
                set.release(&cidr);
            }
            return Err(e.into());
        }
        tracing::info!(node = name, %cidr, "allocated pod CIDR");
        self.recorder.normal(
            &Involved::of(&*node),
            "CIDRAssignmentSucceeded",
            format!("Node {name} was assigned pod CIDR {cidr}"),
        );
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_handed_out_once_and_reused_after_release() {
        let mut s = CidrSet::new("10.244.0.0/16", 24).unwrap();
        assert_eq!(s.allocate().as_deref(), Some("10.244.0.0/24"));
        assert!(s.occupy("10.244.1.0/24"));
        assert_eq!(s.allocate().as_deref(), Some("10.244.2.0/24"));
        s.release("10.244.0.0/24");
        // The search goes on from where it was before wrapping around.
        assert_eq!(s.allocate().as_deref(), Some("10.244.3.0/24"));
        assert!(!s.occupy("10.245.0.0/24"), "outside the cluster CIDR");
        let mut small = CidrSet::new("10.0.0.0/30", 31).unwrap();
        assert!(small.allocate().is_some() && small.allocate().is_some());
        assert_eq!(small.allocate(), None, "full");
        assert!(CidrSet::new("10.0.0.0/16", 8).is_err());
        assert!(CidrSet::new("fd00::/64", 80).is_err());
    }
}
