// SPDX-License-Identifier: GPL-2.0

//! The per-request area (PDU) of every request of rdif's tag sets: the
//! state a request needs while it is served outside `queue_rq` (handed to
//! a work item, in flight on a backing file, or forwarded to a lower
//! device).
//!
//! C header: [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h)

use core::{
    mem::offset_of,
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicU8, Ordering},
};
use kernel::{bindings, c_str, prelude::*, static_lock_class};

/// The per-request area.
///
/// # Invariants
///
/// Lives in the PDU of a request of a tag set made by
/// [`super::TagSet::new`] (which sizes the PDU for it) and is set up by
/// [`Pdu::init`] when blk-mq allocates the request. Between a request's
/// start and its end, only the owner of the started request (a
/// [`super::Pending`], or the I/O it handed the request to) touches the
/// fields other than `refs` and `status`; those two are shared with the
/// completions of the request's I/O.
#[repr(C)]
pub(super) struct Pdu {
    /// Runs a request handed over by [`super::Pending::defer`].
    start_work: bindings::work_struct,
    /// Runs a forwarded request once all its clones have ended.
    pub(super) done_work: bindings::work_struct,
    /// The workqueue of `done_work`.
    pub(super) wq: *mut bindings::workqueue_struct,
    /// I/O in flight for the request, plus one for its submitter.
    pub(super) refs: AtomicU32,
    /// The first error of the forwarded request's clones.
    pub(super) status: AtomicU8,
    /// End the forwarded request in the last clone's completion.
    pub(super) end_direct: bool,
    /// Whether `md` is metadata that a forwarded read brought up (rather
    /// than the copies of a write's payloads).
    pub(super) md_is_read: bool,
    /// Metadata buffers of a forwarded request's clones.
    pub(super) md: Option<KVec<u8>>,
    /// The kiocb of a request in flight on a backing file.
    pub(super) iocb: bindings::kiocb,
    /// The segments of such a request, when it has several bios.
    pub(super) bvec: Option<KVec<bindings::bio_vec>>,
    /// Its result: bytes moved or a negative errno.
    pub(super) ret: isize,
}

impl Pdu {
    /// The PDU size of a tag set.
    pub(super) const SIZE: u32 = core::mem::size_of::<Pdu>() as u32;

    /// Sets up the PDU of `rq`, which blk-mq has just allocated; `start`
    /// and `done` are the functions of its work items.
    ///
    /// # Safety
    ///
    /// `rq` must be a request of a tag set whose `cmd_size` is
    /// [`Self::SIZE`], not in use.
    pub(super) unsafe fn init(
        rq: *mut bindings::request,
        start: unsafe extern "C" fn(*mut bindings::work_struct),
        done: unsafe extern "C" fn(*mut bindings::work_struct),
    ) {
        // SAFETY: the PDU of `rq` has room for a `Pdu` (the function's
        // requirement) and blk-mq aligns it for any type.
        let pdu = unsafe { bindings::blk_mq_rq_to_pdu(rq) }.cast::<Pdu>();
        // SAFETY: `pdu` is valid for writes and not in use; all-zero is a
        // valid value of each field but the `Option`s, written next.
        unsafe { pdu.write_bytes(0, 1) };
        // SAFETY: as above.
        unsafe {
            (&raw mut (*pdu).md).write(None);
            (&raw mut (*pdu).bvec).write(None);
        }
        // One lock class per work item, each with its own name.
        let (start_key, done_key) = (static_lock_class!(), static_lock_class!());
        // SAFETY: the work items are valid for writes and not queued; the
        // names are static and the keys live forever.
        unsafe {
            bindings::init_work_with_key(
                &raw mut (*pdu).start_work,
                Some(start),
                false,
                c_str!("rdif_request_start").as_char_ptr(),
                start_key.as_ptr(),
            );
            bindings::init_work_with_key(
                &raw mut (*pdu).done_work,
                Some(done),
                false,
                c_str!("rdif_request_done").as_char_ptr(),
                done_key.as_ptr(),
            );
        }
    }

    /// The PDU of `rq`.
    ///
    /// # Safety
    ///
    /// `rq` must be a valid request of a tag set made by
    /// [`super::TagSet::new`].
    pub(super) unsafe fn of(rq: *mut bindings::request) -> *mut Pdu {
        // SAFETY: a valid request (the function's requirement).
        unsafe { bindings::blk_mq_rq_to_pdu(rq) }.cast()
    }

    /// The request whose PDU is `pdu`.
    ///
    /// # Safety
    ///
    /// `pdu` must be the PDU of a valid request.
    pub(super) unsafe fn request(pdu: *mut Pdu) -> NonNull<bindings::request> {
        // SAFETY: the PDU of a request (the function's requirement).
        let rq = unsafe { bindings::blk_mq_rq_from_pdu(pdu.cast()) };
        // SAFETY: the PDU follows its request, which is never at address 0.
        unsafe { NonNull::new_unchecked(rq) }
    }

    /// The request of its start work item.
    ///
    /// # Safety
    ///
    /// `work` must be the `start_work` of the PDU of a valid request.
    pub(super) unsafe fn from_start_work(
        work: *mut bindings::work_struct,
    ) -> NonNull<bindings::request> {
        // SAFETY: `work` is the field at `start_work` of a `Pdu` (the
        // function's requirement).
        let pdu = unsafe { work.byte_sub(offset_of!(Pdu, start_work)) }.cast::<Pdu>();
        // SAFETY: the PDU of a valid request.
        unsafe { Self::request(pdu) }
    }

    /// The PDU of its done work item.
    ///
    /// # Safety
    ///
    /// `work` must be the `done_work` of the PDU of a valid request.
    pub(super) unsafe fn from_done_work(work: *mut bindings::work_struct) -> *mut Pdu {
        // SAFETY: `work` is the field at `done_work` of a `Pdu` (the
        // function's requirement).
        unsafe { work.byte_sub(offset_of!(Pdu, done_work)) }.cast()
    }

    /// The PDU of its kiocb.
    ///
    /// # Safety
    ///
    /// `iocb` must be the `iocb` of the PDU of a valid request.
    pub(super) unsafe fn from_iocb(iocb: *mut bindings::kiocb) -> *mut Pdu {
        // SAFETY: `iocb` is the field at `iocb` of a `Pdu` (the function's
        // requirement).
        unsafe { iocb.byte_sub(offset_of!(Pdu, iocb)) }.cast()
    }

    /// Queues the start work item of `rq` on `wq`.
    ///
    /// # Safety
    ///
    /// `rq` must be a started request of a tag set made by
    /// [`super::TagSet::new`] that the caller owns and hands over, and
    /// `wq` a valid workqueue.
    pub(super) unsafe fn queue_start(
        rq: *mut bindings::request,
        wq: *mut bindings::workqueue_struct,
    ) {
        // SAFETY: the PDU of a valid request; its work item is idle (its
        // request was not handed over since its last run).
        unsafe {
            bindings::queue_work_on(
                bindings::wq_misc_consts_WORK_CPU_UNBOUND as i32,
                wq,
                &raw mut (*Self::of(rq)).start_work,
            )
        };
    }

    /// Drops one reference of `pdu`; whether it was the last.
    ///
    /// # Safety
    ///
    /// `pdu` must be the PDU of a valid request, and the caller must hold
    /// one of its `refs`.
    pub(super) unsafe fn put(pdu: *mut Pdu) -> bool {
        // SAFETY: `refs` is shared; atomic.
        unsafe { (*pdu).refs.fetch_sub(1, Ordering::AcqRel) == 1 }
    }
}
