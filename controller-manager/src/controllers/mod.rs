//! The controllers, one module each, and the table `--controllers` selects from.

pub mod bootstrapsigner;
pub mod certificates;
pub mod clusterroleaggregation;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoint;
pub mod garbagecollector;
pub mod history;
pub mod job;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod podutil;
pub mod replicaset;
pub mod resourcequota;
pub mod rootcacertpublisher;
pub mod serviceaccount;
pub mod statefulset;
pub mod tainteviction;
pub mod tokencleaner;
pub mod ttlafterfinished;
pub mod volumeprotection;

use futures::future::BoxFuture;

use crate::runtime::Context;

/// Registers a controller's handlers on the shared informers and answers the future that
/// runs its workers.
pub type Starter = fn(&Context) -> crate::Result<BoxFuture<'static, ()>>;

/// One controller kube-controller-manager can run.
#[derive(Debug)]
pub struct Descriptor {
    /// Upstream's name, as `--controllers` spells it.
    pub name: &'static str,
    pub enabled_by_default: bool,
    pub start: Starter,
}

/// Every controller, in the order they start.
pub const ALL: &[Descriptor] = &[
    // Off by default as upstream; kubeadm runs `--controllers=*,bootstrapsigner,tokencleaner`.
    Descriptor {
        name: "bootstrapsigner",
        enabled_by_default: false,
        start: bootstrapsigner::start,
    },
    Descriptor {
        name: "clusterrole-aggregation",
        enabled_by_default: true,
        start: clusterroleaggregation::start,
    },
    Descriptor {
        name: "csrapproving",
        enabled_by_default: true,
        start: certificates::start_approving,
    },
    Descriptor {
        name: "csrsigning",
        enabled_by_default: true,
        start: certificates::start_signing,
    },
    Descriptor {
        name: "cronjob",
        enabled_by_default: true,
        start: cronjob::start,
    },
    Descriptor {
        name: "daemonset",
        enabled_by_default: true,
        start: daemonset::start,
    },
    Descriptor {
        name: "deployment",
        enabled_by_default: true,
        start: deployment::start,
    },
    Descriptor {
        name: "disruption",
        enabled_by_default: true,
        start: disruption::start,
    },
    Descriptor {
        name: "endpoint",
        enabled_by_default: true,
        start: endpoint::endpoints::start,
    },
    Descriptor {
        name: "endpointslice",
        enabled_by_default: true,
        start: endpoint::endpointslice::start,
    },
    Descriptor {
        name: "garbagecollector",
        enabled_by_default: true,
        start: garbagecollector::start,
    },
    Descriptor {
        name: "job",
        enabled_by_default: true,
        start: job::start,
    },
    Descriptor {
        name: "namespace",
        enabled_by_default: true,
        start: namespace::start,
    },
    Descriptor {
        name: "nodeipam",
        enabled_by_default: true,
        start: nodeipam::start,
    },
    Descriptor {
        name: "nodelifecycle",
        enabled_by_default: true,
        start: nodelifecycle::start,
    },
    Descriptor {
        name: "podgc",
        enabled_by_default: true,
        start: podgc::start,
    },
    Descriptor {
        name: "pv-protection",
        enabled_by_default: true,
        start: volumeprotection::start_pv,
    },
    Descriptor {
        name: "pvc-protection",
        enabled_by_default: true,
        start: volumeprotection::start_pvc,
    },
    Descriptor {
        name: "replicaset",
        enabled_by_default: true,
        start: replicaset::start_replicaset,
    },
    Descriptor {
        name: "replicationcontroller",
        enabled_by_default: true,
        start: replicaset::start_replicationcontroller,
    },
    Descriptor {
        name: "resourcequota",
        enabled_by_default: true,
        start: resourcequota::start,
    },
    Descriptor {
        name: "root-ca-cert-publisher",
        enabled_by_default: true,
        start: rootcacertpublisher::start,
    },
    Descriptor {
        name: "serviceaccount",
        enabled_by_default: true,
        start: serviceaccount::start,
    },
    Descriptor {
        name: "statefulset",
        enabled_by_default: true,
        start: statefulset::start,
    },
    Descriptor {
        name: "taint-eviction-controller",
        enabled_by_default: true,
        start: tainteviction::start,
    },
    // Off by default as upstream, like bootstrapsigner.
    Descriptor {
        name: "tokencleaner",
        enabled_by_default: false,
        start: tokencleaner::start,
    },
    Descriptor {
        name: "ttl-after-finished",
        enabled_by_default: true,
        start: ttlafterfinished::start,
    },
];

/// The controllers `--controllers` enables, with upstream's rules: `name` turns one on,
/// `-name` turns it off, `*` turns on those that are on by default (not bootstrapsigner or
/// tokencleaner, which only run when named); an explicit mention wins over `*`.
pub fn enabled(flags: &[String]) -> crate::Result<Vec<&'static Descriptor>> {
    for f in flags {
        let name = f.strip_prefix('-').unwrap_or(f);
        if name != "*" && !ALL.iter().any(|d| d.name == name) {
            crate::error::invalid!(
                "{name:?} is not in the list of known controllers: {}",
                ALL.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let star = flags.iter().any(|f| f == "*");
    Ok(ALL
        .iter()
        .filter(|d| {
            if flags.iter().any(|f| f == d.name) {
                true
            } else if flags.iter().any(|f| f.strip_prefix('-') == Some(d.name)) {
                false
            } else {
                star && d.enabled_by_default
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(flags: &[&str]) -> Vec<&'static str> {
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        enabled(&flags).unwrap().iter().map(|d| d.name).collect()
    }

    #[test]
    fn controllers_flag_follows_upstream_syntax() {
        assert_eq!(
            names(&["*"]).len(),
            ALL.iter().filter(|d| d.enabled_by_default).count()
        );
        assert_eq!(names(&["replicaset"]), ["replicaset"]);
        assert!(!names(&["*", "-replicaset"]).contains(&"replicaset"));
        assert!(names(&[]).is_empty());
        // Upstream's disabled-by-default controllers run only when named.
        for off in ["bootstrapsigner", "tokencleaner"] {
            assert!(!names(&["*"]).contains(&off));
            assert!(names(&["*", "bootstrapsigner", "tokencleaner"]).contains(&off));
        }
        assert_eq!(
            names(&["*", "bootstrapsigner", "tokencleaner"]).len(),
            names(&["*"]).len() + 2
        );
        let err = enabled(&["bogus".to_owned()]).unwrap_err().to_string();
        assert!(
            err.starts_with("\"bogus\" is not in the list of known controllers"),
            "{err}"
        );
    }
}
