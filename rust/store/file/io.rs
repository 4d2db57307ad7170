// SPDX-License-Identifier: GPL-2.0

//! The data paths of a file store: reads, writes through the journal or in
//! place, resets, in-place changes and flush, each interval's data and
//! metadata at their positions in the data and metadata regions.

use super::{commit::JournalState, io_error, FileStore, FILE_IO};
use crate::blk::file::WRITE_VEC_MAX;
use crate::store::{
    journal::{Entry, Kind, ENTRY_ALIGN},
    pages::partial_pages,
    Slot, StoreError,
};
use kernel::prelude::*;

impl FileStore {
    pub(super) fn data_pos(&self, interval: u64) -> u64 {
        self.layout.data_offset + (interval << self.profile.interval_shift())
    }

    fn meta_pos(&self, interval: u64) -> u64 {
        self.layout.meta_offset + interval * self.profile.metadata_size() as u64
    }

    /// Calls `f(first, k)` for pieces of intervals `first..first + n` of
    /// at most [`FILE_IO`] data bytes each (the pieces of a journal
    /// entry's payload: each piece's data, then its metadata).
    pub(super) fn pieces<E>(
        &self,
        mut first: u64,
        n: u64,
        mut f: impl FnMut(u64, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        let per = (FILE_IO >> self.profile.interval_shift()) as u64;
        let end = first + n;
        while first < end {
            let k = (end - first).min(per);
            f(first, k as usize)?;
            first += k;
        }
        Ok(())
    }

    /// Writes the data and metadata (as stored) of intervals from `first`
    /// in place.
    pub(super) fn write_in_place(
        &self,
        first: u64,
        data: &[u8],
        meta: &[u8],
    ) -> Result<(), StoreError> {
        self.files
            .write_at(data, self.data_pos(first))
            .map_err(io_error)?;
        if !meta.is_empty() {
            self.files
                .write_at(meta, self.meta_pos(first))
                .map_err(io_error)?;
        }
        Ok(())
    }

    /// Whether checked writes go in place from the caller's buffers (the
    /// journal is off, and writes are not to be logged).
    pub(crate) fn in_place(&self) -> bool {
        !self.journaled && !self.logged
    }

    /// Turns metadata as read into its stored form, for
    /// [`Self::write_runs`].
    pub(crate) fn stored_form(&self, meta: &mut [u8]) {
        self.xor_escape(meta)
    }

    /// Without the journal ([`Self::in_place`]): writes intervals `first..
    /// first + n` in place from buffers the caller filled, their metadata
    /// already in its stored form ([`Self::stored_form`]). `run(k, meta)`
    /// is the data (with `meta`, the metadata) of the intervals from
    /// `first + k` on, as far as it lies contiguous in the caller's memory
    /// (at least one interval's). As [`Self::write`] does, each piece of up
    /// to [`FILE_IO`] data bytes is one write of its data and one of its
    /// metadata, under the locks a write takes.
    pub(crate) fn write_runs<'a>(
        &self,
        first: u64,
        n: u64,
        run: impl Fn(usize, bool) -> Option<&'a [u8]>,
    ) -> Result<(), StoreError> {
        if !self.in_place() {
            return Err(StoreError::Io);
        }
        let (iv, ms) = (self.profile.interval(), self.profile.metadata_size());
        // The locks a write takes (see `write_locked`).
        let _writers = self.journal.lock();
        let _readers = self.bounce.lock();
        self.pieces(first, n, |at, k| {
            let k0 = usize::try_from(at - first).map_err(|_| StoreError::Io)?;
            self.write_run(k0..k0 + k, iv, false, &run, self.data_pos(at))?;
            if ms > 0 {
                self.write_run(k0..k0 + k, ms, true, &run, self.meta_pos(at))?;
            }
            Ok(())
        })
    }

    /// Writes records `range` of `size` bytes each, taken from `run` (see
    /// [`Self::write_runs`]), at `pos`: up to [`WRITE_VEC_MAX`] runs a call.
    fn write_run<'a>(
        &self,
        range: core::ops::Range<usize>,
        size: usize,
        meta: bool,
        run: &impl Fn(usize, bool) -> Option<&'a [u8]>,
        mut pos: u64,
    ) -> Result<(), StoreError> {
        let mut bufs: [&[u8]; WRITE_VEC_MAX] = [&[]; WRITE_VEC_MAX];
        let (mut nb, mut bytes, mut k) = (0, 0u64, range.start);
        while k < range.end {
            let r = run(k, meta).ok_or(StoreError::Io)?;
            let take = (r.len() / size).min(range.end - k);
            let (Some(b), Some(slot)) = (r.get(..take * size), bufs.get_mut(nb)) else {
                return Err(StoreError::Io);
            };
            if take == 0 {
                return Err(StoreError::Io);
            }
            *slot = b;
            nb += 1;
            bytes += b.len() as u64;
            k += take;
            if nb == WRITE_VEC_MAX || k == range.end {
                self.files
                    .write_vec_at(&bufs[..nb], pos)
                    .map_err(io_error)?;
                pos += bytes;
                (nb, bytes) = (0, 0);
            }
        }
        Ok(())
    }

    /// Turns metadata as stored into metadata as read, and back (XOR with
    /// escape PI).
    fn xor_escape(&self, meta: &mut [u8]) {
        let ms = self.profile.metadata_size();
        if ms == 0 {
            return;
        }
        for md in meta.chunks_exact_mut(ms) {
            for (b, e) in md.iter_mut().zip(self.escape.iter()) {
                *b ^= e;
            }
        }
    }

    /// See [`super::Store::read`]: each piece of up to [`FILE_IO`] data
    /// bytes is one read of data and, if asked, one of metadata.
    pub(crate) fn read<E: From<StoreError>>(
        &self,
        first: u64,
        n: u64,
        with_meta: bool,
        mut f: impl FnMut(u64, &[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let (iv, ms) = (self.profile.interval(), self.profile.metadata_size());
        let ms_read = if with_meta { ms } else { 0 };
        let mut b = self.bounce.lock();
        self.pieces(first, n, |first, k| {
            let b = &mut *b;
            let data = b.data.get_mut(..k * iv).ok_or(StoreError::Io)?;
            self.files
                .read_at(data, self.data_pos(first))
                .map_err(io_error)?;
            let meta = b.meta.get_mut(..k * ms_read).ok_or(StoreError::Io)?;
            if !meta.is_empty() {
                self.files
                    .read_at(meta, self.meta_pos(first))
                    .map_err(io_error)?;
                self.xor_escape(meta);
            }
            for j in 0..k {
                let m = &meta[j * ms_read..(j + 1) * ms_read];
                f(first + j as u64, &data[j * iv..(j + 1) * iv], m)?;
            }
            Ok(())
        })
    }

    /// See [`super::Store::write`]. The write becomes one journal entry,
    /// its payload in pieces of up to [`FILE_IO`] data bytes (data, then
    /// metadata), built in the gather buffer. The next [`Self::commit`]
    /// writes it out, makes it durable and carries it out in place.
    /// Without the journal, the write goes straight in place, piece by
    /// piece.
    pub(crate) fn write<E: From<StoreError>>(
        &self,
        first: u64,
        n: u64,
        f: impl FnMut(u64, Slot<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.write_locked(&mut self.journal.lock(), first, n, f)
    }

    /// Has `f` fill the `k` intervals from `first` whose data and metadata
    /// buffers are `data` and `meta`, then turns the metadata into its
    /// stored form.
    fn fill_piece<E>(
        &self,
        first: u64,
        k: usize,
        data: &mut [u8],
        meta: &mut [u8],
        f: &mut impl FnMut(u64, Slot<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let (iv, ms) = (self.profile.interval(), self.profile.metadata_size());
        for x in 0..k {
            let slot = Slot::Stored {
                data: &mut data[x * iv..(x + 1) * iv],
                meta: &mut meta[x * ms..(x + 1) * ms],
            };
            f(first + x as u64, slot)?;
        }
        self.xor_escape(meta);
        Ok(())
    }

    fn write_locked<E: From<StoreError>>(
        &self,
        j: &mut JournalState,
        first: u64,
        n: u64,
        mut f: impl FnMut(u64, Slot<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if n == 0 {
            return Ok(());
        }
        let (iv, ms) = (self.profile.interval(), self.profile.metadata_size());
        if !self.journaled {
            // Straight in place, a piece at a time.
            let mut b = self.bounce.lock();
            return self.pieces(first, n, |first, k| {
                let b = &mut *b;
                let data = b.data.get_mut(..k * iv).ok_or(StoreError::Io)?;
                let meta = b.meta.get_mut(..k * ms).ok_or(StoreError::Io)?;
                self.fill_piece(first, k, data, meta, &mut f)?;
                Ok(self.write_in_place(first, data, meta)?)
            });
        }
        let (entry, at, size) = self.begin(j, Kind::Write, first, n)?;
        let off = Self::gather_room(j, at, size)?;
        let mut hdr = entry.encode();
        let mut crc = Entry::crc_start(&hdr);
        let len = usize::try_from(size).map_err(|_| StoreError::Io)?;
        let mut payload = j
            .buf
            .get_mut(off + ENTRY_ALIGN as usize..off + len)
            .ok_or(StoreError::Io)?;
        self.pieces(first, n, |first, k| {
            let (data, rest) = core::mem::take(&mut payload).split_at_mut(k * iv);
            let (meta, rest) = rest.split_at_mut(k * ms);
            payload = rest;
            self.fill_piece(first, k, data, meta, &mut f)?;
            crc.update(data);
            crc.update(meta);
            Ok::<(), E>(())
        })?;
        // The padding after the payload.
        payload.fill(0);
        Entry::seal(&mut hdr, crc);
        Ok(Self::append_gathered(j, off, size, &hdr)?)
    }

    /// See [`super::Store::modify`]: the interval is read, changed and
    /// written back through the journal, committed before and after, all
    /// under the journal's lock.
    pub(crate) fn modify(
        &self,
        interval: u64,
        f: impl FnOnce(&mut [u8], &mut [u8]),
    ) -> Result<(), StoreError> {
        let (iv, ms) = (self.profile.interval(), self.profile.metadata_size());
        let no_mem = |_| StoreError::NoMemory;
        let mut data = KVec::from_elem(0u8, iv, GFP_KERNEL).map_err(no_mem)?;
        let mut meta = KVec::from_elem(0u8, ms, GFP_KERNEL).map_err(no_mem)?;
        let mut j = self.journal.lock();
        self.commit_locked(&mut j)?;
        self.read(interval, 1, true, |_, d, m| {
            data.copy_from_slice(d);
            meta.copy_from_slice(m);
            Ok::<(), StoreError>(())
        })?;
        f(&mut data, &mut meta);
        self.write_locked(&mut j, interval, 1, |_, slot| {
            if let Some((d, m)) = slot.bytes() {
                d.copy_from_slice(&data);
                m.copy_from_slice(&meta);
            }
            Ok::<(), StoreError>(())
        })?;
        self.commit_locked(&mut j)
    }

    /// Brings into the page cache each page of the file that a write of
    /// intervals `first..first + n` changes only in part: the data's first
    /// and last page if they are not whole, and the metadata's (once each;
    /// a page already cached and up to date is not read). The write itself
    /// then does not have to read them, so that a read error of the
    /// backing device fails the request before anything was changed
    /// instead of between its data and its metadata.
    pub(crate) fn prepare_write(&self, first: u64, n: u64) -> Result<(), StoreError> {
        let touch = |pos: u64| self.files.touch_page(pos).map_err(io_error);
        for (start, end) in [
            (self.data_pos(first), self.data_pos(first + n)),
            (self.meta_pos(first), self.meta_pos(first + n)),
        ] {
            for pos in partial_pages(start, end) {
                touch(pos)?;
            }
        }
        Ok(())
    }

    /// Makes `len` bytes of the file at `pos` read as zeroes: punches a
    /// hole where the file system or device can, else writes zeroes from
    /// the bounce buffer.
    pub(super) fn zero(&self, pos: u64, len: u64) -> Result {
        if self.files.punch(pos, len).is_ok() {
            return Ok(());
        }
        let mut bounce = self.bounce.lock();
        let buf = &mut bounce.data;
        buf.fill(0);
        let end = pos.checked_add(len).ok_or(EINVAL)?;
        let mut p = pos;
        while p < end {
            let k = (end - p).min(buf.len() as u64) as usize;
            self.files.write_at(&buf[..k], p)?;
            p += k as u64;
        }
        Ok(())
    }

    /// Zeroes intervals `first..first + n` in place and resets their PI:
    /// punches holes, or writes zeroes where the file cannot punch.
    pub(super) fn reset_in_place(&self, first: u64, n: u64) -> Result<(), StoreError> {
        let len = n << self.profile.interval_shift();
        self.zero(self.data_pos(first), len).map_err(io_error)?;
        let ms = self.profile.metadata_size() as u64;
        if ms > 0 {
            self.zero(self.meta_pos(first), n * ms).map_err(io_error)?;
        }
        Ok(())
    }

    /// Discard and write-zeroes of intervals `first..first + n`: a
    /// journal entry without payload, carried out in place when committed.
    pub(crate) fn reset(&self, first: u64, n: u64) -> Result<(), StoreError> {
        if n == 0 {
            return Ok(());
        }
        if !self.journaled {
            return self.reset_in_place(first, n);
        }
        let mut j = self.journal.lock();
        let (entry, at, size) = self.begin(&mut j, Kind::Reset, first, n)?;
        let mut hdr = entry.encode();
        let crc = Entry::crc_start(&hdr);
        Entry::seal(&mut hdr, crc);
        let off = Self::gather_room(&mut j, at, size)?;
        Self::append_gathered(&mut j, off, size, &hdr)
    }

    /// Flush: every completed write is durable in the journal already;
    /// this commits the rest, makes the in-place copies durable and
    /// empties the journal.
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        if !self.journaled {
            return self.files.sync().map_err(io_error);
        }
        let mut j = self.journal.lock();
        if j.next == 0 {
            return Ok(());
        }
        self.checkpoint(&mut j)
    }
}
