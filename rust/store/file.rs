// SPDX-License-Identifier: GPL-2.0

//! A persistent store in a backing regular file or block device: a header,
//! a data region and a separate metadata region, both addressed by
//! position, and a write journal (see Documentation/rdif.rst, "On-disk
//! layout" and "Crash consistency").
//!
//! Every write and discard is first appended to the journal with a
//! checksum. [`FileStore::settle`] then makes the entries appended since
//! its last call durable with one data sync of their range (a group
//! commit) and carries them out in place, in order; the device completes
//! the requests only after that. Opening a store replays the journal:
//! whatever a power cut interrupted in place is done again, whole. So
//! after a crash each interval holds its old or its new data with the
//! matching metadata, and every completed write is present. A flush makes
//! the in-place copies durable and empties the journal (a new
//! generation).
//!
//! Metadata is stored XORed with what an unwritten interval reads as (zero
//! opaque bytes and an all-ones tuple), so that zeroes on disk, a hole in a
//! sparse file or a discarded range, read as escape PI. A new store
//! therefore needs no initialisation beyond its header.

use super::{
    files::Files,
    header::{check_header, encode_header, Layout, Part, HEADER_BYTES, HEADER_SIZE, VERSION},
    journal::{self, Entry, Kind, ENTRY_ALIGN, HEADER_LEN, JOURNAL_SIZE, SUPER_LEN, SUPER_SIZE},
    pages::partial_pages,
    Slot, StoreError,
};
use crate::blk::{
    bio::Sink,
    file::{BackingFile, PathInfo, WRITE_VEC_MAX},
    Bio, Request,
};
use crate::pi::{Profile, MAX_METADATA};
use kernel::{bindings, new_mutex, prelude::*, sync::Mutex};

/// Largest piece of data moved by one access of a backing file.
pub(crate) const FILE_IO: usize = 64 * 1024;

/// Data and metadata of a device in a backing file.
pub(crate) struct FileStore {
    files: Files,
    /// The part the header (of the metadata file, if split) heads.
    part: Part,
    profile: Profile,
    layout: Layout,
    /// What an unwritten interval's metadata reads as.
    escape: [u8; MAX_METADATA],
    /// The buffers of the I/O path, allocated with the store so that the
    /// I/O path never allocates. Taken after `journal`, if both are.
    bounce: Pin<KBox<Mutex<Bounce>>>,
    /// Where the journal is.
    journal: Pin<KBox<Mutex<JournalState>>>,
    /// Entries replayed when the store was opened.
    replayed: u64,
    /// A header read has an older layout version: [`Self::replay`]
    /// rewrites the headers as [`VERSION`].
    upgrade: bool,
    /// Whether the backing file can punch holes (discard is advertised
    /// only then).
    can_punch: bool,
    /// Whether writes go through the journal (else straight in place, with
    /// no crash guarantee beyond flush; see [`Self::set_journaled`]).
    journaled: bool,
    /// Whether requests started with [`Self::start`] use direct I/O, and
    /// the memory alignment mask it needs.
    direct: Option<u32>,
}

/// The journal's current generation, its next entry and the entries not
/// yet settled.
struct JournalState {
    generation: u64,
    /// Offset of the next entry from the start of the entries.
    next: u64,
    /// Sequence number of the next entry.
    seq: u64,
    /// Offset of the first entry not yet durable and carried out in place
    /// (entries from here to `next` wait for [`FileStore::settle`]).
    settled: u64,
    /// A settle on the way (journal full, flush, corrupt) failed since the
    /// last [`FileStore::settle`]: the writes it was for are in doubt.
    failed: bool,
    /// Writing gathered entries to the journal failed: the journal may
    /// hold a gap before entries written later, so nothing more is
    /// journaled (writes fail) until the store is opened again.
    broken: bool,
    /// Entries not yet written to the file, gathered to be written as one
    /// ([`GATHER`] bytes): `buf[..buf_len]` belongs at `buf_at` in the file
    /// and ends at the entry `next` (empty if `buf_len` is 0).
    buf: KVVec<u8>,
    buf_at: u64,
    buf_len: usize,
}

impl JournalState {
    /// An empty journal of `generation`, gathering entries in `buf`.
    fn new(generation: u64, buf: KVVec<u8>) -> Self {
        JournalState {
            generation,
            next: 0,
            seq: 0,
            settled: 0,
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
const GATHER: usize = (JOURNAL_SIZE - SUPER_SIZE) as usize;

/// Room for the data of [`FILE_IO`] bytes and the metadata of its
/// intervals.
struct Bounce {
    data: KVVec<u8>,
    meta: KVVec<u8>,
}

/// The failure of an access of the backing file: running out of memory is
/// a shortage (the request is retried whole; what it wrote already is
/// written again, and nothing was acknowledged), anything else an I/O
/// error.
fn io_error(e: Error) -> StoreError {
    if e == ENOMEM {
        StoreError::NoMemory
    } else {
        StoreError::Io
    }
}

impl FileStore {
    fn with(
        files: Files,
        part: Part,
        profile: Profile,
        layout: Layout,
    ) -> Result<Self, (Error, &'static str)> {
        let mut escape = [0u8; MAX_METADATA];
        profile.fill_escape(&mut escape[..profile.metadata_size()]);
        let no_mem = (ENOMEM, "out of memory");
        let data = KVVec::from_elem(0u8, FILE_IO, GFP_KERNEL).map_err(|_| no_mem)?;
        let meta_len = (FILE_IO >> profile.interval_shift()) * profile.metadata_size();
        let meta = KVVec::from_elem(0u8, meta_len, GFP_KERNEL).map_err(|_| no_mem)?;
        let bounce =
            KBox::pin_init(new_mutex!(Bounce { data, meta }), GFP_KERNEL).map_err(|_| no_mem)?;
        let buf = KVVec::from_elem(0u8, GATHER, GFP_KERNEL).map_err(|_| no_mem)?;
        let state = JournalState::new(1, buf);
        let journal = KBox::pin_init(new_mutex!(state), GFP_KERNEL).map_err(|_| no_mem)?;
        Ok(Self {
            files,
            part,
            profile,
            layout,
            escape,
            bounce,
            journal,
            replayed: 0,
            upgrade: false,
            can_punch: false,
            journaled: true,
            direct: None,
        })
    }

    /// Opens the store at `path` (an absolute path) for a device of
    /// `capacity` bytes in format `profile`, with its metadata (and
    /// journal) in a file of its own at `meta` if given. A missing or empty
    /// regular file (both files, if split) becomes a new store; an
    /// existing one must have been created with the same format and size
    /// (and the same pair of files), and be as large as its header says.
    /// On error, the second value says why, for the kernel log.
    pub(crate) fn open(
        path: &CStr,
        meta: Option<&CStr>,
        profile: Profile,
        capacity: u64,
    ) -> Result<Self, (Error, &'static str)> {
        let layout = Layout::new(&profile, capacity);
        let (files, fresh) = Self::files(path, meta, &profile, &layout)?;
        if fresh {
            let part = new_part(&files);
            let store = Self::with(files, part, profile, layout)?;
            store.extend()?;
            store.create_journal()?;
            store
                .write_header()
                .map_err(|e| (e, "cannot write the store header"))?;
            return Ok(store);
        }
        if let Some(why) = files.too_small(layout.total(), true) {
            return Err((ENOSPC, why));
        }
        let read = |f: &BackingFile, what| {
            let mut hdr = [0u8; HEADER_BYTES];
            f.read_at(&mut hdr, 0).map_err(|e| (e, what))?;
            check_header(&hdr, &profile, capacity).map_err(|e| (EINVAL, e.reason()))
        };
        let (layout, part, version) = read(files.main(), "cannot read the store header")?;
        let mut oldest = version;
        match (part, files.is_split()) {
            (Part::Whole, false) => {}
            (Part::Meta(id), true) => {
                let (_, data, v) = read(files.data(), "cannot read the data file's header")?;
                oldest = oldest.min(v);
                if data != Part::Data(id) {
                    return Err((
                        EINVAL,
                        "the backing file is not the data file of the store on meta_device",
                    ));
                }
            }
            (Part::Whole, true) => {
                return Err((EINVAL, "meta_device holds a store of its own (in one file)"))
            }
            (Part::Data(_), true) => {
                return Err((EINVAL, "meta_device is the data file of a store"))
            }
            (_, false) => return Err((
                EINVAL,
                "the backing file is one part of a store with its metadata apart: set meta_device",
            )),
        }
        if let Some(why) = files.too_small(layout.total(), false) {
            return Err((EINVAL, why));
        }
        let mut store = Self::with(files, part, profile, layout)?;
        store.upgrade = oldest < VERSION;
        Ok(store)
    }

    /// Opens the file(s) of a store; also says whether they make a new
    /// store (empty regular files).
    fn files(
        path: &CStr,
        meta: Option<&CStr>,
        profile: &Profile,
        layout: &Layout,
    ) -> Result<(Files, bool), (Error, &'static str)> {
        let data = open_file(path, false)?;
        let empty = |f: &BackingFile| !f.is_block_device() && f.size() == 0;
        let Some(meta) = meta else {
            let fresh = empty(&data);
            return Ok((Files::single(data), fresh));
        };
        if !profile.has_metadata() {
            return Err((EINVAL, "the format has no metadata to put on meta_device"));
        }
        let meta = open_file(meta, true)?;
        if meta.identity() == data.identity() {
            return Err((EINVAL, "meta_device is the backing file itself"));
        }
        let fresh = empty(&data) && empty(&meta);
        let files = Files::split(
            data,
            meta,
            layout.data_offset,
            layout.data_offset + layout.capacity,
            layout.meta_offset,
        );
        Ok((files, fresh))
    }

    /// Turns the journal off (or on again) for what follows; call it after
    /// [`Self::replay`]. Without the journal a write goes straight in
    /// place and a flush syncs the file: flushed writes survive a power
    /// cut, but an interval written since the last flush may hold a mix
    /// of old and new data and metadata (as dm-integrity's direct mode):
    /// the page cache writes them back independently.
    pub(crate) fn set_journaled(&mut self, on: bool) {
        self.journaled = on;
        // Direct I/O only where every data access is a whole request (no
        // metadata, no journal): buffered writes of the same range would
        // make each direct read write the page cache back first.
        self.direct = self
            .files
            .direct_io_align()
            .filter(|a| {
                self.takes_bios()
                    && a.min_size.is_power_of_two()
                    && self.profile.block_size() % a.min_size == 0
                    && self.layout.data_offset % u64::from(a.min_size) == 0
            })
            .map(|a| a.mem_align);
    }

    /// Whether the device hands whole requests to [`Self::start`] (reads
    /// that need no metadata, writes): when the journal is off, in a
    /// format without metadata, over a file that takes direct I/O at the
    /// device's block size.
    pub(crate) fn direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The memory alignment mask of the device's requests that direct I/O
    /// to the backing file needs, if it is used.
    pub(crate) fn direct_mem_align(&self) -> Option<u32> {
        self.direct
    }

    /// Where a whole request's data at intervals from `first` goes by
    /// direct I/O (only if [`Self::direct`]): the data file and the
    /// position in it.
    pub(crate) fn direct_target(&self, first: u64) -> Result<(&BackingFile, u64), StoreError> {
        if !self.direct() {
            return Err(StoreError::Io);
        }
        Ok((self.files.data(), self.data_pos(first)))
    }

    /// Moves the whole of `rq`'s data at intervals from `first` through
    /// the file, bio by bio, before returning: for a request that cannot
    /// be in flight.
    pub(crate) fn transfer(
        &self,
        rq: &Request<'_>,
        first: u64,
        write: bool,
    ) -> Result<(), StoreError> {
        let shift = self.profile.interval_shift();
        let mut at = first;
        if write {
            for bio in rq.bios() {
                self.write_bio(at, &bio, bio.size())?;
                at += u64::from(bio.size()) >> shift;
            }
        } else {
            // Only a read's pages may be filled.
            for bio in rq.read_bios().ok_or(StoreError::Io)? {
                self.read_bio(at, &bio)?;
                at += u64::from(bio.size()) >> shift;
            }
        }
        Ok(())
    }

    /// Whether a write's data goes straight from its bio's pages to the
    /// file ([`Self::write_bio`]): without journal, in a format without
    /// metadata.
    pub(crate) fn takes_bios(&self) -> bool {
        !self.journaled && !self.profile.has_metadata()
    }

    /// Reads the data of `bio` (intervals from `first`) straight into its
    /// pages, through one iov_iter.
    pub(crate) fn read_bio(&self, first: u64, bio: &Bio<'_, Sink>) -> Result<(), StoreError> {
        self.files
            .read_bio(bio, bio.size(), self.data_pos(first))
            .map_err(io_error)
    }

    /// Writes the first `bytes` of `bio`'s data at intervals from `first`
    /// straight from its pages, through one iov_iter. Only if
    /// [`Self::takes_bios`].
    pub(crate) fn write_bio(
        &self,
        first: u64,
        bio: &Bio<'_>,
        bytes: u32,
    ) -> Result<(), StoreError> {
        if !self.takes_bios() {
            return Err(StoreError::Io);
        }
        self.files
            .write_bio(bio, bytes, self.data_pos(first))
            .map_err(io_error)
    }

    /// Entries of the journal replayed when the store was opened.
    pub(crate) fn replayed(&self) -> u64 {
        self.replayed
    }

    /// Whether discard punches holes in the backing file (known after
    /// [`Self::replay`]); without, the device advertises no discard, and
    /// write-zeroes writes zeroes.
    pub(crate) fn can_punch(&self) -> bool {
        self.can_punch
    }

    /// Takes each backing file or device of the store with `claim` (see
    /// [`Files::claim`]).
    pub(crate) fn claim<G>(&self, claim: impl FnMut(usize) -> Result<G>) -> Result<KVec<G>> {
        self.files.claim(claim)
    }

    /// Creates a fresh store at `path` (all zeroes, escape PI), with its
    /// metadata at `meta` if given, replacing whatever was there. `claim`
    /// takes each file or device (by its identity) for the time of
    /// formatting, so that no device uses it meanwhile; if it fails (a
    /// device uses the store), nothing is touched.
    pub(crate) fn format<G>(
        path: &CStr,
        meta: Option<&CStr>,
        profile: Profile,
        capacity: u64,
        claim: impl FnMut(usize) -> Result<G>,
    ) -> Result<(), (Error, &'static str)> {
        let layout = Layout::new(&profile, capacity);
        let (files, _) = Self::files(path, meta, &profile, &layout)?;
        let _claims = files.claim(claim).map_err(|e| {
            let why = if e == ENOMEM {
                "out of memory"
            } else {
                "a device is using this store"
            };
            (e, why)
        })?;
        if let Some(why) = files.too_small(layout.total(), true) {
            return Err((ENOSPC, why));
        }
        let part = new_part(&files);
        let store = Self::with(files, part, profile, layout)?;
        // Invalidate the old headers first, so a crash leaves no store
        // that looks valid with stale contents.
        let blank = [0u8; HEADER_BYTES];
        store
            .files
            .main()
            .write_at(&blank, 0)
            .and_then(|()| store.files.data().write_at(&blank, 0))
            .and_then(|()| store.files.sync())
            .map_err(|e| (e, "cannot clear the old header"))?;
        store
            .zero(HEADER_SIZE, layout.total() - HEADER_SIZE)
            .map_err(|e| (e, "cannot clear the data and metadata regions"))?;
        store.extend()?;
        store.create_journal()?;
        store
            .write_header()
            .map_err(|e| (e, "cannot write the store header"))
    }

    /// Writes the superblock of an empty journal of generation 1.
    fn create_journal(&self) -> Result<(), (Error, &'static str)> {
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

    /// Settles what is pending, makes everything carried out in place
    /// durable, then empties the journal by starting a new generation
    /// (durably).
    fn checkpoint(&self, j: &mut JournalState) -> Result<(), StoreError> {
        self.settle_locked(j)?;
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
        j.settled = 0;
        Ok(())
    }

    /// The next entry, of `kind` for intervals `first..first + n`, where
    /// it goes in the file and its size. Empties the journal first (after
    /// settling the entries in it) if the entry does not fit; the entry is
    /// numbered after that, so it belongs to the generation it is written
    /// in.
    fn begin(
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
    /// the first one not yet settled, and [`Self::begin`] empties a
    /// journal the entry would not fit in.
    fn gather_room(j: &mut JournalState, at: u64, size: u64) -> Result<usize, StoreError> {
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
    /// made durable and carried out in place by the next settle.
    fn append_gathered(
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

    /// Makes the entries appended since the last settle durable, with one
    /// data sync of their range, then carries them out in place in order.
    /// An entry that cannot be carried out stays pending (the next settle
    /// tries again from it); an I/O error marks the journal failed, a
    /// shortage does not (its caller retries).
    fn settle_locked(&self, j: &mut JournalState) -> Result<(), StoreError> {
        if j.settled == j.next {
            return Ok(());
        }
        self.spill(j)?;
        let start = self.entries_start() + j.settled;
        let end = self.entries_start() + j.next;
        let done = self
            .files
            .sync_range(start, end - 1, true)
            .map_err(io_error);
        let done = done.and_then(|()| {
            while j.settled < j.next {
                // Every entry waits in the gather buffer until it is
                // settled. One that is not there was dropped by a failed
                // spill: its bytes in the file are not known to be whole,
                // so it is not carried out (its requests failed).
                let at = self.entries_start() + j.settled;
                let mut hdr = [0u8; HEADER_LEN];
                hdr.copy_from_slice(
                    Self::gathered(j, at, HEADER_LEN as u64).ok_or(StoreError::Io)?,
                );
                let e = Entry::decode(&hdr).ok_or(StoreError::Io)?;
                let size = e.size().ok_or(StoreError::Io)?;
                let b = Self::gathered(j, at, size).ok_or(StoreError::Io)?;
                let payload = b.get(ENTRY_ALIGN as usize..).ok_or(StoreError::Io)?;
                self.apply_from(e.kind, payload, e.first, e.count)?;
                j.settled += size;
            }
            Ok(())
        });
        if done == Err(StoreError::Io) {
            j.failed = true;
        }
        if j.settled == j.next {
            j.buf_len = 0;
        }
        done
    }

    /// Settles the journal (see [`Self::settle_locked`]): every write and
    /// reset since the last call is durable and done in place when this
    /// returns `Ok`. After [`StoreError::NoMemory`] nothing is lost: call
    /// again. An I/O error (of this settle or of one on the way since the
    /// last call) leaves them in doubt: each may or may not be there,
    /// whole, and their requests must fail.
    pub(crate) fn settle(&self) -> Result<(), StoreError> {
        let mut j = self.journal.lock();
        let done = self.settle_locked(&mut j);
        if done != Err(StoreError::NoMemory) && core::mem::take(&mut j.failed) {
            return Err(StoreError::Io);
        }
        done
    }

    /// Makes regular files as large as the store, so that a store found
    /// shorter later can be told apart as truncated. The new part reads as
    /// zeroes: unwritten data and escape PI.
    fn extend(&self) -> Result<(), (Error, &'static str)> {
        self.files
            .extend(self.layout.total())
            .map_err(|e| (e, "cannot extend the backing file"))
    }

    /// Writes the header (and the data file's, if split) and syncs.
    fn write_header(&self) -> Result {
        let mut hdr = [0u8; HEADER_BYTES];
        if let Part::Meta(id) = self.part {
            encode_header(
                &self.profile,
                &self.layout,
                Part::Data(id),
                VERSION,
                &mut hdr,
            );
            self.files.data().write_at(&hdr, 0)?;
            self.files.data().sync()?;
        }
        encode_header(&self.profile, &self.layout, self.part, VERSION, &mut hdr);
        self.files.main().write_at(&hdr, 0)?;
        self.files.sync()
    }

    fn data_pos(&self, interval: u64) -> u64 {
        self.layout.data_offset + (interval << self.profile.interval_shift())
    }

    fn meta_pos(&self, interval: u64) -> u64 {
        self.layout.meta_offset + interval * self.profile.metadata_size() as u64
    }

    /// Calls `f(first, k)` for pieces of intervals `first..first + n` of
    /// at most [`FILE_IO`] data bytes each (the pieces of a journal
    /// entry's payload: each piece's data, then its metadata).
    fn pieces<E>(
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
    fn write_in_place(&self, first: u64, data: &[u8], meta: &[u8]) -> Result<(), StoreError> {
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

    /// Whether writes go straight in place (the journal is off).
    pub(crate) fn in_place(&self) -> bool {
        !self.journaled
    }

    /// Turns metadata as read into its stored form, for
    /// [`Self::write_runs`].
    pub(crate) fn stored_form(&self, meta: &mut [u8]) {
        self.flip(meta)
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
        if self.journaled {
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
    fn flip(&self, meta: &mut [u8]) {
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
                self.flip(meta);
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
    /// metadata), built in the gather buffer. The next [`Self::settle`]
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
        self.flip(meta);
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
    /// written back through the journal, settled before and after, all
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
        self.settle_locked(&mut j)?;
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
        self.settle_locked(&mut j)
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
    fn zero(&self, pos: u64, len: u64) -> Result {
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
    fn reset_in_place(&self, first: u64, n: u64) -> Result<(), StoreError> {
        let len = n << self.profile.interval_shift();
        self.zero(self.data_pos(first), len).map_err(io_error)?;
        let ms = self.profile.metadata_size() as u64;
        if ms > 0 {
            self.zero(self.meta_pos(first), n * ms).map_err(io_error)?;
        }
        Ok(())
    }

    /// Discard and write-zeroes of intervals `first..first + n`: a
    /// journal entry without payload, carried out in place when settled.
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
    /// this settles the rest, makes the in-place copies durable and
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

/// The part a new store's header heads: a whole store, or the metadata
/// file of a new pair (with a new identifier, 24 bits, not 0).
fn new_part(files: &Files) -> Part {
    if !files.is_split() {
        return Part::Whole;
    }
    let r = crate::ffi::random::random_u32();
    Part::Meta((r & 0xff_ffff).max(1))
}

/// File systems that hold no place for a store: pseudo file systems, whose
/// files are interfaces (writing to configfs from inside a configfs write,
/// such as `power` or `format`, would also recurse into its locks).
const PSEUDO_FS: [u32; 15] = [
    bindings::PROC_SUPER_MAGIC,
    bindings::SYSFS_MAGIC,
    bindings::CONFIGFS_MAGIC,
    bindings::DEBUGFS_MAGIC,
    bindings::TRACEFS_MAGIC,
    bindings::SECURITYFS_MAGIC,
    bindings::CGROUP_SUPER_MAGIC,
    bindings::CGROUP2_SUPER_MAGIC,
    bindings::BPF_FS_MAGIC,
    bindings::PSTOREFS_MAGIC,
    bindings::EFIVARFS_MAGIC,
    bindings::BINFMTFS_MAGIC,
    bindings::SELINUX_MAGIC,
    bindings::SMACK_MAGIC,
    bindings::NSFS_MAGIC,
];

/// Whether a store may live at a path that leads to `info`: a block
/// device anywhere, a regular file anywhere but on a pseudo file system.
fn store_place(info: &PathInfo) -> bool {
    info.block_device || !PSEUDO_FS.iter().any(|&m| u64::from(m) == info.fs_magic)
}

/// Opens a backing file or device (the metadata device if `meta`), saying
/// why it cannot.
fn open_file(path: &CStr, meta: bool) -> Result<BackingFile, (Error, &'static str)> {
    BackingFile::open(path, true, store_place).map_err(|e| {
        let why = match (e, meta) {
            (e, false) if e == EBUSY => {
                "the backing device is in use (mounted, or claimed by another device)"
            }
            (e, false) if e == EINVAL => {
                "the backing path must be an absolute path to a block device or to a regular file not on a pseudo file system (proc, sysfs, configfs, ...)"
            }
            (_, false) => "cannot open the backing file",
            (e, true) if e == EBUSY => {
                "meta_device is in use (mounted, or claimed by another device)"
            }
            (e, true) if e == EINVAL => {
                "meta_device must be an absolute path to a block device or to a regular file not on a pseudo file system"
            }
            (_, true) => "cannot open meta_device",
        };
        (e, why)
    })
}
