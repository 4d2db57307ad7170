// SPDX-License-Identifier: GPL-2.0

//! The work item of a device whose store may sleep: its I/O to the backing
//! file may itself be block I/O, which cannot complete while the submitter
//! is still inside `submit_bio`, so `queue_rq` hands requests over here.

use super::Device;
use crate::{blk, stats::Counter};
use kernel::{sync::Arc, workqueue::WorkItem};

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
        let mut batch = self.batch.lock();
        loop {
            core::mem::swap(&mut *self.pending.lock(), &mut *batch);
            if batch.is_empty() {
                break;
            }
            for rq in batch.drain_all() {
                match blk::with_backing_io(|| self.dispatch(&rq.request())) {
                    Err(blk::Status::RESOURCE) => {
                        self.stats.inc(Counter::Requeued);
                        rq.requeue();
                    }
                    result => rq.end(result),
                }
            }
        }
    }
}
