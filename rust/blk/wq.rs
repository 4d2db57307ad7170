// SPDX-License-Identifier: GPL-2.0

//! A workqueue of the driver's own, for I/O that must not run in the
//! submitter's context (it may sleep, and may issue block I/O of its own,
//! which cannot complete while the submitter is inside `submit_bio`).
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)

use core::{ops::Deref, ptr::NonNull};
use kernel::{bindings, prelude::*, workqueue::Queue};

extern "C" {
    fn rdif_alloc_workqueue(name: *const kernel::ffi::c_char) -> *mut bindings::workqueue_struct;
    fn rdif_flush_workqueue(wq: *mut bindings::workqueue_struct);
}

/// An unbound workqueue with a rescuer (`WQ_MEM_RECLAIM`), so it makes
/// progress under memory pressure: writeback may depend on it.
///
/// # Invariants
///
/// `ptr` is a workqueue allocated by `alloc_workqueue` and owned by this
/// object, destroyed on drop.
pub(crate) struct OwnedQueue {
    ptr: NonNull<bindings::workqueue_struct>,
}

// SAFETY: workqueues may be used and destroyed from any thread.
unsafe impl Send for OwnedQueue {}
// SAFETY: all workqueue operations are thread-safe.
unsafe impl Sync for OwnedQueue {}

impl OwnedQueue {
    /// Allocates a workqueue named `name`.
    pub(crate) fn new(name: &CStr) -> Result<Self> {
        // SAFETY: `name` is NUL-terminated; the format string is "%s".
        let ptr = unsafe { rdif_alloc_workqueue(name.as_char_ptr()) };
        // INVARIANT: allocated above, owned from here on.
        Ok(Self {
            ptr: NonNull::new(ptr).ok_or(ENOMEM)?,
        })
    }

    /// The C workqueue.
    pub(super) fn as_raw(&self) -> *mut bindings::workqueue_struct {
        self.ptr.as_ptr()
    }

    /// Waits until every work item queued so far has finished.
    pub(crate) fn flush(&self) {
        // SAFETY: `ptr` is a valid workqueue (type invariant).
        unsafe { rdif_flush_workqueue(self.ptr.as_ptr()) };
    }
}

impl Deref for OwnedQueue {
    type Target = Queue;

    fn deref(&self) -> &Queue {
        // SAFETY: `ptr` is a valid workqueue for as long as `self` lives
        // (type invariant).
        unsafe { Queue::from_raw(self.ptr.as_ptr()) }
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // `destroy_workqueue` drains the queue first, so it must not run on
        // the queue itself: owners flush it and drop it from elsewhere.
        // SAFETY: `ptr` came from `alloc_workqueue` and `self` owns it.
        unsafe { bindings::destroy_workqueue(self.ptr.as_ptr()) };
    }
}
