// SPDX-License-Identifier: GPL-2.0

//! A sparse in-memory store: blocks of [`CHUNK`] data bytes, each with the
//! metadata of its intervals beside it, allocated on first write.
//!
//! An interval (at most [`CHUNK`] bytes, a power of two) lies in one block,
//! and its data and metadata are read and written under that block's lock:
//! one allocation, one lookup and one lock per block, and no reader ever
//! sees an interval's data without its metadata.
//!
//! There is no device-wide lock: blocks are spread over [`NR_SHARDS`]
//! xarrays by their index (runs of 16 blocks, 64 KiB of data, per shard).
//! An access of several blocks takes each shard's lock once for its run of
//! blocks and holds it only while they are copied. Two xarray locks are
//! never held at once. A block is only freed under its shard lock, so a
//! reference to it never outlives the lock.

use super::{Slot, StoreError};
use crate::pi::Profile;
use core::ops::Range;
use kernel::{
    alloc::{flags, Flags},
    prelude::*,
    xarray::{self, AllocKind, XArray},
};

/// Data bytes per block.
pub(crate) const CHUNK: usize = 4096;
const CHUNK_SHIFT: u32 = 12;
const NR_SHARDS: usize = 32;
const SHARD_RUN_SHIFT: u32 = 4;

/// A block's data.
#[repr(C, align(8))]
pub(crate) struct Chunk(pub(crate) [u8; CHUNK]);

/// What a block never written reads as.
static ZERO_CHUNK: Chunk = Chunk([0; CHUNK]);

// SAFETY: a byte array is valid when all bits are zero.
unsafe impl pin_init::Zeroable for Chunk {}

/// One block: [`CHUNK`] data bytes and the metadata of their intervals.
///
/// # Invariants
///
/// `meta` holds `metadata_size` bytes for each interval of the block.
struct Block {
    data: KBox<Chunk>,
    meta: KVec<u8>,
}

/// Allocation flags on the I/O path, where the driver may not sleep. A
/// failure makes blk-mq retry the request later.
pub(crate) fn io_gfp() -> Flags {
    flags::GFP_NOWAIT | flags::__GFP_NOWARN
}

/// Allocation flags for a block that a concurrent discard freed between a
/// write's reservation and its copy: the write cannot be retried any more,
/// so it may use the emergency reserves.
fn late_gfp() -> Flags {
    flags::GFP_ATOMIC | flags::__GFP_NOWARN
}

/// The block indices from `first` to `last` (inclusive) that share the shard
/// of `first`: `first..end`. Block indices stay below 2^28 (devices are at
/// most 1 TiB), so nothing here comes near overflowing.
fn shard_run(first: usize, last: usize) -> Range<usize> {
    let run_end = ((first >> SHARD_RUN_SHIFT) + 1) << SHARD_RUN_SHIFT;
    first..run_end.min(last.saturating_add(1))
}

/// The memory store of a device.
pub(crate) struct MemStore {
    shards: KVec<Pin<KBox<XArray<KBox<Block>>>>>,
    /// log2 of the intervals per block.
    per_block_shift: u32,
    interval: usize,
    metadata_size: usize,
    /// The metadata of a block never written: escape PI for each interval.
    escape: KVec<u8>,
}

impl MemStore {
    /// An empty store: every interval reads as zeroes with escape PI.
    pub(crate) fn new(profile: Profile) -> Result<Self> {
        let mut shards = KVec::with_capacity(NR_SHARDS, GFP_KERNEL)?;
        for _ in 0..NR_SHARDS {
            shards.push(
                KBox::pin_init(XArray::new(AllocKind::Alloc), GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
        }
        // `Profile` keeps the interval at most 4096 bytes.
        let per_block_shift = CHUNK_SHIFT
            .checked_sub(profile.interval_shift())
            .ok_or(EINVAL)?;
        let ms = profile.metadata_size();
        let mut escape = KVec::from_elem(0u8, ms << per_block_shift, GFP_KERNEL)?;
        if ms > 0 {
            for md in escape.chunks_exact_mut(ms) {
                profile.fill_escape(md);
            }
        }
        Ok(Self {
            shards,
            per_block_shift,
            interval: profile.interval(),
            metadata_size: ms,
            escape,
        })
    }

    fn shard(&self, idx: usize) -> &XArray<KBox<Block>> {
        &self.shards[(idx >> SHARD_RUN_SHIFT) % NR_SHARDS]
    }

    /// The block of `interval`, and its place in the block.
    fn slot(&self, interval: u64) -> (usize, usize) {
        (
            (interval >> self.per_block_shift) as usize,
            (interval & ((1 << self.per_block_shift) - 1)) as usize,
        )
    }

    /// The first and last block of intervals `first..first + n` (`n > 0`).
    fn span(&self, first: u64, n: u64) -> (usize, usize) {
        let last = first.saturating_add(n - 1);
        (self.slot(first).0, self.slot(last).0)
    }

    /// Whether intervals `first..first + n` lie in one block.
    pub(crate) fn one_chunk(&self, first: u64, n: u64) -> bool {
        n == 0 || {
            let (a, b) = self.span(first, n);
            a == b
        }
    }

    /// The intervals of block `idx` that `first..first + n` covers.
    fn covered(&self, idx: usize, first: u64, n: u64) -> Range<u64> {
        let start = (idx as u64) << self.per_block_shift;
        let end = start + (1 << self.per_block_shift);
        start.max(first)..end.min(first + n)
    }

    /// A new block: zeroes and escape PI.
    fn new_block(&self, gfp: Flags) -> Result<KBox<Block>, StoreError> {
        let data =
            KBox::init(pin_init::init_zeroed::<Chunk>(), gfp).map_err(|_| StoreError::NoMemory)?;
        let mut meta =
            KVec::with_capacity(self.escape.len(), gfp).map_err(|_| StoreError::NoMemory)?;
        meta.extend_from_slice(&self.escape, gfp)
            .map_err(|_| StoreError::NoMemory)?;
        // INVARIANT: `meta` is as long as `escape`.
        KBox::new(Block { data, meta }, gfp).map_err(|_| StoreError::NoMemory)
    }

    /// Makes sure block `idx` exists in `guard`'s shard (allocating it with
    /// `gfp`), and returns it.
    fn get_or_alloc<'g>(
        &self,
        guard: &'g mut xarray::Guard<'_, KBox<Block>>,
        idx: usize,
        gfp: Flags,
    ) -> Result<&'g mut Block, StoreError> {
        if guard.get(idx).is_none() {
            let b = self.new_block(gfp)?;
            // On failure the block is dropped (freed under the lock, which
            // `kfree` allows).
            guard.store(idx, b, gfp).map_err(|_| StoreError::NoMemory)?;
        }
        guard.get_mut(idx).ok_or(StoreError::NoMemory)
    }

    /// Calls `f(guard, idx)` for blocks `first..=last` in order, with the
    /// lock of `idx`'s shard held: taken once for each run of consecutive
    /// blocks the shard holds (up to 64 KiB of data) rather than per block.
    fn locked<E>(
        &self,
        first: usize,
        last: usize,
        mut f: impl FnMut(&mut xarray::Guard<'_, KBox<Block>>, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut idx = first;
        while idx <= last {
            let run = shard_run(idx, last);
            idx = run.end;
            let mut guard = self.shard(run.start).lock();
            for i in run {
                f(&mut guard, i)?;
            }
        }
        Ok(())
    }

    /// Allocates the blocks of intervals `first..first + n`, so that a
    /// write of them cannot fail for lack of memory. New blocks read as
    /// absent ones do. On failure, the blocks allocated so far stay.
    pub(crate) fn reserve(&self, first: u64, n: u64) -> Result<(), StoreError> {
        if n == 0 {
            return Ok(());
        }
        let (a, b) = self.span(first, n);
        self.locked(a, b, |guard, i| {
            self.get_or_alloc(guard, i, io_gfp()).map(|_| ())
        })
    }

    /// The byte ranges of interval `j` of a block in its data and metadata.
    fn ranges(&self, j: usize) -> (Range<usize>, Range<usize>) {
        let (iv, ms) = (self.interval, self.metadata_size);
        (j * iv..(j + 1) * iv, j * ms..(j + 1) * ms)
    }

    /// See [`super::Store::read`].
    pub(crate) fn read<E>(
        &self,
        first: u64,
        n: u64,
        with_meta: bool,
        mut f: impl FnMut(u64, &[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if n == 0 {
            return Ok(());
        }
        let (a, b) = self.span(first, n);
        self.locked(a, b, |guard, idx| {
            let block = guard.get(idx);
            let (data, meta) = match block {
                Some(b) => (&b.data.0, &b.meta[..]),
                None => (&ZERO_CHUNK.0, &self.escape[..]),
            };
            for i in self.covered(idx, first, n) {
                let (d, m) = self.ranges(self.slot(i).1);
                let m = if with_meta { &meta[m] } else { &[][..] };
                f(i, &data[d], m)?;
            }
            Ok(())
        })
    }

    /// See [`super::Store::write`].
    pub(crate) fn write<E: From<StoreError>>(
        &self,
        first: u64,
        n: u64,
        reserved: bool,
        mut f: impl FnMut(u64, Slot<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if n == 0 {
            return Ok(());
        }
        let (a, b) = self.span(first, n);
        self.locked(a, b, |guard, idx| {
            let mut block = if reserved {
                self.get_or_alloc(guard, idx, late_gfp()).ok()
            } else {
                // One block: nothing is stored yet.
                Some(self.get_or_alloc(guard, idx, io_gfp())?)
            };
            for i in self.covered(idx, first, n) {
                let slot = match block.as_deref_mut() {
                    Some(b) => {
                        let (d, m) = self.ranges(self.slot(i).1);
                        Slot::Stored {
                            data: &mut b.data.0[d],
                            meta: &mut b.meta[m],
                        }
                    }
                    None => Slot::Gone,
                };
                f(i, slot)?;
            }
            Ok(())
        })
    }

    /// See [`super::Store::modify`].
    pub(crate) fn modify(
        &self,
        interval: u64,
        f: impl FnOnce(&mut [u8], &mut [u8]),
    ) -> Result<(), StoreError> {
        let (idx, j) = self.slot(interval);
        let mut guard = self.shard(idx).lock();
        let b = self.get_or_alloc(&mut guard, idx, io_gfp())?;
        let (d, m) = self.ranges(j);
        f(&mut b.data.0[d], &mut b.meta[m]);
        Ok(())
    }

    /// Makes intervals `first..first + n` read as zeroes with escape PI,
    /// freeing whole blocks.
    pub(crate) fn reset(&self, first: u64, n: u64) {
        if n == 0 {
            return;
        }
        let (a, b) = self.span(first, n);
        for idx in a..=b {
            let cov = self.covered(idx, first, n);
            if cov.end - cov.start == 1 << self.per_block_shift {
                let removed = self.shard(idx).lock().remove(idx);
                // Freed outside the lock.
                drop(removed);
                continue;
            }
            let mut guard = self.shard(idx).lock();
            // Nothing to reset where nothing is stored.
            if let Some(b) = guard.get_mut(idx) {
                for i in cov {
                    let (d, m) = self.ranges(self.slot(i).1);
                    b.data.0[d].fill(0);
                    b.meta[m.clone()].copy_from_slice(&self.escape[m]);
                }
            }
        }
    }
}
