//! Splitting Windows hosts between pusher replicas (pure; the Leases are [`crate::source::shards`]).
//!
//! Hosts map to a fixed number of shards by a stable hash of their address (jump consistent
//! hashing: one SHA-256 per host; going from `n` to `n + 1` shards moves only a `1 / (n + 1)` share
//! of the hosts). Each shard is one Lease. Live replicas share the shards by [`quota`]: sorted by
//! identity, each holds `shards / live` and the first `shards % live` one more, so the quotas add
//! up to exactly the shard count. Which shards a replica takes or gives back follows its own
//! stable [`preference`] order, so replicas rarely reach for the same one and a replica joining
//! or leaving moves only the shards its quota says must move.

use super::Gate;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// One shard this replica holds: the gate its hosts start through, and which holding this is (a
/// new epoch each time the shard is taken, so nothing learned in an earlier holding is trusted:
/// another replica may have changed its hosts in between).
#[derive(Debug, Clone)]
pub struct HeldShard {
    pub epoch: u64,
    pub gate: Arc<Gate>,
}

/// The shards this replica holds now, by shard number.
#[derive(Debug, Clone, Default)]
pub struct Held {
    pub shards: usize,
    pub held: Vec<Option<HeldShard>>,
}

impl Held {
    pub fn none(shards: usize) -> Held {
        Held { shards, held: vec![None; shards] }
    }

    /// The holding a host's shard is in, if this replica holds it.
    pub fn of(&self, address: &str) -> Option<&HeldShard> {
        self.held.get(shard_of(address, self.shards))?.as_ref()
    }

    pub fn count(&self) -> usize {
        self.held.iter().flatten().count()
    }

    /// Each shard's epoch, `None` where not held.
    pub fn epochs(&self) -> Vec<Option<u64>> {
        self.held.iter().map(|h| h.as_ref().map(|h| h.epoch)).collect()
    }
}

fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("a SHA-256 digest has 8 bytes"))
}

/// The shard (`0..shards`) of a host address. DNS names compare without case.
pub fn shard_of(address: &str, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let mut key = hash64(&[b"shard", address.to_ascii_lowercase().as_bytes()]);
    // Lamping and Veach's jump consistent hash.
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < shards as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as usize
}

/// The shards in the order `identity` prefers them (highest random weight first).
pub fn preference(identity: &str, shards: usize) -> Vec<usize> {
    let mut order: Vec<(u64, usize)> =
        (0..shards).map(|s| (hash64(&[b"prefer", identity.as_bytes(), &s.to_be_bytes()]), s)).collect();
    order.sort_by(|a, b| b.cmp(a));
    order.into_iter().map(|(_, s)| s).collect()
}

/// How many shards `me` should hold when `live` (every live replica, `me` included) share them.
/// Zero when `me` is not among them (a standby with no member slot).
pub fn quota(live: &[String], me: &str, shards: usize) -> usize {
    let mut sorted: Vec<&str> = live.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let Some(rank) = sorted.iter().position(|m| *m == me) else { return 0 };
    let n = sorted.len();
    shards / n + usize::from(rank < shards % n)
}

/// A stable number in `[0, 1)` for a key: spreads per-host timings (the verification pass) so
/// that hosts confirmed together are not all due together.
pub fn jitter(key: &str) -> f64 {
    (hash64(&[b"jitter", key.as_bytes()]) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256)).collect()
    }

    #[test]
    fn hosts_spread_evenly_and_a_new_shard_moves_only_its_share() {
        let hosts = addresses(20_000);
        for shards in [2, 3, 8, 31] {
            let mut counts = vec![0usize; shards];
            for h in &hosts {
                counts[shard_of(h, shards)] += 1;
            }
            let mean = hosts.len() / shards;
            assert!(counts.iter().all(|c| c.abs_diff(mean) < mean / 10), "{shards} shards: {counts:?}");
            let moved = hosts.iter().filter(|h| shard_of(h, shards) != shard_of(h, shards + 1)).count();
            let share = hosts.len() / (shards + 1);
            // Only hosts that go to the new shard move, about 1 / (shards + 1) of them.
            assert!(moved.abs_diff(share) < share / 10, "{shards} -> {}: {moved} moved", shards + 1);
            assert!(hosts.iter().all(|h| {
                let (a, b) = (shard_of(h, shards), shard_of(h, shards + 1));
                a == b || b == shards
            }));
        }
        assert_eq!(shard_of("Win-1.Example.com", 8), shard_of("win-1.example.com", 8));
        assert_eq!(shard_of("anything", 1), 0);
    }

    #[test]
    fn the_mapping_is_stable_across_builds() {
        // Replicas of different versions must agree on where a host belongs.
        let got: Vec<usize> = ["10.0.0.1", "10.0.0.2", "win-7.corp.example"].iter().map(|h| shard_of(h, 8)).collect();
        assert_eq!(got, GOLDEN_SHARDS);
    }
    const GOLDEN_SHARDS: [usize; 3] = [6, 6, 5];

    #[test]
    fn quotas_add_up_to_the_shard_count_whoever_asks() {
        for shards in 1..12 {
            for n in 1..6 {
                let live: Vec<String> = (0..n).map(|i| format!("pusher-{i}")).collect();
                let total: usize = live.iter().map(|me| quota(&live, me, shards)).sum();
                assert_eq!(total, shards, "{shards} shards, {n} replicas");
                let qs: Vec<usize> = live.iter().map(|me| quota(&live, me, shards)).collect();
                assert!(qs.iter().max().unwrap() - qs.iter().min().unwrap() <= 1, "{qs:?}");
            }
        }
        assert_eq!(quota(&["a".into()], "standby", 4), 0);
    }

    #[test]
    fn preferences_differ_between_replicas_and_cover_every_shard() {
        let (a, b) = (preference("pusher-a", 16), preference("pusher-b", 16));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..16).collect::<Vec<_>>());
        assert_ne!(a, b);
        assert_eq!(a, preference("pusher-a", 16));
    }

    #[test]
    fn jitter_is_stable_and_spread() {
        assert_eq!(jitter("root@10.0.0.1:22"), jitter("root@10.0.0.1:22"));
        let mut buckets = [0usize; 10];
        for h in addresses(10_000) {
            let j = jitter(&h);
            assert!((0.0..1.0).contains(&j));
            buckets[(j * 10.0) as usize] += 1;
        }
        assert!(buckets.iter().all(|b| b.abs_diff(1000) < 150), "{buckets:?}");
    }
}
