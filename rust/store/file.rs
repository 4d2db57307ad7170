// SPDX-License-Identifier: GPL-2.0

//! A persistent store in a backing regular file or block device: a header,
//! a data region and a separate metadata region, both addressed by
//! position (see Documentation/rdif.rst, "On-disk layout").
//!
//! Metadata is stored XORed with what an unwritten interval reads as (zero
//! opaque bytes and an all-ones tuple), so that zeroes on disk, a hole in a
//! sparse file or a discarded range, read as escape PI. A new store
//! therefore needs no initialisation beyond its header.

use super::CHUNK;
use crate::blk::file::BackingFile;
use crate::pi::{Csum, Guard, Profile, ProfileConfig, MAX_METADATA};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{Mutex, MutexGuard},
};

/// Largest piece of data moved by one access of a backing file.
pub(crate) const FILE_IO: usize = 64 * 1024;

/// Header magic.
pub(crate) const MAGIC: [u8; 8] = *b"RDIFSTOR";
/// Layout version.
pub(crate) const VERSION: u32 = 1;
/// Size of the header block.
pub(crate) const HEADER_SIZE: u64 = 4096;
/// Bytes of the header covered by its checksum.
const HEADER_FIELDS: usize = 64;

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
}

impl Layout {
    /// The layout of a store for `capacity` bytes in format `p`.
    pub(crate) fn new(p: &Profile, capacity: u64) -> Self {
        let meta_offset = (HEADER_SIZE + capacity).div_ceil(CHUNK as u64) * CHUNK as u64;
        let intervals = capacity >> p.interval_shift();
        Self {
            capacity,
            data_offset: HEADER_SIZE,
            meta_offset,
            meta_size: intervals * p.metadata_size() as u64,
        }
    }

    /// Bytes the store occupies.
    pub(crate) fn total(&self) -> u64 {
        self.meta_offset + self.meta_size
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

/// Encodes the header of a store (little endian).
pub(crate) fn encode_header(p: &Profile, l: &Layout, out: &mut [u8; HEADER_FIELDS + 8]) {
    out.fill(0);
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    out[16] = csum_code(p.csum());
    out[17] = p.ref_tag().into();
    // `Profile` keeps these within `u8` (its invariants).
    out[18] = p.metadata_size() as u8;
    out[19] = p.pi_offset() as u8;
    out[20..24].copy_from_slice(&(p.interval() as u32).to_le_bytes());
    out[24..28].copy_from_slice(&p.block_size().to_le_bytes());
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
            HeaderError::Corrupt => "the header checksum is wrong",
            HeaderError::Mismatch(what) => what,
            HeaderError::Unexpected => "the header holds values rdif never writes",
        }
    }
}

/// Decodes a header and checks it against the configured format.
pub(crate) fn check_header(
    b: &[u8; HEADER_FIELDS + 8],
    p: &Profile,
    capacity: u64,
) -> Result<Layout, HeaderError> {
    if b[0..8] != MAGIC || le32(&b[8..]) != VERSION {
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
    };
    if on_disk.capacity != capacity {
        return mismatch("the store has another size");
    }
    if on_disk != layout {
        return Err(HeaderError::Corrupt);
    }
    // Every field as rdif writes it, reserved bytes included: equivalent
    // spellings (an interval of 0 for "the block size", say) are refused.
    let mut want = [0u8; HEADER_FIELDS + 8];
    encode_header(p, &layout, &mut want);
    if *b != want {
        return Err(HeaderError::Unexpected);
    }
    Ok(layout)
}

/// Data and metadata of a device in a backing file.
pub(crate) struct FileStore {
    file: BackingFile,
    profile: Profile,
    layout: Layout,
    /// What an unwritten interval's metadata reads as.
    escape: [u8; MAX_METADATA],
    /// The bounce buffer of data I/O ([`FILE_IO`] bytes), allocated with
    /// the store so that the I/O path never allocates.
    bounce: Pin<KBox<Mutex<KVVec<u8>>>>,
}

impl FileStore {
    fn with(
        file: BackingFile,
        profile: Profile,
        layout: Layout,
    ) -> Result<Self, (Error, &'static str)> {
        let mut escape = [0u8; MAX_METADATA];
        profile.fill_escape(&mut escape[..profile.metadata_size()]);
        let no_mem = (ENOMEM, "out of memory");
        let buf = KVVec::from_elem(0u8, FILE_IO, GFP_KERNEL).map_err(|_| no_mem)?;
        let bounce = KBox::pin_init(new_mutex!(buf), GFP_KERNEL).map_err(|_| no_mem)?;
        Ok(Self {
            file,
            profile,
            layout,
            escape,
            bounce,
        })
    }

    /// Opens the store at `path` (an absolute path) for a device of
    /// `capacity` bytes in format `profile`. A missing or empty regular
    /// file becomes a new store; an existing one must have been created
    /// with the same format and size, and be as large as its header says.
    /// On error, the second value says why, for the kernel log.
    pub(crate) fn open(
        path: &CStr,
        profile: Profile,
        capacity: u64,
    ) -> Result<Self, (Error, &'static str)> {
        let file = open_file(path)?;
        let layout = Layout::new(&profile, capacity);
        let bdev = file.is_block_device();
        if !bdev && file.size() == 0 {
            let store = Self::with(file, profile, layout)?;
            store.extend()?;
            store
                .write_header()
                .map_err(|e| (e, "cannot write the store header"))?;
            return Ok(store);
        }
        if bdev && file.size() < layout.total() {
            return Err((
                ENOSPC,
                "the backing device is too small for this size and format",
            ));
        }
        let mut hdr = [0u8; HEADER_FIELDS + 8];
        file.read_at(&mut hdr, 0)
            .map_err(|e| (e, "cannot read the store header"))?;
        let layout = check_header(&hdr, &profile, capacity).map_err(|e| (EINVAL, e.reason()))?;
        if file.size() < layout.total() {
            return Err((
                EINVAL,
                "the backing file is shorter than the store its header describes (truncated?)",
            ));
        }
        Self::with(file, profile, layout)
    }

    /// The identity of the backing file or device (see
    /// [`BackingFile::identity`]).
    pub(crate) fn identity(&self) -> usize {
        self.file.identity()
    }

    /// Creates a fresh store at `path` (all zeroes, escape PI), replacing
    /// whatever was there. `claim` takes the file or device (by its
    /// identity) for the time of formatting, so that no device uses it
    /// meanwhile; if it fails (a device uses the store), nothing is
    /// touched.
    pub(crate) fn format<G>(
        path: &CStr,
        profile: Profile,
        capacity: u64,
        claim: impl FnOnce(usize) -> Result<G>,
    ) -> Result<(), (Error, &'static str)> {
        let file = open_file(path)?;
        let _claim = claim(file.identity()).map_err(|e| (e, "a device is using this store"))?;
        let layout = Layout::new(&profile, capacity);
        if file.is_block_device() && file.size() < layout.total() {
            return Err((
                ENOSPC,
                "the backing device is too small for this size and format",
            ));
        }
        let store = Self::with(file, profile, layout)?;
        // Invalidate the old header first, so a crash leaves no store that
        // looks valid with stale contents.
        store
            .file
            .write_at(&[0u8; HEADER_FIELDS + 8], 0)
            .and_then(|()| store.file.sync())
            .map_err(|e| (e, "cannot clear the old header"))?;
        store
            .zero(HEADER_SIZE, layout.total() - HEADER_SIZE)
            .map_err(|e| (e, "cannot clear the data and metadata regions"))?;
        store.extend()?;
        store
            .write_header()
            .map_err(|e| (e, "cannot write the store header"))
    }

    /// Makes a regular file as large as the store, so that a store found
    /// shorter later can be told apart as truncated. The new part reads as
    /// zeroes: unwritten data and escape PI.
    fn extend(&self) -> Result<(), (Error, &'static str)> {
        let total = self.layout.total();
        if self.file.is_block_device() || self.file.size() >= total {
            return Ok(());
        }
        self.file
            .write_at(&[0], total - 1)
            .map_err(|e| (e, "cannot extend the backing file"))
    }

    fn write_header(&self) -> Result {
        let mut hdr = [0u8; HEADER_FIELDS + 8];
        encode_header(&self.profile, &self.layout, &mut hdr);
        self.file.write_at(&hdr, 0)?;
        self.file.sync()
    }

    /// The bounce buffer for data I/O, [`FILE_IO`] bytes.
    pub(crate) fn bounce(&self) -> MutexGuard<'_, KVVec<u8>> {
        self.bounce.lock()
    }

    /// Reads `out.len()` data bytes at device offset `pos`.
    pub(crate) fn read_data(&self, pos: u64, out: &mut [u8]) -> Result {
        self.file.read_at(out, self.layout.data_offset + pos)
    }

    /// Writes data bytes at device offset `pos`.
    pub(crate) fn write_data(&self, pos: u64, data: &[u8]) -> Result {
        self.file.write_at(data, self.layout.data_offset + pos)
    }

    fn meta_pos(&self, interval: u64) -> u64 {
        self.layout.meta_offset + interval * self.profile.metadata_size() as u64
    }

    /// Reads the metadata of `interval` into `out` (`metadata_size`
    /// bytes).
    pub(crate) fn read_meta(&self, interval: u64, out: &mut [u8]) -> Result {
        self.file.read_at(out, self.meta_pos(interval))?;
        for (b, e) in out.iter_mut().zip(self.escape.iter()) {
            *b ^= e;
        }
        Ok(())
    }

    /// Writes the metadata of `interval`.
    pub(crate) fn write_meta(&self, interval: u64, md: &[u8]) -> Result {
        let mut enc = [0u8; MAX_METADATA];
        let enc = &mut enc[..md.len()];
        for ((d, m), e) in enc.iter_mut().zip(md).zip(self.escape.iter()) {
            *d = m ^ e;
        }
        self.file.write_at(enc, self.meta_pos(interval))
    }

    /// Reads one byte of each page of the file that a write of `len` data
    /// bytes at device offset `pos` changes only in part: the data's first
    /// and last page if they are not whole, and every page of its
    /// metadata (written interval by interval).
    pub(crate) fn prepare_write(&self, pos: u64, len: u64) -> Result {
        const PAGE: u64 = kernel::page::PAGE_SIZE as u64;
        if len == 0 {
            return Ok(());
        }
        let mut b = [0u8; 1];
        let start = self.layout.data_offset + pos;
        let end = start + len;
        if start % PAGE != 0 {
            self.file.read_at(&mut b, start)?;
        }
        if end % PAGE != 0 {
            self.file.read_at(&mut b, end - 1)?;
        }
        let p = &self.profile;
        let ms = p.metadata_size() as u64;
        if ms == 0 {
            return Ok(());
        }
        let first = p.sector_to_interval(pos >> 9);
        let count = len >> p.interval_shift();
        let (mstart, mend) = (self.meta_pos(first), self.meta_pos(first + count));
        let mut page = mstart - mstart % PAGE;
        while page < mend {
            self.file.read_at(&mut b, page.max(mstart))?;
            page += PAGE;
        }
        Ok(())
    }

    /// Makes `len` bytes of the file at `pos` read as zeroes: punches a
    /// hole where the file system or device can, else writes zeroes from
    /// the bounce buffer.
    fn zero(&self, pos: u64, len: u64) -> Result {
        if self.file.punch(pos, len).is_ok() {
            return Ok(());
        }
        let mut buf = self.bounce();
        buf.fill(0);
        let end = pos.checked_add(len).ok_or(EINVAL)?;
        let mut p = pos;
        while p < end {
            let k = (end - p).min(buf.len() as u64) as usize;
            self.file.write_at(&buf[..k], p)?;
            p += k as u64;
        }
        Ok(())
    }

    /// Zeroes `len` data bytes at `pos` and resets their intervals' PI.
    pub(crate) fn reset(&self, pos: u64, len: u64) -> Result {
        self.zero(self.layout.data_offset + pos, len)?;
        let p = &self.profile;
        let ms = p.metadata_size() as u64;
        if ms > 0 {
            let first = p.sector_to_interval(pos >> 9);
            let count = len >> p.interval_shift();
            self.zero(self.meta_pos(first), count * ms)?;
        }
        Ok(())
    }

    /// Makes the data and metadata of `len` bytes at `pos` durable.
    pub(crate) fn sync_range(&self, pos: u64, len: u64) -> Result {
        if len == 0 {
            return self.file.sync();
        }
        let l = &self.layout;
        self.file
            .sync_range(l.data_offset + pos, l.data_offset + pos + len - 1, true)?;
        let p = &self.profile;
        let ms = p.metadata_size() as u64;
        if ms > 0 {
            let first = self.meta_pos(p.sector_to_interval(pos >> 9));
            let n = (len >> p.interval_shift()) * ms;
            self.file.sync_range(first, first + n - 1, true)?;
        }
        Ok(())
    }

    /// Makes everything written so far durable.
    pub(crate) fn flush(&self) -> Result {
        self.file.sync()
    }
}

/// Opens a backing file or device, saying why it cannot.
fn open_file(path: &CStr) -> Result<BackingFile, (Error, &'static str)> {
    BackingFile::open(path, true).map_err(|e| {
        let why = if e == EBUSY {
            "the backing device is in use (mounted, or claimed by another device)"
        } else if e == EINVAL {
            "the backing path must be an absolute path to a block device or to a regular file not on a pseudo file system (proc, sysfs, configfs, ...)"
        } else {
            "cannot open the backing file"
        };
        (e, why)
    })
}
