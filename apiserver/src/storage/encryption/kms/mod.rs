//! The KMS v2 provider (`kms: {apiVersion: v2, ...}`): envelope encryption through a plugin
//! that holds the key encryption key, as upstream's.
//!
//! - The plugin encrypts one 32-byte seed per key ID ([`Provider::check`] asks its Status every
//!   minute, every ten seconds while it fails, and encrypts a new seed whenever the key ID
//!   changes). Writes need no call to the plugin: each value gets its own key, derived from the
//!   seed with HKDF-SHA256 over 32 random bytes, and is sealed with AES-256-GCM bound to its
//!   storage key. A seed not confirmed by a Status for three minutes stops encrypting.
//! - A stored value is `k8s:enc:kms:v2:<name>:` and an [`api::EncryptedObject`]: the sealed data
//!   (`info || nonce || ciphertext`), the key ID, the seed as the plugin encrypted it.
//! - Reads ask the plugin to decrypt each seed once and keep it for a day; values written by
//!   older servers with a plain AES-GCM key (source type 0) read too.

pub mod api;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use parking_lot::Mutex;
use prost::Message as _;
use sha2::{Digest, Sha256};

use api::{EncryptedDekSourceType, EncryptedObject};

/// What a KMS v2 value starts with, before the provider's name.
pub const PREFIX: &str = "k8s:enc:kms:v2:";
const SEED_SIZE: usize = 32;
const INFO_SIZE: usize = 32;
const NONCE_SIZE: usize = 12;
const MAX_SOURCE_SIZE: usize = 1024;
const MAX_KEY_ID_SIZE: usize = 1024;
const MAX_ANNOTATIONS_SIZE: usize = 32 * 1024;
/// A seed encrypts only while a Status has confirmed its key ID within this time.
const WRITE_TTL: Duration = Duration::from_secs(180);
/// Decrypted seeds are kept this long after their last use.
const SEED_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a health answer is reused: a good one, a bad one.
const HEALTH_TTL_OK: Duration = Duration::from_secs(20);
const HEALTH_TTL_FAILED: Duration = Duration::from_secs(3);

/// How often the plugin's Status is asked.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// While it is healthy (upstream: one minute).
    pub healthy: Duration,
    /// While it is not (upstream: ten seconds).
    pub unhealthy: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            healthy: Duration::from_secs(60),
            unhealthy: Duration::from_secs(10),
        }
    }
}

/// The seed writes use, and what a value records of it.
#[derive(Clone)]
struct WriteState {
    seed: [u8; SEED_SIZE],
    key_id: String,
    encrypted_source: Vec<u8>,
    annotations: HashMap<String, Vec<u8>>,
    /// Writes fail after this, until a Status confirms the key ID again.
    expires: Instant,
}

/// A decrypted DEK source: a seed to derive each value's key from, or (values of older
/// servers) the key itself.
#[derive(Clone)]
enum ReadKey {
    Seed([u8; SEED_SIZE]),
    Key(Arc<[u8]>),
}

#[derive(Default)]
struct Health {
    checked: Option<(Instant, Result<(), String>)>,
    /// The API version of the plugin's first valid Status; it must not change.
    version: Option<String>,
}

/// One configured KMS v2 plugin, shared by every resource that names it.
pub struct Provider {
    name: String,
    prefix: Vec<u8>,
    endpoint: String,
    timeout: Duration,
    /// Made on first use: a channel needs the runtime, a configuration is parsed without one.
    client: std::sync::OnceLock<api::Client>,
    state: parking_lot::RwLock<Option<Arc<WriteState>>>,
    seeds: Mutex<HashMap<[u8; 32], (ReadKey, Instant)>>,
    health: tokio::sync::Mutex<Health>,
    poller: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        if let Some(poller) = self.poller.get_mut().take() {
            poller.abort();
        }
    }
}

/// Why a KMS v2 value could not be written or read; the caller names the storage key.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    /// The plugin's gRPC code when the plugin refused or failed.
    pub code: Option<tonic::Code>,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            message,
            code: None,
        }
    }
}

impl Provider {
    /// A provider of the plugin at `endpoint` (not contacted until [`Provider::start`]).
    pub fn new(name: &str, endpoint: &str, timeout: Duration) -> Provider {
        Provider {
            name: name.to_owned(),
            prefix: format!("{PREFIX}{name}:").into_bytes(),
            endpoint: endpoint.to_owned(),
            timeout,
            client: Default::default(),
            state: Default::default(),
            seeds: Default::default(),
            health: Default::default(),
            poller: Default::default(),
        }
    }

    fn client(&self) -> &api::Client {
        self.client
            .get_or_init(|| api::Client::new(&self.name, &self.endpoint, self.timeout))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Asks the plugin's Status once now (a failure is logged, not fatal, as upstream) and
    /// then keeps asking in the background for as long as the provider lives.
    pub async fn start(self: &Arc<Self>, timing: Timing) {
        if self.poller.lock().is_some() {
            return;
        }
        let first = self.check().await;
        if let Err(e) = &first {
            tracing::error!(provider = %self.name, "KMS v2 plugin is not ready yet: {e}");
        }
        let me: Weak<Provider> = Arc::downgrade(self);
        let mut healthy = first.is_ok();
        let task = tokio::spawn(async move {
            loop {
                let wait = if healthy {
                    timing.healthy
                } else {
                    timing.unhealthy
                };
                tokio::time::sleep(wait).await;
                let Some(provider) = me.upgrade() else { return };
                let result = provider.check().await;
                if let Err(e) = &result {
                    tracing::error!(provider = %provider.name, "{e}");
                } else if !healthy {
                    tracing::info!(provider = %provider.name, "KMS v2 plugin is healthy again");
                }
                healthy = result.is_ok();
            }
        });
        *self.poller.lock() = Some(task.abort_handle());
    }

    /// The health check (`kms-providers`): the last Status answer while it is fresh, else a
    /// new one.
    pub async fn healthy(&self) -> Result<(), String> {
        {
            let health = self.health.lock().await;
            if let Some((at, result)) = &health.checked {
                let ttl = if result.is_ok() {
                    HEALTH_TTL_OK
                } else {
                    HEALTH_TTL_FAILED
                };
                if at.elapsed() < ttl {
                    return result.clone();
                }
            }
        }
        self.check().await
    }

    /// Asks the plugin's Status; a valid key ID keeps the seed in force (or encrypts a new
    /// one when it changed).
    pub async fn check(&self) -> Result<(), String> {
        let mut health = self.health.lock().await;
        let result = self.check_locked(&mut health).await;
        health.checked = Some((Instant::now(), result.clone()));
        result
    }

    async fn check_locked(&self, health: &mut Health) -> Result<(), String> {
        let status = self.client().status().await.map_err(|e| {
            format!(
                "failed to perform status section of the healthz check for KMS Provider {}, \
                 error: {}",
                self.name,
                e.message()
            )
        })?;
        let mut errors = Vec::new();
        if status.healthz != "ok" {
            errors.push(format!("got unexpected healthz status: {}", status.healthz));
        }
        if status.version != "v2" && status.version != "v2beta1" {
            errors.push(format!(
                "expected KMSv2 API version v2, got {}",
                status.version
            ));
        } else {
            match &health.version {
                Some(first) if *first != status.version => errors.push(format!(
                    "KMSv2 API version should not change after the initial status response \
                     version {first}, got {}",
                    status.version
                )),
                Some(_) => {}
                None => health.version = Some(status.version.clone()),
            }
        }
        match validate_key_id(&status.key_id) {
            Err(e) => {
                let kind = if status.key_id.is_empty() {
                    "empty"
                } else {
                    "too_long"
                };
                super::metrics::invalid_key_id(&self.name, kind);
                errors.push(format!(
                    "got invalid KMSv2 KeyID hash {:?}: {e}",
                    key_id_hash(&status.key_id)
                ));
            }
            Ok(()) => {
                if let Err(e) = self.rotate_on_key_id_change(&status.key_id).await {
                    errors.push(e);
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "kmsv2 Provider {} is not healthy, error: [{}]",
                self.name,
                errors.join(", ")
            ))
        }
    }

    /// Keeps the seed when the plugin's key ID is the one it was encrypted with (for three
    /// more minutes); otherwise has the plugin encrypt a new seed.
    async fn rotate_on_key_id_change(&self, key_id: &str) -> Result<(), String> {
        let expires = Instant::now() + WRITE_TTL;
        {
            let mut state = self.state.write();
            if let Some(current) = state.as_mut()
                && current.key_id == key_id
            {
                *current = Arc::new(WriteState {
                    expires,
                    ..WriteState::clone(current)
                });
                return Ok(());
            }
        }
        let mut seed = [0u8; SEED_SIZE];
        rand::fill(&mut seed);
        let uid = uuid::Uuid::new_v4().to_string();
        let answer = self
            .client()
            .encrypt(api::EncryptRequest {
                plaintext: seed.to_vec(),
                uid: uid.clone(),
            })
            .await;
        let fail = |e: String| {
            format!(
                "failed to rotate DEK uid={uid:?}, statusKeyIDHash={:?}: {e}",
                key_id_hash(key_id)
            )
        };
        let answer =
            answer.map_err(|e| fail(format!("failed to encrypt DEK, error: {}", e.message())))?;
        let object = EncryptedObject {
            encrypted_data: vec![0],
            key_id: answer.key_id,
            encrypted_dek_source: answer.ciphertext,
            annotations: answer.annotations,
            encrypted_dek_source_type: EncryptedDekSourceType::HkdfSha256XnonceAesGcmSeed as i32,
        };
        validate(&object).map_err(fail)?;
        if object.key_id != key_id {
            return Err(fail(format!(
                "the plugin encrypted with key ID hash {:?}, not its Status's",
                key_id_hash(&object.key_id)
            )));
        }
        self.remember(&object, ReadKey::Seed(seed), false);
        *self.state.write() = Some(Arc::new(WriteState {
            seed,
            key_id: object.key_id,
            encrypted_source: object.encrypted_dek_source,
            annotations: object.annotations,
            expires,
        }));
        tracing::info!(provider = %self.name, key_id_hash = %key_id_hash(key_id), "encrypted a new KMS v2 seed");
        Ok(())
    }

    /// `plaintext` sealed for the storage key `aad`, with the prefix.
    pub fn encrypt(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Failure> {
        let state = self.state.read().clone().ok_or_else(|| -> Failure {
            format!(
                "KMS v2 provider {} has no data encryption key: its plugin has not answered \
                 a Status and an Encrypt yet",
                self.name
            )
            .into()
        })?;
        let now = Instant::now();
        if now > state.expires {
            return Err(format!(
                "encryptedDEKSource with keyID hash {:?} expired {:?} ago: the KMS v2 plugin \
                 {} has not confirmed its key ID since",
                key_id_hash(&state.key_id),
                now - state.expires,
                self.name
            )
            .into());
        }
        let mut info = [0u8; INFO_SIZE];
        rand::fill(&mut info);
        let key = derive(&state.seed, &info);
        let mut nonce = [0u8; NONCE_SIZE];
        rand::fill(&mut nonce);
        let sealed = Aes256Gcm::new_from_slice(&key)
            .expect("a 32-byte key")
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| "AES-GCM refused the value (too large)".to_owned())?;
        let mut data = Vec::with_capacity(INFO_SIZE + NONCE_SIZE + sealed.len());
        data.extend_from_slice(&info);
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&sealed);
        let object = EncryptedObject {
            encrypted_data: data,
            key_id: state.key_id.clone(),
            encrypted_dek_source: state.encrypted_source.clone(),
            annotations: state.annotations.clone(),
            encrypted_dek_source_type: EncryptedDekSourceType::HkdfSha256XnonceAesGcmSeed as i32,
        };
        let mut out = Vec::with_capacity(self.prefix.len() + object.encoded_len());
        out.extend_from_slice(&self.prefix);
        object
            .encode(&mut out)
            .expect("a Vec grows to hold the message");
        Ok(out)
    }

    /// Whether `sealed` (after the prefix) was written with the seed writes use now.
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        let Ok(object) = EncryptedObject::decode(sealed) else {
            return false;
        };
        self.state.read().as_ref().is_some_and(|s| {
            s.key_id == object.key_id
                && object.encrypted_dek_source_type
                    == EncryptedDekSourceType::HkdfSha256XnonceAesGcmSeed as i32
        })
    }

    /// The plaintext of `sealed` (after the prefix), stored under `aad`.
    pub async fn decrypt(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Failure> {
        let object = EncryptedObject::decode(sealed)
            .map_err(|e| format!("failed to unmarshal the KMS v2 encrypted object: {e}"))?;
        validate(&object)?;
        let key = match self.cached(&object) {
            Some(key) => key,
            None => self.decrypt_source(&object).await?,
        };
        let data = &object.encrypted_data;
        let short = || "the stored data was shorter than the required size".to_owned();
        let opened = match &key {
            ReadKey::Seed(seed) => {
                if data.len() < INFO_SIZE + NONCE_SIZE {
                    return Err(short().into());
                }
                let (info, rest) = data.split_at(INFO_SIZE);
                let key = derive(seed, info);
                open(
                    Aes256Gcm::new_from_slice(&key).expect("a 32-byte key"),
                    rest,
                    aad,
                )
            }
            ReadKey::Key(k) => {
                if data.len() < NONCE_SIZE {
                    return Err(short().into());
                }
                match k.len() {
                    16 => open(Aes128Gcm::new_from_slice(k).expect("16 bytes"), data, aad),
                    32 => open(Aes256Gcm::new_from_slice(k).expect("32 bytes"), data, aad),
                    n => Err(format!("invalid AES-GCM key length {n} in a KMS v2 DEK")),
                }
            }
        };
        opened.map_err(|e| format!("KMS v2 provider {}: {e}", self.name).into())
    }

    fn cached(&self, object: &EncryptedObject) -> Option<ReadKey> {
        let mut seeds = self.seeds.lock();
        let (key, used) = seeds.get_mut(&cache_key(object))?;
        *used = Instant::now();
        Some(key.clone())
    }

    /// Keeps a decrypted DEK source (`missed`: the plugin was just asked for it), dropping
    /// those unused for a day.
    fn remember(&self, object: &EncryptedObject, key: ReadKey, missed: bool) {
        let now = Instant::now();
        let mut seeds = self.seeds.lock();
        seeds.retain(|_, (_, used)| now.duration_since(*used) < SEED_CACHE_TTL);
        seeds.insert(cache_key(object), (key, now));
        super::metrics::seed_cache(&self.name, seeds.len(), missed);
    }

    /// Has the plugin decrypt the object's DEK source.
    async fn decrypt_source(&self, object: &EncryptedObject) -> Result<ReadKey, Failure> {
        let answer = self
            .client()
            .decrypt(api::DecryptRequest {
                ciphertext: object.encrypted_dek_source.clone(),
                uid: uuid::Uuid::new_v4().to_string(),
                key_id: object.key_id.clone(),
                annotations: object.annotations.clone(),
            })
            .await
            .map_err(|e| Failure {
                message: format!(
                    "failed to decrypt DEK, error: KMS v2 plugin {} answered {:?}: {}",
                    self.name,
                    e.code(),
                    e.message()
                ),
                code: Some(e.code()),
            })?;
        let plaintext = answer.plaintext;
        let key = if object.encrypted_dek_source_type
            == EncryptedDekSourceType::HkdfSha256XnonceAesGcmSeed as i32
        {
            let seed: [u8; SEED_SIZE] = plaintext.as_slice().try_into().map_err(|_| {
                format!(
                    "invalid seed length {} used for key generation",
                    plaintext.len()
                )
            })?;
            ReadKey::Seed(seed)
        } else {
            ReadKey::Key(plaintext.into())
        };
        self.remember(object, key.clone(), true);
        Ok(key)
    }
}

/// Each value's key: HKDF-SHA256's expand step over the seed (used as the pseudorandom key,
/// as upstream) and the value's random info.
fn derive(seed: &[u8; SEED_SIZE], info: &[u8]) -> [u8; 32] {
    struct Len(usize);
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = ring::hkdf::Prk::new_less_safe(ring::hkdf::HKDF_SHA256, seed);
    let mut key = [0u8; 32];
    prk.expand(&[info], Len(key.len()))
        .and_then(|okm| okm.fill(&mut key))
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    key
}

fn open<A: Aead>(cipher: A, data: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
    let (nonce, ciphertext) = data.split_at(NONCE_SIZE);
    cipher
        .decrypt(
            nonce.into(),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| {
            "cipher: message authentication failed (wrong seed, tampered value, or a value \
             moved to another key)"
                .to_owned()
        })
}

/// What identifies a DEK source: its type, ciphertext, key ID and annotations.
fn cache_key(object: &EncryptedObject) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(object.encrypted_dek_source_type.to_be_bytes());
    for part in [
        object.encrypted_dek_source.as_slice(),
        object.key_id.as_bytes(),
    ] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part);
    }
    let mut keys: Vec<_> = object.annotations.iter().collect();
    keys.sort();
    for (k, v) in keys {
        h.update((k.len() as u32).to_be_bytes());
        h.update(k);
        h.update((v.len() as u32).to_be_bytes());
        h.update(v);
    }
    h.finalize().into()
}

/// `sha256:<hex>` of a key ID, as upstream logs and labels them ("" for none).
pub fn key_id_hash(key_id: &str) -> String {
    if key_id.is_empty() {
        return String::new();
    }
    let digest = Sha256::digest(key_id.as_bytes());
    let mut out = String::from("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn validate_key_id(key_id: &str) -> Result<(), String> {
    if key_id.is_empty() {
        return Err("keyID is empty".into());
    }
    if key_id.len() > MAX_KEY_ID_SIZE {
        return Err(format!(
            "keyID is {} bytes, which exceeds the max size of {MAX_KEY_ID_SIZE}",
            key_id.len()
        ));
    }
    Ok(())
}

/// Upstream's checks of an EncryptedObject, on every read and of every plugin answer.
fn validate(object: &EncryptedObject) -> Result<(), String> {
    if EncryptedDekSourceType::try_from(object.encrypted_dek_source_type).is_err() {
        return Err(format!(
            "unknown encryptedDEKSourceType: {}",
            object.encrypted_dek_source_type
        ));
    }
    if object.encrypted_data.is_empty() {
        return Err("encrypted data is empty".into());
    }
    let source = object.encrypted_dek_source.len();
    if source == 0 {
        return Err(
            "failed to validate encrypted DEK source: encrypted DEK source is empty".into(),
        );
    }
    if source > MAX_SOURCE_SIZE {
        return Err(format!(
            "failed to validate encrypted DEK source: encrypted DEK source is {source} bytes, \
             which exceeds the max size of {MAX_SOURCE_SIZE}"
        ));
    }
    validate_key_id(&object.key_id).map_err(|e| format!("failed to validate key id: {e}"))?;
    let mut errors = Vec::new();
    let mut total = 0;
    for (k, v) in &object.annotations {
        total += k.len() + v.len();
        if let Err(e) = fully_qualified_domain_name(k) {
            errors.push(format!("annotations: Invalid value: {k:?}: {e}"));
        }
    }
    if total > MAX_ANNOTATIONS_SIZE {
        errors.push(format!(
            "total size of annotations is {total}, which exceeds the max size of \
             {MAX_ANNOTATIONS_SIZE}"
        ));
    }
    if !errors.is_empty() {
        errors.sort();
        return Err(format!(
            "failed to validate annotations: [{}]",
            errors.join(", ")
        ));
    }
    Ok(())
}

/// An annotation key must be a DNS name of two or more labels (`kms.example.com`).
fn fully_qualified_domain_name(name: &str) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("Required value".into());
    }
    if name.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err("should be a domain with at least two segments separated by dots".into());
    }
    let valid = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !labels.iter().all(|l| valid(l)) {
        return Err(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
                    characters, '-' or '.', and must start and end with an alphanumeric \
                    character"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Upstream's own vector for the seed-derived (extended nonce) layout.
    #[tokio::test]
    async fn reads_a_value_in_upstreams_seed_layout() {
        let seed: [u8; 32] =
            hex("5d40323a820ff95561675e3b95e81867c5fdd561d35a88a2d08b08aa9d4fcf5c")
                .try_into()
                .unwrap();
        let data = hex(
            "2442759e33945fbad709db577a0f037fd8a709fc76979b8942209debcecb9d57efe3d6ff6a1ef6ee\
             9a5003b9833b3043cec1e47b35175b151107a8d2416b0e296bbf66b5d102fcefdf9a78f293d271",
        );
        let (info, rest) = data.split_at(INFO_SIZE);
        let key = derive(&seed, info);
        let plain = open(Aes256Gcm::new_from_slice(&key).unwrap(), rest, b"bamboo").unwrap();
        assert_eq!(plain, b"pandas are the best");
        assert!(open(Aes256Gcm::new_from_slice(&key).unwrap(), rest, b"panda").is_err());
    }

    /// Upstream's vector for values written with a plain AES-GCM key (source type 0).
    #[test]
    fn reads_a_value_in_upstreams_legacy_key_layout() {
        let data = hex(
            "9f27c8fcea8a58c467d8e437dbf2d85955f9b4bd912f4ef967d788a0cb07797dac0a3f0a0845605c\
             a85ac8562b4ae1",
        );
        let cipher = Aes128Gcm::new_from_slice(b"snorlax_awesomes").unwrap();
        assert_eq!(
            open(cipher, &data, b"bamboo").unwrap(),
            b"pandas are the best"
        );
    }

    fn object() -> EncryptedObject {
        EncryptedObject {
            encrypted_data: vec![1],
            key_id: "k1".into(),
            encrypted_dek_source: vec![2; 40],
            annotations: HashMap::new(),
            encrypted_dek_source_type: 1,
        }
    }

    #[test]
    fn encrypted_objects_are_validated_as_upstream() {
        assert_eq!(validate(&object()), Ok(()));
        let check = |f: fn(&mut EncryptedObject), want: &str| {
            let mut o = object();
            f(&mut o);
            let got = validate(&o).unwrap_err();
            assert!(got.contains(want), "{got}");
        };
        check(
            |o| o.encrypted_dek_source_type = 7,
            "unknown encryptedDEKSourceType: 7",
        );
        check(|o| o.encrypted_data.clear(), "encrypted data is empty");
        check(
            |o| o.encrypted_dek_source.clear(),
            "encrypted DEK source is empty",
        );
        check(
            |o| o.encrypted_dek_source = vec![0; 1025],
            "encrypted DEK source is 1025 bytes, which exceeds the max size of 1024",
        );
        check(
            |o| o.key_id.clear(),
            "failed to validate key id: keyID is empty",
        );
        check(|o| o.key_id = "k".repeat(1025), "keyID is 1025 bytes");
        check(
            |o| {
                o.annotations.insert("nodots".into(), vec![]);
            },
            "should be a domain with at least two segments",
        );
        check(
            |o| {
                o.annotations
                    .insert("a.example.com".into(), vec![0; 40 << 10]);
            },
            "total size of annotations is",
        );
        let mut ok = object();
        ok.annotations
            .insert("version.kms.example.com.".into(), b"1".to_vec());
        ok.key_id = "k".repeat(1024);
        assert_eq!(validate(&ok), Ok(()));
    }

    #[test]
    fn the_cache_key_tells_sources_apart() {
        let a = object();
        let mut b = object();
        b.key_id = "k2".into();
        let mut c = object();
        c.annotations.insert("x.example.com".into(), vec![1]);
        assert_ne!(cache_key(&a), cache_key(&b));
        assert_ne!(cache_key(&a), cache_key(&c));
        assert_eq!(cache_key(&a), cache_key(&object()));
    }
}
