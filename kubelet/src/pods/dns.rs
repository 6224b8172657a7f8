//! A pod's resolver configuration, as upstream's kubelet makes it (pkg/kubelet/network/dns):
//! the runtime writes it as the pod's /etc/resolv.conf.
//!
//! - `ClusterFirst` (the default): the cluster DNS servers (`--cluster-dns`), the search
//!   list `<ns>.svc.<domain> svc.<domain> <domain>` followed by the host's, and `ndots:5`.
//!   A pod on the host's network falls back to `Default`, as does every pod when the
//!   kubelet has no cluster DNS.
//! - `ClusterFirstWithHostNet`: `ClusterFirst`, also on the host's network.
//! - `Default`: the host's resolv.conf (`--resolv-conf`) as it is.
//! - `None`: only the pod's `dnsConfig`.
//!
//! The pod's `dnsConfig` is then merged in (servers and searches appended without
//! repeats, options replaced by name), and the result cut to upstream's limits: 3 servers,
//! 32 search domains of at most 2048 characters in all.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;

use k8s_cri::v1 as cri;

/// Upstream's limits (pkg/apis/core/validation).
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;

/// What the kubelet knows of DNS: its flags and the host's resolver configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// --cluster-dns.
    pub cluster_dns: Vec<IpAddr>,
    /// --cluster-domain.
    pub cluster_domain: String,
    /// The host's resolv.conf (--resolv-conf), read at start; None: none given, the
    /// runtime's own default (the node's /etc/resolv.conf) for pods that use the host's.
    pub host: Option<ResolvConf>,
}

/// The parts of a resolv.conf a pod's configuration is made of.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses a resolv.conf as upstream does: every `nameserver`, the last `search` (or
    /// `domain`) line, the last `options` line.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => conf.nameservers.extend(words.next().map(str::to_owned)),
                Some("search") | Some("domain") => {
                    conf.searches = words.map(|w| w.trim_end_matches('.').to_owned()).collect()
                }
                Some("options") => conf.options = words.map(str::to_owned).collect(),
                _ => {}
            }
        }
        conf
    }
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !item.is_empty() && !list.iter().any(|i| i == item) {
        list.push(item.to_owned());
    }
}

/// The option's name (`ndots` of `ndots:5`).
fn option_name(option: &str) -> &str {
    option.split(':').next().unwrap_or(option)
}

/// The resolver configuration for `pod`'s sandbox; None leaves it to the runtime.
pub fn pod_dns(pod: &Pod, settings: &Settings) -> Option<cri::DnsConfig> {
    let none = Default::default();
    let spec = pod.spec.as_ref().unwrap_or(&none);
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    } && !settings.cluster_dns.is_empty();
    let mut conf = if policy == "None" {
        ResolvConf::default()
    } else if cluster {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let domain = settings.cluster_domain.trim_end_matches('.');
        let mut searches = Vec::new();
        for s in [
            format!("{namespace}.svc.{domain}"),
            format!("svc.{domain}"),
            domain.to_owned(),
        ]
        .iter()
        .chain(settings.host.iter().flat_map(|h| &h.searches))
        {
            push_unique(&mut searches, s);
        }
        ResolvConf {
            nameservers: settings.cluster_dns.iter().map(IpAddr::to_string).collect(),
            searches,
            options: vec!["ndots:5".into()],
        }
    } else {
        match &settings.host {
            Some(host) => host.clone(),
            // The runtime copies the node's own file, unless the pod adds to it.
            None if spec.dns_config.is_none() => return None,
            None => ResolvConf::default(),
        }
    };
    if let Some(extra) = &spec.dns_config {
        for server in extra.nameservers.iter().flatten() {
            push_unique(&mut conf.nameservers, server);
        }
        for search in extra.searches.iter().flatten() {
            push_unique(&mut conf.searches, search);
        }
        for option in extra.options.iter().flatten() {
            let Some(name) = option.name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            conf.options.retain(|o| option_name(o) != name);
            conf.options.push(match &option.value {
                Some(value) => format!("{name}:{value}"),
                None => name.to_owned(),
            });
        }
    }
    conf.nameservers.truncate(MAX_NAMESERVERS);
    conf.searches.truncate(MAX_SEARCHES);
    while conf.searches.iter().map(|s| s.len() + 1).sum::<usize>() > MAX_SEARCH_CHARS {
        conf.searches.pop();
    }
    Some(cri::DnsConfig {
        servers: conf.nameservers,
        searches: conf.searches,
        options: conf.options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> Settings {
        Settings {
            cluster_dns: vec!["10.96.0.10".parse().unwrap()],
            cluster_domain: "cluster.local".into(),
            host: Some(ResolvConf::parse(
                "# the host's\nnameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example. lab.example\noptions edns0 timeout:2\n",
            )),
        }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "app"}, "spec": spec}))
            .unwrap()
    }

    fn dns(spec: serde_json::Value) -> (Vec<String>, Vec<String>, Vec<String>) {
        let c = pod_dns(&pod(spec), &settings()).expect("a configuration");
        (c.servers, c.searches, c.options)
    }

    #[test]
    fn each_policy_as_upstream_writes_it() {
        let cluster = (
            vec!["10.96.0.10".to_owned()],
            vec![
                "app.svc.cluster.local".to_owned(),
                "svc.cluster.local".into(),
                "cluster.local".into(),
                "corp.example".into(),
                "lab.example".into(),
            ],
            vec!["ndots:5".to_owned()],
        );
        let host = (
            vec!["192.0.2.53".to_owned(), "192.0.2.54".into()],
            vec!["corp.example".to_owned(), "lab.example".into()],
            vec!["edns0".to_owned(), "timeout:2".into()],
        );
        assert_eq!(dns(json!({})), cluster, "ClusterFirst by default");
        assert_eq!(dns(json!({"dnsPolicy": "ClusterFirst"})), cluster);
        assert_eq!(dns(json!({"dnsPolicy": "Default"})), host);
        assert_eq!(
            dns(json!({"dnsPolicy": "ClusterFirst", "hostNetwork": true})),
            host,
            "a pod on the host's network falls back to Default"
        );
        assert_eq!(
            dns(json!({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": true})),
            cluster
        );
        assert_eq!(dns(json!({"dnsPolicy": "None"})), (vec![], vec![], vec![]));
        // Without cluster DNS, ClusterFirst is the host's.
        let mut no_cluster = settings();
        no_cluster.cluster_dns.clear();
        assert_eq!(
            pod_dns(&pod(json!({})), &no_cluster).unwrap().servers,
            host.0
        );
        // Without the host's file either, the runtime's default.
        assert_eq!(pod_dns(&pod(json!({})), &Settings::default()), None);
    }

    #[test]
    fn dns_config_merges_and_limits_hold() {
        let (servers, searches, options) = dns(json!({"dnsPolicy": "ClusterFirst", "dnsConfig": {
            "nameservers": ["10.96.0.10", "192.0.2.1", "192.0.2.2", "192.0.2.3"],
            "searches": ["my.example", "cluster.local"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}));
        assert_eq!(
            servers,
            ["10.96.0.10", "192.0.2.1", "192.0.2.2"],
            "three at most"
        );
        assert_eq!(searches.last().map(String::as_str), Some("my.example"));
        assert_eq!(searches.iter().filter(|s| *s == "cluster.local").count(), 1);
        assert_eq!(options, ["ndots:2", "edns0"], "options replaced by name");

        let (servers, searches, options) = dns(json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1"], "searches": ["a.example"], "options": [{"name": "ndots", "value": "1"}]}}));
        assert_eq!(
            (servers, searches, options),
            (
                vec!["1.1.1.1".to_owned()],
                vec!["a.example".to_owned()],
                vec!["ndots:1".to_owned()]
            )
        );

        let many: Vec<String> = (0..40)
            .map(|i| format!("d{i}.{}", "x".repeat(80)))
            .collect();
        let (_, searches, _) = dns(
            json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": many}}),
        );
        assert!(searches.len() <= 32);
        assert!(searches.iter().map(|s| s.len() + 1).sum::<usize>() <= 2048);
    }
}
