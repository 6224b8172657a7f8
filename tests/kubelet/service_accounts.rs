//! Service-account tokens in pods with a real containerd: the ServiceAccount admission
//! plugin adds the kube-api-access volume, the kubelet fills it with a bound token from
//! TokenRequest, the cluster's CA and the namespace (a TokenReview accepts the token as the
//! pod's), an explicit projection gets its own audience and lifetime, tokens are cached
//! across volume resyncs, the `kubernetes` Service's variables are in the environment, and
//! a token that cannot be issued holds the pod in ContainerCreating with FailedMount.

use crate::support;

use base64::Engine;
use k8s_openapi::api::authentication::v1::TokenReview;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use support::{Node, container_state, node_with_service_accounts};

const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const CA: &str = "-----BEGIN CERTIFICATE-----\ntest CA\n-----END CERTIFICATE-----\n";

fn running(p: &Pod) -> Option<()> {
    let s = p.status.as_ref()?;
    (s.phase.as_deref() == Some("Running")
        && s.container_statuses.iter().flatten().all(|c| c.ready))
    .then_some(())
}

/// What the namespace needs before pods can use its API access: the `default` account and
/// the kube-root-ca.crt ConfigMap (their controllers do not run here).
async fn prepare(n: &Node, account: &str) {
    let accounts: Api<ServiceAccount> = Api::namespaced(n.client.clone(), "default");
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": account}})).unwrap();
    accounts.create(&PostParams::default(), &sa).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(n.client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": CA}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
}

async fn exec(n: &Node, pod: &str, script: &str) -> String {
    let (ok, out, err) = n
        .kubectl(&["exec", pod, "--", "sh", "-c", script], None)
        .await;
    assert!(ok, "{script}: {err}");
    out
}

/// The claims of a JWT, unverified.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_reads_its_token_ca_and_namespace() {
    let mut n = node_with_service_accounts().await;
    n.serve_api();
    prepare(&n, "default").await;
    n.create(
        "api-client",
        json!({"name": "c", "image": "busybox", "imagePullPolicy": "Never",
               "command": ["sleep", "3600"],
               "volumeMounts": [{"name": "vault", "mountPath": "/var/run/vault"}]}),
        json!({"volumes": [{"name": "vault", "projected": {"sources": [{"serviceAccountToken":
            {"audience": "vault", "expirationSeconds": 600, "path": "vault-token"}}]}}]}),
    )
    .await;
    let pod = n.pods().get("api-client").await.unwrap();
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    let access = &spec.volumes.as_ref().unwrap()[1];
    assert!(access.name.starts_with("kube-api-access-"), "{access:?}");
    n.until("api-client", "Running and ready", running).await;

    let token = exec(&n, "api-client", &format!("cat {MOUNT}/token")).await;
    assert_eq!(
        exec(&n, "api-client", &format!("cat {MOUNT}/ca.crt")).await,
        CA
    );
    assert_eq!(
        exec(&n, "api-client", &format!("cat {MOUNT}/namespace")).await,
        "default"
    );

    // The apiserver accepts the token as the pod's service account, bound to the pod.
    let reviews: Api<TokenReview> = Api::all(n.client.clone());
    let review: TokenReview =
        serde_json::from_value(json!({"spec": {"token": token.clone()}})).unwrap();
    let status = reviews
        .create(&PostParams::default(), &review)
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.authenticated, Some(true), "{:?}", status.error);
    let user = status.user.unwrap();
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:default:default")
    );
    let extra = user.extra.unwrap();
    assert_eq!(
        extra["authentication.kubernetes.io/pod-name"],
        ["api-client".to_owned()]
    );
    assert_eq!(
        extra["authentication.kubernetes.io/pod-uid"],
        [pod.metadata.uid.clone().unwrap()]
    );
    let default_token = claims(&token);
    assert_eq!(
        default_token["exp"].as_i64().unwrap() - default_token["iat"].as_i64().unwrap(),
        3607
    );

    // The explicit projection: its own audience and lifetime.
    let vault = claims(&exec(&n, "api-client", "cat /var/run/vault/vault-token").await);
    assert_eq!(vault["aud"], json!(["vault"]));
    assert_eq!(
        vault["exp"].as_i64().unwrap() - vault["iat"].as_i64().unwrap(),
        600
    );
    assert_eq!(vault["kubernetes.io"]["pod"]["name"], "api-client");

    // Volumes are set up again every 2 s here; the cached token is written, not a new one.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(
        exec(&n, "api-client", &format!("cat {MOUNT}/token")).await,
        token
    );

    // The `kubernetes` Service's variables, as every container gets them.
    let services: Api<Service> = Api::namespaced(n.client.clone(), "default");
    let kubernetes = services.get("kubernetes").await.unwrap().spec.unwrap();
    let port = kubernetes.ports.unwrap()[0].port;
    let ip = kubernetes.cluster_ip.unwrap();
    assert_eq!(
        exec(
            &n,
            "api-client",
            "echo $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT $KUBERNETES_PORT"
        )
        .await,
        format!("{ip} {port} tcp://{ip}:{port}\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_cannot_be_issued_holds_the_pod_in_container_creating() {
    let n = node_with_service_accounts().await;
    prepare(&n, "robot").await;
    // Admitted while the account exists, bound to the node once it is gone.
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "orphan"},
        "spec": {"serviceAccountName": "robot", "hostNetwork": true,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
                "command": ["sleep", "3600"]}]}}))
    .unwrap();
    let pod = n.pods().create(&PostParams::default(), &pod).await.unwrap();
    let volume = pod.spec.unwrap().volumes.unwrap()[0].name.clone();
    let accounts: Api<ServiceAccount> = Api::namespaced(n.client.clone(), "default");
    accounts.delete("robot", &Default::default()).await.unwrap();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "orphan"},
        "target": {"kind": "Node", "name": "node-a"}});
    n.pods()
        .create_subresource::<Value, Value>("binding", "orphan", &PostParams::default(), &binding)
        .await
        .unwrap();

    n.until("orphan", "ContainerCreating", |p| {
        (container_state(p)?.state?.waiting?.reason? == "ContainerCreating").then_some(())
    })
    .await;
    let message = n.event_message("FailedMount").await;
    assert_eq!(
        message,
        Some(format!(
            "MountVolume.SetUp failed for volume {volume:?} : failed to fetch token: serviceaccounts \"robot\" not found"
        ))
    );

    // The account comes back: the token is issued and the pod runs.
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "robot"}})).unwrap();
    accounts.create(&PostParams::default(), &sa).await.unwrap();
    n.until("orphan", "Running once the account exists", running)
        .await;
}
