// SPDX-License-Identifier: GPL-2.0

//! The work item of a device whose store may sleep: its I/O to the backing
//! file may itself be block I/O, which cannot complete while the submitter
//! is still inside `submit_bio`, so `queue_rq` hands requests over here.
//!
//! The work item takes the requests queued so far as one batch, handles
//! them in order, then settles the store once for the whole batch (one
//! journal sync, see [`crate::store::file`]) and only then completes the
//! writes and resets of the batch.

use super::{Batch, Device};
use crate::{
    blk::{self, Status},
    stats::Counter,
    store::StoreError,
};
use kernel::{
    sync::Arc,
    time::{delay::fsleep, Delta},
    workqueue::WorkItem,
};

impl WorkItem for Device {
    type Pointer = Arc<Device>;

    fn run(this: Arc<Device>) {
        this.drain();
    }
}

impl Device {
    /// Handles queued requests in the order they came until there are
    /// none. A request that meets a shortage (having changed nothing, or
    /// nothing its retry does not write again) goes back to blk-mq to be
    /// retried, never to its submitter.
    fn drain(&self) {
        let mut guard = self.batch.lock();
        let Batch { todo, settling } = &mut *guard;
        loop {
            core::mem::swap(&mut *self.pending.lock(), todo);
            if todo.is_empty() {
                break;
            }
            for rq in todo.drain_all() {
                let op = rq.request().op();
                match blk::with_backing_io(|| self.dispatch(&rq.request())) {
                    Err(Status::RESOURCE) => {
                        self.stats.inc(Counter::Requeued);
                        rq.requeue();
                    }
                    Ok(()) if op.changes_data() => {
                        // `settling` has room for every tag.
                        if let Err(e) = settling.push_within_capacity(rq) {
                            e.0.end(self.settle());
                        }
                    }
                    result => rq.end(result),
                }
            }
            if !settling.is_empty() {
                let settled = self.settle();
                for rq in settling.drain_all() {
                    rq.end(settled);
                }
            }
        }
    }

    /// Settles the store, retrying after a shortage (nothing is lost
    /// then): the requests waiting for it complete with the result.
    fn settle(&self) -> Result<(), Status> {
        loop {
            match blk::with_backing_io(|| self.store.settle()) {
                Err(StoreError::NoMemory) => fsleep(Delta::from_millis(1)),
                result => return Ok(result?),
            }
        }
    }
}
