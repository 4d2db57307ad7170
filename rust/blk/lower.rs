// SPDX-License-Identifier: GPL-2.0

//! A lower block device that requests are forwarded to (pass-through),
//! as stacking drivers do: each bio of a request goes down as a clone
//! (`bio_alloc_clone`, integrity payload included), the lower device's
//! limits and integrity profile are stacked into the disk's
//! (`queue_limits_stack_bdev`, `queue_limits_stack_integrity_bdev`), and
//! the request ends with the first error any clone met, unchanged.
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h)

use super::{bio::Sink, disk::IntegrityLimits, wq::OwnedQueue, Bio, Limits, Pending};
use core::{ffi::c_void, ptr::NonNull};
use kernel::{bindings, error::to_result, prelude::*};

/// Opaque stand-in for the helpers' `struct rdif_lower`.
#[repr(C)]
struct RawLower {
    _opaque: [u8; 0],
}

type FixFn = unsafe extern "C" fn(*mut c_void, *mut bindings::bio, *mut bindings::bio);

// The bindings' structs end in zero-length arrays, which this lint flags;
// they are only passed by pointer here.
#[allow(improper_ctypes)]
extern "C" {
    fn rdif_lower_open(path: *const kernel::ffi::c_char, err: *mut i32) -> *mut RawLower;
    fn rdif_lower_close(l: *mut RawLower);
    fn rdif_lower_sectors(l: *mut RawLower) -> u64;
    fn rdif_lower_block_size(l: *mut RawLower) -> u32;
    fn rdif_lower_integrity(l: *mut RawLower, bi: *mut bindings::blk_integrity);
    fn rdif_lower_stack_limits(l: *mut RawLower, lim: *mut bindings::queue_limits) -> i32;
    fn rdif_rq_lower_start(
        l: *mut RawLower,
        rq: *mut bindings::request,
        wq: *mut bindings::workqueue_struct,
        end_direct: bool,
        bounce: bool,
        shift: i64,
        device_md: u32,
        interval_exp: u32,
        fix: Option<FixFn>,
        ctx: *mut c_void,
    ) -> i32;
    fn rdif_rq_lower_take_pi(rq: *mut bindings::request, len: *mut usize) -> *mut c_void;
}

/// Metadata of the driver's own that a forwarded read brought up from the
/// lower device: for each bio of the read that had no integrity payload,
/// in order, its intervals' metadata.
///
/// # Invariants
///
/// `ptr` is a `kmalloc` allocation of at least `len` bytes that this object
/// owns (it is freed on drop) and nothing else uses.
pub(crate) struct DeviceMd {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: plain memory owned by this object.
unsafe impl Send for DeviceMd {}

impl DeviceMd {
    /// Takes the metadata a completed forwarded read `rq` brought up, if
    /// it asked for some.
    ///
    /// # Safety
    ///
    /// `rq` must be a request started with [`Lower::start`] whose clones
    /// have all ended, not yet ended itself.
    pub(super) unsafe fn take(rq: *mut bindings::request) -> Option<Self> {
        let mut len = 0;
        // SAFETY: `rq` is a valid forwarded request (the function's
        // requirement); `len` is a valid out pointer.
        let ptr = unsafe { rdif_rq_lower_take_pi(rq, &mut len) };
        // INVARIANT: the helper hands over the buffer it allocated, of
        // `len` bytes, and forgets it.
        NonNull::new(ptr.cast::<u8>()).map(|ptr| DeviceMd { ptr, len })
    }

    /// The bytes.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `len` bytes at `ptr` are owned by this object (type
        // invariant), and `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for DeviceMd {
    fn drop(&mut self) {
        // SAFETY: a `kmalloc` allocation this object owns (type invariant).
        unsafe { bindings::kfree(self.ptr.as_ptr().cast()) };
    }
}

/// How [`Lower::start`] forwards a request.
#[derive(Clone, Copy)]
pub(crate) struct Forward<'a> {
    /// The workqueue of the done work item.
    pub(crate) wq: &'a OwnedQueue,
    /// End the request in the lower device's completion, in whatever
    /// context it runs (interrupts included), rather than in the work
    /// item; never done for a flush or a request of a flush sequence
    /// (`REQ_PREFLUSH`, `REQ_FUA`): ending those there would nest the two
    /// queues' flush locks.
    pub(crate) end_direct: bool,
    /// Send each bio that writes data as a copy of its own.
    pub(crate) bounce: bool,
    /// Move each clone by this many sectors.
    pub(crate) shift: i64,
    /// For a read, metadata of the driver's own for each bio that has no
    /// integrity payload (bytes per interval, log2 of the interval),
    /// handed to [`super::Operations::lower_done`] as [`DeviceMd`].
    pub(crate) device_md: Option<(u32, u32)>,
}

/// An open lower block device.
///
/// # Invariants
///
/// `ptr` came from `rdif_lower_open` and is closed only on drop: the block
/// device is open for reading and writing, held exclusively by this
/// object, with a bio set for its clones.
pub(crate) struct Lower {
    ptr: NonNull<RawLower>,
}

// SAFETY: the block device and its bio set may be used from any thread.
unsafe impl Send for Lower {}
// SAFETY: as above; nothing is changed through `&self`.
unsafe impl Sync for Lower {}

impl Drop for Lower {
    fn drop(&mut self) {
        // No clone is in flight: the disk above is removed (every request
        // ended, so every clone too) before its `Lower` is dropped.
        // SAFETY: opened by `rdif_lower_open` (type invariant), unused after.
        unsafe { rdif_lower_close(self.ptr.as_ptr()) };
    }
}

/// The trampoline that hands each copy to the closure of
/// [`Lower::start`].
///
/// # Safety
///
/// `ctx` must point to an `F`, and `clone` and `src` to a copy (its pages
/// and payload the driver's own, not yet submitted) and the bio of a
/// started request that it was made from.
unsafe extern "C" fn fix_one<F: FnMut(Bio<'_, Sink>, Bio<'_>)>(
    ctx: *mut c_void,
    clone: *mut bindings::bio,
    src: *mut bindings::bio,
) {
    // SAFETY: `ctx` points to an `F` that lives for the call (the
    // function's requirement) and nothing else uses it meanwhile.
    let f = unsafe { &mut *ctx.cast::<F>() };
    if let (Some(c), Some(s)) = (NonNull::new(clone), NonNull::new(src)) {
        // SAFETY: valid bios for the call; the copy's pages are the
        // driver's to write (the function's requirement).
        let (c, s) = unsafe { (Bio::from_raw(c), Bio::from_raw(s)) };
        f(c, s);
    }
}

impl Lower {
    /// Opens the block device at `path` exclusively for reading and
    /// writing.
    pub(crate) fn open(path: &CStr) -> Result<Self> {
        let mut err = 0;
        // SAFETY: `path` is NUL-terminated; `err` is a valid out pointer.
        let ptr = unsafe { rdif_lower_open(path.as_char_ptr(), &mut err) };
        // INVARIANT: a non-NULL result came from `rdif_lower_open`.
        NonNull::new(ptr)
            .map(|ptr| Lower { ptr })
            .ok_or_else(|| Error::from_errno(err))
    }

    /// Capacity in 512-byte sectors.
    pub(crate) fn sectors(&self) -> u64 {
        // SAFETY: valid (type invariant).
        unsafe { rdif_lower_sectors(self.ptr.as_ptr()) }
    }

    /// Logical block size.
    pub(crate) fn block_size(&self) -> u32 {
        // SAFETY: valid (type invariant).
        unsafe { rdif_lower_block_size(self.ptr.as_ptr()) }
    }

    /// The lower device's integrity profile, if it has one.
    pub(crate) fn integrity(&self) -> Option<IntegrityLimits> {
        let mut bi = bindings::blk_integrity::default();
        // SAFETY: valid (type invariant); `bi` is a valid out pointer.
        unsafe { rdif_lower_integrity(self.ptr.as_ptr(), &mut bi) };
        IntegrityLimits::from_raw(&bi)
    }

    /// The limits of a disk over the lower device: `limits`' block size
    /// and features, everything else and the integrity profile inherited
    /// from the lower device as stacking drivers do (starting from the
    /// block layer's stacking defaults); `EINVAL` if the profiles cannot
    /// be stacked.
    pub(crate) fn stack(&self, mut limits: Limits) -> Result<Limits> {
        // SAFETY: valid (type invariant); `limits.0` is a valid limits
        // structure.
        to_result(unsafe { rdif_lower_stack_limits(self.ptr.as_ptr(), &mut limits.0) })?;
        Ok(limits)
    }

    /// Forwards `rq` to the lower device as `how` says; `fix(copy, src)`
    /// sees each copy (`how.bounce`) before anything is submitted and may
    /// change its data and metadata, which are the device's own. Once every
    /// clone has ended, a work item on `how.wq` passes the request to
    /// [`super::Operations::lower_done`] with the lower device's status
    /// (or, with `how.end_direct`, the last clone's completion does).
    /// Must be called where the caller may sleep, outside the dispatch of
    /// its own queue (from [`super::Operations::work`]): submitting may
    /// wait for the lower queue. Hands the request back untouched with
    /// `ENOMEM` if memory for the clones cannot be had (nothing was
    /// submitted), or `EINVAL` if the tag set has no room for the
    /// forwarding state ([`super::TagSet::new`] with `file_io`).
    pub(crate) fn start<F: FnMut(Bio<'_, Sink>, Bio<'_>)>(
        &self,
        rq: Pending,
        how: &Forward<'_>,
        mut fix: F,
    ) -> Result<(), (Pending, Error)> {
        let Forward {
            wq,
            end_direct,
            bounce,
            shift,
            device_md,
        } = *how;
        let (md, exp) = device_md.unwrap_or((0, 9));
        let raw = rq.into_raw();
        // `fix` lives across the call, its only user, and `fix_one::<F>` is
        // the trampoline for its type.
        // SAFETY: the device is valid (type invariant); `raw` is a started
        // request that nothing else ends (it came from a `Pending`); `wq`
        // is a valid workqueue, which the caller flushes before it goes.
        let r = unsafe {
            rdif_rq_lower_start(
                self.ptr.as_ptr(),
                raw.as_ptr(),
                wq.as_raw(),
                end_direct,
                bounce,
                shift,
                md,
                exp,
                Some(fix_one::<F>),
                (&raw mut fix).cast(),
            )
        };
        if r == 0 {
            return Ok(());
        }
        // SAFETY: nothing was submitted (the helper's contract): still a
        // started request that only this `Pending` ends.
        Err((unsafe { Pending::from_raw(raw) }, Error::from_errno(r)))
    }
}
