// SPDX-License-Identifier: GPL-2.0

//! The header of a backing store: its encoding and its checks (see
//! Documentation/rdif.rst, "On-disk layout"). Pure functions over bytes,
//! so that every crafted header can be tried in KUnit.
//!
//! A header is never trusted: every field is compared with what rdif
//! itself would write for the configured format and size.

use super::{journal::JOURNAL_SIZE, CHUNK};
use crate::pi::{Csum, Guard, Profile, ProfileConfig};

/// Header magic.
pub(crate) const MAGIC: [u8; 8] = *b"RDIFSTOR";
/// Layout version: 2 added the journal (version 1 stores are refused); 3
/// checksums journal entries with CRC32C instead of CRC64-NVMe (a version 2
/// store is opened, its journal replayed, and its headers rewritten as
/// version 3 before anything else is written; an older rdif then refuses
/// it rather than stop its replay at the first CRC32C entry).
pub(crate) const VERSION: u32 = 3;
/// The oldest layout version rdif opens.
const VERSION_OPENED: u32 = 2;
/// Size of the header block.
pub(crate) const HEADER_SIZE: u64 = 4096;
/// Bytes of the header covered by its checksum.
const HEADER_FIELDS: usize = 64;
/// Bytes of the header as encoded: its fields and their checksum (the
/// rest of the block is zero).
pub(crate) const HEADER_BYTES: usize = HEADER_FIELDS + 8;

/// CRC64-NVMe of the header fields, with the guard code of [`crate::pi`].
fn header_crc(fields: &[u8]) -> u64 {
    let mut crc = Guard::new(Csum::Crc64);
    crc.update(fields);
    crc.finish()
}

/// Where things are in a backing store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Device capacity in bytes.
    pub(crate) capacity: u64,
    /// Start of the data region.
    pub(crate) data_offset: u64,
    /// Start of the metadata region.
    pub(crate) meta_offset: u64,
    /// Size of the metadata region.
    pub(crate) meta_size: u64,
    /// Start of the journal region ([`JOURNAL_SIZE`] bytes; not in the
    /// header, it follows from the fields that are).
    pub(crate) journal_offset: u64,
}

impl Layout {
    /// The layout of a store for `capacity` bytes in format `p`.
    pub(crate) fn new(p: &Profile, capacity: u64) -> Self {
        let meta_offset = (HEADER_SIZE + capacity).div_ceil(CHUNK as u64) * CHUNK as u64;
        let intervals = capacity >> p.interval_shift();
        let meta_size = intervals * p.metadata_size() as u64;
        Self {
            capacity,
            data_offset: HEADER_SIZE,
            meta_offset,
            meta_size,
            journal_offset: (meta_offset + meta_size).div_ceil(CHUNK as u64) * CHUNK as u64,
        }
    }

    /// Bytes the store occupies.
    pub(crate) fn total(&self) -> u64 {
        self.journal_offset + JOURNAL_SIZE
    }
}

fn csum_code(c: Csum) -> u8 {
    match c {
        Csum::None => 0,
        Csum::Ip => 1,
        Csum::Crc16 => 2,
        Csum::Crc64 => 3,
    }
}

fn csum_from_code(c: u8) -> Option<Csum> {
    Some(match c {
        0 => Csum::None,
        1 => Csum::Ip,
        2 => Csum::Crc16,
        3 => Csum::Crc64,
        _ => return None,
    })
}

/// Which part of a store a header heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// A store in one file.
    Whole,
    /// The metadata file of a store whose data is in a file of its own,
    /// with the identifier the two files share (24 bits, not 0).
    Meta(u32),
    /// The data file of such a store.
    Data(u32),
}

impl Part {
    /// The role byte and identifier of the header.
    fn code(self) -> (u8, u32) {
        match self {
            Part::Whole => (0, 0),
            Part::Meta(id) => (1, id & 0xff_ffff),
            Part::Data(id) => (2, id & 0xff_ffff),
        }
    }

    fn decode(role: u8, id: u32) -> Option<Self> {
        match (role, id) {
            (0, 0) => Some(Part::Whole),
            (1, id) if id != 0 => Some(Part::Meta(id)),
            (2, id) if id != 0 => Some(Part::Data(id)),
            _ => None,
        }
    }
}

/// Encodes the header of a store (little endian): the header of `part`,
/// of layout version `version`.
pub(crate) fn encode_header(
    p: &Profile,
    l: &Layout,
    part: Part,
    version: u32,
    out: &mut [u8; HEADER_BYTES],
) {
    out.fill(0);
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&version.to_le_bytes());
    out[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    out[16] = csum_code(p.csum());
    out[17] = p.ref_tag().into();
    // `Profile` keeps these within `u8` (its invariants).
    out[18] = p.metadata_size() as u8;
    out[19] = p.pi_offset() as u8;
    out[20..24].copy_from_slice(&(p.interval() as u32).to_le_bytes());
    out[24..28].copy_from_slice(&p.block_size().to_le_bytes());
    let (role, id) = part.code();
    out[28] = role;
    out[29..32].copy_from_slice(&id.to_le_bytes()[..3]);
    out[32..40].copy_from_slice(&l.capacity.to_le_bytes());
    out[40..48].copy_from_slice(&l.data_offset.to_le_bytes());
    out[48..56].copy_from_slice(&l.meta_offset.to_le_bytes());
    out[56..64].copy_from_slice(&l.meta_size.to_le_bytes());
    let crc = header_crc(&out[..HEADER_FIELDS]);
    out[64..72].copy_from_slice(&crc.to_le_bytes());
}

fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Why a header cannot be used for a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// No rdif header (or an unknown version).
    NotAStore,
    /// A store of layout version 1, which had no journal.
    Version1,
    /// The header's checksum does not match.
    Corrupt,
    /// A stored format parameter differs from the configured one.
    Mismatch(&'static str),
    /// The fields describe the configured store, but not as rdif writes
    /// them (a crafted or damaged header).
    Unexpected,
}

impl HeaderError {
    /// One line for the kernel log.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            HeaderError::NotAStore => "no rdif header (write 1 to format to create a store)",
            HeaderError::Version1 => {
                "the store has layout version 1, from before rdif journaled its writes; this rdif reads versions 2 and 3 only (write 1 to format to make a new store; its contents are lost)"
            }
            HeaderError::Corrupt => "the header checksum is wrong",
            HeaderError::Mismatch(what) => what,
            HeaderError::Unexpected => "the header holds values rdif never writes",
        }
    }
}

/// Decodes a header and checks it against the configured format; returns
/// the store's layout, the part of it the header heads and its layout
/// version.
pub(crate) fn check_header(
    b: &[u8; HEADER_BYTES],
    p: &Profile,
    capacity: u64,
) -> Result<(Layout, Part, u32), HeaderError> {
    let version = le32(&b[8..]);
    if b[0..8] == MAGIC && version == 1 {
        return Err(HeaderError::Version1);
    }
    if b[0..8] != MAGIC || !(VERSION_OPENED..=VERSION).contains(&version) {
        return Err(HeaderError::NotAStore);
    }
    if le64(&b[64..]) != header_crc(&b[..HEADER_FIELDS]) {
        return Err(HeaderError::Corrupt);
    }
    let stored = ProfileConfig {
        csum: csum_from_code(b[16]).ok_or(HeaderError::Corrupt)?,
        ref_tag: b[17] != 0,
        block_size: le32(&b[24..]),
        metadata_size: b[18].into(),
        pi_offset: b[19].into(),
        interval: le32(&b[20..]),
    };
    let stored = Profile::new(&stored).map_err(|_| HeaderError::Corrupt)?;
    let mismatch = |what| Err(HeaderError::Mismatch(what));
    if stored.csum() != p.csum() {
        return mismatch("the store has another csum");
    }
    if stored.ref_tag() != p.ref_tag() {
        return mismatch("the store has another ref_tag (PI type)");
    }
    if stored.metadata_size() != p.metadata_size() {
        return mismatch("the store has another metadata_size");
    }
    if stored.pi_offset() != p.pi_offset() {
        return mismatch("the store has another pi_offset");
    }
    if stored.interval() != p.interval() {
        return mismatch("the store has another protection interval");
    }
    if stored.block_size() != p.block_size() {
        return mismatch("the store has another blocksize");
    }
    let layout = Layout::new(p, capacity);
    let on_disk = Layout {
        capacity: le64(&b[32..]),
        data_offset: le64(&b[40..]),
        meta_offset: le64(&b[48..]),
        meta_size: le64(&b[56..]),
        journal_offset: layout.journal_offset,
    };
    if on_disk.capacity != capacity {
        return mismatch("the store has another size");
    }
    if on_disk != layout {
        return Err(HeaderError::Corrupt);
    }
    let part =
        Part::decode(b[28], le32(&[b[29], b[30], b[31], 0])).ok_or(HeaderError::Unexpected)?;
    // Every field as rdif writes it, reserved bytes included: equivalent
    // spellings (an interval of 0 for "the block size", say) are refused.
    let mut want = [0u8; HEADER_FIELDS + 8];
    encode_header(p, &layout, part, version, &mut want);
    if *b != want {
        return Err(HeaderError::Unexpected);
    }
    Ok((layout, part, version))
}
