//! Kubelet TLS bootstrapping's controllers: a node client CSR is approved after a
//! SubjectAccessReview and signed by the cluster CA; other CSRs wait for a person's
//! `kubectl certificate approve`.

use crate::support;

use std::time::Duration;

use base64::Engine;
use controller_manager::runtime::Options;
use kubeadm::pki::{Pki, PkiConfig};
use support::{apiserver, eventually};

const T: Duration = Duration::from_secs(30);

fn csr_manifest(name: &str, cn: &str, orgs: &[&str], signer: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = rcgen::DistinguishedName::new();
    for o in orgs {
        dn.push(rcgen::DnType::OrganizationName, *o);
    }
    dn.push(rcgen::DnType::CommonName, cn);
    params.distinguished_name = dn;
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let request = base64::engine::general_purpose::STANDARD.encode(pem);
    format!(
        r#"{{"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {{"name": "{name}"}},
            "spec": {{"request": "{request}", "signerName": "{signer}",
                      "usages": ["digital signature", "client auth"]}}}}"#
    )
}

async fn create(c: &support::Cluster, manifest: &str) {
    let (ok, _, err) =
        apiserver::testing::kubectl(&c.kubeconfig(), &["create", "-f", "-"], Some(manifest)).await;
    assert!(ok, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_client_csrs_are_approved_and_signed_by_the_cluster_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.create(&PkiConfig {
        node_name: "cp".into(),
        advertise_address: "127.0.0.1".parse().unwrap(),
        service_cidr: "10.96.0.0/12".into(),
        dns_domain: "cluster.local".into(),
        extra_sans: vec![],
    })
    .unwrap();
    let mut c = apiserver().await;
    c.start_controllers_with(
        &["csrapproving", "csrsigning"],
        Options {
            cluster_signing_cert_file: Some(pki.path("ca.crt")),
            cluster_signing_key_file: Some(pki.path("ca.key")),
            ..Options::default()
        },
    )
    .await;
    let node = csr_manifest(
        "node-csr-n1",
        "system:node:n1",
        &["system:nodes"],
        "kubernetes.io/kube-apiserver-client-kubelet",
    );
    create(&c, &node).await;
    let cert = eventually("the node's certificate", T, || async {
        let out = c
            .kubectl(&[
                "get",
                "csr",
                "node-csr-n1",
                "-o",
                "jsonpath={.status.certificate}",
            ])
            .await
            .1;
        (!out.is_empty()).then_some(out)
    })
    .await;
    let (_, conditions, _) = c
        .kubectl(&[
            "get",
            "csr",
            "node-csr-n1",
            "-o",
            "jsonpath={.status.conditions[0].reason}",
        ])
        .await;
    assert_eq!(conditions, "AutoApproved");
    let pem = base64::engine::general_purpose::STANDARD
        .decode(cert)
        .unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let ca = std::fs::read(pki.path("ca.crt")).unwrap();
    let (_, ca) = x509_parser::pem::parse_x509_pem(&ca).unwrap();
    let ca = ca.parse_x509().unwrap();
    assert_eq!(cert.issuer(), ca.subject());
    cert.verify_signature(Some(ca.public_key()))
        .expect("signed by the cluster CA");
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["system:node:n1"]);
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);

    // A user's CSR is not auto-approved; a person approves it with kubectl.
    let user = csr_manifest(
        "bob",
        "bob",
        &["developers"],
        "kubernetes.io/kube-apiserver-client",
    );
    create(&c, &user).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, out, _) = c
        .kubectl(&["get", "csr", "bob", "-o", "jsonpath={.status}"])
        .await;
    assert!(!out.contains("certificate"), "{out}");
    c.kubectl_ok(&["certificate", "approve", "bob"]).await;
    eventually("bob's certificate", T, || async {
        let out = c
            .kubectl(&["get", "csr", "bob", "-o", "jsonpath={.status.certificate}"])
            .await
            .1;
        (!out.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namespace_gets_the_cluster_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let mut c = apiserver().await;
    c.start_controllers_with(
        &["root-ca-cert-publisher"],
        Options {
            root_ca_file: Some(ca.clone()),
            ..Options::default()
        },
    )
    .await;
    c.kubectl_ok(&["create", "namespace", "team"]).await;
    let args = [
        "get",
        "configmap",
        "-n",
        "team",
        "kube-root-ca.crt",
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ];
    eventually("kube-root-ca.crt in team", T, || async {
        let out = c.kubectl(&args).await.1;
        out.contains("MIIB").then_some(())
    })
    .await;
    // Deleted or changed, it comes back as it was.
    c.kubectl_ok(&["delete", "configmap", "-n", "team", "kube-root-ca.crt"])
        .await;
    eventually("kube-root-ca.crt re-created", T, || async {
        let out = c.kubectl(&args).await.1;
        out.contains("MIIB").then_some(())
    })
    .await;
    c.kubectl_ok(&[
        "patch",
        "configmap",
        "-n",
        "team",
        "kube-root-ca.crt",
        "-p",
        r#"{"data":{"ca.crt":"tampered"}}"#,
    ])
    .await;
    eventually("kube-root-ca.crt repaired", T, || async {
        let out = c.kubectl(&args).await.1;
        out.contains("MIIB").then_some(())
    })
    .await;
}

/// A serving CSR for `dns`/`ips`, CN `system:node:<node>`, with `usages`.
fn serving_csr(name: &str, node: &str, dns: &[&str], ips: &[&str], usages: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.subject_alt_names.extend(
        ips.iter()
            .map(|ip| rcgen::SanType::IpAddress(ip.parse().unwrap())),
    );
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let request = base64::engine::general_purpose::STANDARD.encode(pem);
    format!(
        r#"{{"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {{"name": "{name}"}},
            "spec": {{"request": "{request}", "signerName": "kubernetes.io/kubelet-serving",
                      "usages": {usages}}}}}"#
    )
}

/// Kubelet serving CSRs: approved only when the node asks for itself and names only the
/// addresses its Node reports. A request for another address and one with a client usage
/// stay pending (one naming another node is refused by the apiserver already); the node's
/// honest request, made last, is the positive control (once it is approved, the single
/// worker has judged the others).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_serving_csrs_are_approved_only_for_the_nodes_own_addresses() {
    let mut c = apiserver().await;
    c.start_controllers(&["csrapproving"]).await;
    c.create(serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}))
        .await;
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(c.client.clone());
    let status = serde_json::json!({"status": {"addresses": [
        {"type": "InternalIP", "address": "10.0.0.5"}, {"type": "Hostname", "address": "n1"}]}});
    nodes
        .patch_status(
            "n1",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&status),
        )
        .await
        .unwrap();
    let as_node = |node: &str| {
        [
            format!("--as=system:node:{node}"),
            "--as-group=system:nodes".to_owned(),
        ]
    };
    let try_create_as = async |node: &str, manifest: String| {
        let who = as_node(node);
        let (ok, _, err) = apiserver::testing::kubectl(
            &c.kubeconfig(),
            &["create", "-f", "-", &who[0], &who[1]],
            Some(&manifest),
        )
        .await;
        (ok, err)
    };
    let create_as = async |node: &str, manifest: String| {
        let (ok, err) = try_create_as(node, manifest).await;
        assert!(ok, "{err}");
    };
    let (ok, err) = try_create_as(
        "n2",
        serving_csr(
            "other-node",
            "n1",
            &["n1"],
            &["10.0.0.5"],
            r#"["server auth"]"#,
        ),
    )
    .await;
    assert!(
        !ok && err.contains("can only create a node CSR with CN=system:node:n2"),
        "{err}"
    );
    let serving = r#"["digital signature", "server auth"]"#;
    let hostile = [
        (
            "other-address",
            "n1",
            serving_csr("other-address", "n1", &["n1"], &["10.0.0.99"], serving),
        ),
        (
            "client-usage",
            "n1",
            serving_csr(
                "client-usage",
                "n1",
                &["n1"],
                &["10.0.0.5"],
                r#"["digital signature", "server auth", "client auth"]"#,
            ),
        ),
    ];
    for (_, requester, manifest) in &hostile {
        create_as(requester, manifest.clone()).await;
    }
    create_as(
        "n1",
        serving_csr("honest", "n1", &["n1"], &["10.0.0.5"], serving),
    )
    .await;
    let reason = |name: &str| {
        let c = &c;
        let name = name.to_owned();
        async move {
            c.kubectl(&[
                "get",
                "csr",
                &name,
                "-o",
                "jsonpath={.status.conditions[*].type}",
            ])
            .await
            .1
        }
    };
    eventually("the node's own serving CSR approved", T, async || {
        (reason("honest").await == "Approved").then_some(())
    })
    .await;
    // The queue is worked in order; a moment more in case it were not.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (name, _, _) in &hostile {
        assert_eq!(reason(name).await, "", "{name} must stay pending");
    }
}
