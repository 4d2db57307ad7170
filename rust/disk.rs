// SPDX-License-Identifier: GPL-2.0

//! Building a disk: one builder for each place a device keeps its data
//! (memory, a backing store) or sends it (a lower device), then the
//! queue limits, the tag set, debugfs and the gendisk, the same for all.

use crate::{
    blk::{
        self,
        disk::{Checksum, IntegrityLimits},
        lower::Lower,
        wq::OwnedQueue,
        GenDisk, Limits, TagSet,
    },
    debugfs,
    device::Device,
    pi::{Csum, Profile},
    registry::{NameClaim, Registry, StoreClaim},
    settings::{DeviceConfig, Validated},
    store::Store,
    RdifOps,
};
use kernel::{prelude::*, sync::Arc};

/// A disk, its workqueue if it has one, and its claims on its name and
/// backing store; dropping it removes the disk.
pub(crate) struct RdifDisk {
    debugfs: Option<Pin<KBox<kernel::debugfs::Scope<debugfs::DebugData>>>>,
    disk: Option<GenDisk<RdifOps>>,
    wq: Option<Arc<OwnedQueue>>,
    _name: NameClaim,
    // Dropped last: the store is closed by then.
    _store: Option<KVec<StoreClaim>>,
}

impl Drop for RdifDisk {
    fn drop(&mut self) {
        // No debugfs access (injection may write to the store) once the
        // files are gone; removing them waits for those in progress.
        drop(self.debugfs.take());
        // Removing the disk waits for every request to end; the work item
        // may still be finishing, so wait for it before the workqueue goes
        // (never from the workqueue itself).
        drop(self.disk.take());
        if let Some(wq) = &self.wq {
            wq.flush();
        }
    }
}

/// The block layer's description of a profile.
fn integrity_limits(p: &Profile) -> IntegrityLimits {
    IntegrityLimits {
        csum: match p.csum() {
            Csum::None => Checksum::None,
            Csum::Ip => Checksum::Ip,
            Csum::Crc16 => Checksum::Crc,
            Csum::Crc64 => Checksum::Crc64,
        },
        ref_tag: p.ref_tag(),
        // `Profile` keeps these within `u8` (its invariants).
        metadata_size: p.metadata_size() as u8,
        pi_offset: p.pi_offset() as u8,
        pi_tuple_size: p.tuple_size() as u8,
        tag_size: p.tag_size() as u8,
        interval_exp: p.interval_shift() as u8,
    }
}

/// What a device keeps its data in, or forwards it to.
pub(crate) enum Backend<'a> {
    /// Memory.
    Memory,
    /// The backing store (file or block device) at the first path, its
    /// metadata at the second if given.
    Backing(&'a CStr, Option<&'a CStr>),
    /// Pass-through to the block device at this path.
    Lower(&'a CStr),
}

/// Opens the lower device at `path` of a pass-through device `name`, which
/// must have the integrity profile `p` configures, and a logical block
/// size no larger than `p`'s. On error, one line in the log says why.
fn open_lower(name: &CStr, path: &CStr, p: &Profile) -> Result<Lower> {
    let why = |msg: core::fmt::Arguments<'_>| {
        pr_err!(
            "{}: lower {}: {}\n",
            name.to_str().unwrap_or("?"),
            path.to_str().unwrap_or("?"),
            msg
        );
    };
    let lower = Lower::open(path).inspect_err(|e| {
        let msg = match *e {
            e if e == ENOTBLK => "not a block device",
            e if e == EBUSY => "in use (mounted, or held by another device)",
            e if e == ENOENT || e == ENXIO || e == ENODEV => "no such device",
            _ => "cannot be opened",
        };
        why(fmt!("{}", msg));
    })?;
    let Some(l) = lower.integrity() else {
        why(fmt!(
            "has no integrity profile: nothing to pass PI through to"
        ));
        return Err(EINVAL);
    };
    let want = integrity_limits(p);
    let differs = [
        (l.csum != want.csum, "guard checksum (csum)"),
        (l.ref_tag != want.ref_tag, "type (ref_tag)"),
        (l.metadata_size != want.metadata_size, "metadata size"),
        (l.pi_offset != want.pi_offset, "PI offset"),
        (l.interval_exp != want.interval_exp, "protection interval"),
    ];
    if let Some((_, what)) = differs.iter().find(|(d, _)| *d) {
        why(fmt!(
            "its {} differs from this device's (lower: metadata {}, pi at {}, interval {}, {} tuple, csum {})",
            what,
            l.metadata_size,
            l.pi_offset,
            1u32 << l.interval_exp,
            l.pi_tuple_size,
            l.csum as u8
        ));
        return Err(EINVAL);
    }
    if lower.block_size() > p.block_size() {
        why(fmt!(
            "its logical block size {} is larger than this device's {}",
            lower.block_size(),
            p.block_size()
        ));
        return Err(EINVAL);
    }
    if lower.sectors() < u64::from(p.block_size() >> 9) {
        why(fmt!("is smaller than one block"));
        return Err(EINVAL);
    }
    Ok(lower)
}

/// What a disk is made of before it exists: its configuration, where it
/// keeps or sends its data, and its claims on backing stores.
struct Parts {
    cfg: DeviceConfig,
    store: Store,
    lower: Option<Lower>,
    claims: Option<KVec<StoreClaim>>,
}

/// A device in memory.
fn memory_parts(name: &CStr, v: &Validated) -> Result<Parts> {
    if !v.journal {
        pr_err!(
            "{}: journal=0 needs a backing store (memory has no journal)\n",
            name.to_str().unwrap_or("?")
        );
        return Err(EINVAL);
    }
    Ok(Parts {
        cfg: v.dev,
        store: Store::memory(v.dev.profile)?,
        lower: None,
        claims: None,
    })
}

/// A pass-through device over the block device at `path`, as large as it
/// in whole blocks. It stores nothing.
fn lower_parts(name: &CStr, v: &Validated, path: &CStr) -> Result<Parts> {
    let mut cfg = v.dev;
    let lower = open_lower(name, path, &cfg.profile)?;
    let bs = u64::from(cfg.profile.block_size());
    cfg.capacity = (lower.sectors() << 9) / bs * bs;
    Ok(Parts {
        cfg,
        store: Store::Forward,
        lower: Some(lower),
        claims: None,
    })
}

/// A device over the backing store at `path` (its metadata at `meta` if
/// given): opened, claimed and its journal replayed.
fn backing_parts(
    name: &CStr,
    v: &Validated,
    path: &CStr,
    meta: Option<&CStr>,
    registry: &Arc<Registry>,
) -> Result<Parts> {
    let cfg = v.dev;
    let why = |msg| {
        pr_err!(
            "{}: backing {}: {}\n",
            name.to_str().unwrap_or("?"),
            path.to_str().unwrap_or("?"),
            msg
        );
    };
    let claim = |id| registry.claim_store(id);
    let logged = cfg.cache_bytes > 0;
    let (store, claims, replayed) = Store::open_backing(
        path,
        meta,
        cfg.profile,
        cfg.capacity,
        v.journal,
        logged,
        claim,
    )
    .map_err(|(e, msg)| {
        why(msg);
        e
    })?;
    if replayed > 0 {
        pr_info!(
            "{}: backing {}: replayed {} journal entries\n",
            name.to_str().unwrap_or("?"),
            path.to_str().unwrap_or("?"),
            replayed
        );
    }
    Ok(Parts {
        cfg,
        store,
        lower: None,
        claims: Some(claims),
    })
}

/// What the queue limits of a disk follow from, besides its device.
struct Traits {
    /// Discard frees space (else it is not offered; write-zeroes always is).
    discard: bool,
    /// The store may sleep: a backing file, with its page cache.
    blocking: bool,
    /// Writes are journaled.
    journal: bool,
    /// The device has a volatile write cache of its own.
    cache: bool,
}

/// The queue limits of disk `name` of device `dev`.
fn disk_limits(name: &CStr, dev: &Device, t: Traits) -> Result<Limits> {
    let p = dev.profile();
    let discard_sectors = if t.discard { u32::MAX >> 9 } else { 0 };
    let mut limits = Limits::new()
        .block_size(p.block_size())
        .max_hw_sectors(2048)
        // Requests are walked page by page: any segment layout will do.
        .segments(u16::MAX, u32::MAX)
        .max_discard_sectors(discard_sectors)
        .max_write_zeroes_sectors(u32::MAX >> 9);
    if t.blocking {
        // A backing file has a volatile cache: the page cache. A write
        // completes durable in the journal (FUA costs nothing more); without
        // the journal it does not, and the block layer follows a FUA write
        // with a flush (the write cache, if any, then logs it volatile and
        // the flush makes it durable).
        let fua = if t.journal { blk::FEAT_FUA } else { 0 };
        limits = limits.features(blk::FEAT_WRITE_CACHE | fua);
    } else if t.cache {
        // Flush empties the cache; a FUA write is logged durable.
        limits = limits.features(blk::FEAT_WRITE_CACHE | blk::FEAT_FUA);
    }
    // The write cache loses an atomic write whole, and a journal entry
    // holds a request whole.
    let atomic = dev.atomic_write_max();
    if atomic > 0 {
        limits = limits.atomic_writes(p.block_size(), atomic);
    }
    // Direct I/O hands the request's pages to the backing file as they are.
    if let Some(mask) = dev.store_direct_mem_align() {
        limits = limits.dma_alignment(mask);
    }
    if let Some(lower) = dev.lower() {
        // A pass-through device offers what the lower device offers, with
        // its profile, which `open_lower` found equal to the configured one.
        return lower.stack(limits).inspect_err(|_| {
            pr_err!(
                "{}: the lower device's limits cannot be stacked\n",
                name.to_str().unwrap_or("?")
            );
        });
    }
    if p.has_metadata() {
        limits = limits.integrity(integrity_limits(p), 128);
    }
    Ok(limits)
}

/// Refuses, at power-on, atomic writes where the device cannot keep their
/// promise: over a backing store, only the journal writes a request all
/// or nothing; a pass-through device offers what its lower device does.
fn atomic_rules(name: &CStr, v: &Validated, backend: &Backend<'_>) -> Result {
    let atomic = v.dev.atomic_write_max > 0;
    let refused = match backend {
        Backend::Memory => None,
        Backend::Backing(..) if atomic && !v.journal => {
            Some("atomic_write_max over a backing store needs journal=1")
        }
        Backend::Backing(..) => None,
        Backend::Lower(_) if atomic => {
            Some("atomic_write_max is not offered on a pass-through device")
        }
        Backend::Lower(_) => None,
    };
    if let Some(why) = refused {
        pr_err!("{}: {}\n", name.to_str().unwrap_or("?"), why);
        return Err(EINVAL);
    }
    Ok(())
}

/// Creates and adds the disk `name`: in memory, over the store at a
/// backing path, or passing through to a lower device.
pub(crate) fn create_disk(
    name: &CStr,
    v: &Validated,
    backend: Backend<'_>,
    registry: &Arc<Registry>,
) -> Result<RdifDisk> {
    let claim = registry.claim(name)?;
    atomic_rules(name, v, &backend)?;
    let parts = match backend {
        Backend::Memory => memory_parts(name, v)?,
        Backend::Lower(path) => lower_parts(name, v, path)?,
        Backend::Backing(path, meta) => backing_parts(name, v, path, meta, registry)?,
    };
    let blocking = parts.store.may_sleep();
    let passing = parts.lower.is_some();
    let traits = Traits {
        discard: parts.store.can_discard(),
        blocking,
        journal: v.journal,
        cache: v.dev.cache_bytes > 0,
    };
    // A store that may sleep is served by a work item, and so is each
    // request of a pass-through device (see `Device::submit`).
    let wq = if blocking || passing {
        Some(Arc::new(OwnedQueue::new(name)?, GFP_KERNEL)?)
    } else {
        None
    };
    let max_requests = v.hw_queues as usize * v.queue_depth as usize;
    let capacity = parts.cfg.capacity;
    let dev = Arc::pin_init(
        Device::new(
            parts.cfg,
            parts.store,
            parts.lower,
            wq.clone(),
            max_requests,
        ),
        GFP_KERNEL,
    )?;
    let tag_set = Arc::pin_init(
        // `queue_rq` never sleeps: what may sleep runs in work items.
        TagSet::new(v.hw_queues, v.queue_depth),
        GFP_KERNEL,
    )?;
    let limits = disk_limits(name, &dev, traits)?;
    let disk = GenDisk::new(name, capacity >> 9, limits, tag_set, dev.clone())?;
    // After the disk, whose queue a power cut freezes.
    let debugfs = KBox::pin_init(
        debugfs::device_dir(&registry.debugfs, name, dev, disk.queue())?,
        GFP_KERNEL,
    )?;
    Ok(RdifDisk {
        debugfs: Some(debugfs),
        disk: Some(disk),
        wq,
        _name: claim,
        _store: parts.claims,
    })
}
