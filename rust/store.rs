// SPDX-License-Identifier: GPL-2.0

//! Where a device keeps its data and its metadata: two separate regions,
//! in memory ([`mem`]) or in a backing file or block device ([`file`]).

pub(crate) mod file;
pub(crate) mod mem;

use crate::{blk::Status, pi::Profile};
use file::{FileStore, FILE_IO};
use kernel::{alloc::AllocError, prelude::*};
use mem::{DataStore, MetaStore};

pub(crate) use mem::{Dst, CHUNK};

/// A device's store. Data is addressed by byte offset, metadata by
/// protection interval. Accesses of data never cross a [`CHUNK`] boundary.
pub(crate) enum Store {
    /// Sparse memory; lost when the device is removed.
    Mem {
        /// Data region.
        data: DataStore,
        /// Metadata region, if the format has metadata.
        meta: Option<MetaStore>,
    },
    /// A backing file or block device; every access may sleep.
    File(KBox<FileStore>),
}

/// The status of a failed access of a backing file: running out of memory
/// is a shortage (the request is retried whole; what it wrote already is
/// written again, and nothing was acknowledged), anything else an I/O
/// error.
fn io_error(e: Error) -> Status {
    if e == ENOMEM {
        Status::RESOURCE
    } else {
        Status::IO_ERROR
    }
}

/// A store that cannot allocate what a request needs has the request
/// retried later, without having changed anything.
impl From<AllocError> for Status {
    fn from(_: AllocError) -> Self {
        Status::RESOURCE
    }
}

/// Calls `f(pos, len)` for the pieces of `len` bytes at `pos` that lie
/// within one aligned block of [`FILE_IO`] bytes each.
fn for_each_file_piece(
    mut pos: u64,
    mut len: usize,
    mut f: impl FnMut(u64, usize) -> Result<(), Status>,
) -> Result<(), Status> {
    while len > 0 {
        let k = len.min(FILE_IO - (pos % FILE_IO as u64) as usize);
        f(pos, k)?;
        pos += k as u64;
        len -= k;
    }
    Ok(())
}

impl Store {
    /// An empty memory store for format `profile`.
    pub(crate) fn memory(profile: Profile) -> Result<Self> {
        let meta = if profile.has_metadata() {
            Some(MetaStore::new(profile)?)
        } else {
            None
        };
        Ok(Store::Mem {
            data: DataStore::new()?,
            meta,
        })
    }

    /// Whether accesses may sleep (the queue must be `BLK_MQ_F_BLOCKING`).
    pub(crate) fn may_sleep(&self) -> bool {
        matches!(self, Store::File(_))
    }

    /// Allocates what a write of `len` bytes at `pos` needs, so that
    /// storing it cannot fail for lack of memory; the contents read the
    /// same as before. On failure blk-mq retries the request later.
    pub(crate) fn reserve(&self, p: &Profile, pos: u64, len: u64) -> Result<(), Status> {
        match self {
            Store::Mem { data, meta } => {
                data.reserve(pos, len)?;
                if let Some(meta) = meta {
                    meta.reserve(p.sector_to_interval(pos >> 9), len >> p.interval_shift())?;
                }
                Ok(())
            }
            Store::File(_) => Ok(()),
        }
    }

    /// Gets a backing store ready for a write of `len` bytes at `pos`:
    /// reads one byte of every page of the file that the write changes
    /// only in part (edges of the data, the metadata), so that the write
    /// itself does not have to read them. An I/O error here fails the
    /// request before anything was changed, instead of between its data
    /// and its metadata. May sleep; nothing to do for a memory store.
    pub(crate) fn prepare_write(&self, pos: u64, len: u64) -> Result<(), Status> {
        match self {
            Store::Mem { .. } => Ok(()),
            Store::File(s) => s.prepare_write(pos, len).map_err(io_error),
        }
    }

    /// Calls `f` with the `len` data bytes at `pos` (zeroes where nothing
    /// was written), in order, in pieces of at most [`CHUNK`] bytes for a
    /// memory store and [`FILE_IO`] bytes for a backing file. A memory
    /// store calls `f` under a spinlock: it must not sleep.
    pub(crate) fn read_data(
        &self,
        pos: u64,
        len: usize,
        mut f: impl FnMut(&[u8]) -> Result<(), Status>,
    ) -> Result<(), Status> {
        match self {
            Store::Mem { data, .. } => data.read(pos, len, f),
            Store::File(s) => {
                let mut buf = s.bounce();
                for_each_file_piece(pos, len, |pos, k| {
                    let b = buf.get_mut(..k).ok_or(Status::IO_ERROR)?;
                    s.read_data(pos, b).map_err(io_error)?;
                    f(b)
                })
            }
        }
    }

    /// Lets `f` fill the `len` data bytes at `pos`, in order, in pieces as
    /// [`Self::read_data`] does. A memory store calls `f` under a spinlock:
    /// it must not sleep. A piece a concurrent discard took away after
    /// [`Self::reserve`] may be [`Dst::Gone`] (memory stores only).
    pub(crate) fn write_data(
        &self,
        pos: u64,
        len: usize,
        mut f: impl FnMut(Dst<'_>) -> Result<(), Status>,
    ) -> Result<(), Status> {
        match self {
            Store::Mem { data, .. } => data.write(pos, len, f),
            Store::File(s) => {
                let mut buf = s.bounce();
                for_each_file_piece(pos, len, |pos, k| {
                    let b = buf.get_mut(..k).ok_or(Status::IO_ERROR)?;
                    f(Dst::Stored(b))?;
                    s.write_data(pos, b).map_err(io_error)
                })
            }
        }
    }

    /// Copies the metadata of `interval` into `out` (escape PI if never
    /// written).
    pub(crate) fn read_meta(&self, interval: u64, out: &mut [u8]) -> Result<(), Status> {
        match self {
            Store::Mem { meta: Some(m), .. } => {
                m.read(interval, out);
                Ok(())
            }
            Store::Mem { meta: None, .. } => Err(Status::IO_ERROR),
            Store::File(s) => s.read_meta(interval, out).map_err(io_error),
        }
    }

    /// Stores the metadata of `interval`. Returns false if a concurrent
    /// discard took its place away after [`Self::reserve`] (memory stores
    /// only): the interval keeps the escape PI the discard left.
    pub(crate) fn write_meta(&self, interval: u64, md: &[u8]) -> Result<bool, Status> {
        match self {
            Store::Mem { meta: Some(m), .. } => Ok(m.write(interval, md)),
            Store::Mem { meta: None, .. } => Err(Status::IO_ERROR),
            Store::File(s) => s.write_meta(interval, md).map(|()| true).map_err(io_error),
        }
    }

    /// Discard and write-zeroes: `len` bytes at `pos` read as zeroes with
    /// escape PI afterwards.
    pub(crate) fn reset(&self, p: &Profile, pos: u64, len: u64) -> Result<(), Status> {
        match self {
            Store::Mem { data, meta } => {
                data.zero(pos, len);
                if let Some(meta) = meta {
                    meta.reset(p.sector_to_interval(pos >> 9), len >> p.interval_shift());
                }
                Ok(())
            }
            Store::File(s) => s.reset(pos, len).map_err(io_error),
        }
    }

    /// Forced unit access: makes a completed write of `len` bytes at `pos`
    /// durable before it is acknowledged.
    pub(crate) fn sync_range(&self, pos: u64, len: u64) -> Result<(), Status> {
        match self {
            Store::Mem { .. } => Ok(()),
            Store::File(s) => s.sync_range(pos, len).map_err(io_error),
        }
    }

    /// Flush: makes every completed write durable.
    pub(crate) fn flush(&self) -> Result<(), Status> {
        match self {
            Store::Mem { .. } => Ok(()),
            Store::File(s) => s.flush().map_err(io_error),
        }
    }
}
