//! The host whose networking we program: this machine, or a network namespace of it
//! (tests and benchmarks run several "nodes" as namespaces). Changes go through the
//! `nft` and `ip` tools, in the namespace via `ip netns exec`.

use std::process::Stdio;

use crate::error::Error;
use common::error::Context as _;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

#[derive(Clone, Debug, Default)]
pub struct Host {
    netns: Option<String>,
}

impl Host {
    /// The namespace this process runs in.
    pub fn current() -> Host {
        Host { netns: None }
    }

    /// A named network namespace (`ip netns add NAME`).
    pub fn netns(name: &str) -> Host {
        Host {
            netns: Some(name.to_owned()),
        }
    }

    pub fn command(&self, program: &str) -> Command {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        };
        c.kill_on_drop(true);
        c
    }

    /// Runs a program to completion; its stdout, or an error with its stderr.
    pub async fn run(&self, program: &str, args: &[&str]) -> crate::Result<String> {
        let out = self
            .command(program)
            .args(args)
            .output()
            .await
            .io(|| format!("running {program}"))?;
        if !out.status.success() {
            return Err(Error::Host(format!(
                "{program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Applies an `nft -f` script as one transaction: all of it or nothing.
    pub async fn nft(&self, script: &str) -> crate::Result<()> {
        let mut child = self
            .command("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .io(|| "running nft (is nftables installed?)".into())?;
        let mut stdin = child.stdin.take().expect("nft's stdin is piped");
        stdin
            .write_all(script.as_bytes())
            .await
            .io(|| "writing to nft".into())?;
        drop(stdin);
        let out = child
            .wait_with_output()
            .await
            .io(|| "waiting for nft".into())?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            // nft's errors name a line of the script; a few lines are enough to see why.
            let first: Vec<&str> = err.lines().take(6).collect();
            return Err(Error::Host(format!(
                "nft transaction failed: {}",
                first.join("\n")
            )));
        }
        Ok(())
    }

    /// Sets a sysctl (a key like net.ipv4.ip_forward).
    pub async fn sysctl(&self, key: &str, value: &str) -> crate::Result<()> {
        self.run("sysctl", &["-qw", &format!("{key}={value}")])
            .await
            .map(drop)
    }
}
