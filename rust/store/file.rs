// SPDX-License-Identifier: GPL-2.0

//! A persistent store in a backing regular file or block device: a header,
//! a data region and a separate metadata region, both addressed by
//! position, and a write journal (see Documentation/rdif.rst, "On-disk
//! layout" and "Crash consistency").
//!
//! Every write and discard is first appended to the journal with a
//! checksum. [`FileStore::commit`] then makes the entries appended since
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

mod commit;
mod io;

use super::{
    files::Files,
    header::{check_header, encode_header, Layout, Part, HEADER_BYTES, HEADER_SIZE, VERSION},
    StoreError,
};
use crate::blk::{
    bio::Sink,
    file::{BackingFile, PathInfo},
    Bio, Request,
};
use crate::pi::{Profile, MAX_METADATA};
use commit::{JournalState, GATHER};
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
    /// Whether every write goes through [`Self::write`], where a write
    /// cache above logs what it replaces (no write straight from a bio or
    /// from the caller's buffers, no direct I/O).
    logged: bool,
    /// Whether whole requests go to the data file as direct I/O (see
    /// [`Self::direct_target`]), and the memory alignment mask it needs.
    direct: Option<u32>,
}

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
            logged: false,
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
    /// the page cache writes them back independently. `logged`: every
    /// write goes through [`Self::write`] (a write cache logs them).
    pub(crate) fn set_journaled(&mut self, on: bool, logged: bool) {
        self.journaled = on;
        self.logged = logged;
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

    /// Whether the device sends whole requests to the data file
    /// ([`Self::direct_target`]; reads that need no metadata, writes):
    /// when the journal is off, in a format without metadata, over a file
    /// that takes direct I/O at the device's block size.
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
    /// metadata, unless every write is to be logged.
    pub(crate) fn takes_bios(&self) -> bool {
        !self.journaled && !self.logged && !self.profile.has_metadata()
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
