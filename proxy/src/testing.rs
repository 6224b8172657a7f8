//! Network namespaces as a small cluster's machines, for tests and benchmarks: a "lan"
//! namespace holding a bridge (and standing for the outside world), "nodes" attached to it
//! by veths, and "pods" attached to their node's CNI bridge by the real CNI plugins with
//! the configuration the pod network agent wrote. Everything is removed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};

/// Where Debian's containernetworking-plugins are.
pub const CNI_BIN: &str = "/usr/lib/cni";

fn sh(script: &str) {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A unique short tag for this process's namespaces.
fn tag() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}{}",
        std::process::id() % 100_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A named network namespace, deleted on drop (with every process still in it).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = format!("{prefix}{}", tag());
        sh(&format!(
            "ip netns add {name} && ip netns exec {name} ip link set lo up"
        ));
        Netns { name }
    }

    /// Runs `script` with sh inside the namespace; output and success.
    pub fn sh(&self, script: &str) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", script])
            .output()
            .unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// Starts a long-running process in the namespace.
    pub fn spawn(&self, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Runs `f` on a thread inside the namespace: sockets it opens belong to the
    /// namespace (and stay there wherever they are used), threads it starts are inside too.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    use std::os::fd::AsFd;
                    let ns = std::fs::File::open(&path).unwrap();
                    rustix::thread::move_into_link_name_space(
                        ns.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .unwrap();
                    f()
                })
                .join()
                .unwrap()
        })
    }

    /// A port on the namespace's loopback whose connections are relayed to `target` as
    /// this process reaches it: how a process in the namespace reaches a server on the
    /// host's loopback. Needs a tokio runtime.
    pub fn relay_to(&self, target: std::net::SocketAddr) -> u16 {
        let listener = self.enter(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        tokio::spawn(async move {
            while let Ok((mut inside, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outside) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
                    }
                });
            }
        });
        port
    }

    /// [`serve_tcp_udp`] on `port` of every address in the namespace. The servers live as
    /// long as this process (nextest gives each test its own).
    pub fn serve_tcp_udp(&self, name: &str, port: u16) {
        let (tcp, udp) = self.enter(|| bind_tcp_udp(port).unwrap());
        serve_tcp_udp(tcp, udp, name);
    }

    /// An HTTP GET with busybox wget: the body, or the error.
    pub fn get(&self, url: &str) -> Result<String, String> {
        let (ok, out) = self.sh(&format!("timeout 3 busybox wget -q -O - {url} 2>&1"));
        if ok { Ok(out) } else { Err(out) }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "for p in $(ip netns pids {n} 2>/dev/null); do kill -9 $p; done; ip netns del {n}",
                    n = self.name
                ),
            ])
            .status();
    }
}

/// The machines' network: a bridge in its own namespace at `<prefix>.1/24`.
pub struct Lan {
    pub ns: Netns,
    pub prefix: String,
}

impl Lan {
    /// `prefix` is the /24's first three octets, e.g. "10.251.0".
    pub fn new(prefix: &str) -> Lan {
        let ns = Netns::new("tlan");
        let n = &ns.name;
        sh(&format!(
            "ip netns exec {n} ip link add br0 type bridge && \
             ip netns exec {n} ip addr add {prefix}.1/24 dev br0 && \
             ip netns exec {n} ip link set br0 up"
        ));
        Lan {
            ns,
            prefix: prefix.to_owned(),
        }
    }

    /// A node at `<prefix>.<10 + index>`, its default route through the lan's address;
    /// answers it and its address.
    pub fn add_node(&self, index: u8) -> (Netns, String) {
        let node = Netns::new("tnode");
        let ip = format!("{}.{}", self.prefix, 10 + u32::from(index));
        let (lan, n) = (&self.ns.name, &node.name);
        sh(&format!(
            "ip link add tv{n} type veth peer name eth0 netns {n} && \
             ip link set tv{n} netns {lan} && \
             ip netns exec {lan} ip link set tv{n} master br0 up && \
             ip netns exec {n} ip addr add {ip}/24 dev eth0 && \
             ip netns exec {n} ip link set eth0 up && \
             ip netns exec {n} ip route add default via {}.1",
            self.prefix
        ));
        (node, ip)
    }
}

/// Adds a pod to `node` as the runtime would: a namespace, then the conflist's bridge
/// plugin (with host-local IPAM keeping its state in `ipam_dir`). Answers the pod's IP.
pub fn add_pod(node: &Netns, conflist: &Value, ipam_dir: &Path) -> (Netns, String) {
    let pod = Netns::new("tpod");
    let mut conf = conflist["plugins"][0].clone();
    conf["cniVersion"] = conflist["cniVersion"].clone();
    conf["name"] = conflist["name"].clone();
    // Nodes share this machine's filesystem: each keeps its own IPAM state.
    conf["ipam"]["dataDir"] = json!(ipam_dir.display().to_string());
    let mut child = Command::new("ip")
        .args(["netns", "exec", &node.name])
        .arg(Path::new(CNI_BIN).join("bridge"))
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", &pod.name)
        .env("CNI_NETNS", format!("/var/run/netns/{}", pod.name))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", CNI_BIN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let result: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let ip = result["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| {
            panic!(
                "CNI ADD failed: {} {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_owned();
    (pod, ip)
}

/// busybox httpd in `pod` on `port`, answering `name` at /.
pub fn serve_name(pod: &Netns, dir: &Path, name: &str, port: u16) -> Child {
    let root = dir.join(format!("www-{}", pod.name));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), name).unwrap();
    let child = pod.spawn(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        &port.to_string(),
        "-h",
        &root.display().to_string(),
    ]);
    // Listening before anyone connects.
    for _ in 0..100 {
        if pod.get(&format!("http://127.0.0.1:{port}/")).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

/// A TCP listener and a UDP socket on `port` of every address.
pub fn bind_tcp_udp(port: u16) -> std::io::Result<(std::net::TcpListener, std::net::UdpSocket)> {
    Ok((
        std::net::TcpListener::bind(("0.0.0.0", port))?,
        std::net::UdpSocket::bind(("0.0.0.0", port))?,
    ))
}

/// Answers on `tcp` and `udp` as upstream's agnhost answers its network policy probes, on
/// threads of their own: a TCP connection gets `name` and a newline, then an echo of what
/// it sends; a UDP datagram gets `name` back.
pub fn serve_tcp_udp(tcp: std::net::TcpListener, udp: std::net::UdpSocket, name: &str) {
    let hello = format!("{name}\n");
    std::thread::spawn(move || {
        for conn in tcp.incoming().flatten() {
            let hello = hello.clone();
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut conn = conn;
                if conn.write_all(hello.as_bytes()).is_err() {
                    return;
                }
                let mut buf = [0u8; 512];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let name = name.to_owned();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((_, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(name.as_bytes(), from);
        }
    });
}

/// The next UDP source port [`reach`] uses. Every probe comes from a port of its own: a
/// datagram reusing the ports of an earlier allowed probe would pass as part of that flow
/// (conntrack keeps UDP flows for minutes), whatever the policies now say.
static NEXT_UDP_PORT: AtomicU32 = AtomicU32::new(20_000);

/// Where [`reach`]'s UDP source ports start: a process probing after another one from the
/// same namespace must not reuse its ports.
pub fn udp_source_ports_from(first: u16) {
    NEXT_UDP_PORT.store(u32::from(first), Ordering::Relaxed);
}

/// What the server at `to` (one [`serve_tcp_udp`] runs) answers over `protocol`
/// ("TCP" or "UDP") within `timeout`, asked from the calling thread's network namespace:
/// its name, or None when nothing came back.
pub fn reach(
    to: std::net::SocketAddr,
    protocol: &str,
    timeout: std::time::Duration,
) -> Option<String> {
    use std::io::Read;
    match protocol {
        "TCP" => {
            let mut conn = std::net::TcpStream::connect_timeout(&to, timeout).ok()?;
            conn.set_read_timeout(Some(timeout)).ok()?;
            let mut buf = [0u8; 256];
            let n = conn.read(&mut buf).ok()?;
            let text = std::str::from_utf8(&buf[..n]).ok()?;
            Some(text.trim_end().to_owned())
        }
        "UDP" => {
            let socket = loop {
                let port = NEXT_UDP_PORT.fetch_add(1, Ordering::Relaxed);
                assert!(port < 65_000, "out of UDP source ports");
                if let Ok(s) = std::net::UdpSocket::bind(("0.0.0.0", port as u16)) {
                    break s;
                }
            };
            socket.set_read_timeout(Some(timeout)).ok()?;
            socket.send_to(b"probe", to).ok()?;
            let mut buf = [0u8; 256];
            let (n, _) = socket.recv_from(&mut buf).ok()?;
            Some(String::from_utf8_lossy(&buf[..n]).into_owned())
        }
        other => panic!("no probe for {other}"),
    }
}
