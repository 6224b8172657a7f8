//! Secrets encrypted at rest (--encryption-provider-config): no plaintext reaches the embedded
//! store's files or etcd, and upstream's documented key rotation never fails a read.

use std::path::{Path, PathBuf};

use apiserver::storage::Store;
use apiserver::storage::sqlite::SqliteStore;
use apiserver::testing::http::HttpClient;
use apiserver::testing::kms_plugin::KmsPlugin;
use base64::Engine;
use serde_json::{Value, json};

pub(crate) const SECRETS: &str = "/api/v1/namespaces/default/secrets";
const KEY: &str = "/registry/secrets/default/db";
/// The secret's value; stored JSON holds it base64-encoded.
pub(crate) const PLAINTEXT: &str = "correct-horse-battery-staple";

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Writes an EncryptionConfiguration for secrets: aescbc with `aescbc` keys (name, byte),
/// then secretbox with one key, then identity.
fn write_config(dir: &Path, aescbc: &[(&str, u8)]) -> PathBuf {
    let keys: Vec<Value> = aescbc
        .iter()
        .map(|(name, byte)| json!({"name": name, "secret": b64(&[*byte; 32])}))
        .collect();
    let config = json!({
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{
            "resources": ["secrets"],
            "providers": [
                {"aescbc": {"keys": keys}},
                {"secretbox": {"keys": [{"name": "box", "secret": b64(&[9; 32])}]}},
                {"identity": {}},
            ],
        }],
    });
    let path = dir.join("encryption.json");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    path
}

async fn start(dir: &Path, aescbc: &[(&str, u8)]) -> apiserver::server::InProcess {
    let path = write_config(dir, aescbc);
    apiserver::testing::spawn_with(dir, |c| c.encryption_provider_config = Some(path)).await
}

/// Why a server on `dir`'s data with the encryption config at `path` fails to start.
pub(crate) async fn startup_error(dir: &Path, path: PathBuf) -> String {
    let config = apiserver::server::Config {
        data_dir: dir.join("data"),
        secure_port: 0,
        encryption_provider_config: Some(path),
        ..Default::default()
    };
    match apiserver::server::spawn_in_process(config).await {
        Ok(_) => panic!("the server started"),
        Err(e) => format!("{e:#}"),
    }
}

/// Creates the Secret `db` holding PLAINTEXT.
async fn create_secret(client: &HttpClient) {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
        "data": {"password": b64(PLAINTEXT.as_bytes())}});
    let (code, created) = client.post(SECRETS, &secret).await.unwrap();
    assert_eq!(code, 201, "{created}");
}

async fn read_secret(client: &HttpClient) -> Value {
    let (code, secret) = client.get(&format!("{SECRETS}/db")).await.unwrap();
    assert_eq!(code, 200, "{secret}");
    assert_eq!(secret["data"]["password"], b64(PLAINTEXT.as_bytes()));
    secret
}

/// The raw value under KEY in the embedded store, read around the encryption.
async fn raw_value(dir: &Path) -> Vec<u8> {
    let store = SqliteStore::open(dir.join("data/state.db")).unwrap();
    store.get(KEY).await.unwrap().unwrap().value.to_vec()
}

pub(crate) fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Asserts no file under `dir` holds the secret, plain or base64-encoded.
fn assert_no_plaintext(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for needle in [PLAINTEXT.to_owned(), b64(PLAINTEXT.as_bytes())] {
            assert!(
                !contains(&bytes, &needle),
                "{} holds {needle}",
                path.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_encrypted_in_the_embedded_store_and_keys_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let server = start(dir, &[("key1", 1)]).await;
    let client = HttpClient::new(&server.url());
    create_secret(&client).await;
    read_secret(&client).await;
    assert!(raw_value(dir).await.starts_with(b"k8s:enc:aescbc:v1:key1:"));
    assert_no_plaintext(&dir.join("data"));
    // Other resources stay readable plaintext.
    let (code, _) = client.get("/api/v1/namespaces/default").await.unwrap();
    assert_eq!(code, 200);
    server.stop();

    // Upstream's rotation: a new key second, then first, rewrite every secret, drop the old key.
    let server = start(dir, &[("key1", 1), ("key2", 2)]).await;
    read_secret(&HttpClient::new(&server.url())).await;
    server.stop();
    let server = start(dir, &[("key2", 2), ("key1", 1)]).await;
    let client = HttpClient::new(&server.url());
    let current = read_secret(&client).await;
    let (code, replaced) = client
        .send(
            "PUT",
            &format!("{SECRETS}/db"),
            "application/json",
            Some(&current),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{replaced}");
    assert!(raw_value(dir).await.starts_with(b"k8s:enc:aescbc:v1:key2:"));
    server.stop();
    let server = start(dir, &[("key2", 2)]).await;
    read_secret(&HttpClient::new(&server.url())).await;
    assert_no_plaintext(&dir.join("data"));
    server.stop();

    // Without the key the secret was written with, startup fails naming it.
    let path = write_config(dir, &[("key3", 3)]);
    let err = startup_error(dir, path).await;
    assert!(
        err.contains(KEY) && err.contains("aescbc key \"key2\""),
        "{err}"
    );
}

/// PUTs the Secret `db` back unchanged (or with `extra` data) until its stored value starts
/// with `prefix`, for at most ten seconds.
async fn rewrite_until(client: &HttpClient, dir: &Path, prefix: &[u8], extra: Option<&str>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut current = read_secret(client).await;
        if let Some(value) = extra {
            current["data"]["extra"] = json!(b64(value.as_bytes()));
        }
        let path = format!("{SECRETS}/db");
        let (code, body) = client
            .send("PUT", &path, "application/json", Some(&current))
            .await
            .unwrap();
        assert_eq!(code, 200, "{body}");
        let raw = raw_value(dir).await;
        if raw.starts_with(prefix) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still stored as {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(30)])
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_config_is_put_in_force_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let path = write_config(dir, &[("key1", 1)]);
    let server = apiserver::testing::spawn_with(dir, |c| {
        c.encryption_provider_config = Some(path.clone());
        c.encryption_provider_config_automatic_reload = true;
        c.encryption_reload_interval = std::time::Duration::from_millis(100);
    })
    .await;
    let client = HttpClient::new(&server.url());
    create_secret(&client).await;
    assert!(raw_value(dir).await.starts_with(b"k8s:enc:aescbc:v1:key1:"));

    // The new key first, without a restart: rewrites move the secret to it, reads go on.
    write_config(dir, &[("key2", 2), ("key1", 1)]);
    rewrite_until(&client, dir, b"k8s:enc:aescbc:v1:key2:", None).await;

    // A broken file is refused and the configuration in force stays.
    std::fs::write(&path, "kind: EncryptionConfiguration\nresources: [").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    rewrite_until(&client, dir, b"k8s:enc:aescbc:v1:key2:", Some("changed")).await;
    read_secret(&client).await;
    assert_no_plaintext(&dir.join("data"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_encryption_config_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources: [secrets]\n  providers:\n  - aescbc:\n      keys:\n      - name: k\n        secret: c2hvcnQ=\n",
    )
    .unwrap();
    let err = startup_error(dir.path(), path).await;
    assert!(
        err.contains("secret is not of the expected length, got 5"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_encrypted_in_etcd() {
    let etcd = tokio::task::spawn_blocking(apiserver::testing::EtcdServer::start)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &[("key1", 1)]);
    let endpoint = format!("http://{}", etcd.endpoint);
    let server = apiserver::testing::spawn_with(dir.path(), |c| {
        c.encryption_provider_config = Some(path);
        c.etcd_servers = vec![endpoint];
    })
    .await;
    let client = HttpClient::new(&server.url());
    create_secret(&client).await;
    read_secret(&client).await;
    let out = etcd.value(KEY);
    assert!(out.starts_with(b"k8s:enc:aescbc:v1:key1:"), "{out:?}");
    assert!(!contains(&out, PLAINTEXT));
    assert!(!contains(&out, &b64(PLAINTEXT.as_bytes())));
    server.stop();
}

/// Each provider's entry for secrets (the KMS one naming `plugin`), and the prefix its
/// values are stored with.
fn providers(plugin: &KmsPlugin) -> Vec<(Value, &'static str)> {
    let key = json!({"keys": [{"name": "k", "secret": b64(&[7; 32])}]});
    vec![
        (json!({"aescbc": key}), "k8s:enc:aescbc:v1:k:"),
        (json!({"aesgcm": key}), "k8s:enc:aesgcm:v1:k:"),
        (json!({"secretbox": key}), "k8s:enc:secretbox:v1:k:"),
        (
            json!({"kms": {"apiVersion": "v2", "name": "vault", "endpoint": plugin.endpoint()}}),
            "k8s:enc:kms:v2:vault:",
        ),
    ]
}

fn single_provider_config(dir: &Path, provider: &Value) -> PathBuf {
    let config = json!({
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"], "providers": [provider]}],
    });
    let path = dir.join("encryption.json");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_encrypts_in_the_embedded_store() {
    let plugin_dir = tempfile::tempdir().unwrap();
    let plugin = KmsPlugin::start(plugin_dir.path()).await;
    for (provider, prefix) in providers(&plugin) {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let path = single_provider_config(dir, &provider);
        let server =
            apiserver::testing::spawn_with(dir, |c| c.encryption_provider_config = Some(path))
                .await;
        let client = HttpClient::new(&server.url());
        create_secret(&client).await;
        read_secret(&client).await;
        server.stop();
        let raw = raw_value(dir).await;
        assert!(raw.starts_with(prefix.as_bytes()), "{provider}: {raw:?}");
        assert_no_plaintext(&dir.join("data"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_encrypts_in_etcd() {
    let etcd = tokio::task::spawn_blocking(apiserver::testing::EtcdServer::start)
        .await
        .unwrap();
    let endpoint = format!("http://{}", etcd.endpoint);
    let plugin_dir = tempfile::tempdir().unwrap();
    let plugin = KmsPlugin::start(plugin_dir.path()).await;
    for (i, (provider, prefix)) in providers(&plugin).into_iter().enumerate() {
        // One etcd, a key space per provider.
        let dir = tempfile::tempdir().unwrap();
        let path = single_provider_config(dir.path(), &provider);
        let server = apiserver::testing::spawn_with(dir.path(), |c| {
            c.encryption_provider_config = Some(path);
            c.etcd_servers = vec![endpoint.clone()];
            c.etcd_prefix = format!("/p{i}");
        })
        .await;
        let client = HttpClient::new(&server.url());
        create_secret(&client).await;
        read_secret(&client).await;
        server.stop();
        let out = etcd.value(&format!("/p{i}/secrets/default/db"));
        assert!(out.starts_with(prefix.as_bytes()), "{provider}: {out:?}");
        assert!(!contains(&out, PLAINTEXT));
        assert!(!contains(&out, &b64(PLAINTEXT.as_bytes())));
    }
}
