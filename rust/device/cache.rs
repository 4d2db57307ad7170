// SPDX-License-Identifier: GPL-2.0

//! A volatile write cache, and power cuts that lose what it held.
//!
//! The device stores each write at once (reads see the newest data), and
//! the cache logs what the write replaced: for each interval, its data and
//! metadata before (the pre-image). A logged write is *volatile*: a power
//! cut may undo it. A flush makes every logged write durable by dropping
//! the log; a FUA write is logged durable (it must survive every cut, and
//! older writes of its intervals must not be restored over it); when the
//! log outgrows the cache size, its oldest writes are written back
//! (dropped from the log) as a disk's cache writes back.
//!
//! Writes to a memory store are applied and logged under the cache's one
//! lock, so the log's order is the order in which the store saw them, for
//! every interval. A backing store is written by the device's work item,
//! one request at a time: its writes read their pre-image first and are
//! logged after (the lock is not held over the store's I/O), in the same
//! order.
//! Discard and write-zeroes write the cache back first and are durable.
//! A power cut ([`WriteCache::cut`]) runs with no request in flight: each
//! has completed before it, and none after it sees anything but the state
//! after the cut. See [`plan`] for which
//! pre-image each interval goes back to.

pub(crate) mod plan;

use crate::{
    pi::Profile,
    store::{mem::Chunk, Slot, Store, StoreError, CHUNK},
};
use kernel::{alloc::Flags, fmt, new_spinlock, prelude::*, sync::SpinLock};
use plan::{Mark, Policy};

/// What reads an interval's data and metadata (see [`Medium::read_each`]).
pub(crate) type Visit<'a> = dyn FnMut(u64, &[u8], &[u8]) -> Result<(), StoreError> + 'a;

/// What a cache's writes go to: what it reads pre-images from and restores
/// them into (the device's store, or a pass-through device's lower
/// device).
pub(crate) trait Medium {
    /// Whether its I/O may sleep: its writes then come one at a time
    /// (the caller orders them), and each reads its pre-image first.
    fn may_sleep(&self) -> bool;

    /// Makes every write so far visible to reads (see [`Store::publish`]).
    fn publish(&self) -> Result<(), StoreError>;

    /// Calls `f(interval, data, meta)` for intervals `first..first + n`,
    /// in order, with what they hold.
    fn read_each(&self, first: u64, n: u64, f: &mut Visit<'_>) -> Result<(), StoreError>;

    /// Writes `data` and `meta` (as read) into interval `i`.
    fn put(&self, i: u64, data: &[u8], meta: &[u8]) -> Result<(), StoreError>;

    /// Makes what was put durable.
    fn sync(&self) -> Result<(), StoreError>;
}

impl Medium for Store {
    fn may_sleep(&self) -> bool {
        Store::may_sleep(self)
    }

    fn publish(&self) -> Result<(), StoreError> {
        Store::publish(self)
    }

    fn read_each(&self, first: u64, n: u64, f: &mut Visit<'_>) -> Result<(), StoreError> {
        self.read(first, n, true, f)
    }

    fn put(&self, i: u64, data: &[u8], meta: &[u8]) -> Result<(), StoreError> {
        // The interval's block exists (a write logged it), unless a discard
        // freed it, which would have emptied the log.
        self.write(i, 1, true, |_, slot| {
            if let Some((d, m)) = slot.bytes() {
                d.copy_from_slice(data);
                m.copy_from_slice(meta);
            }
            Ok::<(), StoreError>(())
        })
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.commit().and_then(|()| self.flush())
    }
}

/// What a logged write costs besides its pre-image, against the cache
/// size.
const ENTRY_COST: usize = 64;

/// What a cached write logs of each interval it durably wrote (FUA): its
/// place only, counted against the cache size.
const DURABLE_INTERVAL_COST: usize = 16;

/// Metadata bytes a pre-image keeps without an allocation of their own.
const INLINE_META: usize = 16;

/// The pages of a pre-image: most writes need one, kept without a vector.
#[derive(Default)]
struct Pages {
    first: Option<KBox<Chunk>>,
    rest: KVec<KBox<Chunk>>,
}

impl Pages {
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    fn get(&self, i: usize) -> Option<&KBox<Chunk>> {
        match i {
            0 => self.first.as_ref(),
            _ => self.rest.get(i - 1),
        }
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut KBox<Chunk>> {
        match i {
            0 => self.first.as_mut(),
            _ => self.rest.get_mut(i - 1),
        }
    }

    fn push(&mut self, page: KBox<Chunk>, gfp: Flags) -> Result<(), StoreError> {
        match self.first {
            None => self.first = Some(page),
            Some(_) => self
                .rest
                .push(page, gfp)
                .map_err(|_| StoreError::NoMemory)?,
        }
        Ok(())
    }

    fn pop(&mut self) -> Option<KBox<Chunk>> {
        self.rest.pop().or_else(|| self.first.take())
    }
}

/// The contents a write replaced: its intervals' data in pages (a block
/// of the memory store that holds one interval is taken whole, not
/// copied), and their metadata.
struct PreImage {
    pages: Pages,
    meta_inline: [u8; INLINE_META],
    meta_heap: KVec<u8>,
}

impl PreImage {
    fn meta(&self) -> &[u8] {
        if self.meta_heap.is_empty() {
            &self.meta_inline
        } else {
            &self.meta_heap
        }
    }

    fn meta_mut(&mut self) -> &mut [u8] {
        if self.meta_heap.is_empty() {
            &mut self.meta_inline
        } else {
            &mut self.meta_heap
        }
    }
}

/// One write in the log.
struct Entry {
    first: u64,
    /// Intervals logged, from `first`.
    n: u64,
    /// The pre-image of a volatile write; `None` for a durable one.
    pre: Option<PreImage>,
    /// An atomic write: kept or lost whole.
    atomic: bool,
}

impl Entry {
    /// A free slot of the log.
    const EMPTY: Entry = Entry {
        first: 0,
        n: 0,
        pre: None,
        atomic: false,
    };

    /// What the entry counts against the cache size.
    fn cost(&self) -> usize {
        ENTRY_COST
            + match &self.pre {
                Some(p) => p.pages.len() * CHUNK + p.meta_heap.len(),
                None => self.n as usize * DURABLE_INTERVAL_COST,
            }
    }
}

/// A write being applied: where its pre-image goes.
pub(crate) struct Record<'a> {
    entry: Entry,
    /// Intervals room was made for.
    room: u64,
    /// The pre-image was read before the write ([`WriteCache::apply`] over
    /// a store that may sleep): capturing only counts the intervals.
    read: bool,
    cache: &'a WriteCache,
}

impl Record<'_> {
    /// Logs the contents `slot` holds for interval `i` before the write
    /// fills it (a store that may sleep: counts it, its contents were read
    /// before). Intervals come in order from the record's first; a slot
    /// the write cannot fill ([`Slot::Gone`]) is logged as what a reset
    /// interval reads (it is left so). A block of the memory store that
    /// holds just this interval is exchanged for a page of the record,
    /// which the write then fills.
    pub(crate) fn capture(&mut self, i: u64, slot: &mut Slot<'_>) {
        let k = i.wrapping_sub(self.entry.first);
        if k != self.entry.n || k >= self.room {
            return;
        }
        self.entry.n += 1;
        let Some(pre) = self.entry.pre.as_mut().filter(|_| !self.read) else {
            return;
        };
        let (iv, ms) = (self.cache.interval, self.cache.metadata_size);
        let (k, at) = (k as usize, k as usize * iv);
        let meta: &[u8] = match slot {
            Slot::Whole { data, meta } => {
                if let Some(page) = pre.pages.get_mut(k) {
                    core::mem::swap(*data, page);
                }
                meta
            }
            Slot::Stored { data, meta } => {
                if let (Some(page), Some(d)) = (pre.pages.get_mut(at / CHUNK), data.get(..iv)) {
                    page.0[at % CHUNK..][..iv].copy_from_slice(d);
                }
                meta
            }
            Slot::Gone => {
                if let Some(page) = pre.pages.get_mut(at / CHUNK) {
                    page.0[at % CHUNK..][..iv].fill(0);
                }
                &self.cache.escape
            }
        };
        let m = k * ms;
        if let (Some(dst), Some(src)) = (pre.meta_mut().get_mut(m..m + ms), meta.get(..ms)) {
            dst.copy_from_slice(src);
        }
    }
}

/// The log of writes not yet durable: a ring of slots allocated once
/// (nothing on the I/O path grows it), `len` entries from slot `head`,
/// oldest first.
struct Log {
    ring: KVVec<Entry>,
    head: usize,
    len: usize,
    /// What the entries cost.
    bytes: usize,
    /// Pages of pre-images no longer needed, for the next writes: in a
    /// steady state a write takes its pages from here, and writing back
    /// or flushing gives them back.
    spare: KVec<KBox<Chunk>>,
    /// Power cuts so far, and what they did in all.
    cuts: u64,
    totals: CutReport,
}

impl Log {
    /// An empty log without slots or spares, nothing allocated: what
    /// stands in for the log while a power cut has it out of its lock
    /// (nothing is logged meanwhile), and the rest of a new one.
    fn parked() -> Self {
        Log {
            ring: KVVec::new(),
            head: 0,
            len: 0,
            bytes: 0,
            spare: KVec::new(),
            cuts: 0,
            totals: CutReport::default(),
        }
    }

    /// Entry `j` of the log (0: the oldest).
    fn get(&self, j: usize) -> Option<&Entry> {
        if j >= self.len {
            return None;
        }
        self.ring.get((self.head + j).checked_rem(self.ring.len())?)
    }

    /// The entries, oldest first.
    fn iter(&self) -> impl Iterator<Item = &Entry> {
        (0..self.len).filter_map(|j| self.get(j))
    }

    fn is_full(&self) -> bool {
        self.len == self.ring.len()
    }

    /// Appends `e` (the log must not be full).
    fn push(&mut self, e: Entry) {
        let slot = (self.head + self.len) % self.ring.len().max(1);
        if let Some(s) = self.ring.get_mut(slot) {
            self.bytes += e.cost();
            *s = e;
            self.len += 1;
        }
    }

    /// Takes the oldest entry out: written back, its pages go to the
    /// spares while they have room (the rest is freed here, under the
    /// lock, as `kfree` allows).
    fn write_back_oldest(&mut self) {
        if self.len == 0 {
            return;
        }
        let head = self.head;
        let Some(slot) = self.ring.get_mut(head) else {
            // (No slots, so no entries.)
            self.len = 0;
            return;
        };
        let mut e = core::mem::replace(slot, Entry::EMPTY);
        self.head = (head + 1).checked_rem(self.ring.len()).unwrap_or(0);
        self.len -= 1;
        self.bytes -= e.cost();
        self.recycle(&mut e);
    }

    /// Drops every entry (written back or lost).
    fn clear(&mut self) {
        while self.len > 0 {
            self.write_back_oldest();
        }
        self.head = 0;
        self.bytes = 0;
    }

    /// Moves `e`'s pages to the spares while they have room.
    fn recycle(&mut self, e: &mut Entry) {
        if let Some(pre) = e.pre.as_mut() {
            while self.spare.len() < self.spare.capacity() {
                match pre.pages.pop() {
                    Some(p) => {
                        let _ = self.spare.push_within_capacity(p);
                    }
                    None => break,
                }
            }
        }
    }

    /// The volatile writes logged.
    fn volatile(&self) -> usize {
        self.iter().filter(|e| e.pre.is_some()).count()
    }
}

/// What a power cut did.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct CutReport {
    /// Volatile writes in the cache at the cut (the epoch's length).
    pub(crate) epoch: u64,
    /// Volatile writes that survived whole.
    pub(crate) kept: u64,
    /// Volatile writes lost whole.
    pub(crate) dropped: u64,
    /// Volatile writes of which some blocks survived and some were lost.
    pub(crate) partial: u64,
    /// Logical blocks of volatile writes lost.
    pub(crate) blocks_dropped: u64,
    /// Intervals restored to an older content.
    pub(crate) restored: u64,
    /// Intervals that could not be restored (memory ran short): they
    /// keep their newer content.
    pub(crate) failed: u64,
}

impl CutReport {
    fn add(&mut self, o: &CutReport) {
        self.epoch += o.epoch;
        self.kept += o.kept;
        self.dropped += o.dropped;
        self.partial += o.partial;
        self.blocks_dropped += o.blocks_dropped;
        self.restored += o.restored;
        self.failed += o.failed;
    }
}

/// Why a power cut did not happen.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CutError {
    /// The log grew past the room prepared for it: prepare again.
    Grew,
    /// `prefix N` asks for more writes than the cache holds.
    TooFew(u64),
}

/// Room, allocated before the queue is frozen, to plan a cut in.
pub(crate) struct CutRoom(KVVec<Mark>);

/// A device's volatile write cache.
#[pin_data]
pub(crate) struct WriteCache {
    #[pin]
    log: SpinLock<Log>,
    /// Most bytes the log may cost before it writes back.
    limit: usize,
    interval: usize,
    metadata_size: usize,
    /// log2 of the intervals in a logical block.
    block_shift: u32,
    /// What a reset interval's metadata reads as.
    escape: KVec<u8>,
}

impl WriteCache {
    /// An empty cache of `limit` bytes for a device of format `p`.
    pub(crate) fn new(p: &Profile, limit: usize) -> impl PinInit<Self, Error> {
        let ms = p.metadata_size();
        let escape = KVec::from_elem(0u8, ms, GFP_KERNEL).map(|mut e| {
            if ms > 0 {
                p.fill_escape(&mut e);
            }
            e
        });
        // Spare pages: what writing back a sixteenth of the cache frees,
        // at most 4 MiB.
        let spare = KVec::with_capacity((limit / 16 / CHUNK).clamp(8, 1024), GFP_KERNEL);
        // Slots: one per page of the cache (each volatile write holds a
        // page at least), at most 65536; a durable write takes one too.
        let slots = (limit / CHUNK).clamp(64, 65536);
        let ring = KVVec::with_capacity(slots, GFP_KERNEL).and_then(|mut r| {
            for _ in 0..slots {
                r.push(Entry::EMPTY, GFP_KERNEL)?;
            }
            Ok(r)
        });
        let block_shift = p.block_size().trailing_zeros() - p.interval_shift();
        let interval = p.interval();
        try_pin_init!(WriteCache {
            log <- new_spinlock!(Log {
                ring: ring?,
                spare: spare?,
                ..Log::parked()
            }),
            limit,
            interval,
            metadata_size: ms,
            block_shift,
            escape: escape?,
        }? Error)
    }

    /// Room for the pre-image of `n` intervals: spare pages, or new ones.
    /// Never sleeps.
    fn pre_image(&self, log: &mut Log, n: u64) -> Result<PreImage, StoreError> {
        let gfp = crate::store::mem::io_gfp();
        let n = usize::try_from(n).map_err(|_| StoreError::NoMemory)?;
        let bytes = n.checked_mul(self.interval).ok_or(StoreError::NoMemory)?;
        let mut pages = Pages::default();
        for _ in 0..bytes.div_ceil(CHUNK) {
            let page = match log.spare.pop() {
                Some(p) => p,
                None => {
                    KBox::init(pin_init::init_zeroed(), gfp).map_err(|_| StoreError::NoMemory)?
                }
            };
            pages.push(page, gfp)?;
        }
        let md = n * self.metadata_size;
        let meta_heap = if md > INLINE_META {
            KVec::from_elem(0u8, md, gfp).map_err(|_| StoreError::NoMemory)?
        } else {
            KVec::new()
        };
        Ok(PreImage {
            pages,
            meta_inline: [0; INLINE_META],
            meta_heap,
        })
    }

    /// A record of a write of `n` intervals from `first` (see
    /// [`Self::apply`]), with room for its pre-image unless `durable`;
    /// `read`: the pre-image is to be read before the write.
    fn record(
        &self,
        log: &mut Log,
        (first, n): (u64, u64),
        durable: bool,
        atomic: bool,
        read: bool,
    ) -> Result<Record<'_>, StoreError> {
        let pre = match durable {
            true => None,
            false => Some(self.pre_image(log, n)?),
        };
        Ok(Record {
            entry: Entry {
                first,
                n: 0,
                pre,
                atomic,
            },
            room: n,
            read,
            cache: self,
        })
    }

    /// Applies a write of `n` intervals from `first` to `store` with
    /// `apply`, which must hand each interval's slot to
    /// [`Record::capture`] before it fills it, and logs it: under the
    /// cache's lock, so that the log keeps the store's order. `durable`:
    /// a FUA write, logged without pre-image; `atomic`: lost or kept
    /// whole. Writes back the oldest entries if the log outgrew the
    /// cache. Never sleeps, unless the store may (see
    /// [`Self::apply_read_first`]).
    pub(crate) fn apply<E: From<StoreError>>(
        &self,
        store: &impl Medium,
        (first, n): (u64, u64),
        durable: bool,
        atomic: bool,
        apply: impl FnOnce(&mut Record<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if store.may_sleep() {
            return self.apply_read_first(store, (first, n), durable, atomic, apply);
        }
        let mut log = self.log.lock();
        // A slot to log it: a write applied must be logged. A full ring
        // writes its oldest entry back.
        if log.is_full() {
            log.write_back_oldest();
        }
        let mut rec = self.record(&mut log, (first, n), durable, atomic, false)?;
        let done = apply(&mut rec);
        let mut e = rec.entry;
        if done.is_err() && e.n > 0 {
            // The interval the write failed in may be half filled: it gets
            // its old contents back (those before it are whole).
            if let Some(pre) = &e.pre {
                let last = e.n - 1;
                let _ = self.restore(store, e.first + last, last, pre);
            }
        }
        if e.n == 0 {
            log.recycle(&mut e);
            return done;
        }
        // Pages beyond those the write reached go back.
        let used = (e.n as usize * self.interval).div_ceil(CHUNK);
        if let Some(pre) = e.pre.as_mut() {
            while pre.pages.len() > used {
                // (A page the spares have no room for is freed.)
                if let Some(p) = pre.pages.pop() {
                    let _ = log.spare.push_within_capacity(p);
                }
            }
        }
        self.log_entry(&mut log, e);
        done
    }

    /// [`Self::apply`] over a store that may sleep (a backing file): the
    /// device's work item writes to it one request at a time, so the log
    /// keeps the store's order without holding the lock over the store's
    /// I/O. The pre-image is read first, once the store published every
    /// write before this one ([`Store::publish`]); a write that fails is
    /// logged all the same (the store changed all, some or none of it,
    /// and a power cut may undo it).
    fn apply_read_first<E: From<StoreError>>(
        &self,
        store: &impl Medium,
        (first, n): (u64, u64),
        durable: bool,
        atomic: bool,
        apply: impl FnOnce(&mut Record<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rec = self.record(&mut self.log.lock(), (first, n), durable, atomic, true)?;
        if let Some(pre) = rec.entry.pre.as_mut() {
            store.publish()?;
            self.read_pre_image(store, first, n, pre)?;
        }
        let done = apply(&mut rec);
        let mut e = rec.entry;
        let mut log = self.log.lock();
        if e.n == 0 {
            log.recycle(&mut e);
            return done;
        }
        self.log_entry(&mut log, e);
        done
    }

    /// Reads what intervals `first..first + n` of `store` hold into `pre`.
    fn read_pre_image(
        &self,
        store: &impl Medium,
        first: u64,
        n: u64,
        pre: &mut PreImage,
    ) -> Result<(), StoreError> {
        let (iv, ms) = (self.interval, self.metadata_size);
        store.read_each(first, n, &mut |i, d, m| {
            let k = usize::try_from(i - first).map_err(|_| StoreError::Io)?;
            let at = k * iv;
            let page = pre.pages.get_mut(at / CHUNK).ok_or(StoreError::Io)?;
            let dst = page.0.get_mut(at % CHUNK..at % CHUNK + iv);
            let (Some(dst), Some(src)) = (dst, d.get(..iv)) else {
                return Err(StoreError::Io);
            };
            dst.copy_from_slice(src);
            let dst = pre.meta_mut().get_mut(k * ms..(k + 1) * ms);
            let (Some(dst), Some(src)) = (dst, m.get(..ms)) else {
                return Err(StoreError::Io);
            };
            dst.copy_from_slice(src);
            Ok(())
        })
    }

    /// Logs `e`, in a slot made free if need be, and writes back the
    /// oldest entries if the log outgrew the cache.
    fn log_entry(&self, log: &mut Log, e: Entry) {
        if log.is_full() {
            log.write_back_oldest();
        }
        log.push(e);
        if log.bytes > self.limit {
            self.write_back(log);
        }
    }

    /// Writes back the oldest entries until the log fits again, with a
    /// sixty-fourth of the cache to spare (so that this is not done on
    /// every write). Nothing older than a written-back entry is logged, so
    /// it goes entirely.
    fn write_back(&self, log: &mut Log) {
        let target = self.limit - self.limit / 64;
        while log.bytes > target && log.len > 0 {
            log.write_back_oldest();
        }
    }

    /// Flush: every write logged so far is durable.
    pub(crate) fn flush(&self) {
        self.log.lock().clear();
    }

    /// Runs `reset` (discard, write-zeroes) of `store` after writing the
    /// cache back: durable, and ordered with every write (under the
    /// cache's lock; a store that may sleep is written to by one work
    /// item, which orders them).
    pub(crate) fn settle<R>(&self, store: &impl Medium, reset: impl FnOnce() -> R) -> R {
        let mut log = self.log.lock();
        log.clear();
        if store.may_sleep() {
            drop(log);
            return reset();
        }
        reset()
    }

    /// Room to plan a cut of the log as it is now (with some to spare for
    /// what is logged before the queue is frozen).
    pub(crate) fn cut_room(&self) -> Result<CutRoom> {
        let marks = {
            let log = self.log.lock();
            log.iter().map(|e| e.n).sum::<u64>()
        };
        let room = usize::try_from(marks.saturating_mul(2).saturating_add(1024))?;
        Ok(CutRoom(KVVec::with_capacity(room, GFP_KERNEL)?))
    }

    /// Cuts the power: the volatile writes that `policy` does not keep are
    /// undone in `store`, and the cache is empty after. No request may be
    /// in flight, and none may start, meanwhile (the device's queue frozen,
    /// or quiesced with its work item drained and held): nothing is logged
    /// meanwhile; `room` must have been made by [`Self::cut_room`].
    /// Allocates nothing over a memory store; a backing store's undoing
    /// may sleep, and is made durable (committed and flushed) before this
    /// returns.
    pub(crate) fn cut(
        &self,
        store: &impl Medium,
        policy: Policy,
        room: &mut CutRoom,
    ) -> Result<CutReport, CutError> {
        let marks = &mut room.0;
        marks.clear();
        // The log is taken out of its lock for the cut: restoring may sleep.
        let (mut log, epoch) = {
            let mut log = self.log.lock();
            let epoch = log.volatile() as u64;
            if let Policy::Prefix(n) = policy {
                if n > epoch {
                    return Err(CutError::TooFew(epoch));
                }
            }
            let need: u64 = log.iter().map(|e| e.n).sum();
            if need > marks.capacity() as u64 {
                return Err(CutError::Grew);
            }
            (core::mem::replace(&mut *log, Log::parked()), epoch)
        };
        let mut r = CutReport {
            epoch,
            ..Default::default()
        };
        let mut k = 0;
        for (idx, e) in log.iter().enumerate() {
            self.mark(e, idx as u32, k, policy, marks, &mut r);
            k += u64::from(e.pre.is_some());
        }
        // Only pre-images of volatile entries are ever restored.
        let restored = plan::plan(marks, |i, idx| {
            let pre = log
                .get(idx as usize)
                .and_then(|e| e.pre.as_ref().map(|p| (e.first, p)));
            let Some((first, pre)) = pre else {
                return Ok(());
            };
            match self.restore(store, i, i - first, pre) {
                Ok(()) => r.restored += 1,
                Err(_) => r.failed += 1,
            }
            Ok::<(), core::convert::Infallible>(())
        });
        let Ok(()) = restored;
        if store.sync().is_err() {
            // Not known to be done: none of it counts as restored.
            r.failed += core::mem::take(&mut r.restored);
        }
        log.clear();
        log.cuts += 1;
        log.totals.add(&r);
        // (The parked log it replaces owns nothing.)
        *self.log.lock() = log;
        Ok(r)
    }

    /// Marks each interval of entry `e` (at `idx` in the log; `k`-th
    /// volatile one) kept or not, as `policy` says, and counts it in `r`.
    fn mark(
        &self,
        e: &Entry,
        idx: u32,
        k: u64,
        policy: Policy,
        marks: &mut KVVec<Mark>,
        r: &mut CutReport,
    ) {
        let volatile = e.pre.is_some();
        let (mut kept, mut lost) = (0u64, 0u64);
        let mut last_block = None;
        for i in e.first..e.first + e.n {
            let block = i >> self.block_shift;
            let keep = !volatile || policy.survives(k, block, e.atomic);
            if last_block != Some(block) {
                last_block = Some(block);
                if keep {
                    kept += 1;
                } else {
                    lost += 1;
                }
            }
            // Room was checked by the caller.
            let _ = marks.push_within_capacity(Mark {
                interval: i,
                entry: idx,
                keep,
            });
        }
        if !volatile {
            return;
        }
        r.blocks_dropped += lost;
        match (kept, lost) {
            (_, 0) => r.kept += 1,
            (0, _) => r.dropped += 1,
            _ => r.partial += 1,
        }
    }

    /// Writes the pre-image `pre` logged for interval `i` (its `k`-th) back
    /// into `store`.
    fn restore(
        &self,
        store: &impl Medium,
        i: u64,
        k: u64,
        pre: &PreImage,
    ) -> Result<(), StoreError> {
        let (iv, ms) = (self.interval, self.metadata_size);
        let at = k as usize * iv;
        let data = pre
            .pages
            .get(at / CHUNK)
            .map(|p| &p.0[at % CHUNK..][..iv])
            .ok_or(StoreError::Io)?;
        let meta = pre
            .meta()
            .get(k as usize * ms..(k as usize + 1) * ms)
            .ok_or(StoreError::Io)?;
        store.put(i, data, meta)
    }

    /// Lines of the `stats` file: what the cache holds now.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (writes, bytes, cuts, t) = {
            let log = self.log.lock();
            (log.volatile(), log.bytes, log.cuts, log.totals)
        };
        writeln!(f, "cache_volatile_writes {writes}")?;
        writeln!(f, "cache_bytes {bytes}")?;
        writeln!(f, "cache_limit {}", self.limit)?;
        writeln!(f, "powercuts {cuts}")?;
        writeln!(f, "powercut_epoch_writes {}", t.epoch)?;
        writeln!(f, "powercut_writes_kept {}", t.kept)?;
        writeln!(f, "powercut_writes_dropped {}", t.dropped)?;
        writeln!(f, "powercut_writes_partial {}", t.partial)?;
        writeln!(f, "powercut_blocks_dropped {}", t.blocks_dropped)?;
        writeln!(f, "powercut_intervals_restored {}", t.restored)?;
        writeln!(f, "powercut_intervals_failed {}", t.failed)
    }
}
