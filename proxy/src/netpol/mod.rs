//! NetworkPolicy enforcement on the node (issue #19), being built: `semantics` is what a
//! policy means for one connection, the reference the nftables rules will be checked against
//! and the expected reachability tables of the policy tests are computed from. The rules
//! themselves, their sync and the agent's flag come next.

pub mod semantics;
