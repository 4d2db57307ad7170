// SPDX-License-Identifier: GPL-2.0

//! Tag sets and the driver's blk-mq operations.
//!
//! C header: [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h)

use super::{lower::DeviceMd, pdu::Pdu, Pending, Status};
use core::{marker::PhantomData, pin::Pin, ptr::NonNull, sync::atomic::Ordering};
use kernel::{bindings, error, prelude::*, types::ForeignOwnable, types::Opaque};

/// The operations of a blk-mq driver.
///
/// The abstraction starts each request before handing it to
/// [`Operations::queue_rq`] as a [`Pending`] request, which the driver ends
/// (at once, or later from another context) or hands back.
pub(crate) trait Operations: Sized + 'static {
    /// Data shared by all queues of a disk, stored in `queue->queuedata`.
    type QueueData: ForeignOwnable + Send + Sync;

    /// Takes one request. `Ok` means the driver has taken it: it has ended
    /// it or will end it. `Err` hands it back unchanged: blk-mq requeues
    /// it and dispatches it again later (`BLK_STS_RESOURCE`), so a driver
    /// returns it only for a transient shortage, having changed nothing.
    fn queue_rq(
        data: <Self::QueueData as ForeignOwnable>::Borrowed<'_>,
        rq: Pending,
    ) -> Result<(), Pending>;

    /// A request started with [`super::file::BackingFile::start_request`]
    /// is done: `result` is the number of bytes moved or a negative errno.
    /// May be called from any context, interrupts included.
    fn file_done(
        data: <Self::QueueData as ForeignOwnable>::Borrowed<'_>,
        rq: Pending,
        result: isize,
    );

    /// A request handed to a work item with [`Pending::defer`] runs here,
    /// in process context, outside any dispatch of the queue: it may
    /// sleep and submit I/O to other devices.
    fn work(data: <Self::QueueData as ForeignOwnable>::Borrowed<'_>, rq: Pending);

    /// A request started with [`super::lower::Lower::start`] is done:
    /// `status` is the first error of its clones, if any; `device_md` the
    /// metadata of the driver's own a read brought up, if it asked. Runs
    /// in a work item (process context), after the lower device's
    /// completion has returned; or, for a request started with
    /// `end_direct`, in the lower device's completion, in any context,
    /// interrupts included.
    fn lower_done(
        data: <Self::QueueData as ForeignOwnable>::Borrowed<'_>,
        rq: Pending,
        status: Result<(), Status>,
        device_md: Option<DeviceMd>,
    );
}

struct OperationsVTable<T: Operations>(PhantomData<T>);

impl<T: Operations> OperationsVTable<T> {
    /// # Safety
    ///
    /// Called by blk-mq with a valid hardware context of a queue whose
    /// `queuedata` came from `T::QueueData::into_foreign` (see
    /// [`super::GenDisk`]) and valid queue data holding a request that is
    /// not started.
    unsafe extern "C" fn queue_rq(
        hctx: *mut bindings::blk_mq_hw_ctx,
        bd: *const bindings::blk_mq_queue_data,
    ) -> bindings::blk_status_t {
        // SAFETY: `bd` is valid for the duration of the call (C contract).
        let Some(rq) = NonNull::new(unsafe { (*bd).rq }) else {
            return Status::IO_ERROR.raw();
        };
        // SAFETY: `rq` is a valid request handed to this driver and not yet
        // started; starting it is the driver's first duty.
        unsafe { bindings::blk_mq_start_request(rq.as_ptr()) };
        // SAFETY: `hctx` and its queue are valid during the call, and the
        // queue's `queuedata` came from `into_foreign` and is only reclaimed
        // after the disk is deleted, when no `queue_rq` can run any more.
        let data = unsafe { T::QueueData::borrow((*(*hctx).queue).queuedata) };
        // SAFETY: the request was started above, and only the `Pending`
        // ends it.
        let pending = unsafe { Pending::from_raw(rq) };
        match T::queue_rq(data, pending) {
            Ok(()) => 0,
            Err(pending) => {
                // Not ended: blk-mq requeues the started request.
                let _ = pending.into_raw();
                Status::RESOURCE.raw()
            }
        }
    }

    /// # Safety
    ///
    /// Called by blk-mq for a request the driver passed to
    /// `blk_mq_complete_request`, which only a backing file's I/O does,
    /// for a started request it took over from a `Pending` (see
    /// [`super::file::BackingFile::start_request`]), of a queue as for
    /// `queue_rq`.
    unsafe extern "C" fn complete(rq: *mut bindings::request) {
        let Some(ptr) = NonNull::new(rq) else {
            return;
        };
        // SAFETY: the request and its queue are valid; `queuedata` came from
        // `into_foreign` and outlives every request (as in `queue_rq`).
        let data = unsafe { T::QueueData::borrow((*(*rq).q).queuedata) };
        // SAFETY: the request is valid and its PDU holds the result of the
        // I/O that completed it (the function's safety requirement), which
        // nothing changes any more.
        let result = unsafe { (*Pdu::of(rq)).ret };
        // SAFETY: a started request that nothing else ends: the `Pending`
        // given up when its I/O started.
        let pending = unsafe { Pending::from_raw(ptr) };
        T::file_done(data, pending, result);
    }

    /// # Safety
    ///
    /// Called by blk-mq for each request of a tag set of `T`, once, when
    /// it allocates it.
    unsafe extern "C" fn init_request(
        _set: *mut bindings::blk_mq_tag_set,
        rq: *mut bindings::request,
        _hctx_idx: u32,
        _numa_node: i32,
    ) -> i32 {
        // SAFETY: a request of a tag set of `T`, whose PDU is a `Pdu`
        // (`TagSet::new`), being set up.
        unsafe { Pdu::init(rq, Self::start_work, Self::done_work) };
        0
    }

    /// # Safety
    ///
    /// Called by the workqueue for the start work item of a request that
    /// [`Pending::defer`] queued, of a queue as for `queue_rq`.
    unsafe extern "C" fn start_work(work: *mut bindings::work_struct) {
        // SAFETY: the start work item of a request (the function's
        // requirement).
        let ptr = unsafe { Pdu::from_start_work(work) };
        // SAFETY: the request and its queue are valid; `queuedata` came from
        // `into_foreign` and outlives every request (as in `queue_rq`).
        let data = unsafe { T::QueueData::borrow((*(*ptr.as_ptr()).q).queuedata) };
        // SAFETY: a started request that nothing else ends: the `Pending`
        // given up by `Pending::defer`.
        let pending = unsafe { Pending::from_raw(ptr) };
        T::work(data, pending);
    }

    /// # Safety
    ///
    /// Called by the workqueue for the done work item of a request started
    /// with [`super::lower::Lower::start`], which queues it when the
    /// request's last clone has ended; of a queue as for `queue_rq`.
    unsafe extern "C" fn done_work(work: *mut bindings::work_struct) {
        // SAFETY: the done work item of a request (the function's
        // requirement).
        let pdu = unsafe { Pdu::from_done_work(work) };
        // SAFETY: the PDU of a valid request.
        let ptr = unsafe { Pdu::request(pdu) };
        // SAFETY: the request and its queue are valid; `queuedata` came from
        // `into_foreign` and outlives every request (as in `queue_rq`).
        let data = unsafe { T::QueueData::borrow((*(*ptr.as_ptr()).q).queuedata) };
        // SAFETY: every clone has ended: the status is final.
        let status = match unsafe { (*pdu).status.load(Ordering::Acquire) } {
            0 => Ok(()),
            s => Err(Status::from_raw(s)),
        };
        // SAFETY: a forwarded request whose clones have all ended, not yet
        // ended.
        let device_md = unsafe { DeviceMd::take(pdu) };
        // SAFETY: a started request that nothing else ends: the `Pending`
        // given up when it was forwarded.
        let pending = unsafe { Pending::from_raw(ptr) };
        T::lower_done(data, pending, status, device_md);
    }

    const VTABLE: bindings::blk_mq_ops = bindings::blk_mq_ops {
        queue_rq: Some(Self::queue_rq),
        complete: Some(Self::complete),
        init_request: Some(Self::init_request),
        // SAFETY: all other members are optional callbacks (`None`) or
        // pointers, for which all-zero bits are a valid value.
        ..unsafe { core::mem::zeroed() }
    };

    fn build() -> &'static bindings::blk_mq_ops {
        &Self::VTABLE
    }
}

/// A blk-mq tag set (`struct blk_mq_tag_set`).
///
/// # Invariants
///
/// `inner` is an initialized tag set, allocated by `blk_mq_alloc_tag_set`,
/// whose operations are those of `T`.
#[pin_data(PinnedDrop)]
pub(crate) struct TagSet<T: Operations> {
    #[pin]
    inner: Opaque<bindings::blk_mq_tag_set>,
    _p: PhantomData<T>,
}

impl<T: Operations> TagSet<T> {
    /// Creates a tag set with `nr_hw_queues` hardware queues of
    /// `queue_depth` tags each. `queue_rq` must not sleep (no
    /// `BLK_MQ_F_BLOCKING`): what may sleep goes to a work item
    /// ([`Pending::defer`]). Each request has room for
    /// [`Pending::defer`], [`super::file::BackingFile::start_request`]
    /// and [`super::lower::Lower::start`].
    pub(crate) fn new(nr_hw_queues: u32, queue_depth: u32) -> impl PinInit<Self, Error> {
        try_pin_init!(TagSet {
            inner <- Opaque::try_ffi_init(move |set: *mut bindings::blk_mq_tag_set| {
                // SAFETY: `set` points to uninitialized memory for a tag set;
                // all-zero is a valid starting value for every member.
                unsafe { set.write(core::mem::zeroed()) };
                // SAFETY: `set` is valid for writes and was zeroed above.
                let s = unsafe { &mut *set };
                s.ops = OperationsVTable::<T>::build();
                s.nr_hw_queues = nr_hw_queues;
                s.queue_depth = queue_depth;
                s.numa_node = bindings::NUMA_NO_NODE;
                s.cmd_size = Pdu::SIZE;
                s.nr_maps = 1;
                s.flags = 0;
                // SAFETY: `set` is an initialized, pinned tag set description.
                error::to_result(unsafe { bindings::blk_mq_alloc_tag_set(set) })
            }),
            _p: PhantomData,
        })
    }

    /// The C tag set.
    pub(crate) fn as_raw(&self) -> *mut bindings::blk_mq_tag_set {
        self.inner.get()
    }
}

#[pinned_drop]
impl<T: Operations> PinnedDrop for TagSet<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: `inner` was allocated by `blk_mq_alloc_tag_set` (type
        // invariant), and every disk using it holds an `Arc` to this tag set,
        // so none is left.
        unsafe { bindings::blk_mq_free_tag_set(self.inner.get()) };
    }
}

// SAFETY: the tag set is only used through the thread-safe blk-mq API.
unsafe impl<T: Operations> Send for TagSet<T> {}
// SAFETY: as above.
unsafe impl<T: Operations> Sync for TagSet<T> {}
