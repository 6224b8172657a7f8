//! containerd as a node runs it: the configuration our machines need (its own root, state
//! and sockets, the CRI plugin with runc, a sandbox image we build, the CNI configuration
//! directory, and `restrict_oom_score_adj`, since root here may not lower oom_score_adj:
//! PLATFORM.md), and the cleanup of the shims it leaves behind.

use std::path::Path;

/// What differs between one containerd and another.
pub struct Config<'a> {
    /// root/, state/ and opt/ go under it.
    pub dir: &'a Path,
    pub socket: &'a Path,
    pub sandbox_image: &'a str,
    /// Where the streaming server (exec, attach, port-forward) listens.
    pub stream_address: &'a str,
    pub cni_conf_dir: &'a Path,
}

/// containerd's config.toml.
pub fn config(c: &Config) -> String {
    let sub = |name: &str| c.dir.join(name).display().to_string();
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox}"
  restrict_oom_score_adj = true
  stream_server_address = "{stream}"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
"#,
        root = sub("root"),
        state = sub("state"),
        opt = sub("opt"),
        sock = c.socket.display(),
        sandbox = c.sandbox_image,
        stream = c.stream_address,
        cni = c.cni_conf_dir.display(),
    )
}

/// A process as /proc shows it; its start time tells it from a later one with its pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    /// Clock ticks after boot (/proc/PID/stat's starttime).
    pub start: u64,
}

impl Proc {
    /// Whether this very process still exists (a zombie counts: it is on its way out).
    pub fn alive(&self) -> bool {
        stat(self.pid).is_some_and(|(_, start, state)| start == self.start && state != 'Z')
    }

    /// The inode of its network namespace (what /var/run/netns/NAME is bound to).
    pub fn net_namespace(&self) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{}/ns/net", self.pid))
            .ok()
            .map(|m| m.ino())
    }
}

/// (parent pid, start time, state) from /proc/PID/stat.
fn stat(pid: i32) -> Option<(i32, u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    let fields: Vec<&str> = text
        .get(text.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let state = fields.first()?.chars().next()?;
    Some((
        fields.get(1)?.parse().ok()?,
        fields.get(19)?.parse().ok()?,
        state,
    ))
}

fn all_pids() -> Vec<i32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|p| p.file_name().to_string_lossy().parse().ok())
        .collect()
}

/// The shims serving `socket`.
pub fn shims(socket: &Path) -> Vec<Proc> {
    let needle = socket.display().to_string();
    all_pids()
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.first()
                .is_some_and(|a| String::from_utf8_lossy(a).contains("containerd-shim"))
                && args.contains(&needle.as_bytes())
        })
        .filter_map(|pid| {
            Some(Proc {
                pid,
                start: stat(pid)?.1,
            })
        })
        .collect()
}

/// Every process below the shims serving `socket`: the pods' containers (each shim is the
/// subreaper of its containers' processes), whether containerd still knows them or not.
pub fn pod_processes(socket: &Path) -> Vec<Proc> {
    let mut found: Vec<Proc> = shims(socket);
    let shim_count = found.len();
    let table: Vec<(i32, i32, u64)> = all_pids()
        .into_iter()
        .filter_map(|pid| stat(pid).map(|(ppid, start, _)| (pid, ppid, start)))
        .collect();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i].pid;
        for &(pid, ppid, start) in &table {
            if ppid == parent && !found.iter().any(|p| p.pid == pid) {
                found.push(Proc { pid, start });
            }
        }
        i += 1;
    }
    found.split_off(shim_count)
}

fn kill(p: &Proc) {
    if p.alive()
        && let Some(pid) = rustix::process::Pid::from_raw(p.pid)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// SIGKILLs the pods' processes under the shims serving `socket`, then the shims: shims
/// outlive containerd by design, and a killed shim leaves its containers running,
/// orphaned; so whoever removes a containerd removes both.
pub fn kill_shims(socket: &Path) {
    for p in pod_processes(socket) {
        kill(&p);
    }
    for p in shims(socket) {
        kill(&p);
    }
}

/// SIGKILLs those of `procs` still alive; answers the ones that are.
pub fn kill_survivors(procs: &[Proc]) -> Vec<Proc> {
    let alive: Vec<Proc> = procs.iter().filter(|p| p.alive()).copied().collect();
    alive.iter().for_each(kill);
    alive
}
