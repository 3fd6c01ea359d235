//! `Lease`: leadership as a key in a JetStream key-value bucket
//! (`LATCH_LEADER`, replicated like the stream). The bucket's `max_age` is
//! the lease: an entry the leader stops renewing expires, and a standby's
//! `create` (which succeeds only when the key is absent) takes it. Renewal
//! is a compare-and-set on the entry's revision, so two nodes never both
//! think they renewed. The lease decides who *tries* to lead; what makes a
//! deposed leader harmless is the stream's fencing (see `LeaderSession`).
//!
//! The entry names the leader's node id and URL, signed with the cluster's
//! signing key: standbys redirect writes only to a URL a latchd signed, so
//! someone who can write to the bucket on a shared NATS can at worst stop
//! elections (a denial of service that NATS permissions close), never send
//! clients and their tokens elsewhere.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use latch_bus::{SigningKey, TrustedKeys};
use serde::{Deserialize, Serialize};

use super::ha_config::HaConfig;
use super::ha_state::LeaderInfo;
use super::{HaError, nats};

pub const LEASE_BUCKET: &str = "LATCH_LEADER";
const LEASE_KEY: &str = "leader";

#[derive(Serialize, Deserialize)]
struct LeaseEntry {
    node_id: String,
    url: String,
    signature: String,
}

fn signed_text(node_id: &str, url: &str) -> Vec<u8> {
    format!("latch-lease-v1\n{node_id}\n{url}").into_bytes()
}

pub struct Lease {
    store: kv::Store,
    value: bytes::Bytes,
}

/// What a renewal came to.
pub enum Renewal {
    /// Still ours, now at this revision.
    Renewed(u64),
    /// The entry is no longer ours (it expired and was taken, or was
    /// deleted): this node no longer leads.
    Lost,
}

/// What a look at the lease found.
pub enum Holder {
    /// Nobody holds it: it may be taken.
    Vacant,
    /// A latchd of this cluster holds it (its entry is signed).
    Node(LeaderInfo),
    /// Something holds it that no latchd of this cluster signed.
    Unknown,
}

impl Lease {
    pub async fn open(
        js: &jetstream::Context,
        config: &HaConfig,
        key: &SigningKey,
    ) -> Result<Self, HaError> {
        let store = match js.get_key_value(LEASE_BUCKET).await {
            Ok(store) => store,
            Err(_) => {
                // The bucket's stream, made directly: async-nats'
                // `create_key_value` first reads the account's info, which
                // it cannot parse from nats-server 2.9.
                js.get_or_create_stream(jetstream::stream::Config {
                    name: format!("KV_{LEASE_BUCKET}"),
                    description: Some("latchd HA leadership lease".to_owned()),
                    subjects: vec![format!("$KV.{LEASE_BUCKET}.>")],
                    max_messages_per_subject: 1,
                    max_age: config.lease,
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: config.replicas,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: jetstream::stream::DiscardPolicy::New,
                    ..Default::default()
                })
                .await
                .map_err(nats)?;
                js.get_key_value(LEASE_BUCKET).await.map_err(nats)?
            }
        };
        let entry = LeaseEntry {
            node_id: config.node_id.clone(),
            url: config.advertise_url.clone(),
            signature: key.sign(&signed_text(&config.node_id, &config.advertise_url)),
        };
        let value = serde_json::to_vec(&entry).expect("a lease entry serialises").into();
        Ok(Self { store, value })
    }

    /// Takes the lease if nobody holds it: `Some(revision)` when taken.
    pub async fn try_acquire(&self) -> Result<Option<u64>, HaError> {
        match self.store.create(LEASE_KEY, self.value.clone()).await {
            Ok(revision) => Ok(Some(revision)),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(error) => Err(nats(error)),
        }
    }

    /// Renews the lease held at `revision`.
    pub async fn renew(&self, revision: u64) -> Result<Renewal, HaError> {
        match self
            .store
            .update(LEASE_KEY, self.value.clone(), revision)
            .await
        {
            Ok(revision) => Ok(Renewal::Renewed(revision)),
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                Ok(Renewal::Lost)
            }
            Err(error) => Err(nats(error)),
        }
    }

    /// Renews the lease held at the revision in `held` every `every`,
    /// storing each new revision there, until it is lost (then returns) or
    /// until `until` (then renews no more, and never returns: the lease
    /// lapses). A renewal that fails or hangs is tried again at the next
    /// tick: the caller's own renewal afterwards decides whether it still
    /// holds the lease. A node keeps its lease this way while it catches
    /// up.
    pub async fn keep(&self, held: &AtomicU64, every: Duration, until: Instant) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if Instant::now() >= until {
                return std::future::pending().await;
            }
            match tokio::time::timeout(every, self.renew(held.load(Ordering::Relaxed))).await {
                Ok(Ok(Renewal::Renewed(revision))) => held.store(revision, Ordering::Relaxed),
                Ok(Ok(Renewal::Lost)) => return,
                Ok(Err(error)) => tracing::debug!(%error, "ha: renewing a kept lease"),
                Err(_) => tracing::debug!("ha: renewing a kept lease timed out"),
            }
        }
    }

    /// Gives the lease up at once (a stepping-down leader), so a standby
    /// need not wait for it to expire. Only our own revision is deleted.
    pub async fn release(&self, revision: u64) {
        if let Err(error) = self
            .store
            .delete_expect_revision(LEASE_KEY, Some(revision))
            .await
        {
            tracing::debug!(%error, "ha: releasing the lease (it expires anyway)");
        }
    }

    /// Who holds the lease now.
    pub async fn holder(&self, trusted: &TrustedKeys) -> Result<Holder, HaError> {
        let Some(entry) = self.store.entry(LEASE_KEY).await.map_err(nats)? else {
            return Ok(Holder::Vacant);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(Holder::Vacant);
        }
        let Ok(parsed) = serde_json::from_slice::<LeaseEntry>(&entry.value) else {
            return Ok(Holder::Unknown);
        };
        if trusted
            .verify(&signed_text(&parsed.node_id, &parsed.url), &parsed.signature)
            .is_err()
        {
            return Ok(Holder::Unknown);
        }
        Ok(Holder::Node(LeaderInfo {
            node_id: parsed.node_id,
            url: parsed.url,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::time::{Duration, Instant};

    use latch_bus::SigningKey;

    use super::{Lease, Renewal};
    use crate::ha::HaConfig;

    /// How often a node renews a lease of a second.
    const EVERY: Duration = Duration::from_millis(1000 / 6);

    /// One nats-server and two nodes' view of a one-second lease, the
    /// first holding it at the revision returned.
    async fn two_nodes() -> (latch_testkit::NatsServer, Lease, Lease, u64) {
        let nats = latch_testkit::NatsServer::start();
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let js = async_nats::jetstream::new(client);
        let key = SigningKey::generate().unwrap();
        let mut leases = Vec::new();
        for node in ["catching-up", "other"] {
            let mut config = HaConfig::new(node, format!("http://{node}.invalid"));
            config.replicas = 1;
            config.lease = Duration::from_secs(1);
            leases.push(Lease::open(&js, &config, &key).await.expect("the lease bucket"));
        }
        let (theirs, ours) = (leases.pop().unwrap(), leases.pop().unwrap());
        let revision = ours.try_acquire().await.unwrap().expect("vacant");
        (nats, ours, theirs, revision)
    }

    /// When `lease` was taken, trying every 50 ms for at most `within`.
    async fn taken_by(lease: &Lease, within: Duration) -> Instant {
        let started = Instant::now();
        loop {
            if lease.try_acquire().await.unwrap().is_some() {
                return Instant::now();
            }
            assert!(started.elapsed() < within, "the lease never lapsed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn forever() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    /// A node that took the lease and takes longer than the lease to catch
    /// up keeps it: no other node takes it meanwhile (they would each take
    /// it in turn, catch up, find it lost, and nobody would ever lead).
    /// Once it is no longer kept, it lapses and another node takes it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_kept_while_catching_up_is_never_taken_and_lapses_when_let_go() {
        let (_nats, ours, theirs, revision) = two_nodes().await;
        let held = AtomicU64::new(revision);
        let contender = async {
            // Three leases long, another node tries to take it.
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(3) {
                assert_eq!(theirs.try_acquire().await.unwrap(), None, "another node took a kept lease");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::select! {
            () = contender => {}
            () = ours.keep(&held, EVERY, forever()) => panic!("the kept lease was lost"),
        }
        let kept = held.load(std::sync::atomic::Ordering::Relaxed);
        assert!(kept > revision, "the lease was renewed while kept");
        assert!(matches!(ours.renew(kept).await.unwrap(), Renewal::Renewed(_)));
        // Let go: within about a lease another node takes it.
        taken_by(&theirs, Duration::from_secs(10)).await;
    }

    /// Keeping a lease ends as soon as another node holds it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keeping_a_lease_ends_once_another_node_holds_it() {
        let (_nats, ours, theirs, revision) = two_nodes().await;
        // The entry is taken from under it (as after a lapse).
        ours.release(revision).await;
        theirs.try_acquire().await.unwrap().expect("vacant after the release");
        let held = AtomicU64::new(revision);
        tokio::time::timeout(Duration::from_secs(5), ours.keep(&held, EVERY, forever()))
            .await
            .expect("keep returns once the lease is lost");
    }

    /// Kept only until a deadline: past it the lease lapses and another
    /// node takes it, though the keeper is still catching up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_is_kept_only_until_its_deadline() {
        let (_nats, ours, theirs, revision) = two_nodes().await;
        let held = AtomicU64::new(revision);
        let until = Instant::now() + Duration::from_secs(2);
        let taken = tokio::select! {
            taken = taken_by(&theirs, Duration::from_secs(15)) => taken,
            () = ours.keep(&held, EVERY, until) => panic!("keep returned"),
        };
        assert!(taken >= until, "taken before the deadline");
    }
}
