//! The KMS v2 plugin API (upstream's k8s.io/kms/apis/v2, gRPC service
//! `v2.KeyManagementService` on a unix socket) and the EncryptedObject a KMS v2 value is stored
//! as. Messages are prost-derived from the field numbers of upstream's .proto files; the client
//! speaks the service over tonic with a deadline per call.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

/// The service's name, as a plugin registers it.
pub const SERVICE: &str = "v2.KeyManagementService";
pub const STATUS: &str = "/v2.KeyManagementService/Status";
pub const ENCRYPT: &str = "/v2.KeyManagementService/Encrypt";
pub const DECRYPT: &str = "/v2.KeyManagementService/Decrypt";

#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    /// `v2` (or `v2beta1` from older plugins).
    #[prost(string, tag = "1")]
    pub version: String,
    /// `ok` when the plugin is healthy.
    #[prost(string, tag = "2")]
    pub healthz: String,
    /// The key encryption key in use; a change makes the apiserver encrypt a new seed.
    #[prost(string, tag = "3")]
    pub key_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EncryptRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub plaintext: Vec<u8>,
    /// A fresh identifier per call, for the plugin's logs.
    #[prost(string, tag = "2")]
    pub uid: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EncryptResponse {
    #[prost(bytes = "vec", tag = "1")]
    pub ciphertext: Vec<u8>,
    #[prost(string, tag = "2")]
    pub key_id: String,
    #[prost(map = "string, bytes", tag = "3")]
    pub annotations: HashMap<String, Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DecryptRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub ciphertext: Vec<u8>,
    #[prost(string, tag = "2")]
    pub uid: String,
    #[prost(string, tag = "3")]
    pub key_id: String,
    #[prost(map = "string, bytes", tag = "4")]
    pub annotations: HashMap<String, Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DecryptResponse {
    #[prost(bytes = "vec", tag = "1")]
    pub plaintext: Vec<u8>,
}

/// How the DEK source in an [`EncryptedObject`] is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum EncryptedDekSourceType {
    /// The source is the AES-GCM key itself (what servers before upstream 1.29 wrote).
    AesGcmKey = 0,
    /// The source is a seed; each value's key is derived from it with HKDF-SHA256.
    HkdfSha256XnonceAesGcmSeed = 1,
}

/// What follows `k8s:enc:kms:v2:<name>:` in the store.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EncryptedObject {
    /// The value, sealed with the data encryption key.
    #[prost(bytes = "vec", tag = "1")]
    pub encrypted_data: Vec<u8>,
    #[prost(string, tag = "2")]
    pub key_id: String,
    /// The DEK (or its seed) as the plugin encrypted it.
    #[prost(bytes = "vec", tag = "3")]
    pub encrypted_dek_source: Vec<u8>,
    #[prost(map = "string, bytes", tag = "4")]
    pub annotations: HashMap<String, Vec<u8>>,
    #[prost(enumeration = "EncryptedDekSourceType", tag = "5")]
    pub encrypted_dek_source_type: i32,
}

/// A connection to one plugin; cheap to clone (one HTTP/2 channel, made lazily and re-made
/// when the plugin restarts).
#[derive(Clone)]
pub struct Client {
    grpc: tonic::client::Grpc<Channel>,
    timeout: Duration,
    /// The provider's name, for the calls' metrics.
    provider: String,
}

impl Client {
    /// A client of the plugin of `provider` at `endpoint` (`unix:///path`), each call
    /// bounded by `timeout`.
    pub fn new(provider: &str, endpoint: &str, timeout: Duration) -> Client {
        let path = PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint));
        // A constant, valid URI: tonic needs one, the connector ignores it.
        let channel = Endpoint::from_static("http://[::]:50051")
            .connect_timeout(timeout)
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(&path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }));
        Client {
            grpc: tonic::client::Grpc::new(channel),
            timeout,
            provider: provider.to_owned(),
        }
    }

    pub async fn status(&self) -> Result<StatusResponse, tonic::Status> {
        self.call(STATUS, StatusRequest {}).await
    }

    pub async fn encrypt(&self, request: EncryptRequest) -> Result<EncryptResponse, tonic::Status> {
        self.call(ENCRYPT, request).await
    }

    pub async fn decrypt(&self, request: DecryptRequest) -> Result<DecryptResponse, tonic::Status> {
        self.call(DECRYPT, request).await
    }

    async fn call<Q, A>(&self, path: &'static str, message: Q) -> Result<A, tonic::Status>
    where
        Q: prost::Message + 'static,
        A: prost::Message + Default + 'static,
    {
        let mut grpc = self.grpc.clone();
        let call = async {
            grpc.ready().await.map_err(|e| {
                tonic::Status::unavailable(format!("connecting to the plugin: {e}"))
            })?;
            let mut request = tonic::Request::new(message);
            request.set_timeout(self.timeout);
            let codec = tonic_prost::ProstCodec::default();
            let path = http::uri::PathAndQuery::from_static(path);
            grpc.unary(request, path, codec)
                .await
                .map(tonic::Response::into_inner)
        };
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(tonic::Status::deadline_exceeded(format!(
                    "no answer within {:?}",
                    self.timeout
                )))
            });
        let code = answer
            .as_ref()
            .map_or_else(|e| e.code(), |_| tonic::Code::Ok);
        super::super::metrics::kms_call(&self.provider, path, code, started);
        answer
    }
}
