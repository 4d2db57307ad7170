// SPDX-License-Identifier: GPL-2.0

//! A sparse in-memory store: blocks of [`CHUNK`] data bytes, each with the
//! metadata of its intervals beside it, allocated on first write.
//!
//! An interval (at most [`CHUNK`] bytes, a power of two) lies in one block,
//! and its data and metadata are read and written under that block's lock:
//! one allocation per block, and no reader ever sees an interval's data
//! without its metadata.
//!
//! There is no device-wide lock: blocks are grouped in runs of [`RUN`]
//! consecutive blocks (64 KiB of data), and the runs are spread over
//! [`NR_SHARDS`] xarrays by their index. An access takes each run's shard
//! lock once, looks the run up once, and holds the lock only while the
//! run's blocks are copied: a 1 MiB request makes 16 lookups, not 256. Two
//! xarray locks are never held at once. A block or run is only freed under
//! its shard lock, so a reference to it never outlives the lock.

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
/// Blocks per run.
const RUN: usize = 1 << SHARD_RUN_SHIFT;

/// A block's data.
#[repr(C, align(8))]
#[derive(pin_init::Zeroable)]
pub(crate) struct Chunk(pub(crate) [u8; CHUNK]);

/// What a block never written reads as.
static ZERO_CHUNK: Chunk = Chunk([0; CHUNK]);

/// One block: [`CHUNK`] data bytes and the metadata of their intervals.
///
/// # Invariants
///
/// `meta` holds `metadata_size` bytes for each interval of the block.
struct Block {
    data: KBox<Chunk>,
    meta: KVec<u8>,
}

/// A run of [`RUN`] consecutive blocks: the unit a shard's xarray holds.
/// Its blocks are allocated one by one, on first write.
struct Run {
    blocks: [Option<KBox<Block>>; RUN],
}

impl Run {
    fn new(gfp: Flags) -> Result<KBox<Run>, StoreError> {
        KBox::new(
            Run {
                blocks: [const { None }; RUN],
            },
            gfp,
        )
        .map_err(|_| StoreError::NoMemory)
    }

    fn is_empty(&self) -> bool {
        self.blocks.iter().all(Option::is_none)
    }
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

/// The block indices from `first` to `last` (inclusive) that share the run
/// of `first`: `first..end`. Block indices stay below 2^28 (devices are at
/// most 1 TiB), so nothing here comes near overflowing.
fn shard_run(first: usize, last: usize) -> Range<usize> {
    let run_end = ((first >> SHARD_RUN_SHIFT) + 1) << SHARD_RUN_SHIFT;
    first..run_end.min(last.saturating_add(1))
}

/// The index of block `idx`'s run in its shard's xarray: runs are dealt out
/// to the shards in turn, so each xarray's indices are dense.
fn run_key(idx: usize) -> usize {
    (idx >> SHARD_RUN_SHIFT) / NR_SHARDS
}

/// The memory store of a device.
pub(crate) struct MemStore {
    shards: KVec<Pin<KBox<XArray<KBox<Run>>>>>,
    /// log2 of the intervals per block.
    per_block_shift: u32,
    interval: usize,
    metadata_size: usize,
    /// The metadata of a block never written: escape PI for each interval.
    escape: KVec<u8>,
}

impl MemStore {
    /// Bytes of data per interval.
    pub(crate) fn interval(&self) -> usize {
        self.interval
    }

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

    fn shard(&self, idx: usize) -> &XArray<KBox<Run>> {
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

    /// The intervals of block `idx` that `first..first + n` covers.
    fn covered(&self, idx: usize, first: u64, n: u64) -> Range<u64> {
        let start = (idx as u64) << self.per_block_shift;
        let end = start + (1 << self.per_block_shift);
        start.max(first)..end.min(first + n)
    }

    /// A new block: zeroes and escape PI.
    #[cold]
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

    /// Calls `f` with the run at `key` of `guard`'s shard, allocating the
    /// run with `gfp` if it does not exist: one lookup when it does.
    fn with_run<R>(
        guard: &mut xarray::Guard<'_, KBox<Run>>,
        key: usize,
        gfp: Flags,
        f: impl FnOnce(&mut Run) -> R,
    ) -> Result<R, StoreError> {
        if let Some(run) = guard.get_mut(key) {
            return Ok(f(run));
        }
        let run = Run::new(gfp)?;
        // On failure the run is dropped (freed under the lock, which `kfree`
        // allows).
        guard
            .store(key, run, gfp)
            .map_err(|_| StoreError::NoMemory)?;
        guard.get_mut(key).map(f).ok_or(StoreError::NoMemory)
    }

    /// Block `idx` of `run`, allocated with `gfp` if it does not exist.
    #[inline]
    fn block<'r>(
        &self,
        run: &'r mut Run,
        idx: usize,
        gfp: Flags,
    ) -> Result<&'r mut Block, StoreError> {
        let slot = &mut run.blocks[idx % RUN];
        if slot.is_none() {
            *slot = Some(self.new_block(gfp)?);
        }
        slot.as_deref_mut().ok_or(StoreError::NoMemory)
    }

    /// Calls `f(guard, key, blocks)` for the runs of blocks `first..=last`
    /// in order: `key` is the run's index in its shard, whose lock is held,
    /// and `blocks` are the indices of the run's blocks in the range. What
    /// `f` returns is dropped after the lock (what it took out to free).
    fn each_run<T, E>(
        &self,
        first: usize,
        last: usize,
        mut f: impl FnMut(&mut xarray::Guard<'_, KBox<Run>>, usize, Range<usize>) -> Result<T, E>,
    ) -> Result<(), E> {
        let mut idx = first;
        while idx <= last {
            let blocks = shard_run(idx, last);
            idx = blocks.end;
            let mut guard = self.shard(blocks.start).lock();
            let out = f(&mut guard, run_key(blocks.start), blocks);
            drop(guard);
            drop(out?);
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
        self.each_run(a, b, |guard, key, mut blocks| {
            Self::with_run(guard, key, io_gfp(), |run| {
                blocks.try_for_each(|i| self.block(run, i, io_gfp()).map(|_| ()))
            })?
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
        self.each_run(a, b, |guard, key, blocks| {
            let run = guard.get(key);
            for idx in blocks {
                let block = run.and_then(|r| r.blocks[idx % RUN].as_deref());
                let (data, meta) = match block {
                    Some(b) => (&b.data.0, &b.meta[..]),
                    None => (&ZERO_CHUNK.0, &self.escape[..]),
                };
                if self.per_block_shift == 0 {
                    // The block holds this interval alone.
                    f(idx as u64, &data[..], if with_meta { meta } else { &[] })?;
                    continue;
                }
                for i in self.covered(idx, first, n) {
                    let (d, m) = self.ranges(self.slot(i).1);
                    let m = if with_meta { &meta[m] } else { &[][..] };
                    f(i, &data[d], m)?;
                }
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
        // A reserved block is only missing if a concurrent discard freed
        // it; it is allocated again if the emergency reserves allow, or
        // its intervals are gone. An unreserved write stops at the first
        // block it cannot allocate, with the blocks before it stored.
        let gfp = if reserved { late_gfp() } else { io_gfp() };
        let (a, b) = self.span(first, n);
        self.each_run(a, b, |guard, key, blocks| {
            let mut fill = |idx: usize, mut block: Option<&mut Block>| {
                if self.per_block_shift == 0 {
                    // The block holds this interval alone.
                    let slot = match block {
                        Some(b) => Slot::Whole {
                            data: &mut b.data,
                            meta: &mut b.meta[..],
                        },
                        None => Slot::Gone,
                    };
                    return f(idx as u64, slot);
                }
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
            };
            let done = Self::with_run(guard, key, gfp, |run| {
                for idx in blocks.clone() {
                    match self.block(run, idx, gfp) {
                        Ok(b) => fill(idx, Some(b))?,
                        Err(_) if reserved => fill(idx, None)?,
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(())
            });
            match done {
                Ok(r) => r,
                Err(_) if reserved => blocks.clone().try_for_each(|idx| fill(idx, None)),
                Err(e) => Err(e.into()),
            }
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
        let (d, m) = self.ranges(j);
        Self::with_run(&mut guard, run_key(idx), io_gfp(), |run| {
            let b = self.block(run, idx, io_gfp())?;
            f(&mut b.data.0[d], &mut b.meta[m]);
            Ok(())
        })?
    }

    /// Makes intervals `first..first + n` read as zeroes with escape PI,
    /// freeing whole blocks, and runs left without blocks.
    pub(crate) fn reset(&self, first: u64, n: u64) {
        if n == 0 {
            return;
        }
        let (a, b) = self.span(first, n);
        let whole = 1u64 << self.per_block_shift;
        // What the reset frees is freed outside the lock. (It cannot fail.)
        let _ = self.each_run(a, b, |guard, key, blocks| {
            let mut freed: [Option<KBox<Block>>; RUN] = [const { None }; RUN];
            // Nothing to reset where nothing is stored.
            let Some(run) = guard.get_mut(key) else {
                return Ok::<_, core::convert::Infallible>((freed, None));
            };
            for i in blocks {
                let cov = self.covered(i, first, n);
                let slot = &mut run.blocks[i % RUN];
                if cov.end - cov.start == whole {
                    freed[i % RUN] = slot.take();
                } else if let Some(b) = slot.as_deref_mut() {
                    for k in cov {
                        let (d, m) = self.ranges(self.slot(k).1);
                        b.data.0[d].fill(0);
                        b.meta[m.clone()].copy_from_slice(&self.escape[m]);
                    }
                }
            }
            let freed_run = if run.is_empty() {
                guard.remove(key)
            } else {
                None
            };
            Ok((freed, freed_run))
        });
    }
}
