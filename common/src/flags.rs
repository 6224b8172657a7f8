//! Command-line pieces every control-plane component shares: upstream's leader-election
//! flags and Go-style durations ("15s", "1m30s" is not needed; "500ms", "2m", plain seconds).

use std::time::Duration;

use crate::leader_election::LeaderElection;

/// A duration as Go writes it: "15s", "1m", "500ms", "1h30m", "2m0s" (what a
/// KubeletConfiguration's metav1.Duration holds), or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: use h, m, s, ms, us or ns, e.g. 1m30s");
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += n * unit;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// An address flag of a server (`0.0.0.0:10256`); empty turns the server off (None).
pub fn bind_address(flag: &str) -> crate::Result<Option<std::net::SocketAddr>> {
    if flag.is_empty() {
        return Ok(None);
    }
    let addr = flag
        .parse()
        .map_err(|e| crate::Error::Invalid(format!("bad address {flag:?}: {e}")))?;
    Ok(Some(addr))
}

/// `--kubeconfig` plus upstream's `--leader-elect*` flags, flattened into a component's flags.
#[derive(clap::Args, Debug, Clone)]
pub struct LeaderElectionFlags {
    /// Elect a leader on a Lease before doing any work, so that only one of several
    /// replicas acts at a time.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = false)]
    pub leader_elect: bool,
    /// How long a leader's lease is valid without renewal.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader keeps retrying to renew before it gives up leadership.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
    /// Namespace of the leader election Lease.
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,
    /// Name of the leader election Lease (default: the component's name).
    #[arg(long)]
    pub leader_elect_resource_name: Option<String>,
}

impl Default for LeaderElectionFlags {
    /// The flags' defaults.
    fn default() -> Self {
        LeaderElectionFlags {
            leader_elect: true,
            leader_elect_lease_duration: Duration::from_secs(15),
            leader_elect_renew_deadline: Duration::from_secs(10),
            leader_elect_retry_period: Duration::from_secs(2),
            leader_elect_resource_namespace: "kube-system".into(),
            leader_elect_resource_name: None,
        }
    }
}

impl LeaderElectionFlags {
    /// The election these flags describe, with a per-process identity as client-go makes
    /// it (hostname and a random suffix).
    pub fn election(&self, component: &str) -> LeaderElection {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        LeaderElection {
            namespace: self.leader_elect_resource_namespace.clone(),
            name: self
                .leader_elect_resource_name
                .clone()
                .unwrap_or_else(|| component.to_owned()),
            identity: format!("{host}_{:016x}", rand_u64()),
            lease_duration: self.leader_elect_lease_duration,
            renew_deadline: self.leader_elect_renew_deadline,
            retry_period: self.leader_elect_retry_period,
        }
    }
}

/// Resolves when leadership held through `rx` is lost; never when there is no election.
pub async fn leadership_lost(rx: Option<&mut tokio::sync::watch::Receiver<bool>>) {
    match rx {
        Some(rx) => {
            let _ = rx.wait_for(|l| !*l).await;
        }
        None => std::future::pending().await,
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_writes_them() {
        let secs = |s: &str| parse_duration(s).map(|d| d.as_secs_f64());
        assert_eq!(secs("15s"), Ok(15.0));
        assert_eq!(secs("500ms"), Ok(0.5));
        assert_eq!(secs("2m0s"), Ok(120.0));
        assert_eq!(secs("1h30m"), Ok(5400.0));
        assert_eq!(secs("1.5h"), Ok(5400.0));
        assert_eq!(secs("90"), Ok(90.0));
        assert_eq!(secs("250us"), Ok(0.00025));
        for bad in ["", "s", "10x", "1m30", "-5s", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
