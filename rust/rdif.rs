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
mod disk;
mod ffi;
mod inject;
mod pi;
mod registry;
mod settings;
mod stats;
mod store;

use blk::{Operations, Pending};
use device::Device;
use kernel::{
    prelude::*,
    str::CString,
    sync::{Arc, ArcBorrow},
};
use pi::Csum;
use settings::Settings;

pub(crate) use disk::{create_disk, Backend, RdifDisk};
pub(crate) use registry::Registry;

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
        cache: bool {
            default: false,
            description: "1: a volatile write cache (flush, FUA, debugfs powercut)",
        },
        cache_size: u32 {
            default: 64,
            description: "Write cache size in MiB (1 to 16384): beyond it the oldest writes are written back",
        },
        atomic_write_max: u32 {
            default: 0,
            description: "Largest atomic write (RWF_ATOMIC) in bytes: 0, or a power of two from blocksize to 1 MiB",
        },
    },
}

/// The blk-mq operations of an rdif disk.
pub(crate) struct RdifOps;

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
        device_md: Option<blk::lower::DeviceMd>,
    ) {
        dev.lower_done(rq, status, device_md)
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
        cache: module_parameters::cache.value(),
        cache_mib: module_parameters::cache_size.value(),
        atomic_write_max: module_parameters::atomic_write_max.value(),
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
        disks.push(
            create_disk(&name, &v, Backend::Memory, registry)?,
            GFP_KERNEL,
        )?;
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
