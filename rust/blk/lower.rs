// SPDX-License-Identifier: GPL-2.0

//! A lower block device that requests are forwarded to (pass-through),
//! as stacking drivers do: each bio of a request goes down as a clone
//! (`bio_alloc_clone`, integrity payload included), the lower device's
//! limits and integrity profile are stacked into the disk's
//! (`queue_limits_stack_bdev`, `queue_limits_stack_integrity_bdev`), and
//! the request ends with the first error any clone met, unchanged.
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h)

use super::{
    bio::Sink, disk::IntegrityLimits, pdu::Pdu, wq::OwnedQueue, Bio, Limits, Op, Pending, Request,
};
use core::{
    ffi::c_void,
    ptr::{self, NonNull},
    sync::atomic::Ordering,
};
use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    new_mutex,
    page::Page,
    prelude::*,
    sync::Mutex,
    types::Opaque,
};

// The bindings' structs end in zero-length arrays, which this lint flags;
// they are only passed by pointer here.
#[allow(improper_ctypes)]
extern "C" {
    fn rdif_lower_stack_limits(
        bdev: *mut bindings::block_device,
        lim: *mut bindings::queue_limits,
    ) -> i32;
    fn rdif_bio_integrity_attach(
        bio: *mut bindings::bio,
        buf: *mut c_void,
        len: u32,
        seed: u64,
        flags: u16,
        app_tag: u16,
        gfp: bindings::gfp_t,
    ) -> i32;
}

/// The data of [`Lower::sync_io`], and which way it goes.
pub(crate) enum SyncData<'a> {
    /// Read from the lower device into this.
    Read(&'a mut [u8]),
    /// Written to the lower device from this (a flush if empty).
    Write(&'a [u8]),
}

/// Metadata of the driver's own that a forwarded read brought up from the
/// lower device: for each bio of the read that had no integrity payload,
/// in order, its intervals' metadata.
pub(crate) struct DeviceMd(KVec<u8>);

impl DeviceMd {
    /// Takes the metadata buffer of a forwarded request from its PDU: the
    /// metadata a read brought up, if it asked for some; the copies of a
    /// write's payloads are freed.
    ///
    /// # Safety
    ///
    /// `pdu` must be the PDU of a request started with [`Lower::start`]
    /// whose clones have all ended, not yet ended itself.
    pub(super) unsafe fn take(pdu: *mut Pdu) -> Option<Self> {
        // SAFETY: the clones are gone: the request's owner alone uses its
        // PDU (the function's requirement).
        let (md, read) = unsafe { ((*pdu).md.take(), (*pdu).md_is_read) };
        md.filter(|_| read).map(DeviceMd)
    }

    /// The bytes.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
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

/// The bio set of a lower device's clones.
#[pin_data(PinnedDrop)]
struct Pool {
    #[pin]
    bs: Opaque<bindings::bio_set>,
    /// Serializes clone allocations that may wait for the bio set.
    #[pin]
    alloc_lock: Mutex<()>,
}

#[pinned_drop]
impl PinnedDrop for Pool {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: initialized by `bioset_init` (a `Pool` exists only then);
        // no clone is left: the lower device is closed first.
        unsafe { bindings::bioset_exit(self.bs.get()) };
    }
}

/// An open lower block device.
///
/// # Invariants
///
/// `file` is the block device `bdev` open for reading and writing, held
/// exclusively with `pool` as holder, until this object is dropped.
pub(crate) struct Lower {
    file: NonNull<bindings::file>,
    bdev: NonNull<bindings::block_device>,
    pool: Pin<KBox<Pool>>,
}

// SAFETY: the block device and its bio set may be used from any thread.
unsafe impl Send for Lower {}
// SAFETY: as above; nothing is changed through `&self` but under the
// bio set's own locking.
unsafe impl Sync for Lower {}

impl Drop for Lower {
    fn drop(&mut self) {
        // No clone is in flight: the disk above is removed (every request
        // ended, so every clone too) before its `Lower` is dropped.
        // SAFETY: opened with `bdev_file_open_by_path` (type invariant),
        // unused after.
        unsafe { bindings::bdev_fput(self.file.as_ptr()) };
    }
}

/// The lower device went away (surprise removal): its I/O fails from now
/// on, as the block layer ends it.
///
/// # Safety
///
/// Called by the block layer for a device this driver holds, with the
/// device's `bd_holder_lock` held, which it must release.
unsafe extern "C" fn mark_dead(bdev: *mut bindings::block_device, _surprise: bool) {
    // SAFETY: the device and its disk are valid during the call.
    let name = unsafe { CStr::from_char_ptr((*(*bdev).bd_disk).disk_name.as_ptr()) };
    pr_warn!("lower device {} is gone: its I/O fails from now on\n", name);
    // SAFETY: held by the caller, for this function to release.
    unsafe { bindings::mutex_unlock(&raw mut (*bdev).bd_holder_lock) };
}

static HOLDER_OPS: bindings::blk_holder_ops = bindings::blk_holder_ops {
    mark_dead: Some(mark_dead),
    // SAFETY: all other members are optional callbacks, for which all-zero
    // bits (`None`) are valid.
    ..unsafe { core::mem::zeroed() }
};

/// Clones of a request's bios, not yet submitted, chained by `bi_next`
/// in the order of their bios. Dropping it frees them.
struct Chain {
    head: *mut bindings::bio,
    tail: *mut bindings::bio,
    len: u32,
}

impl Chain {
    fn new() -> Self {
        Chain {
            head: ptr::null_mut(),
            tail: ptr::null_mut(),
            len: 0,
        }
    }

    /// Adds a clone the chain owns from now on.
    ///
    /// # Safety
    ///
    /// `bio` must be a clone allocated from a lower device's bio set, not
    /// submitted, owned by the caller.
    unsafe fn push(&mut self, bio: *mut bindings::bio) {
        // SAFETY: an unsubmitted clone (the function's requirement); the
        // tail is one too.
        unsafe {
            (*bio).bi_next = ptr::null_mut();
            if self.tail.is_null() {
                self.head = bio;
            } else {
                (*self.tail).bi_next = bio;
            }
        }
        self.tail = bio;
        self.len = self.len.saturating_add(1);
    }

    fn pop(&mut self) -> Option<*mut bindings::bio> {
        let bio = NonNull::new(self.head)?.as_ptr();
        // SAFETY: a clone of the chain.
        unsafe {
            self.head = (*bio).bi_next;
            (*bio).bi_next = ptr::null_mut();
        }
        if self.head.is_null() {
            self.tail = ptr::null_mut();
        }
        self.len = self.len.saturating_sub(1);
        Some(bio)
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        while let Some(bio) = self.pop() {
            // SAFETY: an unsubmitted clone the chain owned.
            unsafe { free_clone(bio) };
        }
    }
}

/// The allocation order of a bounce page of `len` bytes (`get_order`).
fn order_of(len: u32) -> u32 {
    let pages = (len as usize).div_ceil(bindings::PAGE_SIZE).max(1);
    pages.next_power_of_two().trailing_zeros()
}

/// Frees the data pages of a bounce clone.
///
/// # Safety
///
/// `bio` must be a bounce clone (made by `Lower::bounce`), whose pages
/// nothing uses any more.
unsafe fn free_bounce_pages(bio: *mut bindings::bio) {
    // SAFETY: a valid bio whose `bi_vcnt` entries are pages it owns, each
    // allocated with the order of its length.
    unsafe {
        for i in 0..usize::from((*bio).bi_vcnt) {
            let bv = *(*bio).bi_io_vec.add(i);
            bindings::__free_pages(bv.bv_page, order_of(bv.bv_len));
        }
    }
}

/// What an unsubmitted bounce clone holds in `bi_private`, to be told from
/// a plain clone; submission sets its completion and its request instead.
static BOUNCE_MARK: u8 = 0;

/// Whether the unsubmitted clone `bio` is a bounce clone.
///
/// # Safety
///
/// `bio` must be an unsubmitted clone made by [`Lower::clone_all`].
unsafe fn is_bounce(bio: *mut bindings::bio) -> bool {
    // SAFETY: a valid bio (the function's requirement).
    ptr::eq(
        unsafe { (*bio).bi_private }.cast_const().cast(),
        &BOUNCE_MARK,
    )
}

/// Frees a clone that was never submitted.
///
/// # Safety
///
/// `bio` must be an unsubmitted clone owned by the caller.
unsafe fn free_clone(bio: *mut bindings::bio) {
    // SAFETY: the caller owns the clone, and with it a bounce clone's
    // pages.
    unsafe {
        if is_bounce(bio) {
            free_bounce_pages(bio);
        }
        bindings::bio_put(bio);
    }
}

/// Drops one reference of a forwarded request's PDU: the last one hands
/// the request to its done work item (or, with `end_direct`, runs it).
///
/// # Safety
///
/// `pdu` must be the PDU of a request started with [`Lower::start`], and
/// the caller must hold one of its references.
unsafe fn forward_put(pdu: *mut Pdu) {
    // SAFETY: the caller holds a reference.
    if !unsafe { Pdu::put(pdu) } {
        return;
    }
    // SAFETY: the last reference: the request's owner is its done work
    // item, set up by `Pdu::init`; its workqueue outlives the request.
    unsafe {
        let work = &raw mut (*pdu).done_work;
        if (*pdu).end_direct {
            if let Some(f) = (*work).func {
                f(work);
            }
        } else {
            bindings::queue_work_on(
                bindings::wq_misc_consts_WORK_CPU_UNBOUND as i32,
                (*pdu).wq,
                work,
            );
        }
    }
}

/// The completion of a clone.
///
/// # Safety
///
/// Called by the block layer for a submitted clone whose `bi_private` is
/// the PDU of its request, which holds a reference for it.
unsafe extern "C" fn clone_endio(clone: *mut bindings::bio) {
    // SAFETY: a valid bio of `Lower::start`.
    let (pdu, status) = unsafe { ((*clone).bi_private.cast::<Pdu>(), (*clone).bi_status) };
    if status != 0 {
        // SAFETY: `status` is shared with the other clones; atomic.
        let _ = unsafe {
            (*pdu)
                .status
                .compare_exchange(0, status, Ordering::AcqRel, Ordering::Relaxed)
        };
    }
    // SAFETY: the clone has ended and is not used after this.
    unsafe { bindings::bio_put(clone) };
    // SAFETY: the clone's reference.
    unsafe { forward_put(pdu) };
}

/// The completion of a bounce clone.
///
/// # Safety
///
/// As for [`clone_endio`], for a clone made by `Lower::bounce`.
unsafe extern "C" fn bounce_endio(clone: *mut bindings::bio) {
    // SAFETY: the I/O is over: nothing uses the pages any more.
    unsafe { free_bounce_pages(clone) };
    // SAFETY: the function's requirement.
    unsafe { clone_endio(clone) };
}

/// `BLK_OPEN_READ` and `BLK_OPEN_WRITE` (checked in `helpers.c`).
const BLK_OPEN_READ: bindings::blk_mode_t = 1 << 0;
const BLK_OPEN_WRITE: bindings::blk_mode_t = 1 << 1;
/// `GFP_NOIO` (checked in `helpers.c`).
const GFP_NOIO: bindings::gfp_t = 0xc00;

/// `REQ_PREFLUSH` as a flag.
const REQ_PREFLUSH: u32 = 1 << bindings::req_flag_bits___REQ_PREFLUSH;

use super::REQ_FUA;

impl Lower {
    /// Opens the block device at `path` exclusively for reading and
    /// writing.
    pub(crate) fn open(path: &CStr) -> Result<Self> {
        let pool = KBox::pin_init(
            try_pin_init!(Pool {
                bs <- Opaque::try_ffi_init(|bs: *mut bindings::bio_set| {
                    // SAFETY: `bs` is valid for writes. `bioset_init`
                    // expects a zeroed bio set (as `kzalloc` gives): it
                    // sets up what its flags ask for and leaves the rest.
                    unsafe { bs.write_bytes(0, 1) };
                    // SAFETY: as above; on failure it undoes what it did.
                    to_result(unsafe {
                        bindings::bioset_init(
                            bs,
                            bindings::BIO_POOL_SIZE,
                            0,
                            bindings::BIOSET_NEED_BVECS as i32,
                        )
                    })
                }),
                alloc_lock <- new_mutex!(()),
            }),
            GFP_KERNEL,
        )?;
        let holder: *const Pool = &*pool;
        // SAFETY: `path` is NUL-terminated; the holder is the pool's
        // address, stable while it is pinned, and `HOLDER_OPS` is static.
        let file = from_err_ptr(unsafe {
            bindings::bdev_file_open_by_path(
                path.as_char_ptr(),
                BLK_OPEN_READ | BLK_OPEN_WRITE,
                holder.cast_mut().cast(),
                &HOLDER_OPS,
            )
        })?;
        let file = NonNull::new(file).ok_or(ENODEV)?;
        // SAFETY: an open block device file.
        let bdev = NonNull::new(unsafe { bindings::file_bdev(file.as_ptr()) }).ok_or(ENODEV)?;
        // INVARIANT: opened above, held with the pool as holder.
        Ok(Lower { file, bdev, pool })
    }

    fn bdev(&self) -> *mut bindings::block_device {
        self.bdev.as_ptr()
    }

    /// The lower device's queue limits.
    fn limits(&self) -> &bindings::queue_limits {
        // SAFETY: the device is open (type invariant), so its queue is
        // valid; its limits change only under the queue's freeze, which
        // the copies taken from here may miss, as any stacking driver's.
        unsafe { &(*(*self.bdev()).bd_queue).limits }
    }

    /// Capacity in 512-byte sectors.
    pub(crate) fn sectors(&self) -> u64 {
        // SAFETY: the device is open (type invariant).
        unsafe { ptr::read_volatile(&raw const (*self.bdev()).bd_nr_sectors) }
    }

    /// Logical block size.
    pub(crate) fn block_size(&self) -> u32 {
        self.limits().logical_block_size
    }

    /// Reads into or writes from `data` at `sector` of the lower device
    /// and waits for the end: the driver's own I/O, not a request's. With
    /// `md`, the bio carries it as its integrity payload, asking for no
    /// check, with reference tag seed `seed`: the block layer maps the
    /// tags of a read from the physical ones to the seed's and back for a
    /// write, so with the first interval's own number as the seed, a read
    /// brings up the metadata as stored and a write stores it as given.
    /// The data goes through pages of its own (`data` may be any memory).
    /// A flush if `data` is empty. Sleeps; allocates with `GFP_KERNEL`, so
    /// that the caller must keep I/O out of reclaim if the lower device's
    /// I/O may wait for its own ([`super::with_backing_io`]).
    pub(crate) fn sync_io(
        &self,
        (sector, seed): (u64, u64),
        mut data: SyncData<'_>,
        md: Option<&mut KVec<u8>>,
    ) -> Result {
        let page_size = bindings::PAGE_SIZE;
        let (bytes, op) = match &data {
            SyncData::Write([]) => (&[][..], bindings::req_op_REQ_OP_WRITE | REQ_PREFLUSH),
            SyncData::Write(d) => (&d[..], bindings::req_op_REQ_OP_WRITE),
            SyncData::Read(d) => (&d[..], bindings::req_op_REQ_OP_READ),
        };
        let pages = Self::pages_for(bytes, matches!(data, SyncData::Write(_)))?;
        let nr = pages.len();
        let len = bytes.len();
        // SAFETY: the device is open and its bio set valid (type
        // invariant); `nr <= BIO_MAX_VECS`.
        let bio = unsafe {
            bindings::bio_alloc_bioset(
                self.bdev(),
                nr as u16,
                op,
                bindings::GFP_KERNEL,
                self.bio_set(),
            )
        };
        let bio = NonNull::new(bio).ok_or(ENOMEM)?.as_ptr();
        // SAFETY: a new bio, owned here, with room for `nr` segments; each
        // page outlives it (freed after `bio_put` below).
        unsafe {
            (*bio).bi_iter.bi_sector = sector;
            for (k, page) in pages.iter().enumerate() {
                let chunk = (len - k * page_size).min(page_size);
                bindings::__bio_add_page(bio, page.as_ptr(), chunk as u32, 0);
            }
        }
        let mut ret = Ok(());
        if let Some(md) = md {
            // SAFETY: `md` is a `KVec`'s buffer, kmalloc'ed, so in the
            // linear map as `bvec_set_virt` needs, and it outlives the
            // bio, which is owned here; no flags: no check asked.
            ret = to_result(unsafe {
                rdif_bio_integrity_attach(
                    bio,
                    md.as_mut_ptr().cast(),
                    md.len() as u32,
                    seed,
                    0,
                    0,
                    bindings::GFP_KERNEL,
                )
            });
        }
        if ret.is_ok() {
            // SAFETY: a complete bio for the open device; this waits for
            // its end.
            ret = to_result(unsafe { bindings::submit_bio_wait(bio) });
        }
        // SAFETY: owned here, ended (or never submitted); its payload, if
        // any, is freed with it, the buffer it pointed to is not.
        unsafe { bindings::bio_put(bio) };
        ret?;
        if let SyncData::Read(d) = &mut data {
            for (page, chunk) in pages.iter().zip(d.chunks_mut(page_size)) {
                // SAFETY: `chunk` is valid for writing `chunk.len()` bytes,
                // at most a page.
                unsafe { page.read_raw(chunk.as_mut_ptr(), 0, chunk.len())? };
            }
        }
        Ok(())
    }

    /// Pages for the data of [`Self::sync_io`], at most a bio's worth;
    /// filled with `data` for a write.
    fn pages_for(data: &[u8], write: bool) -> Result<KVec<Page>> {
        let page_size = bindings::PAGE_SIZE;
        let nr = data.len().div_ceil(page_size);
        if nr > bindings::BIO_MAX_VECS as usize {
            return Err(EINVAL);
        }
        let mut pages = KVec::with_capacity(nr, GFP_KERNEL)?;
        for chunk in data.chunks(page_size) {
            let page = Page::alloc_page(GFP_KERNEL)?;
            if write {
                // SAFETY: `chunk` is valid for reading `chunk.len()`
                // bytes, at most a page.
                unsafe { page.write_raw(chunk.as_ptr(), 0, chunk.len())? };
            }
            pages.push(page, GFP_KERNEL)?;
        }
        Ok(pages)
    }

    /// The lower device's integrity profile, if it has one.
    pub(crate) fn integrity(&self) -> Option<IntegrityLimits> {
        IntegrityLimits::from_raw(&self.limits().integrity)
    }

    /// The limits of a disk over the lower device: `limits`' block size
    /// and features, everything else and the integrity profile inherited
    /// from the lower device as stacking drivers do (starting from the
    /// block layer's stacking defaults); `EINVAL` if the profiles cannot
    /// be stacked.
    pub(crate) fn stack(&self, mut limits: Limits) -> Result<Limits> {
        // SAFETY: the device is open (type invariant); `limits.0` is a
        // valid limits structure.
        to_result(unsafe { rdif_lower_stack_limits(self.bdev(), &mut limits.0) })?;
        Ok(limits)
    }

    fn bio_set(&self) -> *mut bindings::bio_set {
        self.pool.bs.get()
    }

    /// A copy of the write `src` (data, and payload into `md`) in memory
    /// of its own, to be changed on its way down without touching the
    /// submitter's buffers; `None` if memory is short.
    fn bounce(
        &self,
        src: Bio<'_>,
        gfp: bindings::gfp_t,
        md: &mut [u8],
    ) -> Option<*mut bindings::bio> {
        let size = src.size();
        // A bio of multi-page segments may hold more than BIO_MAX_VECS
        // pages: the copy then takes pieces of several pages each.
        let pages = (size as usize).div_ceil(bindings::PAGE_SIZE);
        let per = pages
            .div_ceil(bindings::BIO_MAX_VECS as usize)
            .next_power_of_two();
        let seg = u32::try_from(bindings::PAGE_SIZE.saturating_mul(per)).ok()?;
        let nr = size.div_ceil(seg.max(1));
        let s = src.as_ptr();
        // SAFETY: the device is open and its bio set valid (type
        // invariant); `s` is a valid bio; `nr <= BIO_MAX_VECS`.
        let bio = unsafe {
            bindings::bio_alloc_bioset(self.bdev(), nr as u16, (*s).bi_opf, gfp, self.bio_set())
        };
        if bio.is_null() {
            return None;
        }
        // SAFETY: a new bio, owned here; marked as a bounce clone first,
        // so that `free_clone` frees the pages added so far.
        unsafe {
            (*bio).bi_private = (&raw const BOUNCE_MARK).cast_mut().cast();
            (*bio).bi_iter.bi_sector = (*s).bi_iter.bi_sector;
            (*bio).bi_ioprio = (*s).bi_ioprio;
        }
        for i in 0..nr {
            let len = size.saturating_sub(i.saturating_mul(seg)).min(seg);
            // SAFETY: no preconditions.
            let page = unsafe { bindings::alloc_pages(gfp, order_of(len)) };
            if page.is_null() {
                // SAFETY: unsubmitted, owned here.
                unsafe { free_clone(bio) };
                return None;
            }
            // SAFETY: room for `nr` segments; the page is the bio's now.
            unsafe { bindings::__bio_add_page(bio, page, len, 0) };
        }
        // SAFETY: both bios are valid, of the same size; `src`'s pages may
        // be read.
        unsafe { bindings::bio_copy_data(bio, s) };
        if let Some(bip) = src.integrity() {
            let mut cur = super::Cursor::new(bip.segments());
            // SAFETY: `md` is the part of the request's metadata buffer for
            // this copy, which lives until the request ends, after the
            // copy; the bio is owned here.
            let r = cur.copy_to(md).ok().and_then(|()| unsafe {
                (rdif_bio_integrity_attach(
                    bio,
                    md.as_mut_ptr().cast(),
                    md.len() as u32,
                    bip.seed(),
                    bip.flags(),
                    bip.app_tag(),
                    gfp,
                ) == 0)
                    .then_some(())
            });
            if r.is_none() {
                // SAFETY: unsubmitted, owned here.
                unsafe { free_clone(bio) };
                return None;
            }
        }
        Some(bio)
    }

    /// Clones every bio of `rq` into a chain (see [`Self::start`]), with
    /// `md` for the metadata buffers of the clones; `None` if memory is
    /// short.
    fn clone_all(
        &self,
        rq: &Request<'_>,
        how: &Forward<'_>,
        md: &mut [u8],
        gfp: bindings::gfp_t,
    ) -> Option<Chain> {
        let mut chain = Chain::new();
        let write = rq.op() == Op::Write;
        let mut md = md;
        if rq.bios().next().is_none() {
            // A flush (or an empty request): a flush of the lower device.
            // SAFETY: the device is open and its bio set valid.
            let bio = unsafe {
                bindings::bio_alloc_bioset(
                    self.bdev(),
                    0,
                    bindings::req_op_REQ_OP_WRITE | REQ_PREFLUSH,
                    gfp,
                    self.bio_set(),
                )
            };
            // SAFETY: a new clone, owned here.
            unsafe { chain.push(NonNull::new(bio)?.as_ptr()) };
        }
        for src in rq.bios() {
            let clone = if how.bounce && write && src.size() > 0 {
                let len = src
                    .integrity()
                    .map_or(0, |b| b.segments().remaining() as usize);
                let (mine, rest) = core::mem::take(&mut md).split_at_mut_checked(len)?;
                md = rest;
                self.bounce(src, gfp, mine)?
            } else {
                let (clone, used) = self.clone_one(src, how, write, md, gfp)?;
                md = core::mem::take(&mut md).get_mut(used..)?;
                clone
            };
            // SAFETY: a new clone, owned here.
            unsafe {
                (*clone).bi_iter.bi_sector =
                    (*clone).bi_iter.bi_sector.wrapping_add_signed(how.shift);
                chain.push(clone);
            }
        }
        Some(chain)
    }

    /// A clone of `src`, sharing its pages and payload; for a read without
    /// payload, with the device's own metadata (`how.device_md`) in the
    /// front of `md`, and how many bytes of it that takes. `None` if
    /// memory is short.
    fn clone_one(
        &self,
        src: Bio<'_>,
        how: &Forward<'_>,
        write: bool,
        md: &mut [u8],
        gfp: bindings::gfp_t,
    ) -> Option<(*mut bindings::bio, usize)> {
        // SAFETY: the device is open and its bio set valid; `src` is a
        // valid bio of a started request.
        let clone =
            unsafe { bindings::bio_alloc_clone(self.bdev(), src.as_ptr(), gfp, self.bio_set()) };
        let clone = NonNull::new(clone)?.as_ptr();
        let (Some((per, exp)), None) = (how.device_md.filter(|_| !write), src.integrity()) else {
            return Some((clone, 0));
        };
        // Metadata of the device's own, seeded with the interval number, so
        // that the lower device's completion leaves the reference tags as
        // they are.
        let len = (src.size().checked_shr(exp).unwrap_or(0) as usize).saturating_mul(per as usize);
        let seed = src.sector().checked_shr(exp.saturating_sub(9)).unwrap_or(0);
        let attached = md.get_mut(..len).map(|mine| {
            // SAFETY: `mine` lives until the request ends, after the
            // clone; the clone is owned here.
            unsafe {
                rdif_bio_integrity_attach(
                    clone,
                    mine.as_mut_ptr().cast(),
                    len as u32,
                    seed,
                    0,
                    0,
                    gfp,
                )
            }
        });
        if attached != Some(0) {
            // SAFETY: unsubmitted, owned here.
            unsafe { free_clone(clone) };
            return None;
        }
        Some((clone, len))
    }

    /// The bytes of metadata buffers the clones of `rq` need.
    fn md_len(rq: &Request<'_>, how: &Forward<'_>) -> usize {
        match (rq.op(), how.device_md) {
            (Op::Read, Some((per, exp))) => rq
                .bios()
                .filter(|b| b.integrity().is_none())
                .map(|b| {
                    (b.size().checked_shr(exp).unwrap_or(0) as usize).saturating_mul(per as usize)
                })
                .fold(0, usize::saturating_add),
            (Op::Write, _) if how.bounce => rq
                .bios()
                .filter(|b| b.size() > 0)
                .filter_map(|b| b.integrity())
                .map(|b| b.segments().remaining() as usize)
                .fold(0, usize::saturating_add),
            _ => 0,
        }
    }

    /// Forwards `rq` to the lower device as `how` says; `fix(copy, src)`
    /// sees each copy (`how.bounce`) before anything is submitted and may
    /// change its data and metadata, which are the device's own; `go()`
    /// runs once everything is allocated, just before the clones are
    /// submitted (from then on, the request is on its way). Once every
    /// clone has ended, a work item on `how.wq` passes the request to
    /// [`super::Operations::lower_done`] with the lower device's status
    /// (or, with `how.end_direct`, the last clone's completion does).
    /// Must be called where the caller may sleep, outside the dispatch of
    /// its own queue (from [`super::Operations::work`]), with allocations
    /// that cannot recurse into I/O ([`super::with_backing_io`]):
    /// submitting may wait for the lower queue. Hands the request back
    /// untouched with `ENOMEM` if memory for the clones cannot be had
    /// (nothing was submitted).
    ///
    /// The clones come from the lower device's bio set. As device mapper
    /// does (`alloc_multiple_bios`), they are first allocated without
    /// waiting; if that fails, again with `GFP_NOIO`, one request at a
    /// time, so that no two requests each hold part of the bio set's
    /// reserve while waiting for the rest: the reserve then guarantees
    /// progress.
    pub(crate) fn start<F: FnMut(Bio<'_, Sink>, Bio<'_>), G: FnOnce()>(
        &self,
        rq: Pending,
        how: &Forward<'_>,
        mut fix: F,
        go: G,
    ) -> Result<(), (Pending, Error)> {
        let r = rq.request();
        let md_len = Self::md_len(&r, how);
        let mut md = KVec::new();
        if md_len > 0 && md.resize(md_len, 0, GFP_KERNEL | __GFP_NOWARN).is_err() {
            return Err((rq, ENOMEM));
        }
        let nowait = bindings::GFP_NOWAIT | bindings::__GFP_NOWARN;
        let chain = match self.clone_all(&r, how, &mut md, nowait) {
            Some(c) => c,
            None => {
                let _guard = self.pool.alloc_lock.lock();
                let noio = GFP_NOIO | bindings::__GFP_NOWARN;
                match self.clone_all(&r, how, &mut md, noio) {
                    Some(c) => c,
                    None => return Err((rq, ENOMEM)),
                }
            }
        };
        // Clones are in the order of their bios (a flush has no bio); `fix`
        // sees the copies, whose pages and payload are the driver's own.
        let mut clone = chain.head;
        let mut srcs = r.bios();
        while let Some(c) = NonNull::new(clone) {
            let src = srcs.next();
            // SAFETY: an unsubmitted clone of the chain.
            let bounced = unsafe { is_bounce(c.as_ptr()) };
            if let (true, Some(src)) = (bounced, src) {
                // SAFETY: a copy owned by the driver, not submitted while
                // `fix` runs.
                fix(unsafe { Bio::from_raw(c) }, src);
            }
            // SAFETY: as above.
            clone = unsafe { (*c.as_ptr()).bi_next };
        }
        let end_direct =
            how.end_direct && r.op() != Op::Flush && !r.in_flush_sequence(REQ_PREFLUSH | REQ_FUA);
        go();
        self.submit(rq, chain, md, how.wq, end_direct);
        Ok(())
    }

    /// Submits the clones of `rq`.
    fn submit(
        &self,
        rq: Pending,
        mut chain: Chain,
        md: KVec<u8>,
        wq: &OwnedQueue,
        end_direct: bool,
    ) {
        let read = rq.request().op() == Op::Read;
        let raw = rq.into_raw().as_ptr();
        // SAFETY: every request of the driver's tag sets has a `Pdu`.
        let pdu = unsafe { Pdu::of(raw) };
        // SAFETY: the request is started and owned here (it came from a
        // `Pending`): nothing else uses its PDU until the clones go.
        unsafe {
            (*pdu).md = (!md.is_empty()).then_some(md);
            (*pdu).md_is_read = read;
            (*pdu).wq = wq.as_raw();
            (*pdu).end_direct = end_direct;
            (*pdu).status.store(0, Ordering::Relaxed);
            (*pdu).refs.store(chain.len + 1, Ordering::Relaxed);
        }
        while let Some(clone) = chain.pop() {
            // SAFETY: an unsubmitted clone of the request, which holds a
            // reference of the PDU for it from here on.
            unsafe {
                (*clone).bi_end_io = Some(if is_bounce(clone) {
                    bounce_endio
                } else {
                    clone_endio
                });
                (*clone).bi_private = pdu.cast();
                bindings::submit_bio_noacct(clone);
            }
        }
        // SAFETY: the submitter's reference, taken above.
        unsafe { forward_put(pdu) };
    }
}
