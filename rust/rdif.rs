// SPDX-License-Identifier: GPL-2.0

//! rdif: a DIF/DIX-capable virtual block device.
//!
//! Each device registers a block integrity profile (T10 PI with CRC16 or IP
//! guard, NVMe 16-byte PI with CRC64 guard, or opaque metadata) and behaves
//! like a PI-formatted disk: it checks PI on write, returns stored PI on
//! read and generates PI when a write carries none. Data and metadata are
//! kept in separate stores.

mod blk;
mod device;
mod pi;
mod store;

use blk::{
    disk::{Checksum, IntegrityLimits},
    GenDisk, Limits, Operations, Request, Status, TagSet,
};
use device::{Device, DeviceConfig};
use kernel::{
    prelude::*,
    str::CString,
    sync::{Arc, ArcBorrow},
};
use pi::{Csum, Profile, ProfileConfig};

module! {
    type: RdifModule,
    name: "rdif",
    authors: ["rdif developers"],
    description: "DIF/DIX-capable virtual block device",
    license: "GPL",
    params: {
        nr_devices: u32 {
            default: 1,
            description: "Number of devices to create at load (rdif0, rdif1, ...)",
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

extern "C" {
    fn rdif_param_csum() -> *const kernel::ffi::c_char;
}

/// Largest device size in MiB (1 TiB; memory is only used where written).
const MAX_SIZE_MIB: u64 = 1 << 20;

/// The blk-mq operations of an rdif disk.
struct RdifOps;

impl Operations for RdifOps {
    type QueueData = Arc<Device>;

    fn queue_rq(dev: ArcBorrow<'_, Device>, rq: &Request<'_>) -> Result<(), Status> {
        dev.handle(rq)
    }
}

/// Everything needed to build the default devices, from module parameters.
struct Params {
    dev: DeviceConfig,
    hw_queues: u32,
    queue_depth: u32,
}

fn csum_param() -> Result<Csum> {
    // SAFETY: the parameter is a NUL-terminated string owned by the module
    // parameter code; it cannot change (mode 0444) while the module loads.
    let s = unsafe { CStr::from_char_ptr(rdif_param_csum()) };
    Csum::parse(s.to_bytes()).ok_or_else(|| {
        pr_err!(
            "invalid csum '{}': use crc16, ip, crc64 or none\n",
            s.to_str().unwrap_or("?")
        );
        EINVAL
    })
}

fn params() -> Result<Params> {
    let profile = Profile::new(&ProfileConfig {
        csum: csum_param()?,
        ref_tag: module_parameters::ref_tag.value(),
        block_size: module_parameters::blocksize.value(),
        metadata_size: module_parameters::metadata_size.value(),
        pi_offset: module_parameters::pi_offset.value(),
        interval: module_parameters::interval.value(),
    })
    .map_err(|msg| {
        pr_err!("invalid configuration: {}\n", msg);
        EINVAL
    })?;
    let size = module_parameters::size.value();
    if size == 0 || size > MAX_SIZE_MIB {
        pr_err!("size must be 1 to {} MiB\n", MAX_SIZE_MIB);
        return Err(EINVAL);
    }
    let queue_depth = module_parameters::queue_depth.value();
    if !(1..=4096).contains(&queue_depth) {
        pr_err!("queue_depth must be 1 to 4096\n");
        return Err(EINVAL);
    }
    let hw_queues = match module_parameters::hw_queues.value() {
        0 => blk::nr_cpu_ids(),
        n if n <= blk::nr_cpu_ids() => n,
        _ => {
            pr_err!("hw_queues must be at most {}\n", blk::nr_cpu_ids());
            return Err(EINVAL);
        }
    };
    Ok(Params {
        dev: DeviceConfig {
            capacity: size << 20,
            profile,
            pract: module_parameters::pract.value(),
            read_check: module_parameters::read_check.value(),
        },
        hw_queues,
        queue_depth,
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

/// Creates and adds one disk.
fn create_disk(
    name: &CStr,
    params: &Params,
    module: &'static ThisModule,
) -> Result<GenDisk<RdifOps>> {
    let cfg = params.dev;
    let dev = Arc::new(Device::new(cfg)?, GFP_KERNEL)?;
    let tag_set = Arc::pin_init(
        TagSet::new(params.hw_queues, params.queue_depth, false),
        GFP_KERNEL,
    )?;
    let mut limits = Limits::new()
        .block_size(cfg.profile.block_size())
        .max_hw_sectors(2048)
        .max_discard_sectors(u32::MAX >> 9)
        .max_write_zeroes_sectors(u32::MAX >> 9);
    if cfg.profile.has_metadata() {
        limits = limits.integrity(integrity_limits(&cfg.profile), 128);
    }
    GenDisk::new(name, cfg.capacity >> 9, limits, tag_set, dev, module)
}

struct RdifModule {
    _disks: KVec<GenDisk<RdifOps>>,
}

impl kernel::Module for RdifModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let params = params()?;
        let n = module_parameters::nr_devices.value();
        let mut disks = KVec::with_capacity(n as usize, GFP_KERNEL)?;
        for i in 0..n {
            let name = CString::try_from_fmt(fmt!("rdif{}", i))?;
            disks.push(create_disk(&name, &params, module)?, GFP_KERNEL)?;
        }
        let p = &params.dev.profile;
        pr_info!(
            "{} device(s): {} MiB, {}-byte blocks, csum {}, type {}, metadata {} (pi at {}), interval {}\n",
            n,
            params.dev.capacity >> 20,
            p.block_size(),
            p.csum().name(),
            if p.ref_tag() { 1 } else { 3 },
            p.metadata_size(),
            p.pi_offset(),
            p.interval()
        );
        Ok(Self { _disks: disks })
    }
}
