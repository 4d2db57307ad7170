// SPDX-License-Identifier: GPL-2.0

//! The work item of a device whose store may sleep: its I/O to the backing
//! file may itself be block I/O, which cannot complete while the submitter
//! is still inside `submit_bio`, so `queue_rq` hands requests over here.
//!
//! The work item takes the requests queued so far as one batch, handles
//! them in order, then commits the store once for the whole batch (one
//! journal sync, see [`crate::store`]) and only then completes the
//! writes and resets of the batch. Requests that go to the backing file
//! whole as direct I/O ([`Outcome::ToFile`]) complete on their own, in
//! [`Device::file_done`]; until then, a request that overlaps one of them
//! waits, and so does everything queued after it.

use super::{inflight::Span, Batch, Device, Outcome};
use crate::{
    blk::{self, Pending, Status},
    stats::{Counter, Counts, Tally},
    store::StoreError,
};
use kernel::{
    prelude::*,
    sync::{Arc, ArcBorrow},
    time::{delay::fsleep, Delta},
    workqueue::WorkItem,
};

/// How many times [`Device::commit`] tries before it gives a shortage back.
const COMMIT_TRIES: u32 = 20;

impl WorkItem for Device {
    type Pointer = Arc<Device>;

    fn run(this: Arc<Device>) {
        this.drain();
    }
}

impl Device {
    /// Starts queued requests in the order they came until there are none,
    /// or until the oldest overlaps a request in flight to the backing
    /// file: then it, and everything after it, waits for that one to end
    /// (first come, first served; [`Device::file_done`] wakes the work item
    /// again). A request that meets a shortage (having changed nothing, or
    /// nothing its retry does not write again) goes back to blk-mq to be
    /// retried, never to its submitter.
    fn drain(&self) {
        self.drain_batch(&mut self.batch.lock());
    }

    /// [`Self::drain`], with the batch's lock held.
    pub(super) fn drain_batch(&self, batch: &mut Batch) {
        let Batch {
            todo,
            held,
            committing,
        } = batch;
        // Only direct I/O leaves requests in flight to wait for.
        let direct = self.store.direct() == Some(true);
        loop {
            for rq in self.pending.lock().drain_all() {
                // `todo` has room for every tag.
                if let Err(e) = todo.push_within_capacity(rq) {
                    self.finish(e.0, Err(Status::IO_ERROR));
                }
            }
            if todo.is_empty() {
                break;
            }
            let mut blocked = false;
            for rq in todo.drain_all() {
                let span = Self::span(&rq.request()).filter(|_| direct);
                if !blocked && span.is_some_and(|s| !self.flight.lock().admit(&s)) {
                    self.stats.inc(Counter::FileWaited);
                    blocked = true;
                }
                if blocked {
                    // `held` has room for every tag.
                    if let Err(e) = held.push_within_capacity(rq) {
                        self.finish(e.0, Err(Status::IO_ERROR));
                    }
                    continue;
                }
                self.run(rq, span, committing);
            }
            core::mem::swap(todo, held);
            if !committing.is_empty() {
                let committed = self.commit();
                for (rq, t) in committing.drain_all() {
                    self.end_committed(rq, committed, t);
                }
            }
            if blocked {
                break;
            }
        }
    }

    /// Runs one request (of `span` if it may go to the backing file
    /// whole): a write or reset joins `committing`, to end once the store is
    /// committed.
    fn run(&self, rq: Pending, span: Option<Span>, committing: &mut KVVec<(Pending, Tally)>) {
        let t = Tally::new();
        let op = rq.request().op();
        match blk::with_backing_io(|| self.dispatch(&rq.request(), &t)) {
            // Not counted: the retry is.
            Err(Status::RESOURCE) => {
                self.stats.inc(Counter::Requeued);
                rq.requeue();
            }
            Ok(Outcome::ToFile { first, write }) => match span {
                Some(span) => self.start(rq, span, first, write, t),
                None => self.finish(rq, Err(Status::IO_ERROR)),
            },
            Ok(Outcome::Done) if op.changes_data() => {
                // `committing` has room for every tag.
                if let Err(e) = committing.push_within_capacity((rq, t)) {
                    let (rq, t) = e.0;
                    self.end_committed(rq, self.commit(), t);
                }
            }
            result => self.finish_counted(rq, result.map(|_| ()), &t),
        }
    }

    /// Starts a request's transfer to or from the backing file, in flight
    /// under `span` until [`Device::file_done`]; `t` is what was counted
    /// for it so far.
    fn start(&self, rq: Pending, span: Span, first: u64, write: bool, t: Tally) {
        let fs = &self.store;
        let key = rq.key();
        t.inc(Counter::FileRequests);
        if let Err(t) = self.flight.lock().enter(key, span, t) {
            // More requests than tags: cannot happen; serve it here.
            let result = blk::with_backing_io(|| fs.transfer(&rq.request(), first, write));
            self.finish_counted(rq, result.map_err(Status::from), &t);
            return;
        }
        let started = match fs.direct_target(first) {
            Ok((file, pos)) => blk::with_backing_io(|| file.start_request(rq, pos, write)),
            Err(_) => Err((rq, EIO)),
        };
        if let Err((rq, e)) = started {
            // Not counted: the retry, or the failure below, is.
            let _ = self.flight.lock().leave(key);
            if e == ENOMEM {
                self.stats.inc(Counter::Requeued);
                rq.requeue();
            } else {
                self.finish(rq, Err(Status::IO_ERROR));
            }
        }
    }

    /// A request started by [`Device::start`] is done: `result` is the
    /// number of bytes moved or a negative errno. Runs in any context.
    pub(crate) fn file_done(this: ArcBorrow<'_, Self>, rq: Pending, result: isize) {
        let bytes = rq.request().bytes() as isize;
        let errno = |e: Error| -(e.to_errno() as isize);
        let (t, wake) = this.flight.lock().leave(rq.key());
        let t = t.unwrap_or_else(Tally::new);
        // Before the request ends: once it has, the device may go away.
        if wake {
            this.wake();
        }
        match result {
            n if n == bytes => this.finish_counted(rq, Ok(()), &t),
            n if n == errno(ENOMEM) || n == errno(EAGAIN) => {
                // A shortage: nothing the retry does not write again.
                this.stats.inc(Counter::Requeued);
                rq.requeue();
            }
            // A short transfer (an error part-way), or an error.
            _ => this.finish_counted(rq, Err(Status::IO_ERROR), &t),
        }
    }

    /// Queues the work item (again).
    fn wake(self: ArcBorrow<'_, Self>) {
        if let Some(wq) = &self.wq {
            // Fails only if the work item is queued already, which is as
            // good.
            let _ = wq.enqueue(Arc::from(self));
        }
    }

    /// Commits the store, retrying a few times after a shortage (nothing
    /// is lost then); a shortage that outlasts them is returned, for the
    /// requests waiting for the commit to go back to blk-mq (see
    /// [`Self::end_committed`]), so that the work item never waits for memory
    /// without end.
    fn commit(&self) -> Result<(), StoreError> {
        for _ in 1..COMMIT_TRIES {
            match blk::with_backing_io(|| self.store.commit()) {
                Err(StoreError::NoMemory) => fsleep(Delta::from_millis(1)),
                result => return result,
            }
        }
        blk::with_backing_io(|| self.store.commit())
    }

    /// Ends a request that waited for the commit that returned `committed`;
    /// after a shortage, it goes back to blk-mq to be retried: its write
    /// is done again, and committed with the next batch.
    fn end_committed(&self, rq: Pending, committed: Result<(), StoreError>, t: Tally) {
        if committed == Err(StoreError::NoMemory) {
            self.stats.inc(Counter::Requeued);
            rq.requeue();
        } else {
            self.finish_counted(rq, committed.map_err(Status::from), &t);
        }
    }
}
