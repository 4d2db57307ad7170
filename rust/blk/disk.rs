// SPDX-License-Identifier: GPL-2.0

//! Queue limits (with the integrity profile) and generic disks.
//!
//! C headers: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h),
//! [`include/linux/blk-integrity.h`](srctree/include/linux/blk-integrity.h)

use super::{Operations, TagSet};
use core::ptr::NonNull;
use kernel::{
    bindings, error, error::from_err_ptr, prelude::*, static_lock_class, sync::Arc,
    types::ForeignOwnable,
};

// The bindings' structs end in zero-length arrays, which this lint flags;
// only the address of this one is taken.
#[allow(improper_ctypes)]
extern "C" {
    /// The operations of every disk of this module (`helpers.c`): only an
    /// owner, so an open disk pins the module. Static, because an open disk
    /// still uses them after `del_gendisk`.
    static rdif_bdev_fops: bindings::block_device_operations;
}

/// `enum blk_integrity_checksum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Checksum {
    /// No checksum: opaque metadata only.
    None = 0,
    /// IP checksum (`BLK_INTEGRITY_CSUM_IP`).
    Ip = 1,
    /// CRC16 T10-DIF (`BLK_INTEGRITY_CSUM_CRC`).
    Crc = 2,
    /// CRC64-NVMe (`BLK_INTEGRITY_CSUM_CRC64`).
    Crc64 = 3,
}

/// An integrity profile as the block layer describes it
/// (`struct blk_integrity` in `queue_limits`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IntegrityLimits {
    /// Guard checksum.
    pub(crate) csum: Checksum,
    /// Type 1 (reference tag checked) rather than Type 3.
    pub(crate) ref_tag: bool,
    /// Metadata bytes per protection interval.
    pub(crate) metadata_size: u8,
    /// Offset of the PI tuple inside the metadata.
    pub(crate) pi_offset: u8,
    /// Size of the PI tuple (0, 8 or 16).
    pub(crate) pi_tuple_size: u8,
    /// Bytes of the tuple usable as tag (app tag, plus ref tag for Type 3).
    pub(crate) tag_size: u8,
    /// log2 of the protection interval in bytes.
    pub(crate) interval_exp: u8,
}

impl IntegrityLimits {
    /// The profile a block device registered, if it has one (metadata).
    pub(crate) fn from_raw(bi: &bindings::blk_integrity) -> Option<Self> {
        if bi.metadata_size == 0 {
            return None;
        }
        let csum = match bi.csum_type {
            0 => Checksum::None,
            1 => Checksum::Ip,
            2 => Checksum::Crc,
            3 => Checksum::Crc64,
            _ => return None,
        };
        Some(IntegrityLimits {
            csum,
            ref_tag: bi.flags & INTEGRITY_REF_TAG != 0,
            metadata_size: bi.metadata_size,
            pi_offset: bi.pi_offset,
            pi_tuple_size: bi.pi_tuple_size,
            tag_size: bi.tag_size,
            interval_exp: bi.interval_exp,
        })
    }
}

// `enum blk_integrity_flags`, checked in helpers.c.
const INTEGRITY_DEVICE_CAPABLE: u8 = 1 << 2;
const INTEGRITY_REF_TAG: u8 = 1 << 3;
const INTEGRITY_SPLIT_INTERVAL_CAPABLE: u8 = 1 << 5;

/// Queue limits of a disk being built (`struct queue_limits`).
pub(crate) struct Limits(pub(super) bindings::queue_limits);

impl Limits {
    /// Limits with every member zero: the block layer picks defaults.
    pub(crate) fn new() -> Self {
        Self(pin_init::zeroed())
    }

    /// Sets the logical and physical block size.
    pub(crate) fn block_size(mut self, size: u32) -> Self {
        self.0.logical_block_size = size;
        self.0.physical_block_size = size;
        self
    }

    /// Sets the largest request in 512-byte sectors.
    pub(crate) fn max_hw_sectors(mut self, sectors: u32) -> Self {
        self.0.max_hw_sectors = sectors;
        self
    }

    /// Sets the most data segments per request and the largest segment in
    /// bytes. A driver that walks requests page by page has no limit of its
    /// own; the block layer's defaults (128 segments of 64 KiB) also cap
    /// integrity requests at one 64 KiB segment.
    pub(crate) fn segments(mut self, max_segments: u16, max_segment_size: u32) -> Self {
        self.0.max_segments = max_segments;
        self.0.max_segment_size = max_segment_size;
        self
    }

    /// Sets the memory alignment mask of a request's segments (at least
    /// 511, the block layer's default).
    pub(crate) fn dma_alignment(mut self, mask: u32) -> Self {
        self.0.dma_alignment = mask.max(511);
        self
    }

    /// Enables discard up to `sectors` per request.
    pub(crate) fn max_discard_sectors(mut self, sectors: u32) -> Self {
        self.0.max_hw_discard_sectors = sectors;
        self
    }

    /// Enables write-zeroes up to `sectors` per request.
    pub(crate) fn max_write_zeroes_sectors(mut self, sectors: u32) -> Self {
        self.0.max_write_zeroes_sectors = sectors;
        self
    }

    /// Atomic writes (`BLK_FEAT_ATOMIC_WRITES`) of `unit_min` to `max`
    /// bytes, both powers of two, `unit_min` at least the logical block
    /// size and `max` at most the largest request; no boundary.
    pub(crate) fn atomic_writes(mut self, unit_min: u32, max: u32) -> Self {
        self.0.features |= super::FEAT_ATOMIC_WRITES;
        self.0.atomic_write_hw_unit_min = unit_min;
        self.0.atomic_write_hw_unit_max = max;
        self.0.atomic_write_hw_max = max;
        self.0.atomic_write_hw_boundary = 0;
        self
    }

    /// Adds `BLK_FEAT_*` feature flags.
    pub(crate) fn features(mut self, features: u32) -> Self {
        self.0.features |= features;
        self
    }

    /// Registers an integrity profile. The device checks and generates PI
    /// itself (`DEVICE_CAPABLE`) and accepts intervals that straddle
    /// segments.
    pub(crate) fn integrity(mut self, p: IntegrityLimits, max_segments: u16) -> Self {
        let bi = &mut self.0.integrity;
        bi.flags = INTEGRITY_DEVICE_CAPABLE | INTEGRITY_SPLIT_INTERVAL_CAPABLE;
        if p.ref_tag {
            bi.flags |= INTEGRITY_REF_TAG;
        }
        bi.csum_type = p.csum as bindings::blk_integrity_checksum;
        bi.metadata_size = p.metadata_size;
        bi.pi_offset = p.pi_offset;
        bi.pi_tuple_size = p.pi_tuple_size;
        bi.tag_size = p.tag_size;
        bi.interval_exp = p.interval_exp;
        self.0.max_integrity_segments = max_segments;
        self
    }
}

/// A disk added to the system, removed when dropped.
///
/// # Invariants
///
/// - `gendisk` is a valid disk allocated by `__blk_mq_alloc_disk` on the tag
///   set `_tag_set` and added with `device_add_disk`.
/// - `gendisk->queue->queuedata` came from `T::QueueData::into_foreign`.
pub(crate) struct GenDisk<T: Operations> {
    gendisk: *mut bindings::gendisk,
    _tag_set: Arc<TagSet<T>>,
}

// SAFETY: `GenDisk` owns a disk reference, usable from any thread, plus
// thread-safe shared data.
unsafe impl<T: Operations> Send for GenDisk<T> {}
// SAFETY: `GenDisk` has no methods that mutate through `&self`.
unsafe impl<T: Operations> Sync for GenDisk<T> {}

impl<T: Operations> GenDisk<T> {
    /// Allocates a disk named `name` on `tag_set` with `limits` and adds it.
    /// While the disk is open, the module cannot be unloaded.
    pub(crate) fn new(
        name: &CStr,
        capacity_sectors: u64,
        limits: Limits,
        tag_set: Arc<TagSet<T>>,
        queue_data: T::QueueData,
    ) -> Result<Self> {
        let name = name.to_bytes_with_nul();
        if name.len() > bindings::DISK_NAME_LEN as usize {
            return Err(EINVAL);
        }

        let mut lim = limits.0;
        let data = queue_data.into_foreign();
        // SAFETY: the tag set is valid and allocated (its invariant), `lim`
        // is a valid limits structure, and the lock class is static.
        let gendisk = from_err_ptr(unsafe {
            bindings::__blk_mq_alloc_disk(
                tag_set.as_raw(),
                &mut lim,
                data,
                static_lock_class!().as_ptr(),
            )
        });
        let gendisk = match gendisk {
            Ok(gendisk) => gendisk,
            Err(e) => {
                // SAFETY: `data` came from `into_foreign` above and was not
                // handed to a queue.
                drop(unsafe { T::QueueData::from_foreign(data) });
                return Err(e);
            }
        };

        // SAFETY: `gendisk` is a valid disk that is not yet added, so this
        // code has exclusive access to it. `rdif_bdev_fops` is static.
        unsafe {
            (*gendisk).fops = &raw const rdif_bdev_fops;
            let dst = &mut (*gendisk).disk_name;
            for (d, s) in dst.iter_mut().zip(name.iter()) {
                *d = *s as kernel::ffi::c_char;
            }
            bindings::set_capacity(gendisk, capacity_sectors);
        }

        // SAFETY: `gendisk` is valid and not yet added.
        let ret = error::to_result(unsafe {
            bindings::device_add_disk(core::ptr::null_mut(), gendisk, core::ptr::null_mut())
        });
        if let Err(e) = ret {
            // SAFETY: `gendisk` was never added; `put_disk` releases it and
            // its queue. `data` came from `into_foreign` and no request can
            // reach it any more.
            unsafe {
                bindings::put_disk(gendisk);
                drop(T::QueueData::from_foreign(data));
            }
            return Err(e);
        }

        // INVARIANT: the disk was allocated on `tag_set`, added, and its
        // queue data came from `into_foreign`.
        Ok(Self {
            gendisk,
            _tag_set: tag_set,
        })
    }
}

impl<T: Operations> GenDisk<T> {
    /// A counted reference to the disk's request queue.
    pub(crate) fn queue(&self) -> Option<QueueRef> {
        // SAFETY: `self.gendisk` is valid by the type invariant, and so is
        // its queue while the disk is.
        let q = unsafe { (*self.gendisk).queue };
        // SAFETY: `q` is a valid queue (see above).
        if q.is_null() || !unsafe { bindings::blk_get_queue(q) } {
            return None;
        }
        // INVARIANT: `blk_get_queue` took a reference on the valid `q`.
        NonNull::new(q).map(|q| QueueRef { q })
    }
}

/// A counted reference to a request queue, which keeps it allocated.
///
/// # Invariants
///
/// `q` is a valid request queue on which this holds a reference
/// (`blk_get_queue`).
pub(crate) struct QueueRef {
    q: NonNull<bindings::request_queue>,
}

// SAFETY: a queue reference may be used and dropped on any thread.
unsafe impl Send for QueueRef {}
// SAFETY: freezing is safe to call concurrently.
unsafe impl Sync for QueueRef {}

impl QueueRef {
    /// Freezes the queue: waits until no request is in flight, and holds
    /// new ones back until the returned guard is dropped. Sleeps. Whoever
    /// allocates while it holds the guard must not wait for I/O to this
    /// queue (no `GFP_KERNEL`).
    pub(crate) fn freeze(&self) -> Frozen<'_> {
        // SAFETY: `self.q` is valid by the type invariant. Freezing a queue
        // whose disk was deleted is allowed (it is frozen already).
        unsafe { bindings::blk_mq_freeze_queue_nomemsave(self.q.as_ptr()) };
        Frozen { queue: self }
    }

    /// Quiesces the queue: waits until no `queue_rq` runs, and dispatches
    /// none until the returned guard is dropped (requests may still be
    /// submitted, and wait; those the driver took are its own to end).
    /// Sleeps.
    pub(crate) fn quiesce(&self) -> Quiesced<'_> {
        // SAFETY: `self.q` is valid by the type invariant.
        unsafe { bindings::blk_mq_quiesce_queue(self.q.as_ptr()) };
        Quiesced { queue: self }
    }
}

impl Drop for QueueRef {
    fn drop(&mut self) {
        // SAFETY: this holds a reference on `self.q` (type invariant).
        unsafe { bindings::blk_put_queue(self.q.as_ptr()) };
    }
}

/// A frozen queue, unfrozen when dropped.
pub(crate) struct Frozen<'a> {
    queue: &'a QueueRef,
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        // SAFETY: the queue is valid (`QueueRef`'s invariant) and was
        // frozen by `QueueRef::freeze`, once for this guard.
        unsafe { bindings::blk_mq_unfreeze_queue_nomemrestore(self.queue.q.as_ptr()) };
    }
}

/// A quiesced queue, dispatching again when dropped.
pub(crate) struct Quiesced<'a> {
    queue: &'a QueueRef,
}

impl Drop for Quiesced<'_> {
    fn drop(&mut self) {
        // SAFETY: the queue is valid (`QueueRef`'s invariant) and was
        // quiesced by `QueueRef::quiesce`, once for this guard.
        unsafe { bindings::blk_mq_unquiesce_queue(self.queue.q.as_ptr()) };
    }
}

impl<T: Operations> Drop for GenDisk<T> {
    fn drop(&mut self) {
        // SAFETY: `self.gendisk` is valid by the type invariant.
        let data = unsafe { (*(*self.gendisk).queue).queuedata };
        // SAFETY: the disk was added (type invariant). `del_gendisk` drains
        // and freezes its queue, so no `queue_rq` runs after it returns;
        // `put_disk` then drops this driver's reference.
        unsafe {
            bindings::del_gendisk(self.gendisk);
            bindings::put_disk(self.gendisk);
        }
        // SAFETY: `data` came from `into_foreign` (type invariant), and no
        // request can use it after `del_gendisk`.
        drop(unsafe { T::QueueData::from_foreign(data) });
    }
}
