//! The production layout for end-to-end runs: kube-apiserver and kube-scheduler as their own
//! binaries (child processes, found beside this one), serving and speaking TLS as a
//! cluster's components do; this process is only the client that creates nodes and pods.
//! What the servers spent is read from outside: their CPU from /proc, the apiserver's
//! writes and watch events from its /metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::Store;

/// The apiserver and scheduler processes (stopped with SIGTERM when dropped).
pub struct Processes {
    apiserver: Child,
    /// Started once the apiserver serves.
    scheduler: Option<Child>,
    pub kubeconfig: PathBuf,
    _etcd: Option<apiserver::testing::EtcdServer>,
}

/// What the servers had done at one moment.
#[derive(Clone, Debug, Default)]
pub struct ServerCounters {
    pub apiserver_cpu_s: f64,
    pub scheduler_cpu_s: f64,
    /// Successful writes (POST, PUT, PATCH, DELETE answered 2xx) by "VERB resource[/sub]".
    pub writes: BTreeMap<String, u64>,
    /// Events sent to watchers, every kind.
    pub watch_events: u64,
}

impl ServerCounters {
    /// Reads the counters from the apiserver's /metrics text and the processes' CPU.
    pub fn read(metrics: &str, apiserver: u32, scheduler: u32) -> ServerCounters {
        let mut counters = ServerCounters {
            apiserver_cpu_s: crate::process_cpu_seconds(apiserver),
            scheduler_cpu_s: crate::process_cpu_seconds(scheduler),
            ..Default::default()
        };
        for line in metrics.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let value: u64 = value.parse().unwrap_or(0);
            if series.starts_with("apiserver_watch_events_total{") {
                counters.watch_events += value;
            } else if let Some(labels) = series
                .strip_prefix("apiserver_request_total{")
                .and_then(|l| l.strip_suffix('}'))
            {
                let label = |name: &str| {
                    labels
                        .split(',')
                        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix("=\""))
                        .map(|v| v.trim_end_matches('"'))
                        .unwrap_or_default()
                };
                let verb = label("verb");
                if ["POST", "PUT", "PATCH", "DELETE"].contains(&verb)
                    && label("code").starts_with('2')
                {
                    let resource = match label("subresource") {
                        "" => label("resource").to_owned(),
                        sub => format!("{}/{sub}", label("resource")),
                    };
                    *counters
                        .writes
                        .entry(format!("{verb} {resource}"))
                        .or_default() += value;
                }
            }
        }
        counters
    }

    /// What happened between `self` and `later`.
    pub fn since(&self, later: &ServerCounters) -> ServerCounters {
        ServerCounters {
            apiserver_cpu_s: later.apiserver_cpu_s - self.apiserver_cpu_s,
            scheduler_cpu_s: later.scheduler_cpu_s - self.scheduler_cpu_s,
            writes: later
                .writes
                .iter()
                .map(|(k, v)| (k.clone(), v - self.writes.get(k).copied().unwrap_or(0)))
                .filter(|(_, v)| *v > 0)
                .collect(),
            watch_events: later.watch_events - self.watch_events,
        }
    }
}

/// Where the component binaries are: beside this executable (target/release when run with
/// `cargo run --release`).
fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("this executable has a directory")?;
    // Tests run from target/<profile>/deps; the binaries are one level up.
    for dir in [dir, dir.parent().unwrap_or(dir)] {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    anyhow::bail!(
        "{name} not found beside {}: build it first (cargo build [--release] -p apiserver -p scheduler)",
        exe.display()
    )
}

impl Processes {
    /// Starts kube-apiserver (HTTPS on a free port, its own serving certificate) over
    /// `store`, then kube-scheduler with `scheduler_config` (the default profile if None).
    pub async fn start(
        dir: &Path,
        store: Store,
        scheduler_config: Option<&Path>,
    ) -> anyhow::Result<Processes> {
        let etcd = (store == Store::Etcd).then(apiserver::testing::EtcdServer::start);
        let port = apiserver::testing::free_port();
        let data = dir.join("data");
        let mut cmd = Command::new(binary("kube-apiserver")?);
        cmd.arg("--data-dir").arg(&data);
        cmd.args([
            "--advertise-address",
            "127.0.0.1",
            "--bind-address",
            "127.0.0.1",
        ]);
        cmd.args(["--secure-port", &port.to_string()]);
        // No controller-manager makes the namespaces' `default` service accounts here, nor
        // a kubelet reports its node Ready to lift the not-ready taint new nodes get:
        // upstream's scheduler_perf turns both plugins off likewise.
        cmd.arg("--disable-admission-plugins=ServiceAccount,TaintNodesByCondition");
        if let Some(etcd) = &etcd {
            cmd.args(["--etcd-servers", &etcd.endpoint]);
        }
        let apiserver = spawn(cmd, &dir.join("kube-apiserver.log"))?;
        let mut processes = Processes {
            apiserver,
            scheduler: None,
            kubeconfig: dir.join("kubeconfig"),
            _etcd: etcd,
        };
        let ca = data.join("certificates/apiserver.crt");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(ca.is_file() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()) {
            if let Some(status) = processes.apiserver.try_wait()? {
                anyhow::bail!("kube-apiserver exited with {status}: see {}", dir.display());
            }
            anyhow::ensure!(Instant::now() < deadline, "kube-apiserver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        std::fs::write(
            &processes.kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: perf\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {}\ncontexts:\n- name: perf\n  context: {{cluster: perf, user: perf}}\ncurrent-context: perf\nusers:\n- name: perf\n  user: {{}}\n",
                ca.display()
            ),
        )?;
        let mut cmd = Command::new(binary("kube-scheduler")?);
        cmd.arg("--kubeconfig").arg(&processes.kubeconfig);
        cmd.args(["--leader-elect=false", "--secure-port", "0"]);
        if let Some(config) = scheduler_config {
            cmd.arg("--config").arg(config);
        }
        let log = dir.join("kube-scheduler.log");
        let scheduler = processes.scheduler.insert(spawn(cmd, &log)?);
        // Ready once its informers synced; a scheduler that exits (a bad --config) fails
        // the run here instead of leaving it to wait for bindings that never come.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&log)?.contains("caches synced") {
            if let Some(status) = scheduler.try_wait()? {
                let log = std::fs::read_to_string(&log)?;
                anyhow::bail!("kube-scheduler exited with {status}:\n{log}");
            }
            anyhow::ensure!(Instant::now() < deadline, "kube-scheduler did not sync");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(processes)
    }

    /// The servers' counters now; `metrics` is the apiserver's /metrics text.
    pub fn counters(&self, metrics: &str) -> ServerCounters {
        ServerCounters::read(metrics, self.apiserver.id(), self.scheduler_pid())
    }

    /// The CPU seconds both servers have used.
    pub fn cpu_seconds(&self) -> f64 {
        crate::process_cpu_seconds(self.apiserver.id())
            + crate::process_cpu_seconds(self.scheduler_pid())
    }

    /// The scheduler's pid (u32::MAX, no process, before it starts).
    fn scheduler_pid(&self) -> u32 {
        self.scheduler.as_ref().map_or(u32::MAX, Child::id)
    }
}

fn spawn(mut cmd: Command, log: &Path) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log)?;
    cmd.args(["-v", "1"]).stdout(Stdio::null()).stderr(log);
    Ok(cmd.spawn()?)
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in self.scheduler.iter_mut().chain([&mut self.apiserver]) {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_read_writes_and_watch_events() {
        let metrics = "\
apiserver_request_total{verb=\"POST\",resource=\"pods\",subresource=\"\",code=\"201\"} 10
apiserver_request_total{verb=\"POST\",resource=\"pods\",subresource=\"binding\",code=\"201\"} 9
apiserver_request_total{verb=\"POST\",resource=\"pods\",subresource=\"\",code=\"409\"} 4
apiserver_request_total{verb=\"LIST\",resource=\"pods\",subresource=\"\",code=\"200\"} 3
apiserver_watch_events_total{group=\"\",version=\"v1\",kind=\"Pod\"} 30
apiserver_watch_events_total{group=\"events.k8s.io\",version=\"v1\",kind=\"Event\"} 2
";
        let c = ServerCounters::read(metrics, u32::MAX, u32::MAX);
        let writes: Vec<(&str, u64)> = c.writes.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(writes, [("POST pods", 10), ("POST pods/binding", 9)]);
        assert_eq!(c.watch_events, 32);
        let before = ServerCounters::read(
            "apiserver_request_total{verb=\"POST\",resource=\"pods\",subresource=\"\",code=\"201\"} 4\n",
            u32::MAX,
            u32::MAX,
        );
        let d = before.since(&c);
        assert_eq!(d.writes["POST pods"], 6);
        assert_eq!(d.watch_events, 32);
    }
}
