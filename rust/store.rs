// SPDX-License-Identifier: GPL-2.0

//! Where a device keeps its data and metadata: in memory ([`mem`]) or in a
//! backing file or block device ([`file`]).
//!
//! A store is addressed by protection interval. Each access hands the
//! caller an interval's data and its metadata together, and a memory store
//! does so under one lock: readers never see an interval's data without
//! its metadata, and of two writers of an interval one wins both. (A
//! backing file's accesses are serialised by the device's work item.)

mod access;
pub(crate) mod file;
mod files;
pub(crate) mod header;
pub(crate) mod journal;
pub(crate) mod mem;
mod pages;

pub(crate) use access::{Slot, StoreError};

use crate::{
    blk::{bio::Sink, file::BackingFile, Bio, Request},
    pi::Profile,
};
use file::FileStore;
use kernel::prelude::*;
use mem::MemStore;

pub(crate) use mem::CHUNK;

/// A device's store.
pub(crate) enum Store {
    /// Sparse memory; lost when the device is removed.
    Mem(MemStore),
    /// A backing file or block device; every access may sleep.
    File(KBox<FileStore>),
    /// Nothing: a pass-through device's requests go to its lower device.
    /// Reading or changing it is an I/O error.
    Forward,
}

impl Store {
    /// An empty memory store for format `profile`.
    pub(crate) fn memory(profile: Profile) -> Result<Self> {
        Ok(Store::Mem(MemStore::new(profile)?))
    }

    /// The store at `path` (its metadata at `meta` if given), of format
    /// `profile` and `capacity` bytes: opened, each of its files taken
    /// with `claim` (see [`Self::format`]), its journal replayed, then
    /// kept on or off as `journal` says; `logged`: every write goes
    /// through [`Self::write`], for a write cache to log. Returns the claims, to be held
    /// as long as the store is used, and the journal entries replayed; or
    /// the error and why, in words.
    pub(crate) fn open_backing<G>(
        path: &CStr,
        meta: Option<&CStr>,
        profile: Profile,
        capacity: u64,
        journal: bool,
        logged: bool,
        claim: impl FnMut(usize) -> Result<G>,
    ) -> Result<(Self, KVec<G>, u64), (Error, &'static str)> {
        let mut fs = FileStore::open(path, meta, profile, capacity)?;
        let claims = fs
            .claim(claim)
            .map_err(|e| (e, "the store is in use by another rdif device"))?;
        // Only the device that holds the store may replay its journal.
        fs.replay()?;
        fs.set_journaled(journal, logged);
        let replayed = fs.replayed();
        let fs = KBox::new(fs, GFP_KERNEL).map_err(|_| (ENOMEM, "out of memory"))?;
        Ok((Store::File(fs), claims, replayed))
    }

    /// Creates a fresh store at `path` (see [`Self::open_backing`]), all
    /// zeroes with escape PI, replacing whatever was there; `claim` takes
    /// each of its files for the time of formatting, so that no device
    /// uses it meanwhile.
    pub(crate) fn format<G>(
        path: &CStr,
        meta: Option<&CStr>,
        profile: Profile,
        capacity: u64,
        claim: impl FnMut(usize) -> Result<G>,
    ) -> Result<(), (Error, &'static str)> {
        FileStore::format(path, meta, profile, capacity, claim)
    }

    /// Whether this is a memory store.
    pub(crate) fn is_memory(&self) -> bool {
        matches!(self, Store::Mem(_))
    }

    /// For a backing store, whether whole requests go to its data file as
    /// direct I/O (see [`Self::direct_target`]); `None` for any other.
    pub(crate) fn direct(&self) -> Option<bool> {
        match self {
            Store::File(s) => Some(s.direct()),
            Store::Mem(_) | Store::Forward => None,
        }
    }

    /// The memory alignment mask of requests that go to the data file as
    /// direct I/O, if they do.
    pub(crate) fn direct_mem_align(&self) -> Option<u32> {
        match self {
            Store::File(s) => s.direct_mem_align(),
            Store::Mem(_) | Store::Forward => None,
        }
    }

    /// Where a whole request's data at intervals from `first` goes as
    /// direct I/O (only if [`Self::direct`]): the data file and the
    /// position in it.
    pub(crate) fn direct_target(&self, first: u64) -> Result<(&BackingFile, u64), StoreError> {
        match self {
            Store::File(s) => s.direct_target(first),
            Store::Mem(_) | Store::Forward => Err(StoreError::Io),
        }
    }

    /// Moves the whole of `rq`'s data at intervals from `first`, bio by
    /// bio, before returning (a backing store only).
    pub(crate) fn transfer(
        &self,
        rq: &Request<'_>,
        first: u64,
        write: bool,
    ) -> Result<(), StoreError> {
        match self {
            Store::File(s) => s.transfer(rq, first, write),
            Store::Mem(_) | Store::Forward => Err(StoreError::Io),
        }
    }

    /// Reads the data of the read `bio`, intervals from `first`, into its
    /// pages (without metadata): a backing file straight through one
    /// iov_iter, memory interval by interval.
    pub(crate) fn read_bio(&self, first: u64, bio: &Bio<'_, Sink>) -> Result<(), StoreError> {
        match self {
            Store::File(s) => s.read_bio(first, bio),
            Store::Mem(m) => {
                let mut data = bio.data_dest();
                let n = u64::from(bio.size())
                    .checked_div(m.interval() as u64)
                    .unwrap_or(0);
                m.read(first, n, false, |_, d, _| {
                    data.copy_from(d).map_err(|_| StoreError::Io)
                })
            }
            Store::Forward => Err(StoreError::Io),
        }
    }

    /// Whether writes go from their bios' pages straight to the data file
    /// ([`Self::write_bio`]): a backing store without journal, in a
    /// format without metadata.
    pub(crate) fn takes_bios(&self) -> bool {
        match self {
            Store::File(s) => s.takes_bios(),
            Store::Mem(_) | Store::Forward => false,
        }
    }

    /// Writes the first `bytes` of `bio`'s data at intervals from `first`
    /// straight from its pages (only if [`Self::takes_bios`]).
    pub(crate) fn write_bio(
        &self,
        first: u64,
        bio: &Bio<'_>,
        bytes: u32,
    ) -> Result<(), StoreError> {
        match self {
            Store::File(s) => s.write_bio(first, bio, bytes),
            Store::Mem(_) | Store::Forward => Err(StoreError::Io),
        }
    }

    /// Whether checked writes are written in place from the caller's
    /// buffers ([`Self::write_runs`]): a backing store without journal.
    pub(crate) fn in_place(&self) -> bool {
        match self {
            Store::File(s) => s.in_place(),
            Store::Mem(_) | Store::Forward => false,
        }
    }

    /// Turns metadata as read into its stored form, for
    /// [`Self::write_runs`].
    pub(crate) fn stored_form(&self, meta: &mut [u8]) {
        if let Store::File(s) = self {
            s.stored_form(meta);
        }
    }

    /// Writes intervals `first..first + n` in place from the caller's
    /// buffers (only if [`Self::in_place`]; see
    /// [`FileStore::write_runs`]).
    pub(crate) fn write_runs<'a>(
        &self,
        first: u64,
        n: u64,
        run: impl Fn(usize, bool) -> Option<&'a [u8]>,
    ) -> Result<(), StoreError> {
        match self {
            Store::File(s) => s.write_runs(first, n, run),
            Store::Mem(_) | Store::Forward => Err(StoreError::Io),
        }
    }

    /// Whether accesses may sleep (the queue must be `BLK_MQ_F_BLOCKING`).
    pub(crate) fn may_sleep(&self) -> bool {
        matches!(self, Store::File(_))
    }

    /// Whether discard frees space (memory, or holes punched in a backing
    /// file); else the device should not advertise it.
    pub(crate) fn can_discard(&self) -> bool {
        match self {
            Store::Mem(_) | Store::Forward => true,
            Store::File(s) => s.can_punch(),
        }
    }

    /// Allocates what a write of intervals `first..first + n` needs, so
    /// that storing it cannot fail for lack of memory; the contents read
    /// the same as before. Never sleeps.
    pub(crate) fn reserve(&self, first: u64, n: u64) -> Result<(), StoreError> {
        match self {
            Store::Mem(m) => m.reserve(first, n),
            Store::File(_) | Store::Forward => Ok(()),
        }
    }

    /// Gets a backing store ready for a write of intervals `first..first +
    /// n`, so that an I/O error fails the request before anything changed
    /// (see [`FileStore::prepare_write`]). May sleep; nothing to do for a
    /// memory store.
    pub(crate) fn prepare_write(&self, first: u64, n: u64) -> Result<(), StoreError> {
        match self {
            Store::Mem(_) | Store::Forward => Ok(()),
            Store::File(s) => s.prepare_write(first, n),
        }
    }

    /// Calls `f(interval, data, meta)` for intervals `first..first + n` in
    /// order (zeroes and escape PI where nothing was written). `meta` is
    /// empty unless `with_meta` (a backing file then does not read it). A
    /// memory store calls `f` under a spinlock: it must not sleep.
    pub(crate) fn read<E: From<StoreError>>(
        &self,
        first: u64,
        n: u64,
        with_meta: bool,
        f: impl FnMut(u64, &[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Store::Mem(m) => m.read(first, n, with_meta, f),
            Store::File(s) => s.read(first, n, with_meta, f),
            Store::Forward => Err(StoreError::Io.into()),
        }
    }

    /// Calls `f(interval, slot)` for intervals `first..first + n` in order,
    /// to fill them; each interval's data and metadata become visible to
    /// readers together (for a backing file, at [`Self::commit`]).
    /// `reserved`: [`Self::reserve`] was called for them, so a missing
    /// place can only be a concurrent discard's doing
    /// ([`Slot::Gone`] if it cannot be allocated again); else a missing
    /// place is allocated as the write comes to it, and lack of memory
    /// stops the write there with [`StoreError::NoMemory`]: the intervals
    /// before it are stored, each whole, and the caller retries the whole
    /// write. A memory store calls `f` under a spinlock: it must not sleep.
    /// An error of `f` stops the write.
    pub(crate) fn write<E: From<StoreError>>(
        &self,
        first: u64,
        n: u64,
        reserved: bool,
        f: impl FnMut(u64, Slot<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Store::Mem(m) => m.write(first, n, reserved, f),
            Store::File(s) => s.write(first, n, f),
            Store::Forward => Err(StoreError::Io.into()),
        }
    }

    /// Lets `f` change the stored data and metadata of `interval` in place
    /// (fault injection). Sleeps for a backing file only.
    pub(crate) fn modify(
        &self,
        interval: u64,
        f: impl FnOnce(&mut [u8], &mut [u8]),
    ) -> Result<(), StoreError> {
        match self {
            Store::Mem(m) => m.modify(interval, f),
            Store::File(s) => s.modify(interval, f),
            Store::Forward => Err(StoreError::Io),
        }
    }

    /// Discard and write-zeroes: intervals `first..first + n` read as
    /// zeroes with escape PI afterwards.
    pub(crate) fn reset(&self, first: u64, n: u64) -> Result<(), StoreError> {
        match self {
            Store::Mem(m) => {
                m.reset(first, n);
                Ok(())
            }
            Store::File(s) => s.reset(first, n),
            Store::Forward => Err(StoreError::Io),
        }
    }

    /// Makes the writes and resets since the last call durable and
    /// visible (a backing file commits its journal as one group, see
    /// [`FileStore::commit`]); their requests may complete only after
    /// this returned `Ok`, and must fail if it did not. Nothing to do for
    /// a memory store, whose writes are done when they return.
    pub(crate) fn commit(&self) -> Result<(), StoreError> {
        match self {
            Store::Mem(_) | Store::Forward => Ok(()),
            Store::File(s) => s.commit(),
        }
    }

    /// Carries out what was written since the last commit, so that reads
    /// see it, as [`Self::commit`] does; an I/O error is kept for
    /// [`Self::commit`] to report to the requests it concerns.
    pub(crate) fn publish(&self) -> Result<(), StoreError> {
        match self {
            Store::Mem(_) | Store::Forward => Ok(()),
            Store::File(s) => s.publish(),
        }
    }

    /// Flush: makes every completed write durable.
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        match self {
            Store::Mem(_) | Store::Forward => Ok(()),
            Store::File(s) => s.flush(),
        }
    }
}
