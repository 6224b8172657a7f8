//! Pod volumes, made ready on the node before the sandbox and bind-mounted into containers:
//! emptyDir, hostPath (with its type checks), configMap, secret, downwardAPI and projected
//! (configMap, secret, downwardAPI and serviceAccountToken sources), under
//! `<root-dir>/pods/<uid>/volumes/<plugin>/<name>` as upstream lays them out. Content
//! volumes are rewritten when set up again, so changed ConfigMaps and Secrets, and renewed
//! service-account tokens, reach running pods within the resync period, as upstream's do.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume as PodVolume,
};
use kube::api::Api;

use super::spec;
use super::tokens::{self, TokenManager};

/// A volume ready on the node.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    pub host_path: PathBuf,
    /// Content volumes (configMap, secret, downwardAPI, projected) are always read-only.
    pub read_only: bool,
}

/// `<root>/pods/<uid>`: everything of the pod's that lives on the node.
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

/// Removes what the pod's volumes left on the node (never a hostPath's content).
pub fn teardown(root: &Path, uid: &str) {
    let dir = pod_dir(root, uid);
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        tracing::warn!(dir = %dir.display(), error = %e, "removing the pod's volumes failed");
    }
}

/// The files a content volume holds: relative path -> (bytes, mode).
type Files = BTreeMap<String, (Vec<u8>, u32)>;

/// What setting volumes up reads from: the API, and the node's service-account tokens.
pub struct Sources<'a> {
    pub client: &'a kube::Client,
    pub tokens: &'a TokenManager,
}

/// Sets up every volume of `pod`; the error is upstream's FailedMount message.
pub async fn setup(
    sources: &Sources<'_>,
    root: &Path,
    pod: &Pod,
    host_ip: &str,
) -> Result<HashMap<String, Volume>, String> {
    let mut out = HashMap::new();
    let spec = pod.spec.clone().unwrap_or_default();
    let dir = pod_dir(root, spec::uid(pod)).join("volumes");
    for v in spec.volumes.iter().flatten() {
        let failed = |e: String| format!("MountVolume.SetUp failed for volume {:?} : {e}", v.name);
        let volume = setup_one(sources, &dir, pod, v, host_ip)
            .await
            .map_err(failed)?;
        out.insert(v.name.clone(), volume);
    }
    Ok(out)
}

async fn setup_one(
    sources: &Sources<'_>,
    dir: &Path,
    pod: &Pod,
    v: &PodVolume,
    host_ip: &str,
) -> Result<Volume, String> {
    let io = |e: std::io::Error| e.to_string();
    let client = sources.client;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    if v.empty_dir.is_some() {
        let path = dir.join("kubernetes.io~empty-dir").join(&v.name);
        std::fs::create_dir_all(&path).map_err(io)?;
        // Any user in any container may write to it.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
        return Ok(Volume {
            host_path: path,
            read_only: false,
        });
    }
    if let Some(h) = &v.host_path {
        let path = PathBuf::from(&h.path);
        check_host_path(&path, h.type_.as_deref().unwrap_or(""))?;
        return Ok(Volume {
            host_path: path,
            read_only: false,
        });
    }
    let (plugin, files) = if let Some(c) = &v.config_map {
        let mode = c.default_mode.unwrap_or(0o644) as u32;
        let files = source_files(
            client,
            namespace,
            Source::ConfigMap,
            &c.name,
            c.optional,
            &c.items,
            mode,
        )
        .await?;
        ("kubernetes.io~configmap", files)
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let mode = s.default_mode.unwrap_or(0o644) as u32;
        let files = source_files(
            client,
            namespace,
            Source::Secret,
            &name,
            s.optional,
            &s.items,
            mode,
        )
        .await?;
        ("kubernetes.io~secret", files)
    } else if let Some(d) = &v.downward_api {
        let mode = d.default_mode.unwrap_or(0o644) as u32;
        let files = downward_files(pod, d.items.iter().flatten(), mode, host_ip)?;
        ("kubernetes.io~downward-api", files)
    } else if let Some(p) = &v.projected {
        let mode = p.default_mode.unwrap_or(0o644) as u32;
        let mut files = Files::new();
        for source in p.sources.iter().flatten() {
            if let Some(c) = &source.config_map {
                let source = Source::ConfigMap;
                files.extend(
                    source_files(
                        client, namespace, source, &c.name, c.optional, &c.items, mode,
                    )
                    .await?,
                );
            } else if let Some(s) = &source.secret {
                let source = Source::Secret;
                files.extend(
                    source_files(
                        client, namespace, source, &s.name, s.optional, &s.items, mode,
                    )
                    .await?,
                );
            } else if let Some(d) = &source.downward_api {
                files.extend(downward_files(
                    pod,
                    d.items.iter().flatten(),
                    mode,
                    host_ip,
                )?);
            } else if let Some(t) = &source.service_account_token {
                // upstream writes the token 0600 and changes its owner when the pod has an
                // fsGroup or a single runAsUser; volumes here keep root's ownership, so the
                // token keeps the volume's mode.
                let key = tokens::Key {
                    namespace: namespace.to_owned(),
                    service_account: pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.service_account_name.clone())
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| "default".into()),
                    audiences: t
                        .audience
                        .iter()
                        .filter(|a| !a.is_empty())
                        .cloned()
                        .collect(),
                    expiration_seconds: t.expiration_seconds.unwrap_or(3600),
                    pod_uid: spec::uid(pod).to_owned(),
                };
                let pod_name = pod.metadata.name.as_deref().unwrap_or("");
                let token = sources.tokens.token(client, key, pod_name).await?;
                files.insert(t.path.clone(), (token.into_bytes(), mode));
            }
        }
        ("kubernetes.io~projected", files)
    } else {
        return Err("this volume type is not supported by tetsu's kubelet".into());
    };
    let path = dir.join(plugin).join(&v.name);
    write_files(&path, &files).map_err(io)?;
    Ok(Volume {
        host_path: path,
        read_only: true,
    })
}

/// upstream's hostPath type checks, creating what the *OrCreate types allow.
fn check_host_path(path: &Path, kind: &str) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let shown = path.display();
    let meta = std::fs::metadata(path);
    let is = |f: fn(&std::fs::Metadata) -> bool| meta.as_ref().is_ok_and(f);
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if !path.exists() {
                std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| e.to_string())?;
            }
            check_host_path(path, "Directory")
        }
        "Directory" if is(|m| m.is_dir()) => Ok(()),
        "Directory" => Err(format!(
            "hostPath type check failed: {shown} is not a directory"
        )),
        "FileOrCreate" => {
            if !path.exists() {
                std::fs::File::create(path).map_err(|e| e.to_string())?;
            }
            check_host_path(path, "File")
        }
        "File" if is(|m| m.is_file()) => Ok(()),
        "File" => Err(format!("hostPath type check failed: {shown} is not a file")),
        "Socket" if is(|m| m.file_type().is_socket()) => Ok(()),
        "Socket" => Err(format!(
            "hostPath type check failed: {shown} is not a socket file"
        )),
        "CharDevice" if is(|m| m.file_type().is_char_device()) => Ok(()),
        "CharDevice" => Err(format!(
            "hostPath type check failed: {shown} is not a character device"
        )),
        "BlockDevice" if is(|m| m.file_type().is_block_device()) => Ok(()),
        "BlockDevice" => Err(format!(
            "hostPath type check failed: {shown} is not a block device"
        )),
        other => Err(format!("invalid HostPathType {other:?}")),
    }
}

/// The files of `data` (key -> bytes), all keys or only `items` as upstream projects them.
fn project(
    data: BTreeMap<String, Vec<u8>>,
    items: &Option<Vec<KeyToPath>>,
    mode: u32,
    what: &str,
    optional: bool,
) -> Result<Files, String> {
    let Some(items) = items else {
        return Ok(data.into_iter().map(|(k, v)| (k, (v, mode))).collect());
    };
    let mut out = Files::new();
    for item in items {
        match data.get(&item.key) {
            Some(v) => {
                let m = item.mode.map_or(mode, |m| m as u32);
                out.insert(item.path.clone(), (v.clone(), m));
            }
            None if optional => {}
            None => return Err(format!("{what} has no key {:?}", item.key)),
        }
    }
    Ok(out)
}

/// Where a content volume's keys come from.
#[derive(Clone, Copy)]
enum Source {
    ConfigMap,
    Secret,
}

/// The files of a ConfigMap's or Secret's keys; a missing object is an error unless
/// `optional`.
async fn source_files(
    client: &kube::Client,
    namespace: &str,
    source: Source,
    name: &str,
    optional: Option<bool>,
    items: &Option<Vec<KeyToPath>>,
    mode: u32,
) -> Result<Files, String> {
    let optional = optional.unwrap_or(false);
    let kind = match source {
        Source::ConfigMap => "configmap",
        Source::Secret => "secret",
    };
    let fetched: Option<BTreeMap<String, Vec<u8>>> = match source {
        Source::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            api.get_opt(name)
                .await
                .map_err(|e| e.to_string())?
                .map(|cm| {
                    let text = cm.data.unwrap_or_default().into_iter();
                    let binary = cm.binary_data.unwrap_or_default().into_iter();
                    text.map(|(k, v)| (k, v.into_bytes()))
                        .chain(binary.map(|(k, v)| (k, v.0)))
                        .collect()
                })
        }
        Source::Secret => {
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            api.get_opt(name)
                .await
                .map_err(|e| e.to_string())?
                .map(|s| {
                    s.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect()
                })
        }
    };
    match fetched {
        Some(data) => project(data, items, mode, &format!("{kind} {name:?}"), optional),
        None if optional => Ok(Files::new()),
        None => Err(format!("{kind} {name:?} not found")),
    }
}

/// `key="value"` lines, sorted by key, as upstream writes labels and annotations.
fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn downward_files<'a>(
    pod: &Pod,
    items: impl Iterator<Item = &'a DownwardAPIVolumeFile>,
    mode: u32,
    host_ip: &str,
) -> Result<Files, String> {
    let pod_ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default();
    let mut out = Files::new();
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            match f.field_path.as_str() {
                "metadata.labels" => {
                    format_map(pod.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
                }
                "metadata.annotations" => format_map(
                    pod.metadata
                        .annotations
                        .as_ref()
                        .unwrap_or(&BTreeMap::new()),
                ),
                path => spec::field_value(pod, path, &pod_ip, host_ip)
                    .ok_or_else(|| format!("unsupported fieldRef {path:?}"))?,
            }
        } else if let Some(r) = &item.resource_field_ref {
            let containers = pod
                .spec
                .as_ref()
                .map(|s| s.containers.as_slice())
                .unwrap_or(&[]);
            let name = r.container_name.as_deref().unwrap_or("");
            let c: &Container = containers
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| format!("no container {name:?} for resourceFieldRef"))?;
            spec::resource_value(c, &r.resource, r.divisor.as_ref().map(|d| d.0.as_str()))
                .ok_or_else(|| format!("unsupported resourceFieldRef {:?}", r.resource))?
        } else {
            continue;
        };
        let m = item.mode.map_or(mode, |m| m as u32);
        out.insert(item.path.clone(), (value.into_bytes(), m));
    }
    Ok(out)
}

/// Makes `dir` hold exactly `files`: each written to a temporary name and renamed, so a
/// reader never sees half a file; files no longer wanted are removed.
fn write_files(dir: &Path, files: &Files) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (rel, (bytes, mode)) in files {
        let path = dir.join(rel);
        if !path.starts_with(dir) || rel.split('/').any(|p| p == "..") {
            continue; // validation refuses such paths; never write outside the volume
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::read(&path).is_ok_and(|old| &old == bytes) {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))?;
            continue;
        }
        let tmp = path.with_file_name(format!(
            ".{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("f")
        ));
        std::fs::write(&tmp, bytes)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(*mode))?;
        std::fs::rename(&tmp, &path)?;
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let wanted = files
            .keys()
            .any(|k| k == &name || k.starts_with(&format!("{name}/")));
        if !wanted {
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(())
}

/// The container's bind mounts for its volumeMounts (a missing volume was refused by the
/// apiserver's validation; it is skipped here).
pub fn mounts(c: &Container, volumes: &HashMap<String, Volume>) -> Vec<cri::Mount> {
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let Some(v) = volumes.get(&m.name) else {
            continue;
        };
        let mut host = v.host_path.clone();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            host = host.join(sub);
            if !v.read_only && !host.exists() {
                let _ = std::fs::create_dir_all(&host);
            }
        }
        out.push(cri::Mount {
            container_path: m.mount_path.clone(),
            host_path: host.display().to_string(),
            readonly: v.read_only || m.read_only.unwrap_or(false),
            ..Default::default()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> Files {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), (v.as_bytes().to_vec(), 0o644)))
            .collect()
    }

    #[test]
    fn content_is_replaced_and_stale_files_go() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("v");
        write_files(&dir, &files(&[("a", "1"), ("sub/b", "2")])).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        write_files(&dir, &files(&[("a", "3")])).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "3");
        assert!(!dir.join("sub").exists());
        // Nothing escapes the volume.
        write_files(&dir, &files(&[("../x", "no")])).unwrap();
        assert!(!d.path().join("x").exists());
    }

    #[test]
    fn items_select_keys_and_modes() {
        let data: BTreeMap<String, Vec<u8>> = [
            ("k1".to_string(), b"v1".to_vec()),
            ("k2".to_string(), b"v2".to_vec()),
        ]
        .into();
        let items = Some(vec![KeyToPath {
            key: "k2".into(),
            path: "dir/two".into(),
            mode: Some(0o400),
        }]);
        let out = project(data.clone(), &items, 0o644, "configmap \"c\"", false).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out["dir/two"], (b"v2".to_vec(), 0o400));
        let missing = Some(vec![KeyToPath {
            key: "nope".into(),
            path: "p".into(),
            mode: None,
        }]);
        assert_eq!(
            project(data.clone(), &missing, 0o644, "configmap \"c\"", false).unwrap_err(),
            "configmap \"c\" has no key \"nope\""
        );
        assert!(
            project(data, &missing, 0o644, "configmap \"c\"", true)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn host_path_types() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("made");
        check_host_path(&dir, "DirectoryOrCreate").unwrap();
        assert!(dir.is_dir());
        let file = d.path().join("f");
        check_host_path(&file, "FileOrCreate").unwrap();
        assert!(file.is_file());
        assert_eq!(
            check_host_path(&file, "Directory").unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a directory",
                file.display()
            )
        );
        assert!(check_host_path(&d.path().join("absent"), "File").is_err());
        check_host_path(&d.path().join("absent"), "").unwrap();
    }

    #[test]
    fn labels_render_as_upstream() {
        let m: BTreeMap<String, String> = [
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "x\"y".to_string()),
        ]
        .into();
        assert_eq!(format_map(&m), "a=\"x\\\"y\"\nb=\"2\"");
    }
}
