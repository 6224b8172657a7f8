//! Secrets encrypted through a KMS v2 plugin (a real gRPC plugin on a unix socket): the stored
//! value is upstream's EncryptedObject, the plugin is asked once per seed (not per value), key
//! IDs rotate without a failed read, and a plugin that goes away shows in /healthz/kms-providers
//! while writes go on for the three minutes upstream allows.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use apiserver::storage::Store;
use apiserver::storage::encryption::kms::api::EncryptedObject;
use apiserver::storage::sqlite::SqliteStore;
use apiserver::testing::http::HttpClient;
use apiserver::testing::kms_plugin::{ANNOTATION, KmsPlugin};
use prost::Message;
use serde_json::{Value, json};

use crate::encryption::{PLAINTEXT, SECRETS, b64, contains, startup_error};

const PREFIX: &[u8] = b"k8s:enc:kms:v2:vault:";

/// kms v2 (`vault`) first for secrets, identity second.
fn write_config(dir: &Path, plugin: &KmsPlugin) -> PathBuf {
    let config = json!({
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{
            "resources": ["secrets"],
            "providers": [
                {"kms": {"apiVersion": "v2", "name": "vault", "endpoint": plugin.endpoint(),
                         "timeout": "2s"}},
                {"identity": {}},
            ],
        }],
    });
    let path = dir.join("encryption.json");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    path
}

async fn start(dir: &Path, plugin: &KmsPlugin, etcd: Option<&str>) -> apiserver::server::InProcess {
    let path = write_config(dir, plugin);
    apiserver::testing::spawn_with(dir, |c| {
        c.encryption_provider_config = Some(path);
        // Status every 200 ms (upstream: a minute), so rotation shows within the test.
        c.kms_timing = apiserver::storage::encryption::kms::Timing {
            healthy: Duration::from_millis(200),
            unhealthy: Duration::from_millis(100),
        };
        if let Some(endpoint) = etcd {
            c.etcd_servers = vec![endpoint.to_owned()];
        }
    })
    .await
}

async fn put_secret(client: &HttpClient, name: &str) {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "data": {"password": b64(PLAINTEXT.as_bytes())}});
    let (code, body) = client.post(SECRETS, &secret).await.unwrap();
    assert_eq!(code, 201, "{body}");
}

async fn read_secret(client: &HttpClient, name: &str) -> Value {
    let (code, secret) = client.get(&format!("{SECRETS}/{name}")).await.unwrap();
    assert_eq!(code, 200, "{secret}");
    assert_eq!(secret["data"]["password"], b64(PLAINTEXT.as_bytes()));
    secret
}

async fn raw_value(dir: &Path, name: &str) -> Vec<u8> {
    let store = SqliteStore::open(dir.join("data/state.db")).unwrap();
    let key = format!("/registry/secrets/default/{name}");
    store.get(&key).await.unwrap().unwrap().value.to_vec()
}

/// The stored value as upstream's EncryptedObject, after checking the prefix and that no
/// plaintext shows.
fn stored_object(raw: &[u8]) -> EncryptedObject {
    assert!(
        raw.starts_with(PREFIX),
        "{:?}",
        String::from_utf8_lossy(raw)
    );
    assert!(!contains(raw, PLAINTEXT) && !contains(raw, &b64(PLAINTEXT.as_bytes())));
    EncryptedObject::decode(&raw[PREFIX.len()..]).expect("an EncryptedObject")
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_encrypted_through_a_kms_v2_plugin_and_its_key_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut plugin = KmsPlugin::start(dir).await;
    let server = start(dir, &plugin, None).await;
    let client = HttpClient::new(&server.url());
    let (code, health) = client.get_text("/healthz/kms-providers").await.unwrap();
    assert_eq!((code, health.as_str()), (200, "ok"));

    put_secret(&client, "a").await;
    put_secret(&client, "b").await;
    read_secret(&client, "a").await;
    let a = stored_object(&raw_value(dir, "a").await);
    let b = stored_object(&raw_value(dir, "b").await);
    assert_eq!(a.key_id, "key-1");
    assert_eq!(a.encrypted_dek_source_type, 1, "an HKDF seed");
    assert_eq!(a.annotations[ANNOTATION], b"1");
    // One seed for both values; each value has its own derived key and nonce.
    assert_eq!(a.encrypted_dek_source, b.encrypted_dek_source);
    assert_ne!(a.encrypted_data[..44], b.encrypted_data[..44]);
    // The plugin encrypted the seed once and was never asked to decrypt: writes and reads
    // need no call to it.
    let (_, encrypts, decrypts) = plugin.calls();
    assert_eq!((encrypts, decrypts), (1, 0));
    // Upstream's metrics count the transformations and the plugin's calls.
    let (code, metrics) = client.get_text("/metrics").await.unwrap();
    assert_eq!(code, 200);
    for series in [
        "apiserver_storage_transformation_operations_total{resource=\"secrets\",\
         transformation_type=\"to_storage\",transformer_prefix=\"k8s:enc:kms:v2:vault:\",\
         status=\"OK\"} 2",
        "apiserver_envelope_encryption_kms_operations_latency_seconds_count{provider_name=\
         \"vault\",method_name=\"/v2.KeyManagementService/Encrypt\",grpc_status_code=\"OK\"} 1",
    ] {
        assert!(metrics.contains(series), "no {series} in\n{metrics}");
    }
    server.stop();

    // A new server encrypts a seed of its own and decrypts the old one once, whatever it
    // reads.
    let (_, before, _) = plugin.calls();
    let server = start(dir, &plugin, None).await;
    let client = HttpClient::new(&server.url());
    read_secret(&client, "a").await;
    read_secret(&client, "b").await;
    let (code, list) = client.get(SECRETS).await.unwrap();
    assert_eq!(code, 200, "{list}");
    let (_, encrypts, decrypts) = plugin.calls();
    assert_eq!((encrypts - before, decrypts), (1, 1));

    // The plugin's key ID changes: a new seed under key-2 within a Status poll, old values
    // still read, a rewrite moves them.
    plugin.rotate("key-2");
    until("writes use key-2", async || {
        put_secret(&client, &format!("c{}", uuid::Uuid::new_v4().simple())).await;
        let (code, s) = client.get(&format!("{SECRETS}/a")).await.unwrap();
        assert_eq!(code, 200, "{s}");
        let (code, _) = client
            .send("PUT", &format!("{SECRETS}/a"), "application/json", Some(&s))
            .await
            .unwrap();
        assert_eq!(code, 200);
        (stored_object(&raw_value(dir, "a").await).key_id == "key-2").then_some(())
    })
    .await;
    read_secret(&client, "b").await;

    // The plugin goes away: the health check says so, writes go on with the seed in hand.
    plugin.stop().await;
    until("kms-providers fails", async || {
        let (code, body) = client.get_text("/healthz/kms-providers").await.unwrap();
        (code == 500 && body.contains("[-]kms-providers failed")).then_some(())
    })
    .await;
    let (code, _) = client.get_text("/livez").await.unwrap();
    assert_eq!(code, 200, "a KMS plugin is not part of liveness");
    put_secret(&client, "while-away").await;
    plugin.restart();
    until("kms-providers recovers", async || {
        let (code, _) = client.get_text("/healthz/kms-providers").await.unwrap();
        (code == 200).then_some(())
    })
    .await;
    read_secret(&client, "while-away").await;
    server.stop();

    // With key-1 destroyed in the plugin, a value still under it is a clear error naming the
    // plugin's answer (the watch cache reads every value at startup, so startup fails).
    plugin.destroy("key-1");
    let err = startup_error(dir, write_config(dir, &plugin)).await;
    assert!(
        err.contains("/registry/secrets/default/")
            && err.contains("failed to decrypt DEK")
            && err.contains("no key \"key-1\""),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_plugin_a_kms_v2_provider_refuses_writes_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut plugin = KmsPlugin::start(dir).await;
    plugin.stop().await;
    // The server starts (upstream does too) but cannot encrypt before the plugin answers.
    let server = start(dir, &plugin, None).await;
    let client = HttpClient::new(&server.url());
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}});
    let (code, err) = client.post(SECRETS, &secret).await.unwrap();
    assert_eq!(code, 500, "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("KMS v2 provider vault has no data encryption key"),
        "{message}"
    );
    // Other resources are unaffected.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let (code, _) = client
        .post("/api/v1/namespaces/default/configmaps", &cm)
        .await
        .unwrap();
    assert_eq!(code, 201);
    // Once the plugin answers, writes work.
    plugin.restart();
    until("the plugin is used", async || {
        let (code, _) = client.post(SECRETS, &secret).await.unwrap();
        (code == 201).then_some(())
    })
    .await;
    stored_object(&raw_value(dir, "x").await);
    // An unhealthy Status shows in the check (a seed in hand still encrypts).
    plugin.set_unhealthy(true);
    until("kms-providers reports the Status", async || {
        let (code, body) = client.get_text("/readyz/kms-providers").await.unwrap();
        (code == 500 && body.contains("got unexpected healthz status: broken")).then_some(())
    })
    .await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_encrypted_through_a_kms_v2_plugin_in_etcd() {
    let etcd = tokio::task::spawn_blocking(apiserver::testing::EtcdServer::start)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plugin = KmsPlugin::start(dir.path()).await;
    let endpoint = format!("http://{}", etcd.endpoint);
    let server = start(dir.path(), &plugin, Some(&endpoint)).await;
    let client = HttpClient::new(&server.url());
    put_secret(&client, "db").await;
    read_secret(&client, "db").await;
    let mut raw = etcd.value("/registry/secrets/default/db");
    assert_eq!(
        raw.pop(),
        Some(b'\n'),
        "etcdctl ends the value with a newline"
    );
    let object = stored_object(&raw);
    assert_eq!(object.key_id, "key-1");
    server.stop();
}
