// SPDX-License-Identifier: GPL-2.0

//! Where a device keeps its data and its metadata: two separate regions,
//! in memory ([`mem`]) or in a backing file or block device ([`file`]).

pub(crate) mod file;
pub(crate) mod mem;

use crate::{blk::Status, pi::Profile};
use file::FileStore;
use kernel::{alloc::AllocError, prelude::*};
use mem::{DataStore, MetaStore};

pub(crate) use mem::CHUNK;

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

/// Largest piece of data moved by one access of a backing file.
const FILE_IO: usize = 64 * 1024;

fn io_error(_: Error) -> Status {
    Status::IO_ERROR
}

/// A store that cannot allocate what a request needs has the request
/// retried later, without having changed anything.
impl From<AllocError> for Status {
    fn from(_: AllocError) -> Self {
        Status::RESOURCE
    }
}

/// A bounce buffer for up to `len` bytes of file I/O.
fn file_buffer(len: usize) -> Result<KVec<u8>, Status> {
    Ok(KVec::from_elem(0u8, len.min(FILE_IO), GFP_KERNEL)?)
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
                let mut buf = file_buffer(len)?;
                for_each_file_piece(pos, len, |pos, k| {
                    let b = &mut buf[..k];
                    s.read_data(pos, b).map_err(io_error)?;
                    f(b)
                })
            }
        }
    }

    /// Lets `f` fill the `len` data bytes at `pos`, in order, in pieces as
    /// [`Self::read_data`] does. A memory store calls `f` under a spinlock:
    /// it must not sleep.
    pub(crate) fn write_data(
        &self,
        pos: u64,
        len: usize,
        mut f: impl FnMut(&mut [u8]) -> Result<(), Status>,
    ) -> Result<(), Status> {
        match self {
            Store::Mem { data, .. } => data.write(pos, len, f),
            Store::File(s) => {
                let mut buf = file_buffer(len)?;
                for_each_file_piece(pos, len, |pos, k| {
                    let b = &mut buf[..k];
                    f(b)?;
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

    /// Stores the metadata of `interval`.
    pub(crate) fn write_meta(&self, interval: u64, md: &[u8]) -> Result<(), Status> {
        match self {
            Store::Mem { meta: Some(m), .. } => Ok(m.write(interval, md)?),
            Store::Mem { meta: None, .. } => Err(Status::IO_ERROR),
            Store::File(s) => s.write_meta(interval, md).map_err(io_error),
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
