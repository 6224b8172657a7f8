//! A KMS v2 plugin for tests: the `v2.KeyManagementService` gRPC service on a unix socket,
//! holding one AES-256-GCM key encryption key per key ID in memory. Tests rotate its key ID,
//! make it unhealthy or stop it, and count the calls the apiserver makes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit};
use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::storage::encryption::kms::api;

/// The annotation every answer carries, as real plugins describe their key.
pub const ANNOTATION: &str = "version.kms.tetsu.test";

#[derive(Default)]
struct Keys {
    current: String,
    by_id: HashMap<String, [u8; 32]>,
}

/// What the plugin holds and counts; shared with its gRPC service.
#[derive(Default)]
struct State {
    keys: Mutex<Keys>,
    unhealthy: AtomicBool,
    pub status_calls: AtomicU64,
    pub encrypt_calls: AtomicU64,
    pub decrypt_calls: AtomicU64,
}

/// A running plugin; stopped (and its socket removed) on drop.
pub struct KmsPlugin {
    state: Arc<State>,
    socket: PathBuf,
    server: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl KmsPlugin {
    /// Serves on `<dir>/kms.sock` with the key ID `key-1`.
    pub async fn start(dir: &Path) -> KmsPlugin {
        let mut plugin = KmsPlugin {
            state: Arc::default(),
            socket: dir.join("kms.sock"),
            server: None,
        };
        plugin.rotate("key-1");
        plugin.serve();
        plugin
    }

    fn serve(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let listener = tokio::net::UnixListener::bind(&self.socket).expect("bind the KMS socket");
        let incoming = futures::stream::unfold(listener, |l| async move {
            let conn = l.accept().await.map(|(stream, _)| stream);
            Some((conn, l))
        });
        let service = Service(self.state.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // A graceful stop closes the connections too, as a plugin that exits does.
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        self.server = Some((stop, task));
    }

    /// `unix://<socket>`, as an EncryptionConfiguration names it.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Makes `key_id` the key new seeds are encrypted with (its Status says so); earlier keys
    /// still decrypt.
    pub fn rotate(&self, key_id: &str) {
        let mut keys = self.state.keys.lock();
        keys.current = key_id.to_owned();
        keys.by_id.entry(key_id.to_owned()).or_insert_with(|| {
            let mut k = [0u8; 32];
            rand::fill(&mut k);
            k
        });
    }

    /// Forgets a key: what was encrypted with it no longer decrypts.
    pub fn destroy(&self, key_id: &str) {
        self.state.keys.lock().by_id.remove(key_id);
    }

    /// Makes the Status answer `healthz: broken` (or `ok` again).
    pub fn set_unhealthy(&self, unhealthy: bool) {
        self.state.unhealthy.store(unhealthy, Ordering::Relaxed);
    }

    /// Stops serving (the socket goes away) until [`KmsPlugin::restart`].
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    pub fn restart(&mut self) {
        self.serve();
    }

    /// Calls answered so far: (Status, Encrypt, Decrypt).
    pub fn calls(&self) -> (u64, u64, u64) {
        (
            self.state.status_calls.load(Ordering::Relaxed),
            self.state.encrypt_calls.load(Ordering::Relaxed),
            self.state.decrypt_calls.load(Ordering::Relaxed),
        )
    }
}

impl Drop for KmsPlugin {
    fn drop(&mut self) {
        if let Some((_, task)) = self.server.take() {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl State {
    fn status(&self) -> api::StatusResponse {
        self.status_calls.fetch_add(1, Ordering::Relaxed);
        let healthz = if self.unhealthy.load(Ordering::Relaxed) {
            "broken"
        } else {
            "ok"
        };
        api::StatusResponse {
            version: "v2".into(),
            healthz: healthz.into(),
            key_id: self.keys.lock().current.clone(),
        }
    }

    fn encrypt(&self, request: api::EncryptRequest) -> Result<api::EncryptResponse, tonic::Status> {
        self.encrypt_calls.fetch_add(1, Ordering::Relaxed);
        let (key_id, key) = {
            let keys = self.keys.lock();
            (keys.current.clone(), keys.by_id[&keys.current])
        };
        let mut nonce = [0u8; 12];
        rand::fill(&mut nonce);
        let sealed = Aes256Gcm::new_from_slice(&key)
            .expect("32 bytes")
            .encrypt((&nonce).into(), request.plaintext.as_slice())
            .map_err(|_| tonic::Status::internal("sealing failed"))?;
        Ok(api::EncryptResponse {
            ciphertext: [nonce.as_slice(), &sealed].concat(),
            key_id,
            annotations: [(ANNOTATION.to_owned(), b"1".to_vec())].into(),
        })
    }

    fn decrypt(&self, request: api::DecryptRequest) -> Result<api::DecryptResponse, tonic::Status> {
        self.decrypt_calls.fetch_add(1, Ordering::Relaxed);
        let key = self
            .keys
            .lock()
            .by_id
            .get(&request.key_id)
            .copied()
            .ok_or_else(|| {
                tonic::Status::not_found(format!("no key {:?} in this plugin", request.key_id))
            })?;
        if request.ciphertext.len() < 12 {
            return Err(tonic::Status::invalid_argument("ciphertext too short"));
        }
        let (nonce, sealed) = request.ciphertext.split_at(12);
        let plaintext = Aes256Gcm::new_from_slice(&key)
            .expect("32 bytes")
            .decrypt(nonce.into(), sealed)
            .map_err(|_| tonic::Status::invalid_argument("authentication failed"))?;
        Ok(api::DecryptResponse { plaintext })
    }
}

/// The gRPC service, routing by method path.
#[derive(Clone)]
struct Service(Arc<State>);

impl tonic::server::NamedService for Service {
    const NAME: &'static str = api::SERVICE;
}

/// One unary method: decode, answer from the state, encode.
struct Method<F>(Arc<State>, F);

impl<Q, A, F> tower::Service<tonic::Request<Q>> for Method<F>
where
    F: Fn(&State, Q) -> Result<A, tonic::Status>,
    A: Send + 'static,
{
    type Response = tonic::Response<A>;
    type Error = tonic::Status;
    type Future = std::future::Ready<Result<tonic::Response<A>, tonic::Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), tonic::Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::Request<Q>) -> Self::Future {
        std::future::ready((self.1)(&self.0, request.into_inner()).map(tonic::Response::new))
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Service {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            Ok(match request.uri().path() {
                api::STATUS => {
                    let method = Method(state, |s: &State, _: api::StatusRequest| Ok(s.status()));
                    tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                        .unary(method, request)
                        .await
                }
                api::ENCRYPT => {
                    let method = Method(state, |s: &State, q: api::EncryptRequest| s.encrypt(q));
                    tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                        .unary(method, request)
                        .await
                }
                api::DECRYPT => {
                    let method = Method(state, |s: &State, q: api::DecryptRequest| s.decrypt(q));
                    tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                        .unary(method, request)
                        .await
                }
                _ => tonic::Status::unimplemented("no such method").into_http(),
            })
        })
    }
}
