// SPDX-License-Identifier: GPL-2.0

//! A device's settings, as module parameters or configfs attributes give
//! them, and their validation into what a device is built from.

use crate::pi::{Csum, Profile, ProfileConfig};

/// Largest device size in MiB (1 TiB; memory is only used where written).
pub(crate) const MAX_SIZE_MIB: u64 = 1 << 20;
/// Largest number of tags per hardware queue.
pub(crate) const MAX_QUEUE_DEPTH: u32 = 4096;
/// Largest write cache in MiB.
pub(crate) const MAX_CACHE_MIB: u32 = 16384;
/// Largest atomic write in bytes: the largest request (`max_hw_sectors`).
pub(crate) const MAX_ATOMIC_WRITE: u32 = 1 << 20;

/// How a device is configured (validated).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeviceConfig {
    /// Capacity in bytes, a multiple of the block size.
    pub(crate) capacity: u64,
    /// Protection format.
    pub(crate) profile: Profile,
    /// Generate PI for writes that carry none (else store escape PI).
    pub(crate) pract: bool,
    /// Check stored PI against stored data on reads.
    pub(crate) read_check: bool,
    /// Bytes of volatile write cache (0: none; writes are durable when
    /// they complete).
    pub(crate) cache_bytes: u64,
    /// Largest atomic write in bytes (0: none; else a power of two from
    /// the block size to [`MAX_ATOMIC_WRITE`]).
    pub(crate) atomic_write_max: u32,
}

/// User-visible settings of one device (everything but the backing path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Capacity in MiB.
    pub(crate) size_mib: u64,
    /// Logical block size.
    pub(crate) block_size: u32,
    /// Guard checksum.
    pub(crate) csum: Csum,
    /// Type 1 rather than Type 3.
    pub(crate) ref_tag: bool,
    /// Metadata bytes per interval (0: automatic, see [`ProfileConfig`]).
    pub(crate) metadata_size: u32,
    /// Tuple offset in the metadata.
    pub(crate) pi_offset: u32,
    /// Protection interval (0: the block size).
    pub(crate) interval: u32,
    /// Generate PI for writes without it.
    pub(crate) pract: bool,
    /// Check stored PI on every read.
    pub(crate) read_check: bool,
    /// Hardware queues (0: one per CPU).
    pub(crate) hw_queues: u32,
    /// Tags per hardware queue.
    pub(crate) queue_depth: u32,
    /// Journal the writes of a backing store (crash consistency).
    pub(crate) journal: bool,
    /// A volatile write cache (flush, FUA, power cuts).
    pub(crate) cache: bool,
    /// Its size in MiB.
    pub(crate) cache_mib: u32,
    /// Largest atomic write in bytes (0: none).
    pub(crate) atomic_write_max: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            size_mib: 256,
            block_size: 512,
            csum: Csum::Crc16,
            ref_tag: true,
            metadata_size: 0,
            pi_offset: 0,
            interval: 0,
            pract: true,
            read_check: false,
            hw_queues: 0,
            queue_depth: 64,
            journal: true,
            cache: false,
            cache_mib: 64,
            atomic_write_max: 0,
        }
    }
}

/// Settings checked and resolved.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Validated {
    /// What the device is built from.
    pub(crate) dev: DeviceConfig,
    /// Hardware queues (resolved).
    pub(crate) hw_queues: u32,
    /// Tags per hardware queue.
    pub(crate) queue_depth: u32,
    /// Journal the writes of a backing store.
    pub(crate) journal: bool,
}

impl Settings {
    /// The protection part of the settings.
    pub(crate) fn profile_config(&self) -> ProfileConfig {
        ProfileConfig {
            csum: self.csum,
            ref_tag: self.ref_tag,
            block_size: self.block_size,
            metadata_size: self.metadata_size,
            pi_offset: self.pi_offset,
            interval: self.interval,
        }
    }

    /// Checks the settings; on error, one line saying why.
    pub(crate) fn validate(&self) -> Result<Validated, &'static str> {
        let profile = Profile::new(&self.profile_config())?;
        if self.size_mib == 0 || self.size_mib > MAX_SIZE_MIB {
            return Err("size must be 1 to 1048576 MiB");
        }
        if !(1..=MAX_QUEUE_DEPTH).contains(&self.queue_depth) {
            return Err("queue_depth must be 1 to 4096");
        }
        if !(1..=MAX_CACHE_MIB).contains(&self.cache_mib) {
            return Err("cache_size must be 1 to 16384 MiB");
        }
        let a = self.atomic_write_max;
        if a != 0 && (!a.is_power_of_two() || a < profile.block_size() || a > MAX_ATOMIC_WRITE) {
            return Err(
                "atomic_write_max must be 0, or a power of two from the block size to 1 MiB",
            );
        }
        // blk-mq maps hardware queues to CPU ids.
        let cpus = kernel::cpu::nr_cpu_ids();
        let hw_queues = match self.hw_queues {
            0 => cpus,
            n if n <= cpus => n,
            _ => return Err("hw_queues must not exceed the number of CPUs"),
        };
        Ok(Validated {
            dev: DeviceConfig {
                capacity: self.size_mib << 20,
                profile,
                pract: self.pract,
                read_check: self.read_check,
                cache_bytes: if self.cache {
                    u64::from(self.cache_mib) << 20
                } else {
                    0
                },
                atomic_write_max: a,
            },
            hw_queues,
            queue_depth: self.queue_depth,
            journal: self.journal,
        })
    }
}

/// Parses a decimal (or 0x hexadecimal) number, ignoring a trailing
/// newline.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    let s = core::str::from_utf8(s).ok()?.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses a `u32` like [`parse_u64`].
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

/// Parses a boolean: 0/1, y/n, on/off (as `kstrtobool`).
pub(crate) fn parse_bool(s: &[u8]) -> Option<bool> {
    match s.strip_suffix(b"\n").unwrap_or(s) {
        b"1" | b"y" | b"Y" | b"on" | b"true" => Some(true),
        b"0" | b"n" | b"N" | b"off" | b"false" => Some(false),
        _ => None,
    }
}
