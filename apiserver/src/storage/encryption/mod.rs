//! Encryption at rest: upstream's EncryptionConfiguration (`--encryption-provider-config`) as a
//! [`Store`] wrapping another, so every path to the store (handlers, watch cache, bootstrap) and
//! both backends see plaintext above it and ciphertext below it.
//!
//! Semantics, as upstream's:
//! - Each resource (`secrets`, `deployments.apps`, `*.apps`, `*.` for the core group, `*.*`)
//!   has a list of providers, those of every entry naming it, in file order. A resource's
//!   providers are found by its exact name, else its group's wildcard, else `*.*`.
//! - The first provider's first key encrypts every write; reads try every provider, picking
//!   the key by the stored value's prefix `k8s:enc:<provider>:v1:<key name>:`. `identity`
//!   writes plaintext and reads any unprefixed value.
//! - aescbc: AES-CBC, PKCS#7 padding, a random 16-byte IV before the ciphertext. aesgcm:
//!   AES-GCM, a random 12-byte nonce before the ciphertext, the storage key bound as additional
//!   authenticated data (so a value moved to another key does not decrypt). secretbox:
//!   XSalsa20-Poly1305, a random 24-byte nonce before the ciphertext. Upstream binds the key
//!   only for aesgcm (CBC and secretbox have no associated data); so do we, so a store written
//!   by either server reads in the other.
//! - A resource no entry names is stored as it is, and an encrypted value found there is an
//!   error, not garbage handed to the JSON parser.
//! - A value no configured key can decrypt is [`Error::Transform`] naming the key and provider.

pub mod kms;
pub mod metrics;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockCipher, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use futures::StreamExt;
use kms::Failure;
use metrics::Direction;
use parking_lot::RwLock;
use serde::Deserialize;

use super::{Error, KeyValue, RangeOptions, RangeResult, Result, Revision, Store, WatchStream};

/// What every encrypted value starts with; an identity read refuses it.
const ENCRYPTED: &[u8] = b"k8s:enc:";
const AES_KEY_SIZES: &[usize] = &[16, 24, 32];
const SECRETBOX_KEY_SIZES: &[usize] = &[32];
const CBC_IV: usize = 16;
const GCM_NONCE: usize = 12;
const SECRETBOX_NONCE: usize = 24;

/// `--encryption-provider-config` that cannot be used; the message lists every problem.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// The file, as apiserver.config.k8s.io/v1 spells it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EncryptionConfiguration {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    resources: Vec<ResourceConfiguration>,
}

#[derive(Deserialize)]
struct ResourceConfiguration {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<ProviderConfiguration>,
}

#[derive(Deserialize)]
struct ProviderConfiguration {
    aescbc: Option<KeysConfiguration>,
    aesgcm: Option<KeysConfiguration>,
    secretbox: Option<KeysConfiguration>,
    identity: Option<serde_json::Value>,
    kms: Option<KmsConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KmsConfiguration {
    /// `v1` when omitted, as upstream (which has KMS v1 off).
    api_version: Option<String>,
    #[serde(default)]
    name: String,
    cachesize: Option<i32>,
    #[serde(default)]
    endpoint: String,
    /// A Go duration; 3s when omitted.
    timeout: Option<String>,
}

#[derive(Deserialize)]
struct KeysConfiguration {
    #[serde(default)]
    keys: Vec<KeyConfiguration>,
}

#[derive(Deserialize)]
struct KeyConfiguration {
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret: String,
}

/// One key of one provider (or identity): the unit a stored value's prefix selects.
#[derive(Clone)]
enum Transformer {
    Identity,
    AesCbc {
        prefix: Vec<u8>,
        key: Vec<u8>,
    },
    AesGcm {
        prefix: Vec<u8>,
        key: Vec<u8>,
    },
    Secretbox {
        prefix: Vec<u8>,
        key: Vec<u8>,
    },
    /// A KMS v2 plugin: every key it ever encrypted a seed with.
    Kms(Arc<kms::Provider>),
}

impl Transformer {
    /// What the values it writes start with; empty for identity.
    fn prefix(&self) -> &[u8] {
        match self {
            Transformer::Identity => b"",
            Transformer::AesCbc { prefix, .. }
            | Transformer::AesGcm { prefix, .. }
            | Transformer::Secretbox { prefix, .. } => prefix,
            Transformer::Kms(p) => p.prefix(),
        }
    }
}

/// A group and resource as a config entry names them; `*` is a wildcard.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GroupResource {
    group: String,
    resource: String,
}

impl GroupResource {
    /// Upstream's ParseGroupResource: `secrets`, `deployments.apps`, `*.apps`, `*.`, `*.*`.
    fn parse(s: &str) -> GroupResource {
        let (resource, group) = s.split_once('.').unwrap_or((s, ""));
        GroupResource {
            group: group.to_owned(),
            resource: resource.to_owned(),
        }
    }

    fn wildcard(group: &str) -> GroupResource {
        GroupResource {
            group: group.to_owned(),
            resource: "*".to_owned(),
        }
    }
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.group.as_str(), self.resource.as_str()) {
            ("", "*") => f.write_str("*."),
            ("", r) => f.write_str(r),
            (g, r) => write!(f, "{r}.{g}"),
        }
    }
}

/// The providers of one resource, in the order they are tried.
pub struct Providers(Vec<Transformer>);

impl Providers {
    /// The value to store under `key` (a value of `resource`): encrypted by the first
    /// provider's first key.
    fn encrypt(&self, resource: &str, key: &str, plaintext: Bytes) -> Result<Bytes> {
        let started = Instant::now();
        let sealed = self.seal(key, plaintext);
        metrics::transformed(
            resource,
            Direction::ToStorage,
            Some(self.0[0].prefix()),
            status(&sealed),
            started,
        );
        sealed.map_err(|f| transform_error(key, f))
    }

    fn seal(&self, key: &str, plaintext: Bytes) -> std::result::Result<Bytes, Failure> {
        let (prefix, nonce_len) = match &self.0[0] {
            Transformer::Identity => return Ok(plaintext),
            Transformer::Kms(p) => return p.encrypt(key.as_bytes(), &plaintext).map(Bytes::from),
            Transformer::AesCbc { prefix, .. } => (prefix, CBC_IV),
            Transformer::AesGcm { prefix, .. } => (prefix, GCM_NONCE),
            Transformer::Secretbox { prefix, .. } => (prefix, SECRETBOX_NONCE),
        };
        let mut nonce = [0u8; SECRETBOX_NONCE];
        rand::fill(&mut nonce[..nonce_len]);
        let nonce = &nonce[..nonce_len];
        let sealed = match &self.0[0] {
            Transformer::Identity | Transformer::Kms(_) => unreachable!("returned above"),
            Transformer::AesCbc { key: k, .. } => cbc_encrypt(k, nonce, &plaintext),
            Transformer::AesGcm { key: k, .. } => gcm_seal(k, nonce, &plaintext, key.as_bytes()),
            Transformer::Secretbox { key: k, .. } => secretbox_seal(k, nonce, &plaintext),
        }
        .map_err(|e| format!("{}: {e}", describe(prefix)))?;
        let mut out = Vec::with_capacity(prefix.len() + nonce_len + sealed.len());
        out.extend_from_slice(prefix);
        out.extend_from_slice(nonce);
        out.extend_from_slice(&sealed);
        Ok(out.into())
    }

    /// Whether `stored` is what a write now produces: encrypted with the first key, or
    /// plaintext when identity is first.
    fn is_current(&self, stored: &[u8]) -> bool {
        match &self.0[0] {
            Transformer::Identity => !stored.starts_with(ENCRYPTED),
            Transformer::AesCbc { prefix, .. }
            | Transformer::AesGcm { prefix, .. }
            | Transformer::Secretbox { prefix, .. } => stored.starts_with(prefix),
            Transformer::Kms(p) => stored
                .strip_prefix(p.prefix())
                .is_some_and(|sealed| p.is_current(sealed)),
        }
    }

    /// The plaintext of `stored`, a value of `resource` read under `key`.
    async fn decrypt(&self, resource: &str, key: &str, stored: Bytes) -> Result<Bytes> {
        let started = Instant::now();
        let (prefix, opened) = self.open(key, stored).await;
        metrics::transformed(
            resource,
            Direction::FromStorage,
            prefix,
            status(&opened),
            started,
        );
        opened.map_err(|f| transform_error(key, f))
    }

    /// The plaintext of `stored`, and the prefix of the transformer that read it (None when
    /// none matched).
    async fn open(
        &self,
        key: &str,
        stored: Bytes,
    ) -> (Option<&[u8]>, std::result::Result<Bytes, Failure>) {
        for t in &self.0 {
            let (prefix, k) = match t {
                Transformer::Identity if stored.starts_with(ENCRYPTED) => continue,
                Transformer::Identity => return (Some(b""), Ok(stored)),
                Transformer::AesCbc { prefix, key } => (prefix, key),
                Transformer::AesGcm { prefix, key } => (prefix, key),
                Transformer::Secretbox { prefix, key } => (prefix, key),
                Transformer::Kms(p) => {
                    let Some(sealed) = stored.strip_prefix(p.prefix()) else {
                        continue;
                    };
                    let opened = p.decrypt(key.as_bytes(), sealed).await;
                    return (Some(p.prefix()), opened.map(Bytes::from));
                }
            };
            let Some(sealed) = stored.strip_prefix(prefix.as_slice()) else {
                continue;
            };
            let opened = match t {
                Transformer::Identity | Transformer::Kms(_) => unreachable!("handled above"),
                Transformer::AesCbc { .. } => cbc_decrypt(k, sealed),
                Transformer::AesGcm { .. } => gcm_open(k, sealed, key.as_bytes()),
                Transformer::Secretbox { .. } => secretbox_open(k, sealed),
            };
            let opened = opened
                .map(Bytes::from)
                .map_err(|e| format!("{}: {e}", describe(prefix)).into());
            return (Some(prefix), opened);
        }
        (None, Err(no_matching_prefix(&stored).into()))
    }
}

/// The outcome label of a transformation: `OK`, the KMS plugin's gRPC code, or
/// `unknown-non-grpc`.
fn status<T>(result: &std::result::Result<T, Failure>) -> &'static str {
    match result {
        Ok(_) => "OK",
        Err(Failure {
            code: Some(code), ..
        }) => metrics::code_name(*code),
        Err(_) => "unknown-non-grpc",
    }
}

fn transform_error(key: &str, failure: Failure) -> Error {
    Error::Transform {
        key: key.to_owned(),
        message: failure.message,
    }
}

/// `aescbc key "k1"` from `k8s:enc:aescbc:v1:k1:`.
fn describe(prefix: &[u8]) -> String {
    let text = String::from_utf8_lossy(prefix);
    let mut parts = text.split(':').skip(2);
    let provider = parts.next().unwrap_or_default();
    let _version = parts.next();
    let name = parts.next().unwrap_or_default();
    format!("{provider} key {name:?}")
}

/// Why no configured provider read `stored`, naming the key it was written with if any.
fn no_matching_prefix(stored: &[u8]) -> String {
    if !stored.starts_with(ENCRYPTED) {
        return "no matching prefix found: the value is not encrypted and identity is not \
                among the resource's providers"
            .to_owned();
    }
    // k8s:enc:<provider>:v1:<name>:<data>; the name ends at the fifth ':'.
    let head: Vec<&[u8]> = stored.splitn(6, |b| *b == b':').take(5).collect();
    match head.as_slice() {
        [_, _, provider, _, name] => format!(
            "no matching prefix found: the value was encrypted with {} key {:?}, which is not \
             configured for this resource",
            String::from_utf8_lossy(provider),
            String::from_utf8_lossy(name)
        ),
        _ => "no matching prefix found: the value is encrypted by an unknown provider".to_owned(),
    }
}

type Sealed = std::result::Result<Vec<u8>, &'static str>;

fn cbc_encrypt(key: &[u8], iv: &[u8], plaintext: &[u8]) -> Sealed {
    fn run<C: BlockCipher + BlockEncryptMut + aes::cipher::KeyInit>(
        key: &[u8],
        iv: &[u8],
        plaintext: &[u8],
    ) -> Sealed {
        let enc = cbc::Encryptor::<C>::new_from_slices(key, iv).map_err(|_| "invalid key")?;
        Ok(enc.encrypt_padded_vec_mut::<Pkcs7>(plaintext))
    }
    match key.len() {
        16 => run::<aes::Aes128>(key, iv, plaintext),
        24 => run::<aes::Aes192>(key, iv, plaintext),
        _ => run::<aes::Aes256>(key, iv, plaintext),
    }
}

fn cbc_decrypt(key: &[u8], data: &[u8]) -> Sealed {
    fn run<C: BlockCipher + BlockDecryptMut + aes::cipher::KeyInit>(
        key: &[u8],
        iv: &[u8],
        ciphertext: &[u8],
    ) -> Sealed {
        let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| "invalid key")?;
        dec.decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
            .map_err(|_| "invalid padding on input (wrong key or tampered value)")
    }
    if data.len() <= CBC_IV || !(data.len() - CBC_IV).is_multiple_of(CBC_IV) {
        return Err("the stored data is not a whole number of AES blocks after the IV");
    }
    let (iv, ciphertext) = data.split_at(CBC_IV);
    match key.len() {
        16 => run::<aes::Aes128>(key, iv, ciphertext),
        24 => run::<aes::Aes192>(key, iv, ciphertext),
        _ => run::<aes::Aes256>(key, iv, ciphertext),
    }
}

type Aes192Gcm = aes_gcm::AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>;

fn gcm_seal(key: &[u8], nonce: &[u8], msg: &[u8], aad: &[u8]) -> Sealed {
    match key.len() {
        16 => seal::<aes_gcm::Aes128Gcm>(key, nonce, msg, aad),
        24 => seal::<Aes192Gcm>(key, nonce, msg, aad),
        _ => seal::<aes_gcm::Aes256Gcm>(key, nonce, msg, aad),
    }
}

fn gcm_open(key: &[u8], data: &[u8], aad: &[u8]) -> Sealed {
    let Some((nonce, ciphertext)) = data.split_at_checked(GCM_NONCE) else {
        return Err("the stored data is shorter than the nonce");
    };
    match key.len() {
        16 => open::<aes_gcm::Aes128Gcm>(key, nonce, ciphertext, aad),
        24 => open::<Aes192Gcm>(key, nonce, ciphertext, aad),
        _ => open::<aes_gcm::Aes256Gcm>(key, nonce, ciphertext, aad),
    }
}

fn secretbox_seal(key: &[u8], nonce: &[u8], msg: &[u8]) -> Sealed {
    seal::<crypto_secretbox::XSalsa20Poly1305>(key, nonce, msg, &[])
}

fn secretbox_open(key: &[u8], data: &[u8]) -> Sealed {
    let Some((nonce, ciphertext)) = data.split_at_checked(SECRETBOX_NONCE) else {
        return Err("the stored data is shorter than the nonce");
    };
    open::<crypto_secretbox::XSalsa20Poly1305>(key, nonce, ciphertext, &[])
}

fn seal<A: Aead + KeyInit>(key: &[u8], nonce: &[u8], msg: &[u8], aad: &[u8]) -> Sealed {
    let cipher = A::new_from_slice(key).map_err(|_| "invalid key")?;
    cipher
        .encrypt(
            aes_gcm::aead::Nonce::<A>::from_slice(nonce),
            Payload { msg, aad },
        )
        .map_err(|_| "encryption failed")
}

fn open<A: Aead + KeyInit>(key: &[u8], nonce: &[u8], ciphertext: &[u8], aad: &[u8]) -> Sealed {
    let cipher = A::new_from_slice(key).map_err(|_| "invalid key")?;
    cipher
        .decrypt(
            aes_gcm::aead::Nonce::<A>::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| "authentication failed (wrong key, tampered value, or moved to another key)")
}

/// The parsed, validated configuration: each configured resource's providers.
pub struct Config {
    by_resource: HashMap<GroupResource, Arc<Providers>>,
    /// The KMS v2 plugins, in file order (`kms-provider-<index>`).
    kms: Vec<Arc<kms::Provider>>,
}

impl Config {
    /// Reads and validates `path` (YAML or JSON).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "reading encryption provider configuration file {}: {e}",
                path.display()
            ))
        })?;
        Config::parse(&text).map_err(|ConfigError(e)| {
            ConfigError(format!(
                "error while parsing encryption provider configuration file {:?}: {e}",
                path.display().to_string()
            ))
        })
    }

    /// Parses and validates the text of a configuration file, with upstream's messages.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let file: EncryptionConfiguration =
            serde_yaml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        if file.kind != "EncryptionConfiguration"
            || file.api_version != "apiserver.config.k8s.io/v1"
        {
            return Err(ConfigError(format!(
                "got unexpected config type: apiVersion {:?}, kind {:?} (expected \
                 apiserver.config.k8s.io/v1 EncryptionConfiguration)",
                file.api_version, file.kind
            )));
        }
        let mut errors = Vec::new();
        if file.resources.is_empty() {
            errors.push("resources: Required value: at least one resources is required".into());
        }
        let mut by_resource: HashMap<GroupResource, Vec<Transformer>> = HashMap::new();
        let mut kms = Vec::new();
        for (i, entry) in file.resources.iter().enumerate() {
            let path = format!("resources[{i}]");
            validate_resources(&entry.resources, &format!("{path}.resources"), &mut errors);
            if entry.providers.is_empty() {
                errors.push(format!(
                    "{path}.providers: Required value: at least one {path}.providers is required"
                ));
            }
            let mut transformers = Vec::new();
            for (j, p) in entry.providers.iter().enumerate() {
                let path = format!("{path}.providers[{j}]");
                transformers.extend(provider(p, &path, &mut kms, &mut errors));
            }
            for r in &entry.resources {
                let gr = GroupResource::parse(r);
                for masking in [
                    GroupResource::wildcard(&gr.group),
                    GroupResource::wildcard("*"),
                ] {
                    if masking != gr && by_resource.contains_key(&masking) {
                        errors.push(format!(
                            "resource {:?} is masked by earlier rule {:?}",
                            gr.to_string(),
                            masking.to_string()
                        ));
                    }
                }
                by_resource
                    .entry(gr)
                    .or_default()
                    .extend(transformers.iter().cloned());
            }
        }
        if !errors.is_empty() {
            return Err(ConfigError(format!("[{}]", errors.join(", "))));
        }
        Ok(Config {
            by_resource: by_resource
                .into_iter()
                .map(|(gr, t)| (gr, Arc::new(Providers(t))))
                .collect(),
            kms,
        })
    }

    /// Asks each KMS v2 plugin's Status once (and has it encrypt a seed), then keeps asking in
    /// the background. A plugin that does not answer yet is logged, not fatal: writes through
    /// it fail until it does, as upstream's.
    pub async fn start_kms(&self, timing: kms::Timing) {
        futures::future::join_all(self.kms.iter().map(|p| p.start(timing))).await;
    }

    /// Waits up to `limit` for every KMS v2 plugin to be healthy (before a reloaded
    /// configuration is put in force); the last failure otherwise.
    pub async fn wait_kms_healthy(&self, limit: std::time::Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + limit;
        for provider in &self.kms {
            loop {
                match provider.check().await {
                    Ok(()) => break,
                    Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                }
            }
        }
        Ok(())
    }

    /// The providers of a resource: its own, else its group's wildcard, else `*.*`.
    fn providers(&self, group: &str, resource: &str) -> Option<Arc<Providers>> {
        // events.k8s.io Events are upstream's core Events in another API; the config names
        // them `events`.
        let group = if group == "events.k8s.io" { "" } else { group };
        let exact = GroupResource {
            group: group.to_owned(),
            resource: resource.to_owned(),
        };
        [
            exact,
            GroupResource::wildcard(group),
            GroupResource::wildcard("*"),
        ]
        .iter()
        .find_map(|gr| self.by_resource.get(gr).cloned())
    }
}

/// Upstream's checks of an entry's resource names.
fn validate_resources(resources: &[String], path: &str, errors: &mut Vec<String>) {
    if resources.is_empty() {
        errors.push(format!(
            "{path}: Required value: at least one {path} is required"
        ));
    }
    let parsed: Vec<GroupResource> = resources.iter().map(|r| GroupResource::parse(r)).collect();
    let duplicate = (0..parsed.len()).any(|i| parsed[i + 1..].contains(&parsed[i]));
    let overlap = parsed.len() > 1
        && parsed.iter().enumerate().any(|(i, a)| {
            parsed.iter().enumerate().any(|(j, b)| {
                i != j
                    && a != b
                    && (a.group == "*" && a.resource == "*"
                        || a.group == b.group && (a.resource == "*" || b.resource == "*"))
            })
        });
    let list = format!("{resources:?}");
    if duplicate {
        errors.push(format!(
            "{path}: Invalid value: {list}: the same resource cannot be specified multiple times"
        ));
    }
    if overlap {
        errors.push(format!(
            "{path}: Invalid value: {list}: using overlapping resources such as 'secrets' and \
             '*.' in the same resource list is not allowed as they will be masked"
        ));
    }
    for (k, (r, gr)) in resources.iter().zip(&parsed).enumerate() {
        let message = if r.to_lowercase() != *r {
            "resource name should not contain capital letters"
        } else if r == "*" {
            "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources"
        } else if matches!(
            r.as_str(),
            "apiserveripinfo" | "serviceipallocations" | "servicenodeportallocations"
        ) {
            "resources which do not have REST API/s cannot be encrypted"
        } else if gr.group == "events.k8s.io" {
            "'*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use \
             'events' instead in the config file"
        } else if gr.group == "extensions" {
            "'extensions' group has been removed and cannot be used for encryption"
        } else if gr.group == "*" && gr.resource != "*" {
            "encrypting the same resource across groups is not supported"
        } else {
            continue;
        };
        errors.push(format!("{path}[{k}]: Invalid value: {r:?}: {message}"));
    }
}

/// The transformers of one provider element (one per key), or its errors.
fn provider(
    p: &ProviderConfiguration,
    path: &str,
    kms: &mut Vec<Arc<kms::Provider>>,
    errors: &mut Vec<String>,
) -> Vec<Transformer> {
    let found = [
        p.kms.is_some(),
        p.aesgcm.is_some(),
        p.aescbc.is_some(),
        p.secretbox.is_some(),
        p.identity.is_some(),
    ]
    .into_iter()
    .filter(|f| *f)
    .count();
    if found == 0 {
        errors.push(format!(
            "{path}: Invalid value: provider does not contain any of the expected providers: \
             KMS, AESGCM, AESCBC, Secretbox, Identity"
        ));
        return Vec::new();
    }
    if found > 1 {
        errors.push(format!(
            "{path}: Invalid value: more than one provider specified in a single element, \
             should split into different list elements"
        ));
        return Vec::new();
    }
    if p.identity.is_some() {
        return vec![Transformer::Identity];
    }
    if let Some(k) = &p.kms {
        return kms_provider(k, &format!("{path}.kms"), kms, errors)
            .map(|p| vec![Transformer::Kms(p)])
            .unwrap_or_default();
    }
    let (name, keys, sizes): (&str, _, _) = if let Some(k) = &p.aescbc {
        ("aescbc", &k.keys, AES_KEY_SIZES)
    } else if let Some(k) = &p.aesgcm {
        ("aesgcm", &k.keys, AES_KEY_SIZES)
    } else if let Some(k) = &p.secretbox {
        ("secretbox", &k.keys, SECRETBOX_KEY_SIZES)
    } else {
        unreachable!("exactly one provider is set")
    };
    let path = format!("{path}.{name}.keys");
    if keys.is_empty() {
        errors.push(format!(
            "{path}: Required value: at least one keys is required"
        ));
    }
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let path = format!("{path}[{i}]");
        if k.name.is_empty() {
            errors.push(format!(
                "{path}.name: Required value: name is a mandatory field for a key"
            ));
        } else if k.name.contains(':') {
            errors.push(format!(
                "{path}.name: Invalid value: {:?}: must not contain ':'",
                k.name
            ));
        }
        if k.secret.is_empty() {
            errors.push(format!(
                "{path}.secret: Required value: secret is a mandatory field for a key"
            ));
            continue;
        }
        let Ok(secret) = base64::engine::general_purpose::STANDARD.decode(&k.secret) else {
            errors.push(format!(
                "{path}.secret: Invalid value: \"REDACTED\": secrets must be base64 encoded"
            ));
            continue;
        };
        if !sizes.contains(&secret.len()) {
            errors.push(format!(
                "{path}.secret: Invalid value: \"REDACTED\": secret is not of the expected \
                 length, got {}, expected one of {sizes:?}",
                secret.len()
            ));
            continue;
        }
        let prefix = format!("k8s:enc:{name}:v1:{}:", k.name).into_bytes();
        out.push(match name {
            "aescbc" => Transformer::AesCbc {
                prefix,
                key: secret,
            },
            "aesgcm" => Transformer::AesGcm {
                prefix,
                key: secret,
            },
            _ => Transformer::Secretbox {
                prefix,
                key: secret,
            },
        });
    }
    out
}

/// Upstream's checks of a `kms` provider; KMS v1 is refused as upstream refuses it without its
/// feature gate.
fn kms_provider(
    k: &KmsConfiguration,
    path: &str,
    seen: &mut Vec<Arc<kms::Provider>>,
    errors: &mut Vec<String>,
) -> Option<Arc<kms::Provider>> {
    let before = errors.len();
    let version = k.api_version.as_deref().unwrap_or("v1");
    match version {
        "v2" => {}
        "v1" => errors.push(format!(
            "{path}.apiVersion: Invalid value: \"v1\": KMSv1 is deprecated and will only \
             receive security updates going forward. Use KMSv2 instead. This apiserver does \
             not serve KMSv1."
        )),
        other => errors.push(format!(
            "{path}.apiVersion: Invalid value: {other:?}: unsupported apiVersion apiVersion \
             for KMS provider, only v1 and v2 are supported"
        )),
    }
    if k.name.is_empty() {
        errors.push(format!(
            "{path}.name: Required value: name is a mandatory field for a provider"
        ));
    } else if k.name.contains(':') {
        errors.push(format!(
            "{path}.name: Invalid value: {:?}: invalid KMS provider name {}, must not contain ':'",
            k.name, k.name
        ));
    } else if seen.iter().any(|p| p.name() == k.name) {
        errors.push(format!(
            "{path}.name: Duplicate value: {:?}: duplicate KMS provider name {}, names must be \
             unique",
            k.name, k.name
        ));
    }
    if let Some(size) = k.cachesize {
        errors.push(format!(
            "{path}.cachesize: Invalid value: {size}: cachesize is not supported in v2"
        ));
    }
    match k.endpoint.split_once("://") {
        _ if k.endpoint.is_empty() => errors.push(format!(
            "{path}.endpoint: Invalid value: \"\": endpoint is a mandatory field for a kms"
        )),
        Some(("unix", socket)) if !socket.is_empty() => {}
        Some(("unix", _)) => errors.push(format!(
            "{path}.endpoint: Invalid value: {:?}: invalid endpoint for kms provider, error: \
             no socket path",
            k.endpoint
        )),
        other => errors.push(format!(
            "{path}.endpoint: Invalid value: {:?}: unsupported scheme {:?} for KMS provider, \
             only unix is supported",
            k.endpoint,
            other.map_or("", |(scheme, _)| scheme)
        )),
    }
    let timeout = match k.timeout.as_deref().map(common::flags::parse_go_duration) {
        None => 3.0,
        Some(Ok(secs)) if secs > 0.0 => secs,
        Some(Ok(_)) => {
            errors.push(format!(
                "{path}.timeout: Invalid value: {:?}: timeout should be a positive value",
                k.timeout.as_deref().unwrap_or_default()
            ));
            0.0
        }
        Some(Err(e)) => {
            errors.push(format!("{path}.timeout: Invalid value: {e}"));
            0.0
        }
    };
    if errors.len() > before {
        return None;
    }
    let provider = Arc::new(kms::Provider::new(
        &k.name,
        &k.endpoint,
        std::time::Duration::from_secs_f64(timeout),
    ));
    seen.push(provider.clone());
    Some(provider)
}

/// Each served resource's key prefix (`/registry/secrets/`) to its providers; resources the
/// configuration does not name are absent.
type Table = HashMap<String, Entry>;

/// A served resource's providers, and its name for metrics (`secrets`, `deployments.apps`).
#[derive(Clone)]
struct Entry {
    resource: Arc<str>,
    providers: Arc<Providers>,
}

/// The configuration in force: each resource's providers, and the KMS plugins among them.
struct Active {
    table: Table,
    kms: Vec<Arc<kms::Provider>>,
}

fn active(root: &str, config: &Config) -> Active {
    let table = crate::registry::BUILTIN
        .iter()
        .filter_map(|r| {
            let providers = config.providers(&r.group, &r.plural)?;
            let resource = match r.group.as_str() {
                "" => r.plural.to_owned(),
                group => format!("{}.{group}", r.plural),
            };
            let entry = Entry {
                resource: resource.into(),
                providers,
            };
            Some((r.key_prefix(root), entry))
        })
        .collect();
    Active {
        table,
        kms: config.kms.clone(),
    }
}

/// A [`Store`] that encrypts the values of configured resources on their way down to `inner`
/// and decrypts them on their way up. Values of other resources pass untouched (no copy).
pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    /// `--etcd-prefix`, without its trailing `/`.
    root: String,
    /// The providers in force; replaced whole by [`EncryptedStore::reload`].
    active: Arc<RwLock<Arc<Active>>>,
}

impl EncryptedStore {
    /// A store encrypting as `config` says; its KMS plugins, if any, should have been
    /// started ([`Config::start_kms`]).
    pub fn new(inner: Arc<dyn Store>, root: &str, config: &Config) -> EncryptedStore {
        let root = root.trim_end_matches('/').to_owned();
        let active = Arc::new(RwLock::new(Arc::new(active(&root, config))));
        EncryptedStore {
            inner,
            root,
            active,
        }
    }

    /// Puts `config` in force for every later read and write (and open watches), as
    /// --encryption-provider-config-automatic-reload does when the file changes.
    pub fn reload(&self, config: &Config) {
        *self.active.write() = Arc::new(active(&self.root, config));
    }

    /// The `kms-providers` health check: every KMS v2 plugin in force answers its Status
    /// (answers are reused for 20 s, failures for 3 s, as upstream's).
    pub async fn kms_health(&self) -> std::result::Result<(), String> {
        let kms = self.active.read().kms.clone();
        let mut errors = Vec::new();
        for (i, provider) in kms.iter().enumerate() {
            if let Err(e) = provider.healthy().await {
                errors.push(format!("kms-provider-{i}: {e}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Whether a KMS plugin is configured (the `kms-providers` check exists).
    pub fn has_kms(&self) -> bool {
        !self.active.read().kms.is_empty()
    }

    /// The providers of the resource `key` belongs to, if configured.
    fn providers(&self, key: &str) -> Option<Entry> {
        let rest = key.strip_prefix(&self.root)?.strip_prefix('/')?;
        let first = rest.find('/')?;
        let core = self.root.len() + 1 + first + 1;
        let active = self.active.read();
        let table = &active.table;
        if let Some(p) = table.get(&key[..core]) {
            return Some(p.clone());
        }
        let second = key[core..].find('/')?;
        table.get(&key[..core + second + 1]).cloned()
    }

    fn encrypt(&self, key: &str, value: Bytes) -> Result<Bytes> {
        match self.providers(key) {
            Some(e) => e.providers.encrypt(&e.resource, key, value),
            None => Ok(value),
        }
    }

    async fn decrypt(&self, kv: &mut KeyValue) -> Result<()> {
        match self.providers(&kv.key) {
            // A delete event's value is empty: nothing was stored.
            Some(_) if kv.value.is_empty() => Ok(()),
            Some(e) => {
                let stored = std::mem::take(&mut kv.value);
                kv.value = e.providers.decrypt(&e.resource, &kv.key, stored).await?;
                Ok(())
            }
            None if kv.value.starts_with(ENCRYPTED) => Err(Error::Transform {
                key: kv.key.clone(),
                message: "identity transformer tried to read encrypted data (the resource is \
                          not in the encryption configuration)"
                    .into(),
            }),
            None => Ok(()),
        }
    }

    /// Decrypts the current value a conflict carries.
    async fn decrypt_error(&self, e: Error) -> Error {
        match e {
            Error::Conflict { key, mut current } => match self.decrypt(&mut current).await {
                Ok(()) => Error::Conflict { key, current },
                Err(e) => e,
            },
            e => e,
        }
    }
}

#[async_trait]
impl Store for EncryptedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let mut kv = self.inner.get(key).await?;
        if let Some(kv) = &mut kv {
            self.decrypt(kv).await?;
        }
        Ok(kv)
    }

    async fn range(&self, prefix: &str, opts: RangeOptions) -> Result<RangeResult> {
        let mut result = self.inner.range(prefix, opts).await?;
        for kv in &mut result.kvs {
            self.decrypt(kv).await?;
        }
        Ok(result)
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let stored = self.encrypt(key, value.clone())?;
        let kv = self.inner.create(key, stored).await?;
        Ok(KeyValue { value, ..kv })
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        let stored = self.encrypt(key, value.clone())?;
        match self.inner.update(key, stored, expected).await {
            Ok(kv) => Ok(KeyValue { value, ..kv }),
            Err(e) => Err(self.decrypt_error(e).await),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)> {
        match self.inner.delete(key, expected).await {
            Ok((mut kv, rev)) => {
                self.decrypt(&mut kv).await?;
                Ok((kv, rev))
            }
            Err(e) => Err(self.decrypt_error(e).await),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let stream = self.inner.watch(prefix, after).await?;
        let me = Arc::new(EncryptedStore {
            inner: self.inner.clone(),
            root: self.root.clone(),
            active: self.active.clone(),
        });
        Ok(stream
            .then(move |event| {
                let me = me.clone();
                async move {
                    let mut event = event?;
                    me.decrypt(&mut event.kv).await?;
                    if let Some(prev) = &mut event.prev {
                        me.decrypt(prev).await?;
                    }
                    Ok(event)
                }
            })
            .boxed())
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    async fn stale(&self, key: &str) -> Result<bool> {
        let Some(p) = self.providers(key) else {
            return Ok(false);
        };
        let stored = self.inner.get(key).await?;
        Ok(stored.is_some_and(|kv| !p.providers.is_current(&kv.value)))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    const KEY: &str = "/registry/secrets/default/s";

    fn config(providers: &str) -> Config {
        Config::parse(&format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
             resources:\n- resources: [secrets]\n  providers:\n{providers}"
        ))
        .unwrap()
    }

    fn b64(n: usize, byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode(vec![byte; n])
    }

    fn secrets(c: &Config) -> Arc<Providers> {
        c.providers("", "secrets").unwrap()
    }

    /// Round trip, prefix and overhead of one provider configured with `n`-byte keys.
    fn check_round_trip(provider: &str, n: usize, overhead: usize) {
        let c = config(&format!(
            "  - {provider}:\n      keys:\n      - name: k1\n        secret: {}\n",
            b64(n, 7)
        ));
        let p = secrets(&c);
        let plaintext = Bytes::from_static(b"{\"data\":{\"password\":\"hunter2\"}}");
        let stored = p.encrypt("secrets", KEY, plaintext.clone()).unwrap();
        let prefix = format!("k8s:enc:{provider}:v1:k1:");
        assert!(stored.starts_with(prefix.as_bytes()), "{stored:?}");
        assert!(!stored.windows(7).any(|w| w == b"hunter2"));
        assert!(stored.len() >= prefix.len() + plaintext.len() + overhead);
        // A fresh nonce each time.
        assert_ne!(
            stored,
            p.encrypt("secrets", KEY, plaintext.clone()).unwrap()
        );
        assert_eq!(
            block_on(p.decrypt("secrets", KEY, stored.clone())).unwrap(),
            plaintext
        );

        // Any changed byte after the prefix fails cleanly, naming the key.
        for i in [prefix.len(), stored.len() - 1] {
            let mut tampered = stored.to_vec();
            tampered[i] ^= 1;
            match block_on(p.decrypt("secrets", KEY, tampered.into())) {
                Err(Error::Transform { key, message }) => {
                    assert_eq!(key, KEY);
                    assert!(
                        message.contains(&format!("{provider} key \"k1\"")),
                        "{message}"
                    );
                }
                // CBC without authentication may unpad a changed IV/last block to garbage;
                // the garbage is never the plaintext.
                Ok(v) if provider == "aescbc" => assert_ne!(v, plaintext),
                other => panic!("tampered value read as {other:?}"),
            }
        }
    }

    #[test]
    fn providers_round_trip_with_upstream_prefixes() {
        for n in [16, 24, 32] {
            check_round_trip("aescbc", n, CBC_IV + 1);
            check_round_trip("aesgcm", n, GCM_NONCE + 16);
        }
        check_round_trip("secretbox", 32, SECRETBOX_NONCE + 16);
    }

    #[test]
    fn aesgcm_binds_the_storage_key() {
        let c = config(&format!(
            "  - aesgcm:\n      keys:\n      - name: k1\n        secret: {}\n",
            b64(32, 1)
        ));
        let p = secrets(&c);
        let stored = p.encrypt("secrets", KEY, Bytes::from_static(b"x")).unwrap();
        let err =
            block_on(p.decrypt("secrets", "/registry/secrets/default/other", stored)).unwrap_err();
        assert!(err.to_string().contains("authentication failed"), "{err}");
    }

    #[test]
    fn a_value_of_an_unconfigured_key_is_a_clear_error() {
        let old = config(&format!(
            "  - secretbox:\n      keys:\n      - name: old\n        secret: {}\n",
            b64(32, 1)
        ));
        let new = config(&format!(
            "  - aescbc:\n      keys:\n      - name: new\n        secret: {}\n",
            b64(32, 2)
        ));
        let stored = secrets(&old)
            .encrypt("secrets", KEY, Bytes::from_static(b"x"))
            .unwrap();
        let err = block_on(secrets(&new).decrypt("secrets", KEY, stored))
            .unwrap_err()
            .to_string();
        assert!(err.contains(KEY), "{err}");
        assert!(err.contains("secretbox key \"old\""), "{err}");
        // Plaintext without identity configured is refused too.
        let err =
            block_on(secrets(&new).decrypt("secrets", KEY, Bytes::from_static(b"{}"))).unwrap_err();
        assert!(err.to_string().contains("identity"), "{err}");
    }

    #[test]
    fn every_provider_decrypts_and_the_first_encrypts() {
        let (k1, k2) = (b64(32, 1), b64(32, 2));
        let first = config(&format!(
            "  - aescbc:\n      keys:\n      - name: k1\n        secret: {k1}\n\
             \x20 - identity: {{}}\n"
        ));
        let rotated = config(&format!(
            "  - secretbox:\n      keys:\n      - name: k2\n        secret: {k2}\n\
             \x20 - aescbc:\n      keys:\n      - name: k1\n        secret: {k1}\n\
             \x20 - identity: {{}}\n"
        ));
        let old = secrets(&first)
            .encrypt("secrets", KEY, Bytes::from_static(b"a"))
            .unwrap();
        let p = secrets(&rotated);
        // Read with a key that no longer writes: stale, so an unchanged update rewrites it.
        assert!(!p.is_current(&old));
        assert!(secrets(&first).is_current(&old));
        assert_eq!(
            block_on(p.decrypt("secrets", KEY, old)).unwrap(),
            Bytes::from_static(b"a")
        );
        assert_eq!(
            block_on(p.decrypt("secrets", KEY, Bytes::from_static(b"plain"))).unwrap(),
            "plain"
        );
        assert!(
            p.encrypt("secrets", KEY, Bytes::from_static(b"a"))
                .unwrap()
                .starts_with(b"k8s:enc:secretbox:v1:k2:")
        );
        // Identity first stores plaintext without copying.
        let identity = config("  - identity: {}\n");
        let value = Bytes::from_static(b"plain");
        let stored = secrets(&identity)
            .encrypt("secrets", KEY, value.clone())
            .unwrap();
        assert_eq!(stored.as_ptr(), value.as_ptr());
    }

    #[test]
    fn resources_resolve_as_upstream() {
        let c = Config::parse(&format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
             - resources: [secrets, deployments.apps]\n  providers:\n  - aescbc:\n      keys:\n      - name: a\n        secret: {}\n\
             - resources: ['*.apps']\n  providers:\n  - identity: {{}}\n\
             - resources: ['*.*']\n  providers:\n  - secretbox:\n      keys:\n      - name: s\n        secret: {}\n",
            b64(32, 1),
            b64(32, 2)
        ))
        .unwrap();
        let first = |g: &str, r: &str| match c.providers(g, r).unwrap().0[0].prefix() {
            b"" => "identity".to_owned(),
            prefix => String::from_utf8_lossy(prefix).into_owned(),
        };
        assert_eq!(first("", "secrets"), "k8s:enc:aescbc:v1:a:");
        assert_eq!(first("apps", "deployments"), "k8s:enc:aescbc:v1:a:");
        assert_eq!(first("apps", "replicasets"), "identity");
        assert_eq!(first("", "configmaps"), "k8s:enc:secretbox:v1:s:");

        let dir = tempfile::tempdir().unwrap();
        let inner = crate::storage::sqlite::SqliteStore::open(dir.path().join("state.db"));
        let store = EncryptedStore::new(Arc::new(inner.unwrap()), "/registry", &c);
        assert!(store.providers("/registry/secrets/ns/a").is_some());
        assert!(store.providers("/registry/apps/deployments/ns/a").is_some());
        assert!(store.providers("/registry/unknown/x").is_none());
        assert!(store.providers("/other/secrets/ns/a").is_none());
    }

    /// The config error for `resources` (one entry) with `providers`, or "ok".
    fn validate(resources: &str, providers: &str) -> String {
        let text = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
             resources:\n- resources: {resources}\n  providers:\n{providers}"
        );
        match Config::parse(&text) {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn config_errors_are_upstreams() {
        let id = "  - identity: {}\n";
        let key = |p: &str, n: usize| {
            format!(
                "  - {p}:\n      keys:\n      - name: k\n        secret: {}\n",
                b64(n, 3)
            )
        };
        let cases: Vec<(String, String, &str)> = vec![
            ("[secrets]".into(), key("aescbc", 32), "ok"),
            (
                "[secrets]".into(),
                key("aescbc", 8),
                "secret is not of the expected length, got 8, expected one of [16, 24, 32]",
            ),
            (
                "[secrets]".into(),
                key("secretbox", 16),
                "got 16, expected one of [32]",
            ),
            (
                "[secrets]".into(),
                "  - aescbc:\n      keys:\n      - name: k\n        secret: '!!'\n".into(),
                "secrets must be base64 encoded",
            ),
            (
                "[secrets]".into(),
                "  - aescbc:\n      keys: []\n".into(),
                "at least one keys is required",
            ),
            (
                "[secrets]".into(),
                "  - rot13: {}\n".into(),
                "provider does not contain any of the expected providers",
            ),
            (
                "[secrets]".into(),
                "  - identity: {}\n    aescbc: {keys: []}\n".into(),
                "more than one provider specified in a single element",
            ),
            (
                "[secrets]".into(),
                "".into(),
                "at least one resources[0].providers is required",
            ),
            (
                "[secrets, secrets]".into(),
                id.into(),
                "the same resource cannot be specified multiple times",
            ),
            (
                "[secrets, '*.']".into(),
                id.into(),
                "using overlapping resources",
            ),
            (
                "[Secrets]".into(),
                id.into(),
                "resource name should not contain capital letters",
            ),
            (
                "['*']".into(),
                id.into(),
                "use '*.' to encrypt all the resources",
            ),
            (
                "['pods.*']".into(),
                id.into(),
                "encrypting the same resource across groups is not supported",
            ),
            (
                "['events.events.k8s.io']".into(),
                id.into(),
                "Use 'events' instead",
            ),
            (
                "[secrets]".into(),
                "  - kms: {name: x, endpoint: 'unix:///k.sock'}\n".into(),
                "KMSv1 is deprecated",
            ),
            (
                "[secrets]".into(),
                "  - kms: {apiVersion: v3, name: x, endpoint: 'unix:///k.sock'}\n".into(),
                "Invalid value: \"v3\": unsupported apiVersion apiVersion for KMS provider, only \
                 v1 and v2 are supported",
            ),
            (
                "[secrets]".into(),
                "  - kms: {apiVersion: v2, name: x, endpoint: 'unix:///k.sock', cachesize: 10}\n"
                    .into(),
                "resources[0].providers[0].kms.cachesize: Invalid value: 10: cachesize is not \
                 supported in v2",
            ),
            (
                "[secrets]".into(),
                "  - kms: {apiVersion: v2, name: x, endpoint: 'tcp://127.0.0.1:1'}\n".into(),
                "unsupported scheme \"tcp\" for KMS provider, only unix is supported",
            ),
            (
                "[secrets]".into(),
                "  - kms: {apiVersion: v2, name: x}\n".into(),
                "kms.endpoint: Invalid value: \"\": endpoint is a mandatory field for a kms",
            ),
            (
                "[secrets]".into(),
                "  - kms: {apiVersion: v2, name: 'a:b', endpoint: 'unix:///k.sock'}\n".into(),
                "invalid KMS provider name a:b, must not contain ':'",
            ),
            (
                "[secrets]".into(),
                "  - kms: {apiVersion: v2, endpoint: 'unix:///k.sock', timeout: 0s}\n".into(),
                "name: Required value: name is a mandatory field for a provider",
            ),
            (
                "[secrets]".into(),
                "  - kms: {apiVersion: v2, name: x, endpoint: 'unix:///k.sock', timeout: -1s}\n"
                    .into(),
                "timeout should be a positive value",
            ),
            (
                "[secrets]".into(),
                "  - kms: {apiVersion: v2, name: x, endpoint: 'unix:///a.sock'}\n  \
                 - kms: {apiVersion: v2, name: x, endpoint: 'unix:///b.sock'}\n"
                    .into(),
                "providers[1].kms.name: Duplicate value: \"x\": duplicate KMS provider name x, \
                 names must be unique",
            ),
        ];
        for (resources, providers, want) in cases {
            let got = validate(&resources, &providers);
            assert!(got.contains(want), "{resources} {providers}: {got}");
        }
        let masked = Config::parse(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
             - resources: ['*.']\n  providers: [identity: {}]\n\
             - resources: [secrets]\n  providers: [identity: {}]\n",
        );
        let err = masked.err().unwrap().to_string();
        assert!(
            err.contains("resource \"secrets\" is masked by earlier rule \"*.\""),
            "{err}"
        );
        let kind = Config::parse("apiVersion: v1\nkind: ConfigMap\n")
            .err()
            .unwrap()
            .to_string();
        assert!(kind.contains("EncryptionConfiguration"), "{kind}");
    }
}
