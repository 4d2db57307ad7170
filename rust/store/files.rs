// SPDX-License-Identifier: GPL-2.0

//! The backing files of a store: one file, or a data file and a separate
//! metadata file (as dm-integrity's `meta_device`).
//!
//! [`crate::store::file::FileStore`] addresses one space of positions laid
//! out as a single-file store is (header, data region, metadata region,
//! journal). With one file, a position is an offset in it. With two:
//!
//! - the data file holds the header (its own copy) and the data region, at
//!   the same offsets as in a single-file store;
//! - the metadata file holds the header and, right after it, the metadata
//!   region and the journal: a position there is moved down by
//!   `meta_offset - HEADER_SIZE`.
//!
//! An access that spans both is split. A sync syncs the data file first,
//! then the metadata file, so that what a journal checkpoint (in the
//! metadata file) declares done is durable in both.

use crate::blk::{
    bio::Sink,
    file::{BackingFile, DirectIoAlign},
    Bio,
};
use kernel::prelude::*;

/// The metadata part of a split store.
struct Meta {
    file: BackingFile,
    /// First position of the data region (the end of the header).
    data_start: u64,
    /// One past the data region.
    data_end: u64,
    /// First position of the metadata region.
    meta_start: u64,
}

/// The files of a store.
pub(crate) struct Files {
    /// The only file, or the data file of a split store.
    data: BackingFile,
    /// The metadata file of a split store.
    meta: Option<Meta>,
}

impl Files {
    /// A store in one file.
    pub(crate) fn single(file: BackingFile) -> Self {
        Files {
            data: file,
            meta: None,
        }
    }

    /// A store whose data region `data_start..data_end` is in `data` and
    /// whose header, metadata region (from `meta_start`) and journal are
    /// in `meta`.
    pub(crate) fn split(
        data: BackingFile,
        meta: BackingFile,
        data_start: u64,
        data_end: u64,
        meta_start: u64,
    ) -> Self {
        Files {
            data,
            meta: Some(Meta {
                file: meta,
                data_start,
                data_end,
                meta_start,
            }),
        }
    }

    /// Whether the metadata is in a file of its own.
    pub(crate) fn is_split(&self) -> bool {
        self.meta.is_some()
    }

    /// The file that holds the data region (and, for a single file,
    /// everything).
    pub(crate) fn data(&self) -> &BackingFile {
        &self.data
    }

    /// The file that holds the header, metadata and journal.
    pub(crate) fn main(&self) -> &BackingFile {
        self.meta.as_ref().map_or(&self.data, |m| &m.file)
    }

    /// The piece of `pos..pos + len` that lies in one file: that file, the
    /// offset in it, and the piece's length.
    fn piece(&self, pos: u64, len: u64) -> (&BackingFile, u64, u64) {
        let Some(m) = &self.meta else {
            return (&self.data, pos, len);
        };
        let end = pos.saturating_add(len);
        if pos < m.data_start {
            (&m.file, pos, end.min(m.data_start) - pos)
        } else if pos < m.data_end {
            (&self.data, pos, end.min(m.data_end) - pos)
        } else if pos < m.meta_start {
            // The padding between the regions is in no file.
            (&m.file, u64::MAX, end.min(m.meta_start) - pos)
        } else {
            (&m.file, m.data_start + (pos - m.meta_start), len)
        }
    }

    /// Calls `f(file, offset, range in the access)` for each piece of an
    /// access of `len` bytes at `pos`.
    fn each(
        &self,
        pos: u64,
        len: u64,
        mut f: impl FnMut(&BackingFile, u64, core::ops::Range<usize>) -> Result,
    ) -> Result {
        let mut done = 0u64;
        while done < len {
            let (file, at, k) = self.piece(pos + done, len - done);
            if at == u64::MAX {
                return Err(EINVAL);
            }
            let r = usize::try_from(done).map_err(|_| EINVAL)?
                ..usize::try_from(done + k).map_err(|_| EINVAL)?;
            f(file, at, r)?;
            done += k;
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at position `pos`.
    pub(crate) fn read_at(&self, buf: &mut [u8], pos: u64) -> Result {
        self.each(pos, buf.len() as u64, |f, at, r| {
            f.read_at(buf.get_mut(r).ok_or(EINVAL)?, at)
        })
    }

    /// Writes `buf` at position `pos`.
    pub(crate) fn write_at(&self, buf: &[u8], pos: u64) -> Result {
        self.each(pos, buf.len() as u64, |f, at, r| {
            f.write_at(buf.get(r).ok_or(EINVAL)?, at)
        })
    }

    /// Writes the buffers of `bufs` (at most [`WRITE_VEC_MAX`]), one after
    /// another, at position `pos`, with one call: they must lie in one
    /// file (within one region, say).
    pub(crate) fn write_vec_at(&self, bufs: &[&[u8]], pos: u64) -> Result {
        let len = bufs.iter().map(|b| b.len() as u64).sum();
        match self.piece(pos, len) {
            (f, at, k) if k == len && at != u64::MAX => f.write_vec_at(bufs, at),
            _ => Err(EINVAL),
        }
    }

    /// See [`BackingFile::touch_page`]: the page at position `pos`.
    pub(crate) fn touch_page(&self, pos: u64) -> Result {
        self.each(pos, 1, |f, at, _| f.touch_page(at))
    }

    /// Makes `len` bytes at `pos` read as zeroes by punching holes.
    pub(crate) fn punch(&self, pos: u64, len: u64) -> Result {
        self.each(pos, len, |f, at, r| f.punch(at, (r.end - r.start) as u64))
    }

    /// Writes back and waits for positions `start..=end` (all in one file:
    /// the journal's, say).
    pub(crate) fn sync_range(&self, start: u64, end: u64, data_only: bool) -> Result {
        let (f, at, _) = self.piece(start, end - start + 1);
        f.sync_range(at, at + (end - start), data_only)
    }

    /// Writes back every file, the data file first.
    pub(crate) fn sync(&self) -> Result {
        self.data.sync()?;
        match &self.meta {
            Some(m) => m.file.sync(),
            None => Ok(()),
        }
    }

    /// Makes each regular file as large as its part of a store of
    /// `total` positions.
    pub(crate) fn extend(&self, total: u64) -> Result {
        let grow = |f: &BackingFile, len: u64| {
            if f.is_block_device() || f.size() >= len {
                return Ok(());
            }
            f.write_at(&[0], len - 1)
        };
        match &self.meta {
            None => grow(&self.data, total),
            Some(m) => {
                grow(&self.data, m.data_end)?;
                grow(&m.file, m.data_start + (total - m.meta_start))
            }
        }
    }

    /// Why the files cannot hold a store of `total` positions, if they
    /// cannot: for block devices only (`bdev`), else for any file.
    pub(crate) fn too_small(&self, total: u64, bdev: bool) -> Option<&'static str> {
        let short = |f: &BackingFile, len: u64| (!bdev || f.is_block_device()) && f.size() < len;
        match &self.meta {
            None if short(&self.data, total) => Some(if bdev {
                "the backing device is too small for this size and format"
            } else {
                "the backing file is shorter than the store its header describes (truncated?)"
            }),
            None => None,
            Some(m) if short(&self.data, m.data_end) => Some(if bdev {
                "the backing device is too small for this size"
            } else {
                "the backing file is shorter than the store's data (truncated?)"
            }),
            Some(m) if short(&m.file, m.data_start + (total - m.meta_start)) => Some(if bdev {
                "meta_device is too small for this size and format"
            } else {
                "meta_device is shorter than the store's metadata and journal (truncated?)"
            }),
            Some(_) => None,
        }
    }

    /// Takes each file (by its identity, see [`BackingFile::identity`])
    /// with `claim`, so that no other device or `format` uses the store;
    /// the claims are given back when the returned vector is dropped.
    pub(crate) fn claim<G>(&self, mut claim: impl FnMut(usize) -> Result<G>) -> Result<KVec<G>> {
        let mut claims = KVec::with_capacity(2, GFP_KERNEL)?;
        claims.push(claim(self.data.identity())?, GFP_KERNEL)?;
        if let Some(m) = &self.meta {
            claims.push(claim(m.file.identity())?, GFP_KERNEL)?;
        }
        Ok(claims)
    }

    /// Whether the data file takes direct I/O, and how (see
    /// [`BackingFile::direct_io_align`]).
    pub(crate) fn direct_io_align(&self) -> Option<DirectIoAlign> {
        self.data.direct_io_align()
    }

    /// Reads `bytes` of `bio`'s data at position `pos` of the data region.
    pub(crate) fn read_bio(&self, bio: &Bio<'_, Sink>, bytes: u32, pos: u64) -> Result {
        self.data.read_bio(bio, bytes, pos)
    }

    /// Writes `bytes` of `bio`'s data at position `pos` of the data region.
    pub(crate) fn write_bio(&self, bio: &Bio<'_>, bytes: u32, pos: u64) -> Result {
        self.data.write_bio(bio, bytes, pos)
    }
}
