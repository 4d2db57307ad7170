// SPDX-License-Identifier: GPL-2.0

//! The journal of a file store: entries gathered in memory, appended with
//! a checksum, made durable as one group and carried out in place by
//! [`FileStore::commit`]; replayed when the store is opened; emptied by a
//! checkpoint (see Documentation/rdif.rst, "Crash consistency").

use super::{io_error, FileStore};
use crate::store::{
    journal::{self, Entry, Kind, ENTRY_ALIGN, HEADER_LEN, JOURNAL_SIZE, SUPER_LEN, SUPER_SIZE},
    StoreError,
};
use kernel::prelude::*;

/// The journal's current generation, its next entry and the entries not
/// yet committed.
pub(super) struct JournalState {
    pub(super) generation: u64,
    /// Offset of the next entry from the start of the entries.
    pub(super) next: u64,
    /// Sequence number of the next entry.
    pub(super) seq: u64,
    /// Offset of the first entry not yet durable and carried out in place
    /// (entries from here to `next` wait for [`FileStore::commit`]).
    pub(super) committed: u64,
    /// A commit on the way (journal full, flush, corrupt) failed since the
    /// last [`FileStore::commit`]: the writes it was for are in doubt.
    pub(super) failed: bool,
    /// Writing gathered entries to the journal failed: the journal may
    /// hold a gap before entries written later, so nothing more is
    /// journaled (writes fail) until the store is opened again.
    pub(super) broken: bool,
    /// Entries not yet written to the file, gathered to be written as one
    /// ([`GATHER`] bytes): `buf[..buf_len]` belongs at `buf_at` in the file
    /// and ends at the entry `next` (empty if `buf_len` is 0).
    pub(super) buf: KVVec<u8>,
    pub(super) buf_at: u64,
    pub(super) buf_len: usize,
}

impl JournalState {
    /// An empty journal of `generation`, gathering entries in `buf`.
    pub(super) fn new(generation: u64, buf: KVVec<u8>) -> Self {
        JournalState {
            generation,
            next: 0,
            seq: 0,
            committed: 0,
            failed: false,
            broken: false,
            buf,
            buf_at: 0,
            buf_len: 0,
        }
    }
}

/// Bytes of journal entries gathered in memory: as many as the journal
/// holds. Every entry is built there, written to the file with the others
/// of its batch in one call, and carried out in place from there, never
/// read back from the file (with a 1 MiB buffer, 1 MiB writes were read
/// back: 4 MiB here makes them 32 % faster on tmpfs, under icount).
pub(super) const GATHER: usize = (JOURNAL_SIZE - SUPER_SIZE) as usize;

impl FileStore {
    /// Writes the superblock of an empty journal of generation 1.
    pub(super) fn create_journal(&self) -> Result<(), (Error, &'static str)> {
        self.files
            .write_at(&journal::encode_super(1), self.layout.journal_offset)
            .map_err(|e| (e, "cannot write the journal"))
    }

    fn entries_start(&self) -> u64 {
        self.layout.journal_offset + SUPER_SIZE
    }

    /// The bytes of payload of an entry of `n` intervals of `kind`.
    fn payload_len(&self, kind: Kind, n: u64) -> Option<u64> {
        let per = self.profile.interval() as u64 + self.profile.metadata_size() as u64;
        match kind {
            Kind::Write => n.checked_mul(per),
            Kind::Reset => Some(0),
        }
    }

    /// Carries out in place the entry of `n` intervals from `first` whose
    /// payload is `payload` (as written to the journal).
    fn apply_from(&self, kind: Kind, payload: &[u8], first: u64, n: u64) -> Result<(), StoreError> {
        match kind {
            Kind::Reset => self.reset_in_place(first, n),
            Kind::Write => {
                let (iv, ms) = (self.profile.interval(), self.profile.metadata_size());
                let mut pos = 0;
                self.pieces(first, n, |first, k| {
                    let data = payload.get(pos..pos + k * iv).ok_or(StoreError::Io)?;
                    pos += data.len();
                    let meta = payload.get(pos..pos + k * ms).ok_or(StoreError::Io)?;
                    pos += meta.len();
                    self.write_in_place(first, data, meta)
                })
            }
        }
    }

    /// Carries out in place the entry of `n` intervals from `first` whose
    /// payload is at `at` in the file.
    fn apply(&self, kind: Kind, at: u64, first: u64, n: u64) -> Result<(), StoreError> {
        match kind {
            Kind::Reset => self.reset_in_place(first, n),
            Kind::Write => {
                let (iv, ms) = (self.profile.interval(), self.profile.metadata_size());
                let mut pos = at;
                let mut b = self.bounce.lock();
                self.pieces(first, n, |first, k| {
                    let b = &mut *b;
                    let data = b.data.get_mut(..k * iv).ok_or(StoreError::Io)?;
                    let meta = b.meta.get_mut(..k * ms).ok_or(StoreError::Io)?;
                    self.files.read_at(data, pos).map_err(io_error)?;
                    pos += data.len() as u64;
                    self.files.read_at(meta, pos).map_err(io_error)?;
                    pos += meta.len() as u64;
                    self.write_in_place(first, data, meta)
                })
            }
        }
    }

    /// Replays the journal of a store just opened (call it once, when the
    /// store is the caller's alone): carries out in place, in order, every
    /// entry of the current generation, then makes that durable and starts
    /// a new generation. An entry that fails its checksum (a write a power cut
    /// interrupted before it was acknowledged) ends the journal; one that
    /// passes it but does not fit the store is refused.
    pub(crate) fn replay(&mut self) -> Result<(), (Error, &'static str)> {
        let io = |e| (e, "cannot read or replay the journal");
        let mut sb = [0u8; SUPER_LEN];
        self.files
            .read_at(&mut sb, self.layout.journal_offset)
            .map_err(io)?;
        let generation =
            journal::decode_super(&sb).ok_or((EINVAL, "the journal superblock is damaged"))?;
        let space = JOURNAL_SIZE - SUPER_SIZE;
        let nr = self.layout.capacity >> self.profile.interval_shift();
        let (mut pos, mut seq) = (0u64, 0u64);
        while pos + ENTRY_ALIGN <= space {
            let at = self.entries_start() + pos;
            let mut hdr = [0u8; HEADER_LEN];
            self.files.read_at(&mut hdr, at).map_err(io)?;
            let Some(e) = Entry::decode(&hdr) else {
                break;
            };
            if e.generation != generation || e.seq != seq {
                break;
            }
            let size = e.size().filter(|&sz| sz <= space - pos);
            let fits = e.first.checked_add(e.count).is_some_and(|end| end <= nr)
                && self.payload_len(e.kind, e.count) == Some(e.payload);
            let Some(size) = size.filter(|_| fits) else {
                return Err((EINVAL, "a journal entry does not fit the store (crafted?)"));
            };
            // The checksum covers the header fields and the payload.
            let mut crc = Entry::crc_start(&hdr);
            let mut p = at + ENTRY_ALIGN;
            let end = p + e.payload;
            {
                let mut b = self.bounce.lock();
                while p < end {
                    let k = (end - p).min(b.data.len() as u64) as usize;
                    let buf = b.data.get_mut(..k).ok_or((EIO, "journal"))?;
                    self.files.read_at(buf, p).map_err(io)?;
                    crc.update(buf);
                    p += k as u64;
                }
            }
            if crc.finish() != Entry::stored_crc(&hdr) {
                break;
            }
            self.apply(e.kind, at + ENTRY_ALIGN, e.first, e.count)
                .map_err(|_| (EIO, "cannot replay the journal"))?;
            pos += size;
            seq += 1;
        }
        self.replayed = seq;
        let mut j = self.journal.lock();
        j.generation = generation;
        self.checkpoint(&mut j)
            .map_err(|_| (EIO, "cannot start a new journal generation"))?;
        // The journal is empty and durably so: only now may the headers
        // say that its entries are CRC32C ones.
        if self.upgrade {
            self.write_header()
                .map_err(|e| (e, "cannot upgrade the store header"))?;
            self.upgrade = false;
        }
        // Probe hole punching where nothing of value is: the first 4 KiB
        // of entries belong to the old generation now.
        self.can_punch = self.files.punch(self.entries_start(), 4096).is_ok();
        Ok(())
    }

    /// Commits what is pending, makes everything carried out in place
    /// durable, then empties the journal by starting a new generation
    /// (durably).
    pub(super) fn checkpoint(&self, j: &mut JournalState) -> Result<(), StoreError> {
        self.commit_locked(j)?;
        self.files.sync().map_err(io_error)?;
        let generation = j.generation.wrapping_add(1);
        self.files
            .write_at(
                &journal::encode_super(generation),
                self.layout.journal_offset,
            )
            .map_err(io_error)?;
        self.files.sync().map_err(io_error)?;
        j.generation = generation;
        j.next = 0;
        j.seq = 0;
        j.committed = 0;
        Ok(())
    }

    /// The next entry, of `kind` for intervals `first..first + n`, where
    /// it goes in the file and its size. Empties the journal first (after
    /// committing the entries in it) if the entry does not fit; the entry is
    /// numbered after that, so it belongs to the generation it is written
    /// in.
    pub(super) fn begin(
        &self,
        j: &mut JournalState,
        kind: Kind,
        first: u64,
        n: u64,
    ) -> Result<(Entry, u64, u64), StoreError> {
        if j.broken {
            return Err(StoreError::Io);
        }
        let payload = self.payload_len(kind, n).ok_or(StoreError::Io)?;
        let mut entry = Entry {
            kind,
            generation: j.generation,
            seq: j.seq,
            first,
            count: n,
            payload,
        };
        let size = entry.size().ok_or(StoreError::Io)?;
        let space = JOURNAL_SIZE - SUPER_SIZE;
        if size > space {
            return Err(StoreError::Io);
        }
        if j.next + size > space {
            self.checkpoint(j)?;
            entry.generation = j.generation;
            entry.seq = j.seq;
        }
        Ok((entry, self.entries_start() + j.next, size))
    }

    /// Room in the gather buffer for the entry of `size` bytes at `at`
    /// (from [`Self::begin`]): its offset in the buffer. It always fits:
    /// the buffer is as large as the journal's entries, holds them from
    /// the first one not yet committed, and [`Self::begin`] empties a
    /// journal the entry would not fit in.
    pub(super) fn gather_room(
        j: &mut JournalState,
        at: u64,
        size: u64,
    ) -> Result<usize, StoreError> {
        let size = usize::try_from(size).map_err(|_| StoreError::Io)?;
        if j.buf_len + size > j.buf.len() {
            return Err(StoreError::Io);
        }
        if j.buf_len == 0 {
            j.buf_at = at;
        }
        Ok(j.buf_len)
    }

    /// Writes the gathered entries to the journal (one call; the buffer
    /// keeps them). A shortage (the file's page cache out of memory) is
    /// only that: the buffer keeps the entries, and the next spill writes
    /// all of them again at the same place, over whatever part of them
    /// this one wrote (nothing is written after them meanwhile). Any other
    /// failure breaks the journal: the gap it may leave would end a replay
    /// before entries written after it.
    fn spill(&self, j: &mut JournalState) -> Result<(), StoreError> {
        if j.buf_len == 0 {
            return Ok(());
        }
        let buf = j.buf.get(..j.buf_len).ok_or(StoreError::Io)?;
        match self.files.write_at(buf, j.buf_at) {
            Ok(()) => Ok(()),
            Err(e) if e == ENOMEM => Err(StoreError::NoMemory),
            Err(_) => {
                j.broken = true;
                j.failed = true;
                j.buf_len = 0;
                Err(StoreError::Io)
            }
        }
    }

    /// The gathered entry at `at` in the file, of `size` bytes, if the
    /// buffer holds it.
    fn gathered(j: &JournalState, at: u64, size: u64) -> Option<&[u8]> {
        let off = usize::try_from(at.checked_sub(j.buf_at)?).ok()?;
        let size = usize::try_from(size).ok()?;
        j.buf.get(..j.buf_len)?.get(off..off.checked_add(size)?)
    }

    /// Puts the sealed header of the gathered entry of `size` bytes at
    /// `off` in the buffer (its payload, if any, is in place after the
    /// header block); it then belongs to the journal, to be written out,
    /// made durable and carried out in place by the next commit.
    pub(super) fn append_gathered(
        j: &mut JournalState,
        off: usize,
        size: u64,
        hdr: &[u8; HEADER_LEN],
    ) -> Result<(), StoreError> {
        let len = usize::try_from(size).map_err(|_| StoreError::Io)?;
        let head = j
            .buf
            .get_mut(off..off + ENTRY_ALIGN as usize)
            .ok_or(StoreError::Io)?;
        head.fill(0);
        head[..HEADER_LEN].copy_from_slice(hdr);
        j.buf_len = off + len;
        j.next += size;
        j.seq += 1;
        Ok(())
    }

    /// Makes the entries appended since the last commit durable, with one
    /// data sync of their range, then carries them out in place in order.
    /// An entry that cannot be carried out stays pending (the next commit
    /// tries again from it); an I/O error marks the journal failed, a
    /// shortage does not (its caller retries).
    pub(super) fn commit_locked(&self, j: &mut JournalState) -> Result<(), StoreError> {
        if j.committed == j.next {
            return Ok(());
        }
        self.spill(j)?;
        let start = self.entries_start() + j.committed;
        let end = self.entries_start() + j.next;
        let done = self
            .files
            .sync_range(start, end - 1, true)
            .map_err(io_error);
        let done = done.and_then(|()| {
            while j.committed < j.next {
                // Every entry waits in the gather buffer until it is
                // committed. One that is not there was dropped by a failed
                // spill: its bytes in the file are not known to be whole,
                // so it is not carried out (its requests failed).
                let at = self.entries_start() + j.committed;
                let mut hdr = [0u8; HEADER_LEN];
                hdr.copy_from_slice(
                    Self::gathered(j, at, HEADER_LEN as u64).ok_or(StoreError::Io)?,
                );
                let e = Entry::decode(&hdr).ok_or(StoreError::Io)?;
                let size = e.size().ok_or(StoreError::Io)?;
                let b = Self::gathered(j, at, size).ok_or(StoreError::Io)?;
                let payload = b.get(ENTRY_ALIGN as usize..).ok_or(StoreError::Io)?;
                self.apply_from(e.kind, payload, e.first, e.count)?;
                j.committed += size;
            }
            Ok(())
        });
        if done == Err(StoreError::Io) {
            j.failed = true;
        }
        if j.committed == j.next {
            j.buf_len = 0;
        }
        done
    }

    /// Commits the journal as [`Self::commit`] does, but leaves an I/O
    /// error (of this commit or of one on the way) for [`Self::commit`] to
    /// report: the writes it concerns are not this caller's.
    pub(crate) fn publish(&self) -> Result<(), StoreError> {
        self.commit_locked(&mut self.journal.lock())
    }

    /// Commits the journal (see [`Self::commit_locked`]): every write and
    /// reset since the last call is durable and done in place when this
    /// returns `Ok`. After [`StoreError::NoMemory`] nothing is lost: call
    /// again. An I/O error (of this commit or of one on the way since the
    /// last call) leaves them in doubt: each may or may not be there,
    /// whole, and their requests must fail.
    pub(crate) fn commit(&self) -> Result<(), StoreError> {
        let mut j = self.journal.lock();
        let done = self.commit_locked(&mut j);
        if done != Err(StoreError::NoMemory) && core::mem::take(&mut j.failed) {
            return Err(StoreError::Io);
        }
        done
    }
}
