//! The bus handle: attaching to a region, handing out publishers and subscribers, leaving.

use crate::blocks::atomics::Ordering;
use crate::handle::Inner;
use crate::observer::Observer;
use crate::publisher::Publisher;
use crate::recovery::snapshot::Snapshot;
use crate::recovery::{lock_table, lock_table_to_join};
use crate::recovery::{reap_locked, remove_consumer, ReapReport};
use crate::region::interest::Wanted;
use crate::region::layout::{KIND_FANOUT, KIND_GROUP};
use crate::region::stats::BridgeCounts;
use crate::region::table::{validate_group, Role};
use crate::region::{check_geometry, Region};
use crate::subscriber::Subscriber;
use crate::{shm_path, validate_name, BusConfig, BusError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An attached bus: a shared-memory region at `/dev/shm/event_engine.<name>` and this handle's row
/// in its process table. Cheap to clone; the row is given up when the last clone (and every
/// publisher and subscriber made from it) is dropped.
///
/// ```
/// # struct Unlink(String);
/// # impl Drop for Unlink { fn drop(&mut self) { let _ = event_engine_shm::Bus::unlink(&self.0); } }
/// # let name = format!("doc-bus-{}", std::process::id());
/// # let _unlink = Unlink(name.clone());
/// use event_engine_shm::{Bus, BusConfig, Codec};
/// use std::time::Duration;
/// let cfg = BusConfig { ring_capacity: 64, max_message: 4096, slab_memory: Some(20 << 10), ..BusConfig::default() };
/// let bus = Bus::create(&name, &cfg)?;
/// let again = Bus::open(&name)?; // another process would do this
/// let mut workers = again.subscribe_group("workers")?;
/// bus.publisher()?.publish("job", Codec::Raw, b"payload", None)?;
/// assert_eq!(workers.recv(Some(Duration::from_secs(1)))?.unwrap().payload, b"payload");
/// assert_eq!(bus.snapshot().groups[0].name, "workers");
/// # drop(workers); drop(again); drop(bus);
/// Bus::unlink(&name)?;
/// # Ok::<(), event_engine_shm::BusError>(())
/// ```
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

impl Bus {
    fn attach(region: Region) -> Result<Bus, BusError> {
        let row = lock_table_to_join(&region)?.claim_row(Role::Bus, u32::MAX)?;
        Ok(Bus {
            inner: Arc::new(Inner::new(region, Some(row))),
        })
    }

    /// Creates bus `name` with geometry `cfg`; [`BusError::Exists`] if it is already there.
    pub fn create(name: &str, cfg: &BusConfig) -> Result<Bus, BusError> {
        Bus::attach(Region::create(name, cfg)?)
    }

    /// Attaches to existing bus `name`, taking the geometry from its header.
    ///
    /// Joining takes the bus's table lock; if a live process holds it for more than a few
    /// seconds (a process stopped with SIGSTOP or in a debugger while joining or leaving), this
    /// fails with [`BusError::LockHeld`] naming that process instead of waiting for it.
    pub fn open(name: &str) -> Result<Bus, BusError> {
        Bus::open_with(name, false)
    }

    /// Attaches to existing bus `name`, optionally even if another user owns it.
    pub fn open_with(name: &str, allow_foreign_owner: bool) -> Result<Bus, BusError> {
        Bus::attach(Region::open(name, allow_foreign_owner, false)?)
    }

    /// Attaches to bus `name`, creating it with `cfg` if absent; [`BusError::BadConfig`] if `cfg`
    /// is no possible geometry, [`BusError::Mismatch`] if the bus exists with another geometry
    /// or group retention.
    pub fn open_or_create(name: &str, cfg: &BusConfig) -> Result<Bus, BusError> {
        validate_name(name)?;
        // An impossible geometry is that, whether or not the bus exists.
        cfg.check()?;
        let start = Instant::now();
        loop {
            match Region::open(name, cfg.allow_foreign_owner, false) {
                Ok(region) => {
                    check_geometry(name, cfg, &region)?;
                    return Bus::attach(region);
                }
                Err(BusError::NotFound { .. }) => match Region::create(name, cfg) {
                    Ok(region) => return Bus::attach(region),
                    // Someone else created it first: attach to theirs.
                    Err(BusError::Exists { .. }) if start.elapsed() < Duration::from_secs(5) => {
                        continue
                    }
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }

    /// The bus name.
    pub fn name(&self) -> &str {
        self.inner.region.name()
    }

    /// The bus geometry and group retention (mode and owner policy are not stored and read as
    /// defaults).
    pub fn config(&self) -> BusConfig {
        let region = &self.inner.region;
        BusConfig {
            group_retention_ms: region.header().group_retention_ms.load(Ordering::Relaxed),
            ..region.layout().config()
        }
    }

    /// The largest payload a message may carry, in bytes.
    pub fn max_payload(&self) -> usize {
        self.inner.region.layout().max_message as usize
    }

    /// A new publisher (takes a process-table row).
    pub fn publisher(&self) -> Result<Publisher, BusError> {
        let row = lock_table_to_join(&self.inner.region)?.claim_row(Role::Publisher, u32::MAX)?;
        Ok(Publisher::new(self.inner.clone(), row))
    }

    /// A fan-out subscriber of every topic: receives every message published from now on.
    pub fn subscribe(&self) -> Result<Subscriber, BusError> {
        self.subscribe_with(&SubscribeOptions::default())
    }

    /// A member of group `group` (1..=64 characters of `[A-Za-z0-9_.-]`) wanting every topic:
    /// each message published from the group's creation on goes to exactly one member.
    pub fn subscribe_group(&self, group: &str) -> Result<Subscriber, BusError> {
        self.subscribe_with(&SubscribeOptions {
            group: Some(group.to_string()),
            ..SubscribeOptions::default()
        })
    }

    /// A subscriber as `opts` says: fan-out or a group member, wanting every topic or only
    /// those matching some patterns (`docs/delivery.md`). A bad group name or pattern is an
    /// error naming it, and nothing is attached.
    ///
    /// ```
    /// # struct Unlink(String);
    /// # impl Drop for Unlink { fn drop(&mut self) { let _ = event_engine_shm::Bus::unlink(&self.0); } }
    /// # let name = format!("doc-interest-{}", std::process::id());
    /// # let _unlink = Unlink(name.clone());
    /// use event_engine_shm::{Bus, BusConfig, Codec, SubscribeOptions};
    /// use std::time::Duration;
    /// let cfg = BusConfig { ring_capacity: 64, max_message: 4096, slab_memory: Some(20 << 10), ..BusConfig::default() };
    /// let bus = Bus::create(&name, &cfg)?;
    /// let mut trades = bus.subscribe_with(&SubscribeOptions {
    ///     topics: Some(vec!["Market.Trade.{symbol}".into()]),
    ///     ..SubscribeOptions::default()
    /// })?;
    /// let mut publisher = bus.publisher()?;
    /// // Nobody wants quotes: the message takes no ring position and is counted as unrouted.
    /// assert_eq!(publisher.publish("Market.Quote.AAPL", Codec::Raw, b"q", None)?, None);
    /// assert!(publisher.publish("Market.Trade.AAPL", Codec::Raw, b"t", None)?.is_some());
    /// assert_eq!(trades.recv(Some(Duration::from_secs(1)))?.unwrap().topic, "Market.Trade.AAPL");
    /// # drop(trades); drop(publisher); drop(bus);
    /// # Ok::<(), event_engine_shm::BusError>(())
    /// ```
    pub fn subscribe_with(&self, opts: &SubscribeOptions) -> Result<Subscriber, BusError> {
        if let Some(group) = &opts.group {
            validate_group(group)?;
            if opts.lossy {
                return Err(BusError::BadConfig {
                    what: format!(
                        "group {group:?} cannot be lossy: a group shares its messages among its \
                         members, so a message taken from it would be lost to every member; \
                         subscribe lossy without a group"
                    ),
                });
            }
        }
        let wanted = Wanted::from_topics(opts.topics.as_deref())?;
        let g = lock_table_to_join(&self.inner.region)?;
        if opts.group.is_some() {
            // A worker restarted after a crash: its dead predecessor's claim goes back to the
            // group now, not at some later reap.
            reap_locked(&g);
        }
        let existing = opts.group.as_deref().and_then(|name| g.find_group(name));
        let (idx, new) = match (&opts.group, existing) {
            (Some(_), Some(idx)) => (idx, false),
            (Some(name), None) => (g.add_consumer(KIND_GROUP, name, &wanted, false)?, true),
            (None, _) => (g.add_consumer(KIND_FANOUT, "", &wanted, opts.lossy)?, true),
        };
        let role = if opts.group.is_some() {
            Role::GroupMember
        } else {
            Role::Subscriber
        };
        let row = match g.claim_row(role, idx) {
            Ok(row) => row,
            Err(e) => {
                if new {
                    remove_consumer(&g, idx, &mut ReapReport::default());
                }
                return Err(e);
            }
        };
        if !new {
            let c = &self.inner.region.consumers()[idx as usize];
            c.members.fetch_add(1, Ordering::Relaxed);
            // A group kept without members (`docs/delivery.md`) has one again.
            c.orphaned_ns.store(0, Ordering::Relaxed);
            let (_, had) = self.inner.region.read_interest(idx as usize);
            let union = had.union(&wanted);
            if union != had {
                g.write_interest(idx as usize, &union);
            }
        }
        drop(g);
        Ok(Subscriber::new(
            self.inner.clone(),
            row,
            idx,
            opts.group.is_some(),
            opts.lossy,
        ))
    }

    /// A lossy observer that sees messages while they are in the ring and never holds publishers
    /// back (see [`Observer`] for what it misses). Tools that only watch should prefer [`observe`],
    /// which does not need a joined bus.
    pub fn observe(&self) -> Result<Observer, BusError> {
        Ok(Observer::new(self.inner.clone()))
    }

    /// Says in this handle's process-table row that this process bridges the bus to `server`
    /// (a NATS server URL, shown by `event-engine inspect` and `watch`, cut to 64 bytes: leave
    /// credentials out of it), and returns what the bridge stores its counters through.
    pub fn announce_bridge(&self, server: &str) -> BridgeCounters {
        if let Some(stats) = self.inner.row.and_then(|r| self.inner.region.row_stats(r)) {
            stats.set_bridge(server);
        }
        BridgeCounters {
            inner: self.inner.clone(),
        }
    }

    /// A read-only view of the bus for tools.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::read(&self.inner.region)
    }

    /// Reclaims dead processes now (and sweeps the region if no live publisher or subscriber is
    /// left); [`BusError::LockHeld`] if a live process keeps the table lock (see [`Bus::open`]).
    pub fn reap(&self) -> Result<ReapReport, BusError> {
        let g = lock_table(&self.inner.region)?;
        Ok(reap_locked(&g))
    }

    /// Removes the bus file. Attached processes keep their mapping; new attachers get `NotFound`.
    pub fn unlink(name: &str) -> Result<(), BusError> {
        validate_name(name)?;
        std::fs::remove_file(shm_path(name)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                BusError::NotFound {
                    name: name.to_string(),
                }
            } else {
                BusError::io(name, e)
            }
        })
    }
}

/// A bridge's counters in its bus handle's row (made by [`Bus::announce_bridge`]), for tools
/// to read. One thread stores them (plain stores, no read-modify-write).
pub struct BridgeCounters {
    inner: Arc<Inner>,
}

impl BridgeCounters {
    /// Stores the counters (see [`BridgeRow`](crate::BridgeRow) for what each counts).
    pub fn store(&self, counts: &BridgeCounts) {
        if let Some(stats) = self.inner.row.and_then(|r| self.inner.region.row_stats(r)) {
            stats.store_bridge(counts);
        }
    }
}

/// How [`Bus::subscribe_with`] subscribes.
#[derive(Clone, Debug, Default)]
pub struct SubscribeOptions {
    /// Join this work-sharing group (each message goes to one member) instead of receiving
    /// every message as a fan-out subscriber.
    pub group: Option<String>,
    /// Only topics matching one of these patterns (topic grammar); `None`: every topic. A group
    /// wants what any of its members asked for since it was created.
    pub topics: Option<Vec<String>>,
    /// A fan-out subscriber that never holds publishers back (a monitor, a dashboard, a
    /// logger): when it is a full ring behind, publishers take the messages it has not read
    /// instead of waiting for it, and count them ([`Subscriber::missed`]). Default: lossless.
    /// A group cannot be lossy.
    pub lossy: bool,
}

/// Opens bus `name` read-only and takes a snapshot, without joining its process table.
pub fn inspect(name: &str) -> Result<Snapshot, BusError> {
    inspect_with(name, false)
}

/// [`inspect`], optionally of a bus owned by another user.
pub fn inspect_with(name: &str, allow_foreign_owner: bool) -> Result<Snapshot, BusError> {
    let region = Region::open(name, allow_foreign_owner, true)?;
    Ok(Snapshot::read(&region))
}

/// A lossy [`Observer`] of bus `name` that maps the region read-only and never joins its process
/// table: it takes no row, cannot fail because the table is full, and leaves nothing behind if it
/// is killed. It sees what [`Bus::observe`] sees.
pub fn observe(name: &str) -> Result<Observer, BusError> {
    observe_with(name, false)
}

/// [`observe`], optionally of a bus owned by another user.
pub fn observe_with(name: &str, allow_foreign_owner: bool) -> Result<Observer, BusError> {
    let region = Region::open(name, allow_foreign_owner, true)?;
    Ok(Observer::new(Arc::new(Inner::new(region, None))))
}
