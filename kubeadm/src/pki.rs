//! The cluster's PKI, laid out as upstream kubeadm's `certs` phase lays out
//! /etc/kubernetes/pki: a cluster CA (`ca.crt`/`ca.key`, 10 years), the apiserver's serving
//! certificate with every name clients use for it (`apiserver.crt`), the client certificate
//! the apiserver presents to kubelets (`apiserver-kubelet-client.crt`, O=kubeadm:cluster-admins)
//! and the key pair that signs service-account tokens (`sa.key`/`sa.pub`). Files that exist
//! are kept, so running it again on an existing cluster changes nothing. Keys are ECDSA
//! P-256 (upstream's default is RSA 2048; every client we serve accepts both).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// The CA lives 10 years, what it signs 1 year (upstream's validity periods).
const CA_DAYS: i64 = 3650;
const LEAF_DAYS: i64 = 365;

/// What the certificates must name.
#[derive(Clone, Debug)]
pub struct PkiConfig {
    /// The node's name (a SAN of the apiserver's certificate).
    pub node_name: String,
    /// The address the apiserver advertises (a SAN).
    pub advertise_address: IpAddr,
    /// --service-cidr: its first address is the `kubernetes` Service's ClusterIP (a SAN).
    pub service_cidr: String,
    /// --service-dns-domain.
    pub dns_domain: String,
    /// --apiserver-cert-extra-sans: more names or addresses.
    pub extra_sans: Vec<String>,
}

/// The first usable address of an IPv4 CIDR (10.96.0.0/12 -> 10.96.0.1).
pub fn first_service_ip(cidr: &str) -> anyhow::Result<Ipv4Addr> {
    service_ip(cidr, 1)
}

/// The `n`th address of an IPv4 CIDR (10.96.0.0/12, 10 -> 10.96.0.10: the cluster DNS
/// Service's ClusterIP), which must leave the broadcast address out.
pub fn service_ip(cidr: &str, n: u32) -> anyhow::Result<Ipv4Addr> {
    let (net, bits) = cidr
        .split_once('/')
        .with_context(|| format!("service CIDR {cidr:?} is not address/bits"))?;
    let net: Ipv4Addr = net
        .parse()
        .with_context(|| format!("service CIDR {cidr:?}: bad address"))?;
    let size = bits
        .parse::<u32>()
        .ok()
        .filter(|b| *b <= 32)
        .map(|b| 1u64 << (32 - b))
        .with_context(|| format!("service CIDR {cidr:?}: bad prefix length"))?;
    if u64::from(n) + 1 >= size {
        anyhow::bail!("service CIDR {cidr:?} has no address number {n}");
    }
    let mask = !((size - 1) as u32);
    Ok(Ipv4Addr::from((u32::from(net) & mask) + n))
}

/// The names the apiserver's serving certificate carries.
pub fn apiserver_sans(cfg: &PkiConfig) -> anyhow::Result<Vec<String>> {
    let mut names = vec![
        cfg.node_name.clone(),
        "kubernetes".to_owned(),
        "kubernetes.default".to_owned(),
        "kubernetes.default.svc".to_owned(),
        format!("kubernetes.default.svc.{}", cfg.dns_domain),
        first_service_ip(&cfg.service_cidr)?.to_string(),
        cfg.advertise_address.to_string(),
    ];
    names.extend(cfg.extra_sans.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    Ok(names)
}

/// A directory of PEM files: the cluster's PKI.
pub struct Pki {
    pub dir: PathBuf,
}

/// A certificate and its key, in PEM.
pub struct Signed {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The apiserver's --encryption-provider-config, beside the keys it is as secret as.
pub const ENCRYPTION_CONFIG: &str = "encryption-config.yaml";

/// An EncryptionConfiguration encrypting Secrets with a new random 32-byte aescbc key, still
/// reading plaintext ones (written before, or by a cluster without the file).
fn encryption_config() -> String {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\n\
         kind: EncryptionConfiguration\n\
         resources:\n\
         - resources: [secrets]\n  \
           providers:\n  \
         - aescbc:\n      keys:\n      - name: key1\n        secret: {key}\n  \
         - identity: {{}}\n"
    )
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        Pki {
            dir: dir.to_owned(),
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Creates what is missing; answers the files it wrote.
    pub fn create(&self, cfg: &PkiConfig) -> anyhow::Result<Vec<PathBuf>> {
        common::files::create_private_dir(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        // Keys an older version left readable by others are the owner's alone from now on.
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "key") {
                common::files::restrict(&path, common::files::PRIVATE_FILE)?;
            }
        }
        let mut written = Vec::new();
        if !self.path("ca.crt").exists() {
            let ca = new_ca("kubernetes")?;
            self.write("ca", &ca, &mut written)?;
        }
        if !self.path("apiserver.crt").exists() {
            let names = apiserver_sans(cfg)?;
            let signed = self.sign("kube-apiserver", &[], &names, Usage::Server)?;
            self.write("apiserver", &signed, &mut written)?;
        }
        if !self.path("apiserver-kubelet-client.crt").exists() {
            let signed = self.sign(
                "kube-apiserver-kubelet-client",
                &["kubeadm:cluster-admins"],
                &[],
                Usage::Client,
            )?;
            self.write("apiserver-kubelet-client", &signed, &mut written)?;
        }
        if !self.path("sa.key").exists() {
            let key = KeyPair::generate()?;
            write_private(&self.path("sa.key"), &key.serialize_pem())?;
            std::fs::write(self.path("sa.pub"), key.public_key_pem())?;
            written.push(self.path("sa.key"));
            written.push(self.path("sa.pub"));
        }
        let encryption = self.path(ENCRYPTION_CONFIG);
        if common::files::create_private(&encryption, encryption_config().as_bytes())? {
            written.push(encryption);
        }
        Ok(written)
    }

    /// A certificate for `common_name` in `organizations`, signed by the cluster CA.
    pub fn sign(
        &self,
        common_name: &str,
        organizations: &[&str],
        sans: &[String],
        usage: Usage,
    ) -> anyhow::Result<Signed> {
        let issuer = self.issuer()?;
        let params = leaf_params(common_name, organizations, sans, usage)?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Signed {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The cluster CA (ca.crt, ca.key) as a signer.
    pub fn issuer(&self) -> anyhow::Result<Issuer<'static, KeyPair>> {
        let ca_cert = std::fs::read_to_string(self.path("ca.crt"))
            .context("reading the cluster CA (ca.crt)")?;
        let ca_key = KeyPair::from_pem(
            &std::fs::read_to_string(self.path("ca.key")).context("reading ca.key")?,
        )
        .context("parsing ca.key")?;
        Issuer::from_ca_cert_pem(&ca_cert, ca_key).context("parsing the cluster CA")
    }

    fn write(&self, stem: &str, s: &Signed, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let (crt, key) = (
            self.path(&format!("{stem}.crt")),
            self.path(&format!("{stem}.key")),
        );
        write_private(&key, &s.key_pem)?;
        std::fs::write(&crt, &s.cert_pem).with_context(|| format!("writing {}", crt.display()))?;
        written.push(crt);
        written.push(key);
        Ok(())
    }
}

/// What a certificate is for.
#[derive(Clone, Copy, Debug)]
pub enum Usage {
    Server,
    Client,
}

/// What a leaf certificate for `common_name` in `organizations` says, valid for
/// [`LEAF_DAYS`] from now (`kubeadm certs renew` re-issues with the same).
pub fn leaf_params(
    common_name: &str,
    organizations: &[&str],
    sans: &[String],
    usage: Usage,
) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    for o in organizations {
        dn.push(DnType::OrganizationName, *o);
    }
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.subject_alt_names = sans
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![match usage {
        Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    let now = OffsetDateTime::now_utc();
    // A little slack for clocks that disagree, as upstream allows.
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(LEAF_DAYS);
    Ok(params)
}

fn new_ca(common_name: &str) -> anyhow::Result<Signed> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(CA_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(Signed {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Private keys are readable by their owner only.
fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    common::files::write_private(path, pem.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_service_ip_is_the_network_plus_one() {
        assert_eq!(
            first_service_ip("10.96.0.0/12").unwrap(),
            Ipv4Addr::new(10, 96, 0, 1)
        );
        assert_eq!(
            first_service_ip("10.100.7.9/16").unwrap(),
            Ipv4Addr::new(10, 100, 0, 1)
        );
        assert!(first_service_ip("10.96.0.0").is_err());
        assert!(first_service_ip("10.96.0.0/31").is_err());
        assert!(first_service_ip("10.96.0.0/30").is_ok());
        assert_eq!(
            service_ip("10.96.0.0/12", 10).unwrap(),
            Ipv4Addr::new(10, 96, 0, 10)
        );
        assert_eq!(
            service_ip("192.168.5.0/28", 10).unwrap(),
            Ipv4Addr::new(192, 168, 5, 10)
        );
        assert!(service_ip("192.168.5.0/29", 10).is_err());
        assert!(service_ip("10.96.0.0/33", 1).is_err());
    }

    #[test]
    fn the_apiserver_is_named_as_clients_address_it() {
        let cfg = PkiConfig {
            node_name: "cp-1".into(),
            advertise_address: "192.168.1.10".parse().unwrap(),
            service_cidr: "10.96.0.0/12".into(),
            dns_domain: "cluster.local".into(),
            extra_sans: vec!["cp-1".into(), "api.example".into()],
        };
        assert_eq!(
            apiserver_sans(&cfg).unwrap(),
            [
                "cp-1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "10.96.0.1",
                "192.168.1.10",
                "api.example"
            ]
        );
    }

    fn node_config() -> PkiConfig {
        PkiConfig {
            node_name: "cp-1".into(),
            advertise_address: "192.168.1.10".parse().unwrap(),
            service_cidr: "10.96.0.0/12".into(),
            dns_domain: "cluster.local".into(),
            extra_sans: vec![],
        }
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn keys_kubeconfigs_and_their_dirs_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let pki = Pki::new(&data.join("pki"));
        let cfg = node_config();
        pki.create(&cfg).unwrap();
        assert_eq!(mode(&pki.dir), 0o700);
        for key in [
            "ca.key",
            "apiserver.key",
            "apiserver-kubelet-client.key",
            "sa.key",
            ENCRYPTION_CONFIG,
        ] {
            assert_eq!(mode(&pki.path(key)), 0o600, "{key}");
        }
        let written =
            crate::kubeconfig::write_all(&pki, &data, "https://192.168.1.10:6443", "cp-1").unwrap();
        assert_eq!(mode(&data), 0o700);
        for conf in &written {
            assert_eq!(mode(conf), 0o600, "{}", conf.display());
        }
        // What an older version left open to others is narrowed when it runs again.
        let wide = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(pki.path("ca.key"), wide.clone()).unwrap();
        std::fs::set_permissions(&written[0], wide.clone()).unwrap();
        std::fs::set_permissions(&pki.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        pki.create(&cfg).unwrap();
        crate::kubeconfig::write_all(&pki, &data, "https://192.168.1.10:6443", "cp-1").unwrap();
        assert_eq!(mode(&pki.path("ca.key")), 0o600);
        assert_eq!(mode(&written[0]), 0o600);
        assert_eq!(mode(&pki.dir), 0o700);
    }

    #[test]
    fn secrets_are_encrypted_with_a_random_aescbc_key_kept_across_runs() {
        use base64::Engine;
        let root = tempfile::tempdir().unwrap();
        let pki = Pki::new(root.path());
        let cfg = node_config();
        assert!(
            pki.create(&cfg)
                .unwrap()
                .contains(&pki.path(ENCRYPTION_CONFIG))
        );
        let text = std::fs::read_to_string(pki.path(ENCRYPTION_CONFIG)).unwrap();
        let file: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(file["kind"], "EncryptionConfiguration", "{text}");
        assert_eq!(
            file["resources"][0]["resources"],
            serde_json::json!(["secrets"])
        );
        let providers = &file["resources"][0]["providers"];
        let key = providers[0]["aescbc"]["keys"][0]["secret"]
            .as_str()
            .unwrap();
        let key = base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(providers[1], serde_json::json!({"identity": {}}));
        // Another run keeps the key: a new one would make every stored Secret unreadable.
        assert!(
            !pki.create(&cfg)
                .unwrap()
                .contains(&pki.path(ENCRYPTION_CONFIG))
        );
        assert_eq!(
            std::fs::read_to_string(pki.path(ENCRYPTION_CONFIG)).unwrap(),
            text
        );
        assert_ne!(encryption_config(), text);
    }
}
