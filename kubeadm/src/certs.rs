//! `kubeadm certs`: the certificates' lifecycle, as upstream's `kubeadm certs
//! check-expiration` and `kubeadm certs renew`. The leaf certificates kubeadm writes (in
//! `<data-dir>/pki` and embedded in the control plane's kubeconfigs) live a year, the CA ten;
//! `check-expiration` tabulates when each expires, `renew` re-issues leaves from the existing
//! CA with the same subject, names, usages and key, valid a year from now. The running
//! components re-read the serving certificate and the apiserver's kubelet client
//! certificate when their files change; the client certificates embedded in kubeconfigs are
//! used once their components restart.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use rcgen::{KeyPair, SerialNumber};

use crate::pki::{Pki, Usage, leaf_params};

/// Where a leaf certificate is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// `pki/<stem>.crt` and `pki/<stem>.key`.
    Pki(&'static str),
    /// The client certificate embedded in `<data-dir>/<file>`.
    Kubeconfig(&'static str),
}

/// A leaf certificate kubeadm manages: upstream's name for it, what upstream's `renew` calls
/// it, and where it is.
#[derive(Clone, Copy, Debug)]
pub struct Leaf {
    pub name: &'static str,
    pub long_name: &'static str,
    pub location: Location,
}

/// Every leaf certificate `kubeadm init` writes, in upstream's order (by name). Upstream's
/// etcd and front-proxy certificates have no counterpart: the store is embedded or external,
/// and there is no aggregation layer. The kubelet's client certificate (kubelet.conf) is
/// not listed, as upstream does not list it.
pub const LEAVES: &[Leaf] = &[
    Leaf {
        name: "admin.conf",
        long_name: "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself",
        location: Location::Kubeconfig("admin.conf"),
    },
    Leaf {
        name: "apiserver",
        long_name: "certificate for serving the Kubernetes API",
        location: Location::Pki("apiserver"),
    },
    Leaf {
        name: "apiserver-kubelet-client",
        long_name: "certificate for the API server to connect to kubelet",
        location: Location::Pki("apiserver-kubelet-client"),
    },
    Leaf {
        name: "controller-manager.conf",
        long_name: "certificate embedded in the kubeconfig file for the controller manager to use",
        location: Location::Kubeconfig("controller-manager.conf"),
    },
    Leaf {
        name: "scheduler.conf",
        long_name: "certificate embedded in the kubeconfig file for the scheduler manager to use",
        location: Location::Kubeconfig("scheduler.conf"),
    },
    Leaf {
        name: "super-admin.conf",
        long_name: "certificate embedded in the kubeconfig file for the super-admin",
        location: Location::Kubeconfig("super-admin.conf"),
    },
];

/// The certificate authorities: upstream's name and the file stem under pki/.
pub const CAS: &[(&str, &str)] = &[("ca", "ca")];

/// The last line of a renewal, upstream's.
pub const RESTART_HINT: &str = "Done renewing certificates. You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd, so that they can use the new certificates.";

/// A certificate's validity and who signed it, as check-expiration shows it.
#[derive(Clone, Debug)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

fn parse_pem(pem: &str) -> anyhow::Result<x509_parser::pem::Pem> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).context("not a PEM certificate")?;
    Ok(pem)
}

/// The validity period of the PEM certificate `pem`.
pub fn validity(pem: &str) -> anyhow::Result<Validity> {
    let pem = parse_pem(pem)?;
    let cert = pem.parse_x509().context("parsing the certificate")?;
    Ok(Validity {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// A kubeconfig's first user's client certificate and key (PEM), and the base64 text of the
/// certificate as it appears in the file.
fn kubeconfig_client(text: &str) -> anyhow::Result<(String, String, String)> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).context("parsing the kubeconfig")?;
    let user = &doc["users"][0]["user"];
    let field = |name: &str| -> anyhow::Result<String> {
        user[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the kubeconfig's user has no {name}"))
    };
    let cert_b64 = field("client-certificate-data")?;
    let decode = |b64: &str| -> anyhow::Result<String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .context("decoding base64")?;
        String::from_utf8(bytes).context("not PEM text")
    };
    let cert = decode(&cert_b64)?;
    let key = decode(&field("client-key-data")?)?;
    Ok((cert, key, cert_b64))
}

fn leaf_path(data_dir: &Path, leaf: &Leaf) -> PathBuf {
    match leaf.location {
        Location::Pki(stem) => data_dir.join("pki").join(format!("{stem}.crt")),
        Location::Kubeconfig(file) => data_dir.join(file),
    }
}

/// The leaf's certificate (PEM), or None when kubeadm did not write it on this node.
pub fn read_leaf(data_dir: &Path, leaf: &Leaf) -> anyhow::Result<Option<String>> {
    let path = leaf_path(data_dir, leaf);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    match leaf.location {
        Location::Pki(_) => Ok(Some(text)),
        Location::Kubeconfig(_) => kubeconfig_client(&text)
            .map(|(cert, _, _)| Some(cert))
            .with_context(|| format!("reading {}", path.display())),
    }
}

/// Upstream's short residual time (Go's duration.ShortHumanDuration): `<invalid>` once more
/// than a second past, then seconds, minutes, hours, days and (from 365 days) years.
pub fn residual(seconds: i64) -> String {
    if seconds < -1 {
        "<invalid>".to_owned()
    } else if seconds < 0 {
        "0s".to_owned()
    } else if seconds < 60 {
        format!("{seconds}s")
    } else if seconds < 60 * 60 {
        format!("{}m", seconds / 60)
    } else if seconds < 24 * 3600 {
        format!("{}h", seconds / 3600)
    } else if seconds / 3600 < 24 * 365 {
        format!("{}d", seconds / 3600 / 24)
    } else {
        format!("{}y", seconds / 3600 / 24 / 365)
    }
}

/// A Unix time as upstream's table shows it: `Jan 02, 2006 15:04 UTC`.
pub fn expires(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%b %d, %Y %H:%M UTC").to_string())
        .unwrap_or_else(|| unix.to_string())
}

/// Rows as Go's tabwriter (minwidth 10, padding 3, spaces) lays them out: every column but
/// the last as wide as its widest cell plus 3.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count() + 3)
                .max()
                .unwrap_or(0)
                .max(10)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.extend(std::iter::repeat_n(
                    ' ',
                    widths[c].saturating_sub(cell.chars().count()),
                ));
            }
        }
        out.push('\n');
    }
    out
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// The whole seconds from `now_ms` (Unix milliseconds) until `unix`, truncated toward zero as
/// Go's duration arithmetic does (a year's certificate checked at once has 364d left).
fn seconds_until(unix: i64, now_ms: i64) -> i64 {
    (unix * 1000 - now_ms) / 1000
}

/// `kubeadm certs check-expiration`'s output for the node in `data_dir`, at Unix time `now_ms`
/// (milliseconds).
pub fn check_expiration(data_dir: &Path, now_ms: i64) -> anyhow::Result<String> {
    let pki = data_dir.join("pki");
    if !pki.join("ca.crt").exists() {
        anyhow::bail!(
            "no cluster CA in {} (is {} a control-plane node's data dir?)",
            pki.display(),
            data_dir.display()
        );
    }
    // Upstream: a CA whose key is not on the node is managed externally, and so are the
    // certificates it signed.
    let external = !pki.join("ca.key").exists();
    let mut leaves = vec![
        [
            "CERTIFICATE",
            "EXPIRES",
            "RESIDUAL TIME",
            "CERTIFICATE AUTHORITY",
            "EXTERNALLY MANAGED",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for leaf in LEAVES {
        let Some(pem) = read_leaf(data_dir, leaf)? else {
            continue;
        };
        let v = validity(&pem).with_context(|| format!("reading {}", leaf.name))?;
        leaves.push(vec![
            leaf.name.to_owned(),
            expires(v.not_after),
            residual(seconds_until(v.not_after, now_ms)),
            "ca".to_owned(),
            yes_no(external),
        ]);
    }
    let mut cas = vec![
        [
            "CERTIFICATE AUTHORITY",
            "EXPIRES",
            "RESIDUAL TIME",
            "EXTERNALLY MANAGED",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for (name, stem) in CAS {
        let path = pki.join(format!("{stem}.crt"));
        let pem = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let v = validity(&pem).with_context(|| format!("reading {}", path.display()))?;
        cas.push(vec![
            (*name).to_owned(),
            expires(v.not_after),
            residual(seconds_until(v.not_after, now_ms)),
            yes_no(!pki.join(format!("{stem}.key")).exists()),
        ]);
    }
    Ok(format!("{}\n{}", table(&leaves), table(&cas)))
}

/// The leaves `kubeadm certs renew <which>` renews: `all` or one of [`LEAVES`]' names.
pub fn select(which: &str) -> anyhow::Result<Vec<&'static Leaf>> {
    if which == "all" {
        return Ok(LEAVES.iter().collect());
    }
    LEAVES
        .iter()
        .find(|l| l.name == which)
        .map(|l| vec![l])
        .with_context(|| {
            let names: Vec<&str> = LEAVES.iter().map(|l| l.name).collect();
            format!(
                "unknown certificate {which:?}: one of all, {}",
                names.join(", ")
            )
        })
}

/// A certificate like `cert_pem` (subject, names, usages) for the key `key_pem`, signed by
/// `pki`'s CA and valid a year from now, with a new serial number.
pub fn reissue(pki: &Pki, cert_pem: &str, key_pem: &str) -> anyhow::Result<String> {
    let pem = parse_pem(cert_pem)?;
    let cert = pem.parse_x509().context("parsing the certificate")?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .context("the certificate has no common name")?
        .to_owned();
    let orgs: Vec<String> = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_owned))
        .collect();
    let mut sans = Vec::new();
    if let Some(ext) = cert.subject_alternative_name().ok().flatten() {
        use x509_parser::extensions::GeneralName;
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.push((*d).to_owned()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => sans.push(
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string(),
                    ),
                    16 => sans.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string(),
                    ),
                    _ => anyhow::bail!("the certificate has a malformed IP address name"),
                },
                other => {
                    anyhow::bail!("the certificate has a name kubeadm does not write: {other:?}")
                }
            }
        }
    }
    let server = cert
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|e| e.value.server_auth);
    let usage = if server { Usage::Server } else { Usage::Client };
    let org_refs: Vec<&str> = orgs.iter().map(String::as_str).collect();
    let mut params = leaf_params(&cn, &org_refs, &sans, usage)?;
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let key = KeyPair::from_pem(key_pem).context("parsing the certificate's key")?;
    let issuer = pki.issuer()?;
    Ok(params.signed_by(&key, &issuer)?.pem())
}

/// Replaces `path`'s contents with `data` at once (a file beside it renamed over it), with
/// the mode `path` had.
fn replace_atomically(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    let name = path
        .file_name()
        .context("no file name")?
        .to_string_lossy()
        .into_owned();
    let tmp = path.with_file_name(format!(".{name}.renew"));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(data)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// The components that read a kubeconfig's embedded client certificate only when they
/// start, by kubeconfig (serving certificates and the apiserver's kubelet client certificate
/// are re-read from their files by the running processes).
const READ_AT_START: &[(&str, &str)] = &[
    ("controller-manager.conf", "kube-controller-manager"),
    ("scheduler.conf", "kube-scheduler"),
];

/// After `renewed`: asks the node's supervisor to restart the components whose kubeconfig
/// certificate changed (SIGTERM; the supervisor starts them again). Answers the restarted
/// components, or None when no supervisor runs the node (the user must restart them).
pub fn restart_components(data_dir: &Path, renewed: &[&Leaf]) -> Option<Vec<&'static str>> {
    let layout = crate::config::Layout::new(data_dir);
    crate::supervisor::running_supervisor(&layout)?;
    let mut restarted = Vec::new();
    for (conf, component) in READ_AT_START {
        if !renewed
            .iter()
            .any(|l| l.location == Location::Kubeconfig(conf))
        {
            continue;
        }
        if let Some(pid) = crate::supervisor::component_pid(&layout, component)
            && crate::supervisor::signal(pid, rustix::process::Signal::TERM)
        {
            restarted.push(*component);
        }
    }
    Some(restarted)
}

/// What `renew` prints last when the supervisor restarted what needed it.
pub fn restarted_message(restarted: &[&str]) -> String {
    let mut text = "Done renewing certificates. kube-apiserver, kube-controller-manager and \
        kube-scheduler re-read their serving certificates from their files"
        .to_owned();
    if !restarted.is_empty() {
        text.push_str(&format!(
            "; restarted through the supervisor to use their renewed kubeconfigs: {}",
            restarted.join(", ")
        ));
    }
    text.push('.');
    text
}

/// Renews `leaf` on the node in `data_dir`; false when kubeadm did not write it there.
pub fn renew(data_dir: &Path, leaf: &Leaf) -> anyhow::Result<bool> {
    let pki = Pki::new(&data_dir.join("pki"));
    if !pki.path("ca.key").exists() {
        anyhow::bail!(
            "{} is missing: certificates signed by an external CA cannot be renewed here",
            pki.path("ca.key").display()
        );
    }
    let path = leaf_path(data_dir, leaf);
    if !path.exists() {
        return Ok(false);
    }
    match leaf.location {
        Location::Pki(stem) => {
            let cert = std::fs::read_to_string(&path)?;
            let key_path = pki.path(&format!("{stem}.key"));
            let key = std::fs::read_to_string(&key_path)
                .with_context(|| format!("reading {}", key_path.display()))?;
            let renewed = reissue(&pki, &cert, &key)
                .with_context(|| format!("renewing {}", path.display()))?;
            replace_atomically(&path, renewed.as_bytes())?;
        }
        Location::Kubeconfig(_) => {
            let text = std::fs::read_to_string(&path)?;
            let (cert, key, old_b64) =
                kubeconfig_client(&text).with_context(|| format!("reading {}", path.display()))?;
            let renewed = reissue(&pki, &cert, &key)
                .with_context(|| format!("renewing {}", path.display()))?;
            let new_b64 = base64::engine::general_purpose::STANDARD.encode(renewed);
            let needle = format!("client-certificate-data: {old_b64}");
            if text.matches(&needle).count() != 1 {
                anyhow::bail!(
                    "{}: the client certificate is not where kubeadm writes it",
                    path.display()
                );
            }
            let text = text.replace(&needle, &format!("client-certificate-data: {new_b64}"));
            replace_atomically(&path, text.as_bytes())?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_time_is_upstreams_short_duration() {
        assert_eq!(residual(-2), "<invalid>");
        assert_eq!(residual(-3600), "<invalid>");
        assert_eq!(residual(-1), "0s");
        assert_eq!(residual(0), "0s");
        assert_eq!(residual(59), "59s");
        assert_eq!(residual(60), "1m");
        assert_eq!(residual(3599), "59m");
        assert_eq!(residual(3600), "1h");
        assert_eq!(residual(23 * 3600 + 59 * 60), "23h");
        assert_eq!(residual(24 * 3600), "1d");
        // A year's certificate checked a few minutes after it was issued.
        assert_eq!(residual(365 * 86400 - 300), "364d");
        assert_eq!(residual(365 * 86400), "1y");
        // The CA: ten years less a few minutes.
        assert_eq!(residual(3650 * 86400 - 300), "9y");
        assert_eq!(residual(3650 * 86400 + 86400 * 3), "10y");
    }

    #[test]
    fn residual_time_truncates_fractions_of_a_second() {
        assert_eq!(seconds_until(100, 99_001), 0);
        assert_eq!(seconds_until(100, 98_999), 1);
        assert_eq!(seconds_until(100, 101_500), -1);
        assert_eq!(residual(seconds_until(365 * 86400, 1)), "364d");
    }

    #[test]
    fn expiry_dates_are_formatted_as_upstream() {
        // 2006-01-02T15:04:05Z, Go's reference time.
        assert_eq!(expires(1136214245), "Jan 02, 2006 15:04 UTC");
    }

    #[test]
    fn tables_are_laid_out_as_gos_tabwriter() {
        let row = |cells: &[&str]| cells.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let out = table(&[
            row(&[
                "CERTIFICATE",
                "EXPIRES",
                "RESIDUAL TIME",
                "CERTIFICATE AUTHORITY",
                "EXTERNALLY MANAGED",
            ]),
            row(&["admin.conf", "Dec 06, 2027 20:00 UTC", "364d", "ca", "no"]),
            row(&[
                "apiserver-kubelet-client",
                "Dec 06, 2027 20:00 UTC",
                "364d",
                "ca",
                "no",
            ]),
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED"
        );
        assert_eq!(
            lines[1],
            "admin.conf                 Dec 06, 2027 20:00 UTC   364d            ca                      no"
        );
        assert_eq!(
            lines[2],
            "apiserver-kubelet-client   Dec 06, 2027 20:00 UTC   364d            ca                      no"
        );
        // A narrow column is at least tabwriter's minimum width.
        assert_eq!(table(&[row(&["ca", "x"])]), "ca        x\n");
    }

    fn node() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let pki = Pki::new(&data.join("pki"));
        pki.create(&crate::pki::PkiConfig {
            node_name: "cp-1".into(),
            advertise_address: "192.168.1.10".parse().unwrap(),
            service_cidr: "10.96.0.0/12".into(),
            dns_domain: "cluster.local".into(),
            extra_sans: vec!["api.example".into()],
        })
        .unwrap();
        crate::kubeconfig::write_all(&pki, &data, "https://192.168.1.10:6443", "cp-1").unwrap();
        (dir, data)
    }

    #[test]
    fn check_expiration_lists_every_certificate_kubeadm_wrote() {
        let (_dir, data) = node();
        // A millisecond on, as a command run after init is at least.
        let now = chrono::Utc::now().timestamp_millis() + 1;
        let out = check_expiration(&data, now).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("CERTIFICATE                EXPIRES"),
            "{out}"
        );
        let names: Vec<&str> = lines[1..7]
            .iter()
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "admin.conf",
                "apiserver",
                "apiserver-kubelet-client",
                "controller-manager.conf",
                "scheduler.conf",
                "super-admin.conf"
            ]
        );
        for l in &lines[1..7] {
            assert!(
                l.contains(" 364d ") && l.ends_with(" ca                      no"),
                "{l}"
            );
        }
        assert_eq!(lines[7], "");
        assert!(
            lines[8].starts_with("CERTIFICATE AUTHORITY   EXPIRES"),
            "{out}"
        );
        assert!(
            lines[9].starts_with("ca    ") && lines[9].contains(" 9y "),
            "{out}"
        );
        assert!(lines[9].ends_with(" no"), "{out}");
    }

    fn parsed(pem: &str) -> (String, Vec<u8>, Validity) {
        let p = parse_pem(pem).unwrap();
        let cert = p.parse_x509().unwrap();
        (
            cert.subject().to_string(),
            cert.public_key().raw.to_vec(),
            validity(pem).unwrap(),
        )
    }

    #[test]
    fn renewal_keeps_subject_names_usages_and_key_and_the_files_mode() {
        let (_dir, data) = node();
        let before: Vec<String> = LEAVES
            .iter()
            .map(|l| read_leaf(&data, l).unwrap().unwrap())
            .collect();
        let mode = |l: &Leaf| {
            std::fs::metadata(leaf_path(&data, l))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        let modes: Vec<u32> = LEAVES.iter().map(mode).collect();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        for leaf in select("all").unwrap() {
            assert!(renew(&data, leaf).unwrap());
        }
        let pki = Pki::new(&data.join("pki"));
        let ca = std::fs::read_to_string(pki.path("ca.crt")).unwrap();
        for ((leaf, old), was) in LEAVES.iter().zip(&before).zip(&modes) {
            let new = read_leaf(&data, leaf).unwrap().unwrap();
            let (s0, k0, v0) = parsed(old);
            let (s1, k1, v1) = parsed(&new);
            assert_eq!(s0, s1, "{}", leaf.name);
            assert_eq!(k0, k1, "{}: the key changed", leaf.name);
            assert!(v1.not_before > v0.not_before, "{}", leaf.name);
            // Signed by the cluster CA.
            let p = parse_pem(&new).unwrap();
            let cert = p.parse_x509().unwrap();
            let ca_p = parse_pem(&ca).unwrap();
            let ca_cert = ca_p.parse_x509().unwrap();
            cert.verify_signature(Some(ca_cert.public_key())).unwrap();
            assert_eq!(mode(leaf), *was, "{}: the mode changed", leaf.name);
            if matches!(leaf.location, Location::Kubeconfig(_)) {
                assert_eq!(*was, 0o600, "{}", leaf.name);
            }
        }
        // The apiserver keeps every name and stays a server certificate.
        let p = parse_pem(&std::fs::read_to_string(pki.path("apiserver.crt")).unwrap())
            .unwrap()
            .to_owned();
        let cert = p.parse_x509().unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap();
        assert!(eku.value.server_auth && !eku.value.client_auth);
        let sans = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(sans.value.general_names.len(), 8);
        // The kubeconfig still parses and holds the same key.
        let text = std::fs::read_to_string(data.join("admin.conf")).unwrap();
        assert!(kubeconfig_client(&text).is_ok());
        assert!(select("nope").is_err());
        assert_eq!(select("apiserver").unwrap()[0].name, "apiserver");
    }
}
