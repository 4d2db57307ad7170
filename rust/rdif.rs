// SPDX-License-Identifier: GPL-2.0

//! rdif: a DIF/DIX-capable virtual block device.
//!
//! Each device registers a block integrity profile (T10 PI with CRC16 or IP
//! guard, NVMe 16-byte PI with CRC64 guard, or opaque metadata) and behaves
//! like a PI-formatted disk: it checks PI on write, returns stored PI on
//! read and generates PI when a write carries none. Data and metadata are
//! kept in separate stores, in memory or in a backing file or block device.
//!
//! Devices come from module parameters (`rdif0`, `rdif1`, ...) and from
//! configfs (`/sys/kernel/config/rdif/<name>`).

mod blk;
mod configfs;
mod debugfs;
mod device;
mod ffi;
mod inject;
mod pi;
mod settings;
mod stats;
mod store;

use blk::lower::Lower;
use blk::{
    disk::{Checksum, IntegrityLimits},
    wq::OwnedQueue,
    GenDisk, Limits, Operations, Pending, TagSet,
};
use device::Device;
use kernel::{
    new_mutex,
    prelude::*,
    str::CString,
    sync::{Arc, ArcBorrow, Mutex},
};
use pi::{Csum, Profile};
use settings::{Settings, Validated};
use store::{file::FileStore, Store};

module! {
    type: RdifModule,
    name: "rdif",
    authors: ["rdif developers"],
    description: "DIF/DIX-capable virtual block device",
    license: "GPL",
    params: {
        nr_devices: u32 {
            default: 1,
            description: "Number of devices to create at load (rdif0, rdif1, ...; at most 256)",
        },
        size: u64 {
            default: 256,
            description: "Device size in MiB",
        },
        blocksize: u32 {
            default: 512,
            description: "Logical block size: 512, 1024, 2048 or 4096",
        },
        ref_tag: bool {
            default: true,
            description: "1: Type 1 (reference tag checked), 0: Type 3",
        },
        metadata_size: u32 {
            default: 0,
            description: "Metadata bytes per interval (0: the PI tuple size; with csum=none, 0 means no metadata)",
        },
        pi_offset: u32 {
            default: 0,
            description: "Offset of the PI tuple in the metadata",
        },
        interval: u32 {
            default: 0,
            description: "Protection interval in bytes (0: the block size)",
        },
        pract: bool {
            default: true,
            description: "Generate PI for writes that carry none (0: store escape PI)",
        },
        read_check: bool {
            default: false,
            description: "Check stored PI against stored data on every read",
        },
        hw_queues: u32 {
            default: 0,
            description: "Hardware queues per device (0: one per CPU)",
        },
        queue_depth: u32 {
            default: 64,
            description: "Tags per hardware queue",
        },
    },
}

/// The blk-mq operations of an rdif disk.
struct RdifOps;

impl Operations for RdifOps {
    type QueueData = Arc<Device>;

    fn queue_rq(dev: ArcBorrow<'_, Device>, rq: Pending) -> Result<(), Pending> {
        Device::submit(dev, rq)
    }

    fn file_done(dev: ArcBorrow<'_, Device>, rq: Pending, result: isize) {
        Device::file_done(dev, rq, result)
    }

    fn work(dev: ArcBorrow<'_, Device>, rq: Pending) {
        dev.work(rq)
    }

    fn lower_done(
        dev: ArcBorrow<'_, Device>,
        rq: Pending,
        status: Result<(), blk::Status>,
        own: Option<blk::lower::OwnPi>,
    ) {
        dev.lower_done(rq, status, own)
    }
}

/// Names of the disks that exist, so that two rdif devices never collide,
/// and the backing stores in use, so that no two devices (nor a `format`)
/// share one. Also holds the debugfs directory of the module.
#[pin_data]
pub(crate) struct Registry {
    #[pin]
    names: Mutex<KVec<CString>>,
    /// Identities ([`FileStore::identity`]) of the backing stores in use.
    #[pin]
    stores: Mutex<KVec<usize>>,
    debugfs: kernel::debugfs::Dir,
}

impl Registry {
    fn new() -> impl PinInit<Self> {
        pin_init!(Registry {
            names <- new_mutex!(KVec::new()),
            stores <- new_mutex!(KVec::new()),
            debugfs: kernel::debugfs::Dir::new(c"rdif"),
        })
    }

    /// Takes the backing store with identity `id`; `EBUSY` if a device (or
    /// a `format`) has it.
    pub(crate) fn claim_store(self: &Arc<Self>, id: usize) -> Result<StoreClaim> {
        let mut stores = self.stores.lock();
        if stores.contains(&id) {
            return Err(EBUSY);
        }
        stores.push(id, GFP_KERNEL)?;
        Ok(StoreClaim {
            registry: self.clone(),
            id,
        })
    }

    /// Takes `name` for a new disk; `EEXIST` if an rdif disk has it.
    fn claim(self: &Arc<Self>, name: &CStr) -> Result<NameClaim> {
        let mut names = self.names.lock();
        if names.iter().any(|n| n.to_bytes() == name.to_bytes()) {
            pr_err!(
                "a device named {} exists already\n",
                name.to_str().unwrap_or("?")
            );
            return Err(EEXIST);
        }
        names.push(CString::try_from(name)?, GFP_KERNEL)?;
        Ok(NameClaim {
            registry: self.clone(),
            name: CString::try_from(name)?,
        })
    }
}

/// A name taken in the [`Registry`], given back on drop.
pub(crate) struct NameClaim {
    registry: Arc<Registry>,
    name: CString,
}

impl Drop for NameClaim {
    fn drop(&mut self) {
        let mut names = self.registry.names.lock();
        if let Some(i) = names
            .iter()
            .position(|n| n.to_bytes() == self.name.to_bytes())
        {
            // `i` comes from `position`, so it is in bounds.
            let _ = names.remove(i);
        }
    }
}

/// A backing store taken in the [`Registry`], given back on drop.
pub(crate) struct StoreClaim {
    registry: Arc<Registry>,
    id: usize,
}

impl Drop for StoreClaim {
    fn drop(&mut self) {
        self.registry.stores.lock().retain(|&mut s| s != self.id);
    }
}

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

fn csum_param() -> Result<Csum> {
    let s = ffi::param::csum();
    Csum::parse(s.to_bytes()).ok_or_else(|| {
        pr_err!(
            "invalid csum '{}': use crc16, ip, crc64 or none\n",
            s.to_str().unwrap_or("?")
        );
        EINVAL
    })
}

/// The settings of the default devices, from module parameters.
fn module_settings() -> Result<Settings> {
    Ok(Settings {
        size_mib: module_parameters::size.value(),
        block_size: module_parameters::blocksize.value(),
        csum: csum_param()?,
        ref_tag: module_parameters::ref_tag.value(),
        metadata_size: module_parameters::metadata_size.value(),
        pi_offset: module_parameters::pi_offset.value(),
        interval: module_parameters::interval.value(),
        pract: module_parameters::pract.value(),
        read_check: module_parameters::read_check.value(),
        // Module devices live in memory.
        journal: true,
        hw_queues: module_parameters::hw_queues.value(),
        queue_depth: module_parameters::queue_depth.value(),
    })
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
pub(crate) enum Under<'a> {
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

/// Creates and adds the disk `name`: in memory, over the store at a
/// backing path, or passing through to a lower device.
pub(crate) fn create_disk(
    name: &CStr,
    v: &Validated,
    under: Under<'_>,
    registry: &Arc<Registry>,
) -> Result<RdifDisk> {
    let mut cfg = v.dev;
    let claim = registry.claim(name)?;
    let (store, store_claim, lower) = match under {
        Under::Memory if !v.journal => {
            pr_err!(
                "{}: journal=0 needs a backing store (memory has no journal)\n",
                name.to_str().unwrap_or("?")
            );
            return Err(EINVAL);
        }
        Under::Memory => (Store::memory(cfg.profile)?, None, None),
        Under::Lower(path) => {
            let lower = open_lower(name, path, &cfg.profile)?;
            // The device is as large as the lower one, in whole blocks.
            let bs = u64::from(cfg.profile.block_size());
            cfg.capacity = (lower.sectors() << 9) / bs * bs;
            (Store::memory(cfg.profile)?, None, Some(lower))
        }
        Under::Backing(path, meta) => {
            let why = |msg| {
                pr_err!(
                    "{}: backing {}: {}\n",
                    name.to_str().unwrap_or("?"),
                    path.to_str().unwrap_or("?"),
                    msg
                );
            };
            let mut fs =
                FileStore::open(path, meta, cfg.profile, cfg.capacity).map_err(|(e, msg)| {
                    why(msg);
                    e
                })?;
            let store_claim = fs.claim(|id| registry.claim_store(id)).inspect_err(|_| {
                why("the store is in use by another rdif device");
            })?;
            // Only the device that holds the store may replay its journal.
            fs.replay().map_err(|(e, msg)| {
                why(msg);
                e
            })?;
            fs.set_journaled(v.journal);
            if fs.replayed() > 0 {
                pr_info!(
                    "{}: backing {}: replayed {} journal entries\n",
                    name.to_str().unwrap_or("?"),
                    path.to_str().unwrap_or("?"),
                    fs.replayed()
                );
            }
            (
                Store::File(KBox::new(fs, GFP_KERNEL)?),
                Some(store_claim),
                None,
            )
        }
    };
    let blocking = store.may_sleep();
    let passing = lower.is_some();
    // A store that may sleep is served by a work item, and so is each
    // request of a pass-through device (see `Device::submit`).
    let wq = if blocking || passing {
        Some(Arc::new(OwnedQueue::new(name)?, GFP_KERNEL)?)
    } else {
        None
    };
    // Discard frees space or is not offered (write-zeroes always is).
    let discard_sectors = if store.can_discard() {
        u32::MAX >> 9
    } else {
        0
    };
    let max_requests = v.hw_queues as usize * v.queue_depth as usize;
    let dev = Arc::pin_init(
        Device::new(cfg, store, lower, wq.clone(), max_requests),
        GFP_KERNEL,
    )?;
    let tag_set = Arc::pin_init(
        // `queue_rq` never sleeps: what may sleep runs in work items.
        TagSet::new(v.hw_queues, v.queue_depth, false, blocking || passing),
        GFP_KERNEL,
    )?;
    let mut limits = Limits::new()
        .block_size(cfg.profile.block_size())
        .max_hw_sectors(2048)
        // Requests are walked page by page: any segment layout will do.
        .segments(u16::MAX, u32::MAX)
        .max_discard_sectors(discard_sectors)
        .max_write_zeroes_sectors(u32::MAX >> 9);
    if blocking {
        // A backing file has a volatile cache: the page cache. A write
        // completes durable in the journal (FUA costs nothing more); without
        // the journal it does not, and the block layer follows a FUA write
        // with a flush.
        let fua = if v.journal { blk::FEAT_FUA } else { 0 };
        limits = limits.features(blk::FEAT_WRITE_CACHE | fua);
    }
    // Direct I/O hands the request's pages to the backing file as they are.
    if let Some(mask) = dev.store_direct_mem_align() {
        limits = limits.dma_alignment(mask);
    }
    if let Some(lower) = dev.lower() {
        // A pass-through device offers what the lower device offers, with
        // its profile, which `open_lower` found equal to the configured one.
        limits = lower.stack(limits).inspect_err(|_| {
            pr_err!(
                "{}: the lower device's limits cannot be stacked\n",
                name.to_str().unwrap_or("?")
            );
        })?;
    } else if cfg.profile.has_metadata() {
        limits = limits.integrity(integrity_limits(&cfg.profile), 128);
    }
    let debugfs = KBox::pin_init(
        debugfs::device_dir(&registry.debugfs, name, dev.clone())?,
        GFP_KERNEL,
    )?;
    let disk = GenDisk::new(name, cfg.capacity >> 9, limits, tag_set, dev)?;
    Ok(RdifDisk {
        debugfs: Some(debugfs),
        disk: Some(disk),
        wq,
        _name: claim,
        _store: store_claim,
    })
}

/// What the module owns besides configfs.
struct State {
    /// The default devices, from module parameters.
    _disks: KVec<RdifDisk>,
    registry: Arc<Registry>,
}

impl State {
    fn new() -> Result<Self> {
        let registry = Arc::pin_init(Registry::new(), GFP_KERNEL)?;
        Ok(Self {
            _disks: default_disks(&registry)?,
            registry,
        })
    }
}

#[pin_data]
struct RdifModule {
    // Fields drop in order: the default disks first, then configfs (whose
    // devices are gone by then: each configfs directory holds a reference
    // on the module).
    state: State,
    #[pin]
    configfs: kernel::configfs::Subsystem<configfs::Root>,
}

/// Most devices the module parameters can ask for.
const MAX_DEVICES: u32 = 256;

fn default_disks(registry: &Arc<Registry>) -> Result<KVec<RdifDisk>> {
    let s = module_settings()?;
    let v = s.validate().map_err(|msg| {
        pr_err!("invalid configuration: {}\n", msg);
        EINVAL
    })?;
    let n = module_parameters::nr_devices.value();
    if n > MAX_DEVICES {
        pr_err!(
            "invalid configuration: nr_devices must be 0 to {}\n",
            MAX_DEVICES
        );
        return Err(EINVAL);
    }
    let mut disks = KVec::with_capacity(n as usize, GFP_KERNEL)?;
    for i in 0..n {
        let name = CString::try_from_fmt(fmt!("rdif{}", i))?;
        disks.push(create_disk(&name, &v, Under::Memory, registry)?, GFP_KERNEL)?;
    }
    if n == 0 {
        return Ok(disks);
    }
    let p = &v.dev.profile;
    pr_info!(
        "{} device(s): {} MiB, {}-byte blocks, csum {}, type {}, metadata {} (pi at {}), interval {}\n",
        n,
        s.size_mib,
        p.block_size(),
        p.csum().name(),
        if p.ref_tag() { 1 } else { 3 },
        p.metadata_size(),
        p.pi_offset(),
        p.interval()
    );
    Ok(disks)
}

impl kernel::InPlaceModule for RdifModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let state = State::new();
        let registry = state.as_ref().map(|s| s.registry.clone()).map_err(|e| *e);
        try_pin_init!(RdifModule {
            state: state?,
            configfs <- configfs::subsystem(registry?),
        })
    }
}
