//! netprobe: the network policy tests' server and prober inside a pod, as upstream's agnhost
//! is for its e2e suite (the cluster test builds an image of it).
//! `netprobe serve NAME PORT...` answers TCP and UDP on each port with NAME;
//! `netprobe probe TIMEOUT_MS FIRST_UDP_PORT ADDR:PORT/PROTOCOL...` tries each at once (UDP
//! from source ports counting up from FIRST_UDP_PORT, which the caller never repeats, so no
//! probe rides on an earlier one's conntrack entry) and prints one line per target: the
//! target and what answered (`-` for nothing).

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") if args.len() >= 3 => {
            for port in &args[2..] {
                let port: u16 = port.parse().expect("a port number");
                let (tcp, udp) = proxy::testing::bind_tcp_udp(port).expect("bind");
                proxy::testing::serve_tcp_udp(tcp, udp, &args[1]);
            }
            println!("serving {} on {}", args[1], args[2..].join(", "));
            loop {
                std::thread::park();
            }
        }
        Some("probe") if args.len() >= 3 => {
            let timeout = Duration::from_millis(args[1].parse().expect("a timeout in ms"));
            proxy::testing::udp_source_ports_from(args[2].parse().expect("a port number"));
            let answers: Vec<(String, Option<String>)> = std::thread::scope(|scope| {
                let running: Vec<_> = args[3..]
                    .iter()
                    .map(|target| {
                        scope.spawn(move || {
                            let (addr, protocol) = target.split_once('/').expect("ADDR:PORT/PROTO");
                            let addr = addr.parse().expect("ADDR:PORT");
                            (
                                target.clone(),
                                proxy::testing::reach(addr, protocol, timeout),
                            )
                        })
                    })
                    .collect();
                running.into_iter().map(|r| r.join().unwrap()).collect()
            });
            for (target, answer) in answers {
                println!("{target} {}", answer.as_deref().unwrap_or("-"));
            }
        }
        _ => {
            eprintln!(
                "usage: netprobe serve NAME PORT... | netprobe probe TIMEOUT_MS ADDR:PORT/PROTOCOL..."
            );
            std::process::exit(2);
        }
    }
}
