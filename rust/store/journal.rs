// SPDX-License-Identifier: GPL-2.0

//! The on-disk format of a backing store's write journal (see
//! Documentation/rdif.rst, "Crash consistency").
//!
//! The journal region starts with a superblock block that holds the
//! journal's generation; entries follow, each a header block and a
//! payload, every entry aligned to [`ENTRY_ALIGN`] bytes. An entry belongs
//! to the journal if its magic and generation match, its sequence number
//! is the next one, and its checksum (CRC32C over the header fields and the
//! payload; CRC64-NVMe in entries of layout version 2 stores) is right; the
//! first entry that fails ends the journal.

use crate::{
    ffi::crc,
    pi::{Csum, Guard},
};

/// Bytes of the journal region.
pub(crate) const JOURNAL_SIZE: u64 = 4 << 20;
/// Bytes of the superblock block at the start of the region.
pub(crate) const SUPER_SIZE: u64 = 4096;
/// Entries start at multiples of this, and their payload one block in.
pub(crate) const ENTRY_ALIGN: u64 = 512;
/// Bytes of an entry header (the rest of its block is zero).
pub(crate) const HEADER_LEN: usize = 64;
/// Bytes of the superblock (the rest of its block is zero).
pub(crate) const SUPER_LEN: usize = 24;

const SUPER_MAGIC: [u8; 8] = *b"RDIFJRNL";
/// Entries checksummed with CRC32C (layout version 3 on).
const ENTRY_MAGIC: [u8; 8] = *b"RDIFJEN3";
/// Entries checksummed with CRC64-NVMe, as layout version 2 wrote them:
/// replayed, never written.
const ENTRY_MAGIC_V2: [u8; 8] = *b"RDIFJENT";

/// What an entry does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Store the payload (data, then metadata as stored, in pieces) in
    /// the entry's intervals.
    Write,
    /// Make the entry's intervals read as zeroes with escape PI.
    Reset,
}

/// The header of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// What the entry does.
    pub(crate) kind: Kind,
    /// The journal generation it belongs to.
    pub(crate) generation: u64,
    /// Its number in the generation, from 0.
    pub(crate) seq: u64,
    /// First interval.
    pub(crate) first: u64,
    /// Number of intervals.
    pub(crate) count: u64,
    /// Bytes of payload.
    pub(crate) payload: u64,
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

fn crc64() -> Guard {
    Guard::new(Csum::Crc64)
}

/// Encodes the superblock of generation `generation`.
pub(crate) fn encode_super(generation: u64) -> [u8; SUPER_LEN] {
    let mut b = [0u8; SUPER_LEN];
    b[0..8].copy_from_slice(&SUPER_MAGIC);
    b[8..16].copy_from_slice(&generation.to_le_bytes());
    let mut crc = crc64();
    crc.update(&b[..16]);
    b[16..24].copy_from_slice(&crc.finish().to_le_bytes());
    b
}

/// The generation a superblock holds, if it is one.
pub(crate) fn decode_super(b: &[u8; SUPER_LEN]) -> Option<u64> {
    let mut crc = crc64();
    crc.update(&b[..16]);
    (b[0..8] == SUPER_MAGIC && le64(b, 16) == crc.finish()).then(|| le64(b, 8))
}

impl Entry {
    /// Bytes the entry occupies in the journal, header block included;
    /// `None` if that does not fit a `u64`.
    pub(crate) fn size(&self) -> Option<u64> {
        let payload = self.payload.checked_next_multiple_of(ENTRY_ALIGN)?;
        payload.checked_add(ENTRY_ALIGN)
    }

    /// The header fields, with a zero checksum.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&ENTRY_MAGIC);
        let kind: u32 = match self.kind {
            Kind::Write => 1,
            Kind::Reset => 2,
        };
        b[8..12].copy_from_slice(&kind.to_le_bytes());
        b[16..24].copy_from_slice(&self.generation.to_le_bytes());
        b[24..32].copy_from_slice(&self.seq.to_le_bytes());
        b[32..40].copy_from_slice(&self.first.to_le_bytes());
        b[40..48].copy_from_slice(&self.count.to_le_bytes());
        b[48..56].copy_from_slice(&self.payload.to_le_bytes());
        b
    }

    /// Decodes a header; `None` if it is not one (the checksum is checked
    /// separately, over the payload too).
    pub(crate) fn decode(b: &[u8; HEADER_LEN]) -> Option<Self> {
        let magic = &b[0..8];
        if (magic != ENTRY_MAGIC && magic != ENTRY_MAGIC_V2) || b[12..16] != [0; 4] {
            return None;
        }
        let kind = match u32::from_le_bytes([b[8], b[9], b[10], b[11]]) {
            1 => Kind::Write,
            2 => Kind::Reset,
            _ => return None,
        };
        Some(Entry {
            kind,
            generation: le64(b, 16),
            seq: le64(b, 24),
            first: le64(b, 32),
            count: le64(b, 40),
            payload: le64(b, 48),
        })
    }

    /// The checksum an encoded header (with any checksum field) carries.
    pub(crate) fn stored_crc(b: &[u8; HEADER_LEN]) -> u64 {
        le64(b, 56)
    }

    /// A checksum over the header fields of `b`, to be continued over the
    /// payload: CRC32C, or CRC64-NVMe if `b` is an entry of layout
    /// version 2.
    pub(crate) fn crc_start(b: &[u8; HEADER_LEN]) -> EntrySum {
        let mut crc = if b[0..8] == ENTRY_MAGIC_V2 {
            EntrySum::Crc64(crc64())
        } else {
            EntrySum::Crc32c(!0)
        };
        crc.update(&b[..56]);
        crc
    }

    /// Puts the finished checksum `crc` into the encoded header `b`.
    pub(crate) fn seal(b: &mut [u8; HEADER_LEN], crc: EntrySum) {
        b[56..64].copy_from_slice(&crc.finish().to_le_bytes());
    }
}

/// The checksum of an entry being accumulated (see [`Entry::crc_start`]).
pub(crate) enum EntrySum {
    /// CRC32C (Castagnoli, as jbd2 and the XFS log use): the running
    /// value of the kernel's `crc32c()`, seeded with all ones and
    /// complemented by [`Self::finish`] (the standard CRC-32C).
    Crc32c(u32),
    /// CRC64-NVMe, in entries of layout version 2.
    Crc64(Guard),
}

impl EntrySum {
    /// Adds `data`.
    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc32c(acc) => *acc = crc::crc32c_update(*acc, data),
            Self::Crc64(g) => g.update(data),
        }
    }

    /// The value stored in the header (CRC32C zero-extended).
    pub(crate) fn finish(self) -> u64 {
        match self {
            Self::Crc32c(acc) => u64::from(!acc),
            Self::Crc64(g) => g.finish(),
        }
    }
}
