// SPDX-License-Identifier: GPL-2.0

//! Staging buffers: a checked write's data and metadata, copied from its
//! bios before anything of it is stored, in whole blocks of the memory
//! store's size (a staged block holding one interval can take the place of
//! a stored one).

use crate::store::{
    mem::{io_gfp, Chunk},
    Slot, CHUNK,
};
use core::{num::NonZeroUsize, ops::Range};
use kernel::{alloc::AllocError, prelude::*};

/// Largest staging buffer (in bytes of data) a device keeps for the next
/// checked write.
const SPARE_MAX: usize = 256 * 1024;

/// A request's data and metadata, copied from its bios and checked,
/// before anything of it is stored: intervals in pieces of at most
/// [`CHUNK`] bytes.
pub(crate) struct Staging {
    interval: usize,
    ms: usize,
    /// Intervals it has room for.
    cap: usize,
    /// Intervals per data piece.
    per_data: NonZeroUsize,
    /// Intervals per metadata piece.
    per_meta: NonZeroUsize,
    /// Whole blocks of the memory store's size, so that one holding a
    /// single interval can take the place of a block of the store.
    data: KVec<KBox<Chunk>>,
    meta: KVec<KVec<u8>>,
}

/// `n` blocks of data.
fn chunks(n: usize) -> Result<KVec<KBox<Chunk>>, AllocError> {
    let mut v = KVec::with_capacity(n, io_gfp())?;
    for _ in 0..n {
        let c = KBox::init(pin_init::init_zeroed(), io_gfp()).map_err(|_| AllocError)?;
        v.push(c, io_gfp())?;
    }
    Ok(v)
}

/// `n` records of `size` bytes in pieces of at most `per` records.
fn pieces(n: usize, size: usize, per: NonZeroUsize) -> Result<KVec<KVec<u8>>, AllocError> {
    let mut v = KVec::with_capacity(n.div_ceil(per.get()), io_gfp())?;
    let mut left = n;
    while left > 0 && size > 0 {
        let k = left.min(per.get());
        v.push(KVec::from_elem(0u8, k * size, io_gfp())?, io_gfp())?;
        left -= k;
    }
    Ok(v)
}

impl Staging {
    /// Whether to keep it as the spare for the next checked write: not
    /// if large (what a large request allocates is small beside what it
    /// moves).
    pub(super) fn worth_keeping(&self) -> bool {
        self.data_bytes() <= SPARE_MAX
    }

    pub(super) fn new(interval: usize, ms: usize, n: usize) -> Result<Self, AllocError> {
        // Intervals are 512 to 4096 bytes (`Profile`'s invariants).
        // How many records of `size` bytes a piece holds (at least one).
        let per = |size: usize| {
            NonZeroUsize::new(CHUNK.checked_div(size).unwrap_or(1)).unwrap_or(NonZeroUsize::MIN)
        };
        let (per_data, per_meta) = (per(interval), per(ms));
        Ok(Staging {
            interval,
            ms,
            cap: n,
            per_data,
            per_meta,
            data: chunks(n.div_ceil(per_data.get()))?,
            meta: pieces(n, ms, per_meta)?,
        })
    }

    /// Whether it has room for `n` intervals.
    pub(super) fn holds(&self, n: usize) -> bool {
        n <= self.cap
    }

    /// Bytes of data it has room for.
    fn data_bytes(&self) -> usize {
        self.cap * self.interval
    }

    /// Where interval `k` lies: its data piece and byte range, its
    /// metadata piece and byte range.
    fn place(&self, k: usize) -> ((usize, Range<usize>), (usize, Range<usize>)) {
        let (iv, ms) = (self.interval, self.ms);
        let (dj, mj) = (k % self.per_data, k % self.per_meta);
        (
            (k / self.per_data, dj * iv..(dj + 1) * iv),
            (k / self.per_meta, mj * ms..(mj + 1) * ms),
        )
    }

    /// Interval `k`'s data and metadata, to fill.
    pub(super) fn slot(&mut self, k: usize) -> Option<(&mut [u8], &mut [u8])> {
        let ((dp, dr), (mp, mr)) = self.place(k);
        let d = self.data.get_mut(dp)?.0.get_mut(dr)?;
        let m = match self.meta.get_mut(mp) {
            Some(m) => m.get_mut(mr)?,
            // No metadata.
            None => &mut [],
        };
        Some((d, m))
    }

    /// Interval `k`'s data and metadata.
    fn get(&self, k: usize) -> Option<(&[u8], &[u8])> {
        let ((dp, dr), (mp, mr)) = self.place(k);
        let d = self.data.get(dp)?.0.get(dr)?;
        let m = match self.meta.get(mp) {
            Some(m) => m.get(mr)?,
            None => &[],
        };
        Some((d, m))
    }

    /// The data (with `meta`, the metadata) of intervals from `k` on, as
    /// far as it lies contiguous.
    pub(super) fn run(&self, k: usize, meta: bool) -> Option<&[u8]> {
        let ((dp, dr), (mp, mr)) = self.place(k);
        if meta {
            self.meta.get(mp)?.get(mr.start..)
        } else {
            self.data.get(dp)?.0.get(dr.start..)
        }
    }

    /// Lets `f` change every piece of metadata in place.
    pub(super) fn each_meta(&mut self, f: impl Fn(&mut [u8])) {
        self.meta.iter_mut().for_each(|m| f(m));
    }

    /// Stores interval `k` into `slot`. A whole block of the memory store
    /// gets the staged block itself when the interval is a whole block:
    /// the checked data takes its place, and the old block becomes staging
    /// space. Any other slot gets a copy.
    pub(super) fn store_into(&mut self, k: usize, slot: Slot<'_>) -> Option<()> {
        match slot {
            Slot::Whole { data, meta } if self.interval == CHUNK => {
                core::mem::swap(data, self.data.get_mut(k)?);
                meta.copy_from_slice(self.get(k)?.1);
            }
            slot => {
                if let Some((data, meta)) = slot.bytes() {
                    let (d, m) = self.get(k)?;
                    data.copy_from_slice(d);
                    meta.copy_from_slice(m);
                }
            }
        }
        Some(())
    }
}
