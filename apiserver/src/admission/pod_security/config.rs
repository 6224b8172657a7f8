//! Upstream's PodSecurityConfiguration, the PodSecurity entry of the AdmissionConfiguration
//! that --admission-control-config-file names: the policy of namespaces without labels
//! (`defaults`) and the users, runtime classes and namespaces PodSecurity leaves alone
//! (`exemptions`). Refused at startup with upstream's field errors when invalid.

use std::path::Path;

use serde_json::{Value, json};

use super::{Level, LevelVersion, Policy, Version};
use crate::meta::{NameRule, validate_name};
use crate::status::Cause;

/// The API versions of PodSecurityConfiguration upstream reads.
const API_VERSIONS: [&str; 3] = [
    "pod-security.admission.config.k8s.io/v1",
    "pod-security.admission.config.k8s.io/v1beta1",
    "pod-security.admission.config.k8s.io/v1alpha1",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Configuration {
    /// The policy of a namespace whose labels say nothing.
    pub defaults: Policy,
    pub exemptions: Exemptions,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exemptions {
    pub usernames: Vec<String>,
    pub runtime_classes: Vec<String>,
    pub namespaces: Vec<String>,
}

impl Default for Configuration {
    /// Upstream's defaults: privileged:latest in every mode, nothing exempt.
    fn default() -> Configuration {
        Configuration {
            defaults: Policy::PRIVILEGED,
            exemptions: Exemptions::default(),
        }
    }
}

impl Configuration {
    /// The PodSecurity configuration of the AdmissionConfiguration file at `path`, inline or
    /// in the file its `path` names (relative to the AdmissionConfiguration's directory);
    /// upstream's defaults when the file has no PodSecurity entry.
    pub fn load(path: &Path) -> Result<Configuration, String> {
        let read = |p: &Path| -> Result<Value, String> {
            let text =
                std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
            serde_yaml::from_str(&text).map_err(|e| format!("decoding {}: {e}", p.display()))
        };
        let admission = read(path)?;
        let entry = admission["plugins"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "PodSecurity");
        let Some(entry) = entry else {
            return Ok(Configuration::default());
        };
        let configuration = match (&entry["configuration"], entry["path"].as_str()) {
            (c, _) if c.is_object() => c.clone(),
            (_, Some(p)) if !p.is_empty() => {
                let dir = path.parent().unwrap_or(Path::new("."));
                read(&dir.join(p))?
            }
            _ => return Ok(Configuration::default()),
        };
        Configuration::from_value(&configuration)
    }

    /// A PodSecurityConfiguration object, defaulted and validated as upstream.
    pub fn from_value(config: &Value) -> Result<Configuration, String> {
        let api_version = config["apiVersion"].as_str().unwrap_or("");
        if !API_VERSIONS.contains(&api_version) || config["kind"] != "PodSecurityConfiguration" {
            return Err(format!(
                "expected a PodSecurityConfiguration of {}, got kind {} of {api_version:?}",
                API_VERSIONS[0], config["kind"]
            ));
        }
        let mut errors = Vec::new();
        let defaults = &config["defaults"];
        let mut mode = |name: &str| -> LevelVersion {
            let field = |key: &str| defaults[key].as_str().filter(|s| !s.is_empty());
            let version_key = format!("{name}-version");
            let level = field(name).unwrap_or("privileged");
            let version = field(&version_key).unwrap_or("latest");
            let level = Level::parse(level).unwrap_or_else(|(fallback, why)| {
                errors.push(Cause::invalid(
                    format!("defaults.{name}"),
                    &json!(level),
                    why,
                ));
                fallback
            });
            let version = Version::parse(version).unwrap_or_else(|(fallback, why)| {
                errors.push(Cause::invalid(
                    format!("defaults.{version_key}"),
                    &json!(version),
                    why,
                ));
                fallback
            });
            LevelVersion { level, version }
        };
        let defaults = Policy {
            enforce: mode("enforce"),
            warn: mode("warn"),
            audit: mode("audit"),
        };
        let exemptions = &config["exemptions"];
        let mut list = |key: &str, check: &dyn Fn(&str) -> Vec<String>| -> Vec<String> {
            let mut valid: Vec<String> = Vec::new();
            let items = exemptions[key].as_array().into_iter().flatten();
            for (i, item) in items.enumerate() {
                let item = item.as_str().unwrap_or("");
                let path = format!("exemptions.{key}[{i}]");
                let problems = check(item);
                if !problems.is_empty() {
                    errors.push(Cause::invalid(path, &json!(item), problems.join(", ")));
                } else if valid.iter().any(|v| v == item) {
                    errors.push(Cause::duplicate(path, &json!(item)));
                } else {
                    valid.push(item.to_owned());
                }
            }
            valid
        };
        let namespaces = list("namespaces", &|n| validate_name(NameRule::Label, n));
        let runtime_classes = list("runtimeClasses", &|n| validate_name(NameRule::Subdomain, n));
        let usernames = list("usernames", &|n| {
            if n.is_empty() {
                vec!["username must not be empty".to_owned()]
            } else {
                Vec::new()
            }
        });
        if !errors.is_empty() {
            let rendered: Vec<String> = errors.iter().map(Cause::render).collect();
            return Err(format!(
                "invalid PodSecurity configuration: {}",
                rendered.join(", ")
            ));
        }
        Ok(Configuration {
            defaults,
            exemptions: Exemptions {
                usernames,
                runtime_classes,
                namespaces,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_exemptions_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let admission = dir.path().join("admission.yaml");
        std::fs::write(
            &admission,
            "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: PodSecurity\n  path: pss.yaml\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("pss.yaml"),
            "apiVersion: pod-security.admission.config.k8s.io/v1\nkind: PodSecurityConfiguration\ndefaults:\n  enforce: baseline\n  warn: restricted\n  warn-version: v1.30\nexemptions:\n  namespaces: [kube-system]\n  usernames: [admin]\n",
        )
        .unwrap();
        let c = Configuration::load(&admission).unwrap();
        assert_eq!(c.defaults.enforce.to_string(), "baseline:latest");
        assert_eq!(c.defaults.warn.to_string(), "restricted:v1.30");
        assert_eq!(c.defaults.audit.to_string(), "privileged:latest");
        assert_eq!(c.exemptions.namespaces, ["kube-system"]);
        assert_eq!(c.exemptions.usernames, ["admin"]);

        let bad = json!({"apiVersion": "pod-security.admission.config.k8s.io/v1",
            "kind": "PodSecurityConfiguration", "defaults": {"enforce": "strict"},
            "exemptions": {"usernames": ["a", "a", ""]}});
        assert_eq!(
            Configuration::from_value(&bad).unwrap_err(),
            "invalid PodSecurity configuration: defaults.enforce: Invalid value: \"strict\": must be one of privileged, baseline, restricted, exemptions.usernames[1]: Duplicate value: \"a\", exemptions.usernames[2]: Invalid value: \"\": username must not be empty"
        );
        // No PodSecurity entry: upstream's defaults.
        std::fs::write(
            &admission,
            "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins: []\n",
        )
        .unwrap();
        assert_eq!(
            Configuration::load(&admission).unwrap(),
            Configuration::default()
        );
    }
}
