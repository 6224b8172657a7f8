//! The pod's /etc/hosts, which the kubelet writes and mounts into each container as
//! upstream's does: localhost, the pod's own addresses under its hostname (and its FQDN
//! `<hostname>.<subdomain>.<namespace>.svc.<cluster-domain>` when it names a subdomain, as
//! StatefulSet pods do), then the pod's hostAliases. A pod on the host's network gets the
//! node's own file with its hostAliases added.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use k8s_cri::v1 as cri;

/// Where the file lives: `<root>/pods/<uid>/etc-hosts`.
pub fn path(root: &Path, uid: &str) -> PathBuf {
    super::volumes::pod_dir(root, uid).join("etc-hosts")
}

/// The pod's hostname: spec.hostname, else its name cut to 63 characters (a DNS label).
pub fn hostname(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    match spec
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
    {
        Some(h) => h.to_owned(),
        None => {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            name[..name.len().min(63)]
                .trim_end_matches(['-', '.'])
                .to_owned()
        }
    }
}

/// Where a host-network pod's file starts from.
const NODE_HOSTS: &str = "/etc/hosts";

/// What the file is made of.
pub enum Base<'a> {
    /// A pod with its own network and these addresses.
    Pod(&'a [&'a str]),
    /// A pod on the host's network: the node's file.
    Node(&'a str),
}

/// The file's content.
pub fn render(pod: &Pod, base: Base, cluster_domain: &str) -> String {
    let mut out = match base {
        Base::Pod(ips) => pod_entries(pod, ips, cluster_domain),
        Base::Node(node) => format!("# Kubernetes-managed hosts file (host network).\n{node}"),
    };
    let aliases = pod.spec.as_ref().and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases {
            let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
            let _ = writeln!(out, "{}\t{names}", alias.ip);
        }
    }
    out
}

/// localhost and the pod's addresses under its names.
fn pod_entries(pod: &Pod, ips: &[&str], cluster_domain: &str) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    let host = hostname(pod);
    let spec = pod.spec.as_ref();
    let subdomain = spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty());
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    for ip in ips.iter().filter(|ip| !ip.is_empty()) {
        match subdomain {
            Some(sub) if !cluster_domain.is_empty() => {
                let _ = writeln!(
                    out,
                    "{ip}\t{host}.{sub}.{namespace}.svc.{cluster_domain}\t{host}"
                );
            }
            _ => {
                let _ = writeln!(out, "{ip}\t{host}");
            }
        }
    }
    out
}

/// Writes the pod's file (when its content changed): from its addresses `ips`, or from
/// the node's file for a host-network pod. Answers its path.
pub fn write(
    root: &Path,
    pod: &Pod,
    ips: &[&str],
    cluster_domain: &str,
) -> std::io::Result<PathBuf> {
    let path = path(root, super::spec::uid(pod));
    let content = if super::spec::host_network(pod) {
        render(
            pod,
            Base::Node(&std::fs::read_to_string(NODE_HOSTS)?),
            cluster_domain,
        )
    } else {
        render(pod, Base::Pod(ips), cluster_domain)
    };
    if std::fs::read_to_string(&path).ok().as_deref() != Some(content.as_str()) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Whole or not at all: a container starting meanwhile never reads half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, content)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

/// The mount of the file at /etc/hosts, unless the container mounts something there itself.
pub fn mount(c: &Container, file: &Path) -> Option<cri::Mount> {
    let own = c
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| Path::new(&m.mount_path) == Path::new("/etc/hosts"));
    (!own).then(|| cri::Mount {
        container_path: "/etc/hosts".into(),
        host_path: file.display().to_string(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "web-0", "namespace": "app", "uid": "u1"},
            "spec": spec}),
        )
        .unwrap()
    }

    const LOCAL: &str = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n";

    #[test]
    fn a_pod_is_named_by_its_hostname_and_fqdn_then_its_aliases() {
        let plain = pod(json!({"containers": []}));
        assert_eq!(
            render(&plain, Base::Pod(&["10.244.0.5"]), "cluster.local"),
            format!("{LOCAL}10.244.0.5\tweb-0\n")
        );
        let stateful = pod(
            json!({"containers": [], "hostname": "db-0", "subdomain": "db",
            "hostAliases": [{"ip": "192.0.2.1", "hostnames": ["foo.local", "bar.local"]}]}),
        );
        assert_eq!(
            render(&stateful, Base::Pod(&["10.244.0.5"]), "cluster.local"),
            format!(
                "{LOCAL}10.244.0.5\tdb-0.db.app.svc.cluster.local\tdb-0\n\n# Entries added by HostAliases.\n192.0.2.1\tfoo.local\tbar.local\n"
            )
        );
        // No cluster domain: no FQDN to give.
        assert_eq!(
            render(&stateful, Base::Pod(&["10.244.0.5"]), ""),
            format!(
                "{LOCAL}10.244.0.5\tdb-0\n\n# Entries added by HostAliases.\n192.0.2.1\tfoo.local\tbar.local\n"
            )
        );
    }

    #[test]
    fn a_host_network_pod_gets_the_nodes_file_and_its_aliases() {
        let p = pod(json!({"containers": [], "hostNetwork": true,
            "hostAliases": [{"ip": "192.0.2.1", "hostnames": ["foo.local"]}]}));
        assert_eq!(
            render(
                &p,
                Base::Node("127.0.0.1 localhost\n10.0.0.5 node-a"),
                "cluster.local"
            ),
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n10.0.0.5 node-a\n\n# Entries added by HostAliases.\n192.0.2.1\tfoo.local\n"
        );
    }

    #[test]
    fn long_names_are_cut_to_a_label() {
        let long = format!("{}-x", "a".repeat(62));
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": long}})).unwrap();
        assert_eq!(hostname(&p), "a".repeat(62));
    }

    #[test]
    fn a_container_mounting_its_own_hosts_file_keeps_it() {
        let c: Container = serde_json::from_value(json!({"name": "c",
            "volumeMounts": [{"name": "h", "mountPath": "/etc/hosts"}]}))
        .unwrap();
        assert!(mount(&c, Path::new("/x")).is_none());
        let c: Container = serde_json::from_value(json!({"name": "c"})).unwrap();
        assert_eq!(
            mount(&c, Path::new("/x")).unwrap().container_path,
            "/etc/hosts"
        );
    }

    #[test]
    fn the_file_is_rewritten_only_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = pod(json!({"containers": []}));
        let path = write(dir.path(), &p, &["10.244.0.5"], "cluster.local").unwrap();
        assert_eq!(path, dir.path().join("pods/u1/etc-hosts"));
        let first = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(dir.path(), &p, &["10.244.0.5"], "cluster.local").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), first);
        write(dir.path(), &p, &["10.244.0.6"], "cluster.local").unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("10.244.0.6\tweb-0")
        );
    }
}
