// SPDX-License-Identifier: GPL-2.0

//! Sparse in-memory stores: data and metadata each in their own set of
//! xarrays of 4 KiB chunks, allocated on first write.
//!
//! There is no device-wide lock: chunks are spread over [`NR_SHARDS`]
//! xarrays by their index (runs of 16 chunks, 64 KiB, per shard). An access
//! of several chunks takes each shard's lock once for its run of chunks, and
//! holds it only while they are copied. Two xarray locks are never held at
//! once. A chunk is only freed under its shard lock, so a reference to it
//! never outlives the lock.

use crate::pi::Profile;
use core::{num::NonZeroU64, ops::Range};
use kernel::{
    alloc::{flags, AllocError, Flags},
    prelude::*,
    xarray::{self, AllocKind, XArray},
};

/// Bytes per chunk.
pub(crate) const CHUNK: usize = 4096;
const NR_SHARDS: usize = 32;
const SHARD_RUN_SHIFT: u32 = 4;

/// One chunk of a store.
#[repr(C, align(8))]
pub(crate) struct Chunk(pub(crate) [u8; CHUNK]);

/// What a chunk never written reads as.
static ZERO_CHUNK: Chunk = Chunk([0; CHUNK]);

// SAFETY: a byte array is valid when all bits are zero.
unsafe impl pin_init::Zeroable for Chunk {}

/// Allocation flags on the I/O path, where the driver may not sleep. A
/// failure makes blk-mq retry the request later.
fn io_gfp() -> Flags {
    flags::GFP_NOWAIT | flags::__GFP_NOWARN
}

/// Allocation flags for a chunk that a concurrent discard freed between a
/// write's reservation and its copy: the write cannot be retried any more,
/// so it may use the emergency reserves.
fn late_gfp() -> Flags {
    flags::GFP_ATOMIC | flags::__GFP_NOWARN
}

/// Where a write's piece goes.
pub(crate) enum Dst<'a> {
    /// Into these bytes of the store.
    Stored(&'a mut [u8]),
    /// Nowhere: a concurrent discard freed the chunk after the write
    /// reserved it, and it could not be allocated again. The discard is
    /// ordered after the write for this piece, which keeps reading as
    /// zeroes. Holds the piece's length.
    Gone(usize),
}

/// A sparse array of chunks.
struct Chunks {
    shards: KVec<Pin<KBox<XArray<KBox<Chunk>>>>>,
}

/// The chunk indices from `first` to `last` (inclusive) that share the shard
/// of `first`: `first..end`. Chunk indices stay below 2^28 (devices are at
/// most 1 TiB), so nothing here comes near overflowing.
fn shard_run(first: usize, last: usize) -> Range<usize> {
    let run_end = ((first >> SHARD_RUN_SHIFT) + 1) << SHARD_RUN_SHIFT;
    first..run_end.min(last.saturating_add(1))
}

/// A new chunk, zeroed and then prepared by `init`. Used under an xarray
/// lock: the allocation cannot sleep.
fn new_chunk(init: &impl Fn(&mut Chunk), gfp: Flags) -> Result<KBox<Chunk>, AllocError> {
    let mut chunk = KBox::init(pin_init::init_zeroed::<Chunk>(), gfp).map_err(|_| AllocError)?;
    init(&mut chunk);
    Ok(chunk)
}

impl Chunks {
    fn new() -> Result<Self> {
        let mut shards = KVec::with_capacity(NR_SHARDS, GFP_KERNEL)?;
        for _ in 0..NR_SHARDS {
            shards.push(
                KBox::pin_init(XArray::new(AllocKind::Alloc), GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
        }
        Ok(Self { shards })
    }

    fn shard(&self, idx: usize) -> &XArray<KBox<Chunk>> {
        &self.shards[(idx >> SHARD_RUN_SHIFT) % NR_SHARDS]
    }

    /// Calls `f(guard, idx)` for chunks `first..=last` in order, with the
    /// lock of `idx`'s shard held: taken once for each run of consecutive
    /// chunks the shard holds (up to 64 KiB) rather than per chunk.
    fn locked<E>(
        &self,
        first: usize,
        last: usize,
        mut f: impl FnMut(&mut xarray::Guard<'_, KBox<Chunk>>, usize) -> Result<(), E>,
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

    /// Makes sure chunks `first..=last` exist; a new chunk is zeroed, then
    /// `init` prepares it. On failure, the chunks allocated so far stay
    /// (they read as before).
    fn reserve(
        &self,
        first: usize,
        last: usize,
        init: impl Fn(&mut Chunk),
    ) -> Result<(), AllocError> {
        self.locked(first, last, |guard, i| {
            if guard.get(i).is_none() {
                guard
                    .store(i, new_chunk(&init, io_gfp())?, io_gfp())
                    .map_err(|_| AllocError)?;
            }
            Ok(())
        })
    }

    /// Calls `f(idx, chunk)` for chunks `first..=last` in order, with `None`
    /// where nothing is stored, locking as [`Self::locked`] does.
    fn read<E>(
        &self,
        first: usize,
        last: usize,
        mut f: impl FnMut(usize, Option<&Chunk>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.locked(first, last, |guard, i| f(i, guard.get(i)))
    }

    /// Calls `f(idx, chunk)` to change chunks `first..=last` in order,
    /// locking as [`Self::locked`] does. A chunk that does not exist (never
    /// reserved, or freed by a concurrent discard since) is allocated as
    /// [`Self::reserve`] does, from the emergency reserves (`late_gfp()`
    /// cannot sleep, so the lock is held throughout); if even that fails,
    /// `f` gets `None` for it.
    fn write<E>(
        &self,
        first: usize,
        last: usize,
        init: impl Fn(&mut Chunk),
        mut f: impl FnMut(usize, Option<&mut Chunk>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.locked(first, last, |guard, i| {
            if guard.get(i).is_none() {
                if let Ok(c) = new_chunk(&init, late_gfp()) {
                    // On failure the chunk is dropped, and `f` gets `None`.
                    let _ = guard.store(i, c, late_gfp());
                }
            }
            f(i, guard.get_mut(i))
        })
    }

    /// Calls `f` with chunk `idx` to change it, if it exists.
    fn modify(&self, idx: usize, f: impl FnOnce(&mut Chunk)) {
        if let Some(c) = self.shard(idx).lock().get_mut(idx) {
            f(c);
        }
    }

    fn remove(&self, idx: usize) {
        let removed = self.shard(idx).lock().remove(idx);
        // Freed outside the lock.
        drop(removed);
    }
}

/// The first and last chunk of `len` bytes at `pos`, `None` if `len` is 0.
pub(crate) fn chunk_span(pos: u64, len: u64) -> Option<(usize, usize)> {
    let end = pos.checked_add(len)?.checked_sub(1)?;
    (len > 0).then_some(((pos / CHUNK as u64) as usize, (end / CHUNK as u64) as usize))
}

/// The bytes of chunk `idx` that `len` bytes at `pos`, spanning chunks
/// `first..=last`, cover.
pub(crate) fn piece(pos: u64, len: usize, first: usize, last: usize, idx: usize) -> Range<usize> {
    let start = if idx == first {
        (pos % CHUNK as u64) as usize
    } else {
        0
    };
    let end = if idx == last {
        ((pos + len as u64 - 1) % CHUNK as u64) as usize + 1
    } else {
        CHUNK
    };
    start..end
}

/// The data of a device, addressed by byte offset.
pub(crate) struct DataStore {
    chunks: Chunks,
}

impl DataStore {
    /// An empty store: every byte reads as zero.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            chunks: Chunks::new()?,
        })
    }

    /// Allocates what a write of `len` bytes at `pos` needs, so that the
    /// write itself cannot fail. Allocated chunks read as zeroes, as before.
    pub(crate) fn reserve(&self, pos: u64, len: u64) -> Result<(), AllocError> {
        match chunk_span(pos, len) {
            Some((first, last)) => self.chunks.reserve(first, last, |_| {}),
            None => Ok(()),
        }
    }

    /// Calls `f` with the stored bytes of `len` bytes at `pos`, in order,
    /// one piece per chunk (zeroes for a piece never written).
    pub(crate) fn read<E>(
        &self,
        pos: u64,
        len: usize,
        mut f: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some((first, last)) = chunk_span(pos, len as u64) else {
            return Ok(());
        };
        self.chunks.read(first, last, |idx, c| {
            let r = piece(pos, len, first, last, idx);
            f(&c.unwrap_or(&ZERO_CHUNK).0[r])
        })
    }

    /// Calls `f` to change the bytes of `len` bytes at `pos`, in order, one
    /// piece per chunk. Allocates a chunk if a concurrent discard freed it
    /// since `reserve`; where that fails, `f` gets [`Dst::Gone`].
    pub(crate) fn write<E>(
        &self,
        pos: u64,
        len: usize,
        mut f: impl FnMut(Dst<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some((first, last)) = chunk_span(pos, len as u64) else {
            return Ok(());
        };
        self.chunks.write(
            first,
            last,
            |_| {},
            |idx, c| {
                let r = piece(pos, len, first, last, idx);
                match c {
                    Some(c) => f(Dst::Stored(&mut c.0[r])),
                    None => f(Dst::Gone(r.len())),
                }
            },
        )
    }

    /// Makes `len` bytes at `pos` read as zeroes, freeing whole chunks.
    pub(crate) fn zero(&self, pos: u64, len: u64) {
        let end = pos + len;
        let mut p = pos;
        while p < end {
            let idx = (p / CHUNK as u64) as usize;
            let off = (p % CHUNK as u64) as usize;
            let k = ((CHUNK - off) as u64).min(end - p) as usize;
            if k == CHUNK {
                self.chunks.remove(idx);
            } else {
                // Nothing to zero where nothing is stored.
                self.chunks.modify(idx, |c| c.0[off..off + k].fill(0));
            }
            p += k as u64;
        }
    }
}

/// The metadata of a device: `metadata_size` bytes per protection interval,
/// packed into chunks (an interval's metadata never crosses a chunk).
pub(crate) struct MetaStore {
    chunks: Chunks,
    profile: Profile,
    /// Intervals per chunk (a non-zero divisor has no panic path).
    per_chunk: NonZeroU64,
}

impl MetaStore {
    /// An empty store: every interval reads as escape PI.
    pub(crate) fn new(profile: Profile) -> Result<Self> {
        // At least 16: `metadata_size` is at most 255.
        let per_chunk =
            NonZeroU64::new((CHUNK / profile.metadata_size().max(1)) as u64).ok_or(EINVAL)?;
        Ok(Self {
            chunks: Chunks::new()?,
            profile,
            per_chunk,
        })
    }

    fn slot(&self, interval: u64) -> (usize, usize) {
        let idx = (interval / self.per_chunk) as usize;
        let off = (interval % self.per_chunk) as usize * self.profile.metadata_size();
        (idx, off)
    }

    fn fill_escape(&self, c: &mut Chunk) {
        let ms = self.profile.metadata_size();
        for md in c.0.chunks_exact_mut(ms).take(self.per_chunk.get() as usize) {
            self.profile.fill_escape(md);
        }
    }

    /// Allocates what a write of `count` intervals from `first` needs. New
    /// chunks hold escape PI, which is what absent ones read as.
    pub(crate) fn reserve(&self, first: u64, count: u64) -> Result<(), AllocError> {
        if count == 0 {
            return Ok(());
        }
        let (a, _) = self.slot(first);
        let (b, _) = self.slot(first + count - 1);
        self.chunks.reserve(a, b, |c| self.fill_escape(c))
    }

    /// Copies the metadata of `interval` into `out` (`metadata_size`
    /// bytes). Returns whether it was ever stored (else `out` holds escape
    /// PI).
    pub(crate) fn read(&self, interval: u64, out: &mut [u8]) -> bool {
        let (idx, off) = self.slot(interval);
        let ms = out.len();
        let mut found = false;
        let _ = self.chunks.read(idx, idx, |_, c| {
            if let Some(src) = c.and_then(|c| c.0.get(off..off + ms)) {
                out.copy_from_slice(src);
                found = true;
            }
            Ok::<(), ()>(())
        });
        if !found {
            self.profile.fill_escape(out);
        }
        found
    }

    /// Stores the metadata of `interval`, allocating its chunk if a
    /// concurrent discard freed it since `reserve`. Returns false if that
    /// failed: the interval keeps the escape PI the discard left.
    pub(crate) fn write(&self, interval: u64, md: &[u8]) -> bool {
        let (idx, off) = self.slot(interval);
        let mut stored = false;
        let _ = self.chunks.write(
            idx,
            idx,
            |c| self.fill_escape(c),
            |_, c| {
                if let Some(dst) = c.and_then(|c| c.0.get_mut(off..off + md.len())) {
                    dst.copy_from_slice(md);
                    stored = true;
                }
                Ok::<(), ()>(())
            },
        );
        stored
    }

    /// Resets `count` intervals from `first` to escape PI, freeing whole
    /// chunks.
    pub(crate) fn reset(&self, first: u64, count: u64) {
        let pc = self.per_chunk;
        let ms = self.profile.metadata_size();
        let end = first + count;
        let mut i = first;
        while i < end {
            let (idx, _) = self.slot(i);
            let chunk_end = (idx as u64 + 1) * pc.get();
            let k = chunk_end.min(end) - i;
            if i % pc == 0 && k == pc.get() {
                self.chunks.remove(idx);
            } else {
                // Absent chunks read as escape already.
                self.chunks.modify(idx, |c| {
                    for j in i..i + k {
                        let off = (j % pc) as usize * ms;
                        self.profile.fill_escape(&mut c.0[off..off + ms]);
                    }
                });
            }
            i += k;
        }
    }
}
