//! The CRI v1 client: RuntimeService and ImageService over the runtime's unix socket
//! (containerd's `/run/containerd/containerd.sock`, or `--container-runtime-endpoint`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// What a runtime call fails with; [`Error::retryable`] says whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime's socket did not answer (it may be starting or restarting).
    #[error("connecting to the container runtime at {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    /// The runtime refused or failed the call (its gRPC status).
    #[error("{}", .0.message())]
    Runtime(#[from] tonic::Status),
    /// The runtime answered without the sandbox's or container's status.
    #[error("runtime returned no status for {kind} {id}")]
    NoStatus { kind: &'static str, id: String },
    /// No such sandbox, container or image in this runtime.
    #[error("{kind} {id:?} not found")]
    NotFound { kind: &'static str, id: String },
    /// This runtime cannot do that (a hollow node runs no processes).
    #[error("{0}")]
    Unsupported(&'static str),
}

impl Error {
    /// Whether the same call may succeed later: the runtime was unreachable or busy.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Connect { .. } => true,
            Error::Runtime(s) => matches!(
                s.code(),
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Aborted
            ),
            Error::NoStatus { .. } | Error::NotFound { .. } | Error::Unsupported(_) => false,
        }
    }

    /// Whether the sandbox, container or image is unknown to the runtime.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::Runtime(s) => s.code() == tonic::Code::NotFound,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A connection to a container runtime over its socket. Cheap to clone (one HTTP/2 channel).
#[derive(Clone)]
pub struct Remote {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

/// "unix:///run/containerd/containerd.sock" or a plain path.
pub fn socket_path(endpoint: &str) -> PathBuf {
    PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint))
}

/// The CRI RuntimeService and ImageService calls the kubelet makes: answered by a real
/// runtime over gRPC ([`Remote`]) or by a hollow node's simulation (`crate::hollow`).
#[async_trait::async_trait]
pub trait RuntimeService: Send + Sync {
    /// The runtime's name and version ("containerd", "1.6.20").
    async fn version(&self) -> Result<cri::VersionResponse>;

    async fn run_pod_sandbox(&self, config: cri::PodSandboxConfig, handler: &str)
    -> Result<String>;

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()>;

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()>;

    async fn pod_sandbox_status(&self, id: &str) -> Result<cri::PodSandboxStatus>;

    async fn list_pod_sandboxes(&self) -> Result<Vec<cri::PodSandbox>>;

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
        sandbox_config: cri::PodSandboxConfig,
    ) -> Result<String>;

    async fn start_container(&self, id: &str) -> Result<()>;

    /// Stops a container, giving it `grace` after SIGTERM before it is killed.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()>;

    async fn remove_container(&self, id: &str) -> Result<()>;

    async fn container_status(&self, id: &str) -> Result<cri::ContainerStatus>;

    async fn list_containers(&self) -> Result<Vec<cri::Container>>;

    /// Runs `cmd` in a container and waits for it: (exit code, stdout, stderr).
    async fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout: Duration,
    ) -> Result<(i32, Vec<u8>, Vec<u8>)>;

    /// The image's id if the runtime has it.
    async fn image_status(&self, image: &str) -> Result<Option<cri::Image>>;

    /// Pulls an image (no registry is reachable here: this fails with the runtime's reason).
    async fn pull_image(&self, image: &str) -> Result<String>;

    /// The containers of one sandbox.
    async fn list_sandbox_containers(&self, sandbox_id: &str) -> Result<Vec<cri::Container>>;

    /// A streaming-server URL for an exec session (the runtime serves it once).
    async fn exec(&self, req: cri::ExecRequest) -> Result<String>;

    /// A streaming-server URL to attach to a running container's stdio.
    async fn attach(&self, req: cri::AttachRequest) -> Result<String>;

    /// A streaming-server URL forwarding ports into a sandbox's network namespace; `ports`
    /// are the ones a WebSocket client asked for (SPDY names its port per stream).
    async fn port_forward(&self, sandbox_id: &str, ports: Vec<i32>) -> Result<String>;

    /// CPU and memory usage of every container.
    async fn container_stats(&self) -> Result<Vec<cri::ContainerStats>>;

    async fn list_images(&self) -> Result<Vec<cri::Image>>;

    /// Whether nothing really runs (hollow nodes): no log files, probes pass.
    fn simulated(&self) -> bool {
        false
    }
}

/// A handle on the node's runtime. Cheap to clone.
#[derive(Clone)]
pub struct Cri(Arc<dyn RuntimeService>);

impl Cri {
    /// Connects to a CRI runtime's socket (the connection is made lazily and re-made if the
    /// runtime restarts).
    pub async fn connect(endpoint: &str) -> Result<Cri> {
        Ok(Cri(Arc::new(Remote::connect(endpoint).await?)))
    }

    /// A runtime implemented in this process (hollow nodes).
    pub fn from_service(service: Arc<dyn RuntimeService>) -> Cri {
        Cri(service)
    }
}

impl std::ops::Deref for Cri {
    type Target = dyn RuntimeService;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl Remote {
    /// Connects to the runtime's socket (the connection is made lazily and re-made if the
    /// runtime restarts).
    pub async fn connect(endpoint: &str) -> Result<Remote> {
        let path = socket_path(endpoint);
        // A constant, valid URI: tonic needs one, the connector ignores it.
        let channel = Endpoint::from_static("http://[::]:50051")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(&path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|e| Error::Connect {
                endpoint: endpoint.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Remote {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }
}

#[async_trait::async_trait]
impl RuntimeService for Remote {
    /// The runtime's name and version ("containerd", "1.6.20").
    async fn version(&self) -> Result<cri::VersionResponse> {
        Ok(self
            .runtime
            .clone()
            .version(cri::VersionRequest {
                version: "v1".into(),
            })
            .await?
            .into_inner())
    }

    async fn run_pod_sandbox(
        &self,
        config: cri::PodSandboxConfig,
        handler: &str,
    ) -> Result<String> {
        let req = cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: handler.into(),
        };
        Ok(self
            .runtime
            .clone()
            .run_pod_sandbox(req)
            .await?
            .into_inner()
            .pod_sandbox_id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        self.runtime
            .clone()
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            })
            .await?;
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        self.runtime
            .clone()
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: id.into(),
            })
            .await?;
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<cri::PodSandboxStatus> {
        let req = cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        };
        self.runtime
            .clone()
            .pod_sandbox_status(req)
            .await?
            .into_inner()
            .status
            .ok_or_else(|| Error::NoStatus {
                kind: "sandbox",
                id: id.to_owned(),
            })
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<cri::PodSandbox>> {
        Ok(self
            .runtime
            .clone()
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
            .await?
            .into_inner()
            .items)
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
        sandbox_config: cri::PodSandboxConfig,
    ) -> Result<String> {
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.into(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        Ok(self
            .runtime
            .clone()
            .create_container(req)
            .await?
            .into_inner()
            .container_id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.runtime
            .clone()
            .start_container(cri::StartContainerRequest {
                container_id: id.into(),
            })
            .await?;
        Ok(())
    }

    /// Stops a container, giving it `grace` after SIGTERM before it is killed.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let req = cri::StopContainerRequest {
            container_id: id.into(),
            timeout: grace.as_secs() as i64,
        };
        self.runtime.clone().stop_container(req).await?;
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.runtime
            .clone()
            .remove_container(cri::RemoveContainerRequest {
                container_id: id.into(),
            })
            .await?;
        Ok(())
    }

    async fn container_status(&self, id: &str) -> Result<cri::ContainerStatus> {
        let req = cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        self.runtime
            .clone()
            .container_status(req)
            .await?
            .into_inner()
            .status
            .ok_or_else(|| Error::NoStatus {
                kind: "container",
                id: id.to_owned(),
            })
    }

    async fn list_containers(&self) -> Result<Vec<cri::Container>> {
        Ok(self
            .runtime
            .clone()
            .list_containers(cri::ListContainersRequest { filter: None })
            .await?
            .into_inner()
            .containers)
    }

    /// Runs `cmd` in a container and waits for it: (exit code, stdout, stderr).
    async fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout: Duration,
    ) -> Result<(i32, Vec<u8>, Vec<u8>)> {
        let req = cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
            timeout: timeout.as_secs() as i64,
        };
        let r = self.runtime.clone().exec_sync(req).await?.into_inner();
        Ok((r.exit_code, r.stdout, r.stderr))
    }

    /// The image's id if the runtime has it.
    async fn image_status(&self, image: &str) -> Result<Option<cri::Image>> {
        let req = cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            verbose: false,
        };
        Ok(self
            .images
            .clone()
            .image_status(req)
            .await?
            .into_inner()
            .image)
    }

    /// Pulls an image (no registry is reachable here: this fails with the runtime's reason).
    async fn pull_image(&self, image: &str) -> Result<String> {
        let req = cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            auth: None,
            sandbox_config: None,
        };
        Ok(self
            .images
            .clone()
            .pull_image(req)
            .await?
            .into_inner()
            .image_ref)
    }

    /// The containers of one sandbox.
    async fn list_sandbox_containers(&self, sandbox_id: &str) -> Result<Vec<cri::Container>> {
        let filter = cri::ContainerFilter {
            pod_sandbox_id: sandbox_id.into(),
            ..Default::default()
        };
        Ok(self
            .runtime
            .clone()
            .list_containers(cri::ListContainersRequest {
                filter: Some(filter),
            })
            .await?
            .into_inner()
            .containers)
    }

    /// A streaming-server URL for an exec session (the runtime serves it once).
    async fn exec(&self, req: cri::ExecRequest) -> Result<String> {
        Ok(self.runtime.clone().exec(req).await?.into_inner().url)
    }

    /// A streaming-server URL to attach to a running container's stdio.
    async fn attach(&self, req: cri::AttachRequest) -> Result<String> {
        Ok(self.runtime.clone().attach(req).await?.into_inner().url)
    }

    /// A streaming-server URL forwarding ports into a sandbox's network namespace.
    async fn port_forward(&self, sandbox_id: &str, ports: Vec<i32>) -> Result<String> {
        let req = cri::PortForwardRequest {
            pod_sandbox_id: sandbox_id.into(),
            port: ports,
        };
        Ok(self
            .runtime
            .clone()
            .port_forward(req)
            .await?
            .into_inner()
            .url)
    }

    /// CPU and memory usage of every container.
    async fn container_stats(&self) -> Result<Vec<cri::ContainerStats>> {
        Ok(self
            .runtime
            .clone()
            .list_container_stats(cri::ListContainerStatsRequest { filter: None })
            .await?
            .into_inner()
            .stats)
    }

    async fn list_images(&self) -> Result<Vec<cri::Image>> {
        Ok(self
            .images
            .clone()
            .list_images(cri::ListImagesRequest { filter: None })
            .await?
            .into_inner()
            .images)
    }
}

/// Waits until `path` exists (a runtime's socket appearing), up to `timeout`.
pub async fn wait_for_socket(path: &Path, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
