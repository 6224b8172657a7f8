//! KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1), as `--config` reads it,
//! and how a profile's plugin lists are resolved against the default profile.

use serde::Deserialize;

/// The file given to `--config`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeSchedulerConfiguration {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    /// Threads for filtering and scoring (upstream's default 16; we use at most the cores).
    pub parallelism: Option<i32>,
    /// Share of nodes to find feasible before scoring; 0 or absent: upstream's adaptive default.
    pub percentage_of_nodes_to_score: Option<i32>,
    pub pod_initial_backoff_seconds: Option<u64>,
    pub pod_max_backoff_seconds: Option<u64>,
    #[serde(default)]
    pub profiles: Vec<Profile>,
    pub leader_election: Option<LeaderElection>,
    pub client_connection: Option<ClientConnection>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConnection {
    #[serde(default)]
    pub kubeconfig: String,
    pub qps: Option<f32>,
    pub burst: Option<i32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderElection {
    pub leader_elect: Option<bool>,
    pub lease_duration: Option<String>,
    pub renew_deadline: Option<String>,
    pub retry_period: Option<String>,
    pub resource_namespace: Option<String>,
    pub resource_name: Option<String>,
}

/// One scheduler profile: pods choose it by spec.schedulerName.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub scheduler_name: Option<String>,
    pub percentage_of_nodes_to_score: Option<i32>,
    #[serde(default)]
    pub plugins: Plugins,
    #[serde(default)]
    pub plugin_config: Vec<PluginConfig>,
}

/// Args for one plugin.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PluginConfig {
    pub name: String,
    #[serde(default)]
    pub args: serde_json::Value,
}

/// Plugins enabled and disabled per extension point.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plugins {
    #[serde(default)]
    pub pre_enqueue: PluginSet,
    #[serde(default)]
    pub queue_sort: PluginSet,
    #[serde(default)]
    pub pre_filter: PluginSet,
    #[serde(default)]
    pub filter: PluginSet,
    #[serde(default)]
    pub post_filter: PluginSet,
    #[serde(default)]
    pub pre_score: PluginSet,
    #[serde(default)]
    pub score: PluginSet,
    #[serde(default)]
    pub reserve: PluginSet,
    #[serde(default)]
    pub permit: PluginSet,
    #[serde(default)]
    pub pre_bind: PluginSet,
    #[serde(default)]
    pub bind: PluginSet,
    #[serde(default)]
    pub post_bind: PluginSet,
    #[serde(default)]
    pub multi_point: PluginSet,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PluginSet {
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PluginRef {
    pub name: String,
    pub weight: Option<i32>,
}

/// The extension points, in the order a pod meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    PreEnqueue,
    QueueSort,
    PreFilter,
    Filter,
    PostFilter,
    PreScore,
    Score,
    Reserve,
    Permit,
    PreBind,
    Bind,
    PostBind,
}

impl Plugins {
    pub fn point(&self, p: Point) -> &PluginSet {
        match p {
            Point::PreEnqueue => &self.pre_enqueue,
            Point::QueueSort => &self.queue_sort,
            Point::PreFilter => &self.pre_filter,
            Point::Filter => &self.filter,
            Point::PostFilter => &self.post_filter,
            Point::PreScore => &self.pre_score,
            Point::Score => &self.score,
            Point::Reserve => &self.reserve,
            Point::Permit => &self.permit,
            Point::PreBind => &self.pre_bind,
            Point::Bind => &self.bind,
            Point::PostBind => &self.post_bind,
        }
    }
}

/// The default profile's plugins (multiPoint) with their score weights, in upstream's order.
pub const DEFAULT_PLUGINS: &[(&str, i32)] = &[
    ("SchedulingGates", 0),
    ("PrioritySort", 0),
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("VolumeRestrictions", 0),
    ("VolumeBinding", 0),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
    ("DefaultBinder", 0),
];

/// upstream's default scheduler name.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// A plugin as a resolved profile uses it at one point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enabled {
    pub name: String,
    pub weight: i32,
}

impl Profile {
    pub fn scheduler_name(&self) -> &str {
        self.scheduler_name
            .as_deref()
            .unwrap_or(DEFAULT_SCHEDULER_NAME)
    }

    /// The plugins at every point after merging with the defaults, in order: the default
    /// multiPoint plugins less those disabled (at multiPoint or at the point; `*` disables
    /// all defaults), then the profile's multiPoint plugins, then the point's own. A later
    /// mention of a plugin replaces an earlier one (so weights can be overridden). Whether a
    /// plugin implements a point is checked when the framework is built.
    pub fn resolved(&self, point: Point) -> Vec<Enabled> {
        let specific = self.plugins.point(point);
        let multi = &self.plugins.multi_point;
        let disabled = |set: &PluginSet, name: &str| {
            set.disabled.iter().any(|d| d.name == "*" || d.name == name)
        };
        let mut out: Vec<Enabled> = Vec::new();
        let mut push = |name: &str, weight: i32| {
            out.retain(|e| e.name != name);
            out.push(Enabled {
                name: name.to_owned(),
                weight,
            });
        };
        for (name, weight) in DEFAULT_PLUGINS {
            if !disabled(multi, name) && !disabled(specific, name) {
                push(name, *weight);
            }
        }
        for p in &multi.enabled {
            if !specific.disabled.iter().any(|d| d.name == p.name) {
                let default = DEFAULT_PLUGINS
                    .iter()
                    .find(|(n, _)| *n == p.name)
                    .map_or(1, |(_, w)| (*w).max(1));
                push(&p.name, p.weight.unwrap_or(default));
            }
        }
        for p in &specific.enabled {
            let default = DEFAULT_PLUGINS
                .iter()
                .find(|(n, _)| *n == p.name)
                .map_or(1, |(_, w)| (*w).max(1));
            push(&p.name, p.weight.unwrap_or(default));
        }
        out
    }

    pub fn args(&self, plugin: &str) -> Option<&serde_json::Value> {
        self.plugin_config
            .iter()
            .find(|c| c.name == plugin)
            .map(|c| &c.args)
            .filter(|a| !a.is_null())
    }
}

impl KubeSchedulerConfiguration {
    /// Reads and checks a `--config` file (YAML or JSON).
    pub fn load(path: &std::path::Path) -> crate::Result<KubeSchedulerConfiguration> {
        let text = std::fs::read_to_string(path).map_err(|source| crate::Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| crate::Error::Invalid(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> crate::Result<KubeSchedulerConfiguration> {
        let mut config: KubeSchedulerConfiguration = serde_yaml::from_str(text)?;
        if config.kind != "KubeSchedulerConfiguration" {
            crate::invalid!(
                "kind must be KubeSchedulerConfiguration, not {:?}",
                config.kind
            );
        }
        if config.api_version != "kubescheduler.config.k8s.io/v1" {
            crate::invalid!(
                "apiVersion must be kubescheduler.config.k8s.io/v1, not {:?}",
                config.api_version
            );
        }
        if let Some(p) = config.percentage_of_nodes_to_score
            && !(0..=100).contains(&p)
        {
            crate::invalid!(
                "percentageOfNodesToScore: Invalid value: {p}: not in valid range [0-100]"
            );
        }
        if config.parallelism.is_some_and(|p| p <= 0) {
            crate::invalid!(
                "parallelism: Invalid value: should be an integer value greater than zero"
            );
        }
        if config.profiles.is_empty() {
            config.profiles.push(Profile::default());
        }
        let mut names = std::collections::HashSet::new();
        for p in &config.profiles {
            if !names.insert(p.scheduler_name().to_owned()) {
                crate::invalid!(
                    "profiles[].schedulerName: Duplicate value: {:?}",
                    p.scheduler_name()
                );
            }
        }
        Ok(config)
    }

    /// The configuration with no file: one default profile.
    pub fn default_config() -> KubeSchedulerConfiguration {
        KubeSchedulerConfiguration {
            api_version: "kubescheduler.config.k8s.io/v1".into(),
            kind: "KubeSchedulerConfiguration".into(),
            profiles: vec![Profile::default()],
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &Profile, point: Point) -> Vec<(String, i32)> {
        p.resolved(point)
            .into_iter()
            .map(|e| (e.name, e.weight))
            .collect()
    }

    #[test]
    fn profiles_merge_with_the_defaults() {
        let config = KubeSchedulerConfiguration::parse(
            r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 50
profiles:
- schedulerName: default-scheduler
- schedulerName: no-scoring
  plugins:
    score:
      disabled:
      - name: '*'
      enabled:
      - name: ImageLocality
        weight: 5
    multiPoint:
      disabled:
      - name: InterPodAffinity
"#,
        )
        .unwrap();
        assert_eq!(config.percentage_of_nodes_to_score, Some(50));
        let default = &config.profiles[0];
        assert!(names(default, Point::Score).contains(&("TaintToleration".into(), 3)));
        let custom = &config.profiles[1];
        assert_eq!(custom.scheduler_name(), "no-scoring");
        assert_eq!(
            names(custom, Point::Score),
            vec![("ImageLocality".into(), 5)]
        );
        assert!(
            !names(custom, Point::Filter)
                .iter()
                .any(|(n, _)| n == "InterPodAffinity")
        );
        assert!(
            names(custom, Point::Filter)
                .iter()
                .any(|(n, _)| n == "NodeResourcesFit")
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        for (text, want) in [
            (
                "kind: Foo\napiVersion: kubescheduler.config.k8s.io/v1",
                "kind must be",
            ),
            (
                "kind: KubeSchedulerConfiguration\napiVersion: kubescheduler.config.k8s.io/v1\npercentageOfNodesToScore: 120",
                "not in valid range",
            ),
            (
                "kind: KubeSchedulerConfiguration\napiVersion: kubescheduler.config.k8s.io/v1\nprofiles: [{schedulerName: a}, {schedulerName: a}]",
                "Duplicate value",
            ),
        ] {
            let err = KubeSchedulerConfiguration::parse(text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
        }
    }
}
