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

/// SIGKILLs the shims serving `socket` (and so their containers): shims outlive
/// containerd by design, so whoever removes a containerd removes its shims.
pub fn kill_shims(socket: &Path) {
    let needle = socket.display().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_shim = args
            .first()
            .is_some_and(|a| String::from_utf8_lossy(a).contains("containerd-shim"));
        if is_shim
            && args.contains(&needle.as_bytes())
            && let Some(pid) = rustix::process::Pid::from_raw(pid)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}
