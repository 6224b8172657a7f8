//! Test support: a real kube-apiserver process on free ports with its own data dir, a kubeconfig
//! for it, and helpers to run the real kubectl against it.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use apiserver::testing::{EtcdServer, free_port};

/// A kube-apiserver child process; killed on drop.
pub struct ApiServer {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub https: bool,
    pub kubeconfig: PathBuf,
    extra: Vec<String>,
}

impl ApiServer {
    /// Embedded store, plain HTTP on loopback.
    pub fn start() -> ApiServer {
        Self::launch(tempfile::tempdir().unwrap(), false, &[])
    }

    /// Embedded store, HTTPS with the self-signed certificate it generates.
    pub fn start_https() -> ApiServer {
        Self::launch(tempfile::tempdir().unwrap(), true, &[])
    }

    /// HTTPS with extra flags (e.g. `--token-auth-file`).
    pub fn start_https_with(extra: &[&str]) -> ApiServer {
        Self::launch(tempfile::tempdir().unwrap(), true, extra)
    }

    /// Plain HTTP with extra flags (e.g. `--etcd-servers`).
    pub fn start_with(extra: &[&str]) -> ApiServer {
        Self::launch(tempfile::tempdir().unwrap(), false, extra)
    }

    fn launch(dir: tempfile::TempDir, https: bool, extra: &[&str]) -> ApiServer {
        let port = free_port();
        let kubeconfig = dir.path().join("kubeconfig");
        let mut server = ApiServer {
            child: None,
            dir,
            port,
            https,
            kubeconfig,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let data = self.dir.path().join("data");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("apiserver.log"))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kube-apiserver"));
        // No controller-manager creates the `default` service accounts here, so pods would
        // be refused: upstream's integration tests turn the plugin off likewise.
        cmd.arg("--data-dir")
            .arg(&data)
            .args(["--advertise-address", "127.0.0.1"])
            .arg("--disable-admission-plugins=ServiceAccount");
        if self.https {
            cmd.args([
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                &self.port.to_string(),
            ]);
        } else {
            cmd.args([
                "--secure-port",
                "0",
                "--insecure-port",
                &self.port.to_string(),
            ]);
        }
        cmd.args(&self.extra).stdout(Stdio::null()).stderr(log);
        self.child = Some(cmd.spawn().expect("start kube-apiserver"));
        self.wait_ready();
        self.write_kubeconfig(&data);
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("kube-apiserver exited with {status}:\n{}", self.log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "kube-apiserver did not listen on {}:\n{}",
            self.port,
            self.log()
        );
    }

    fn write_kubeconfig(&self, data: &Path) {
        let cluster = if self.https {
            let ca = data.join("certificates/apiserver.crt");
            format!(
                "server: https://127.0.0.1:{}\n    certificate-authority: {}",
                self.port,
                ca.display()
            )
        } else {
            format!("server: http://127.0.0.1:{}", self.port)
        };
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    {cluster}\ncontexts:\n- name: t\n  context: {{cluster: t, user: t}}\ncurrent-context: t\nusers:\n- name: t\n  user: {{token: tetsu-test}}\n"
        );
        std::fs::write(&self.kubeconfig, config).unwrap();
    }

    pub fn url(&self) -> String {
        format!(
            "{}://127.0.0.1:{}",
            if self.https { "https" } else { "http" },
            self.port
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("apiserver.log")).unwrap_or_default()
    }

    /// Kills the server with SIGKILL (no chance to flush anything).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data dir and port.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().unwrap()
    }

    /// Runs kubectl against this server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .args(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs kubectl and returns its stdout, failing the test with stderr if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {} failed:\n{}\n{}\n--- apiserver log ---\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {} should fail but printed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Asserts that `text` contains every line fragment of `expected`, in order.
pub fn assert_contains_in_order(text: &str, expected: &[&str]) {
    let mut rest = text;
    for e in expected {
        match rest.find(e) {
            Some(i) => rest = &rest[i + e.len()..],
            None => panic!("expected {e:?} (in order) in:\n{text}"),
        }
    }
}
