// SPDX-License-Identifier: GPL-2.0

//! Requests handed to the driver by blk-mq.
//!
//! C header: [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h)

use super::{
    bio::{Access, DataStream, Sink, Source},
    pdu::Pdu,
    wq::OwnedQueue,
    Bio,
};
use core::{marker::PhantomData, ptr::NonNull};
use kernel::bindings;

/// `REQ_OP_MASK`: the operation's bits of `cmd_flags` (checked in
/// `helpers.c`).
const REQ_OP_MASK: u32 = (1 << 8) - 1;

/// How long a requeued request waits before blk-mq dispatches it again.
const REQUEUE_DELAY_MS: kernel::ffi::c_ulong = 3;

/// The operation of a request (`enum req_op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// `REQ_OP_READ`.
    Read,
    /// `REQ_OP_WRITE`.
    Write,
    /// `REQ_OP_FLUSH`.
    Flush,
    /// `REQ_OP_DISCARD`.
    Discard,
    /// `REQ_OP_SECURE_ERASE`.
    SecureErase,
    /// `REQ_OP_WRITE_ZEROES`.
    WriteZeroes,
    /// Any other operation, with its raw value.
    Other(u32),
}

impl Op {
    /// Whether the operation changes what the device stores (write,
    /// discard, secure erase, write zeroes).
    pub(crate) fn changes_data(self) -> bool {
        matches!(
            self,
            Op::Write | Op::Discard | Op::SecureErase | Op::WriteZeroes
        )
    }

    fn from_raw(op: u32) -> Self {
        match op {
            bindings::req_op_REQ_OP_READ => Op::Read,
            bindings::req_op_REQ_OP_WRITE => Op::Write,
            bindings::req_op_REQ_OP_FLUSH => Op::Flush,
            bindings::req_op_REQ_OP_DISCARD => Op::Discard,
            bindings::req_op_REQ_OP_SECURE_ERASE => Op::SecureErase,
            bindings::req_op_REQ_OP_WRITE_ZEROES => Op::WriteZeroes,
            other => Op::Other(other),
        }
    }
}

/// A request the driver is processing, between `blk_mq_start_request` and
/// `blk_mq_end_request`, both of which the abstraction calls.
///
/// # Invariants
///
/// `ptr` points to a valid, started `struct request` that is not ended for
/// `'a`.
pub(crate) struct Request<'a> {
    ptr: NonNull<bindings::request>,
    _p: PhantomData<&'a bindings::request>,
}

impl<'a> Request<'a> {
    /// Wraps a request pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a started request that is not ended for `'a`.
    pub(crate) unsafe fn from_raw(ptr: NonNull<bindings::request>) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            ptr,
            _p: PhantomData,
        }
    }

    fn raw(&self) -> *const bindings::request {
        self.ptr.as_ptr()
    }

    /// The request's operation (`req_op`).
    pub(crate) fn op(&self) -> Op {
        // SAFETY: `self.raw()` is a valid request by the type invariant;
        // blk-mq does not change `cmd_flags` of a started request.
        Op::from_raw(unsafe { (*self.raw()).cmd_flags } & REQ_OP_MASK)
    }

    /// First 512-byte sector (`blk_rq_pos`).
    pub(crate) fn sector(&self) -> u64 {
        // SAFETY: `self.raw()` is a valid request by the type invariant; only
        // the driver advances a started request, and this one does not.
        unsafe { (*self.raw()).__sector }
    }

    /// The I/O priority (`req_get_ioprio`).
    pub(crate) fn ioprio(&self) -> u16 {
        self.bios().next().map_or(0, |b| b.ioprio())
    }

    /// Whether the request is part of a flush sequence (`RQF_FLUSH_SEQ`)
    /// or has any of `flags` (`REQ_*` bits) set.
    pub(crate) fn in_flush_sequence(&self, flags: u32) -> bool {
        // SAFETY: as in `sector`.
        let (rq_flags, cmd_flags) = unsafe { ((*self.raw()).rq_flags, (*self.raw()).cmd_flags) };
        rq_flags & (1 << bindings::rqf_flags___RQF_FLUSH_SEQ) != 0 || cmd_flags & flags != 0
    }

    /// Whether the request has all of `flags` (`REQ_*` bits, as
    /// [`super::REQ_FUA`]) set.
    pub(crate) fn has_flags(&self, flags: u32) -> bool {
        // SAFETY: as in `sector`.
        let cmd_flags = unsafe { (*self.raw()).cmd_flags };
        cmd_flags & flags == flags
    }

    /// Length in bytes (`blk_rq_bytes`).
    pub(crate) fn bytes(&self) -> u32 {
        // SAFETY: as in `sector`.
        unsafe { (*self.raw()).__data_len }
    }

    /// The data of all of the request's bios, as bytes that come from
    /// their pages (a write's data).
    pub(crate) fn data_source(&self) -> DataStream<'a, true> {
        DataStream::source(self.bios().next(), true)
    }

    /// The data of all of the bios of a read, as bytes that go into their
    /// pages; `None` if this is not a read.
    pub(crate) fn data_dest(&self) -> Option<DataStream<'a, false>> {
        Some(DataStream::dest(self.read_bios()?.next(), true))
    }

    /// Iterator over the request's bios, to read their pages.
    pub(crate) fn bios(&self) -> Bios<'a, Source> {
        // SAFETY: reading the pages of a started request's bios is allowed
        // whatever its direction.
        unsafe { self.bios_as() }
    }

    /// Iterator over the bios of a read, whose pages the driver fills;
    /// `None` if this is not a read.
    pub(crate) fn read_bios(&self) -> Option<Bios<'a, Sink>> {
        // SAFETY: the block layer hands a read's pages to the driver to
        // write (pinned for writing, or page cache pages being filled).
        (self.op() == Op::Read).then(|| unsafe { self.bios_as() })
    }

    /// # Safety
    ///
    /// The driver must be allowed the access `A` to the bios' pages.
    unsafe fn bios_as<A: Access>(&self) -> Bios<'a, A> {
        // SAFETY: as in `sector`: the bios of a started request stay as they
        // are until it ends.
        let first = unsafe { (*self.raw()).bio };
        Bios {
            // SAFETY: the bios of a started request live until it is ended,
            // which is after `'a` (type invariant); access `A` is allowed
            // (the function's requirement).
            next: NonNull::new(first).map(|p| unsafe { Bio::from_raw(p) }),
        }
    }
}

/// Iterator over the bios of a request.
pub(crate) struct Bios<'a, A: Access = Source> {
    next: Option<Bio<'a, A>>,
}

impl<'a, A: Access> Iterator for Bios<'a, A> {
    type Item = Bio<'a, A>;

    fn next(&mut self) -> Option<Bio<'a, A>> {
        let bio = self.next?;
        self.next = bio.next();
        Some(bio)
    }
}

/// A started request that the driver owns until it ends it, possibly from
/// another context (a work item).
///
/// # Invariants
///
/// `ptr` points to a started request that is not ended yet; this object
/// ends it exactly once: in [`Pending::end`], or with an I/O error if it is
/// dropped.
pub(crate) struct Pending {
    ptr: NonNull<bindings::request>,
}

// SAFETY: a started request may be ended from any context.
unsafe impl Send for Pending {}

impl Pending {
    /// Takes ownership of a started request.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a started request that nothing else ends.
    pub(crate) unsafe fn from_raw(ptr: NonNull<bindings::request>) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self { ptr }
    }

    /// The request, to look at.
    pub(crate) fn request(&self) -> Request<'_> {
        // SAFETY: the request is started and not ended while `self` lives
        // (type invariant).
        unsafe { Request::from_raw(self.ptr) }
    }

    /// What tells this request from the others in flight (its address),
    /// until it ends.
    pub(crate) fn key(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Ends the request with the status of `result`.
    pub(crate) fn end(self, result: Result<(), super::Status>) {
        let status = match result {
            Ok(()) => 0,
            Err(s) => s.raw(),
        };
        let ptr = self.ptr;
        core::mem::forget(self);
        // SAFETY: the request is started and not yet ended (type
        // invariant); `forget` above makes this the only end.
        unsafe { bindings::blk_mq_end_request(ptr.as_ptr(), status) };
    }

    /// Hands the request back to blk-mq, which dispatches it again a little
    /// later: for a transient shortage met outside `queue_rq`, after
    /// nothing was changed.
    pub(crate) fn requeue(self) {
        let ptr = self.ptr;
        core::mem::forget(self);
        // SAFETY: the request is started and not yet ended (type
        // invariant); `forget` above makes blk-mq its only owner again.
        // Its queue lives as long as any of its requests.
        unsafe {
            let q = (*ptr.as_ptr()).q;
            bindings::blk_mq_requeue_request(ptr.as_ptr(), false);
            bindings::blk_mq_delay_kick_requeue_list(q, REQUEUE_DELAY_MS);
        }
    }

    /// Hands the request to a work item on `wq`, which passes it to
    /// [`super::Operations::work`] in process context.
    pub(crate) fn defer(self, wq: &OwnedQueue) {
        let ptr = self.into_raw();
        // The work item owns the request from here on; `wq`'s owner
        // flushes it before it goes.
        // SAFETY: a started, unended request of a `TagSet::new` tag set.
        unsafe { Pdu::queue_start(ptr.as_ptr(), wq.as_raw()) };
    }

    /// The request, for the abstractions that hand it to C.
    pub(super) fn as_raw(&self) -> *mut bindings::request {
        self.ptr.as_ptr()
    }

    /// Gives the request back to blk-mq without ending it, for
    /// `queue_rq` to return `BLK_STS_RESOURCE`.
    pub(super) fn into_raw(self) -> NonNull<bindings::request> {
        let ptr = self.ptr;
        core::mem::forget(self);
        ptr
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // SAFETY: the request is started and not yet ended (type
        // invariant), and this is the last use of `self`.
        unsafe { bindings::blk_mq_end_request(self.ptr.as_ptr(), super::Status::IO_ERROR.raw()) };
    }
}
