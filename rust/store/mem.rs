// SPDX-License-Identifier: GPL-2.0

//! Sparse in-memory stores: data and metadata each in their own set of
//! xarrays of 4 KiB chunks, allocated on first write.
//!
//! There is no device-wide lock: chunks are spread over [`NR_SHARDS`]
//! xarrays by their index (runs of 16 chunks, 64 KiB, per shard), and each
//! xarray lock is held only while one chunk is copied. Two xarray locks are
//! never held at once. A chunk is only freed under its shard lock, so a
//! reference to it never outlives the lock.

use crate::pi::Profile;
use core::num::NonZeroU64;
use kernel::{
    alloc::{flags, AllocError, Flags},
    prelude::*,
    xarray::{AllocKind, XArray},
};

/// Bytes per chunk.
pub(crate) const CHUNK: usize = 4096;
const NR_SHARDS: usize = 32;
const SHARD_RUN_SHIFT: u32 = 4;

/// One chunk of a store.
#[repr(C, align(8))]
pub(crate) struct Chunk(pub(crate) [u8; CHUNK]);

// SAFETY: a byte array is valid when all bits are zero.
unsafe impl pin_init::Zeroable for Chunk {}

/// Allocation flags on the I/O path, where the driver may not sleep. A
/// failure makes blk-mq retry the request later.
fn io_gfp() -> Flags {
    flags::GFP_NOWAIT | flags::__GFP_NOWARN
}

/// A sparse array of chunks.
struct Chunks {
    shards: KVec<Pin<KBox<XArray<KBox<Chunk>>>>>,
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

    /// Makes sure chunk `idx` exists; a new chunk is zeroed, then `init`
    /// prepares it.
    fn reserve(&self, idx: usize, init: impl FnOnce(&mut Chunk)) -> Result<(), AllocError> {
        let xa = self.shard(idx);
        if xa.lock().get(idx).is_some() {
            return Ok(());
        }
        let mut chunk =
            KBox::init(pin_init::init_zeroed::<Chunk>(), io_gfp()).map_err(|_| AllocError)?;
        init(&mut chunk);
        let mut guard = xa.lock();
        if guard.get(idx).is_some() {
            // Another request created it meanwhile; it is as good as ours.
            return Ok(());
        }
        // `io_gfp()` cannot sleep, so the lock is held throughout and nothing
        // can be stored at `idx` in between.
        guard
            .store(idx, chunk, io_gfp())
            .map(|_| ())
            .map_err(|_| AllocError)
    }

    /// Calls `f` with chunk `idx`, or `None` where nothing was stored.
    fn read<R>(&self, idx: usize, f: impl FnOnce(Option<&Chunk>) -> R) -> R {
        let guard = self.shard(idx).lock();
        f(guard.get(idx))
    }

    /// Calls `f` with chunk `idx` to change it; gives `f` back if the chunk
    /// does not exist.
    fn write<R, F: FnOnce(&mut Chunk) -> R>(&self, idx: usize, f: F) -> Result<R, F> {
        let mut guard = self.shard(idx).lock();
        match guard.get_mut(idx) {
            Some(c) => Ok(f(c)),
            None => Err(f),
        }
    }

    fn remove(&self, idx: usize) {
        let removed = self.shard(idx).lock().remove(idx);
        // Freed outside the lock.
        drop(removed);
    }
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
        if len == 0 {
            return Ok(());
        }
        let first = (pos / CHUNK as u64) as usize;
        let last = ((pos + len - 1) / CHUNK as u64) as usize;
        for idx in first..=last {
            self.chunks.reserve(idx, |_| {})?;
        }
        Ok(())
    }

    /// Calls `f` with the `len` stored bytes at `pos` (`len` must not cross
    /// a chunk boundary), or `None` where they were never written.
    pub(crate) fn read<R>(&self, pos: u64, len: usize, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
        let (idx, off) = ((pos / CHUNK as u64) as usize, (pos % CHUNK as u64) as usize);
        self.chunks
            .read(idx, |c| f(c.and_then(|c| c.0.get(off..off + len))))
    }

    /// Calls `f` to change the `len` bytes at `pos` (which must not cross a
    /// chunk boundary). Allocates the chunk if a concurrent discard freed
    /// it since `reserve`.
    pub(crate) fn write<R>(
        &self,
        pos: u64,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, AllocError> {
        let (idx, off) = ((pos / CHUNK as u64) as usize, (pos % CHUNK as u64) as usize);
        if off + len > CHUNK {
            return Err(AllocError);
        }
        let mut f = |c: &mut Chunk| f(&mut c.0[off..off + len]);
        loop {
            match self.chunks.write(idx, f) {
                Ok(r) => return Ok(r),
                Err(back) => {
                    f = back;
                    self.chunks.reserve(idx, |_| {})?;
                }
            }
        }
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
                let _ = self.chunks.write(idx, |c| c.0[off..off + k].fill(0));
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
        for idx in a..=b {
            self.chunks.reserve(idx, |c| self.fill_escape(c))?;
        }
        Ok(())
    }

    /// Copies the metadata of `interval` into `out` (`metadata_size`
    /// bytes). Returns whether it was ever stored (else `out` holds escape
    /// PI).
    pub(crate) fn read(&self, interval: u64, out: &mut [u8]) -> bool {
        let (idx, off) = self.slot(interval);
        let ms = out.len();
        let found = self
            .chunks
            .read(idx, |c| match c.and_then(|c| c.0.get(off..off + ms)) {
                Some(src) => {
                    out.copy_from_slice(src);
                    true
                }
                None => false,
            });
        if !found {
            self.profile.fill_escape(out);
        }
        found
    }

    /// Stores the metadata of `interval`, allocating its chunk if a
    /// concurrent discard freed it since `reserve`.
    pub(crate) fn write(&self, interval: u64, md: &[u8]) -> Result<(), AllocError> {
        let (idx, off) = self.slot(interval);
        let mut f = |c: &mut Chunk| {
            if let Some(dst) = c.0.get_mut(off..off + md.len()) {
                dst.copy_from_slice(md);
            }
        };
        loop {
            match self.chunks.write(idx, f) {
                Ok(()) => return Ok(()),
                Err(back) => {
                    f = back;
                    self.chunks.reserve(idx, |c| self.fill_escape(c))?;
                }
            }
        }
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
                let _ = self.chunks.write(idx, |c| {
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
