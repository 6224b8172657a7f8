//! Command-line pieces every component shares: upstream's leader-election flags, durations
//! as Go's time.ParseDuration reads them ("15s", "500ms", "1m30s") and bind addresses.

use std::time::Duration;

use crate::leader_election::LeaderElection;

/// A duration flag: plain seconds ("90"), or a duration as Go writes it ("15s", "500ms",
/// "1h30m", "2m0s": what a KubeletConfiguration's metav1.Duration holds); not negative.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let secs = match s.parse::<f64>() {
        Ok(secs) => secs,
        Err(_) => parse_go_duration(s)?,
    };
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("invalid duration {s:?}: it must be 0 or more"))
}

/// Go's time.ParseDuration, in seconds: `[-+]` then numbers with units ns, us, µs, ms, s, m, h.
pub fn parse_go_duration(s: &str) -> Result<f64, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (sign, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    if rest == "0" {
        return Ok(0.0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            u => return Err(format!("time: unknown unit {u:?} in duration {s:?}")),
        };
        rest = &rest[unit_len..];
        total += number * unit;
    }
    Ok(sign * total)
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
    fn go_durations_as_gos_parser_reads_them() {
        assert_eq!(parse_go_duration("0"), Ok(0.0));
        assert_eq!(parse_go_duration("1m30s"), Ok(90.0));
        assert_eq!(parse_go_duration("1.5h"), Ok(5400.0));
        assert_eq!(parse_go_duration("250ms"), Ok(0.25));
        assert_eq!(parse_go_duration("-2s"), Ok(-2.0));
        assert_eq!(
            parse_go_duration("abc"),
            Err("time: invalid duration \"abc\"".into())
        );
        assert_eq!(
            parse_go_duration("5"),
            Err("time: missing unit in duration \"5\"".into())
        );
        assert!(parse_go_duration("5d").is_err());
        assert!(parse_go_duration("").is_err());
    }

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
