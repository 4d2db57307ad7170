// SPDX-License-Identifier: GPL-2.0

//! Backing files: a regular file or a block device opened by the kernel,
//! read and written with `kernel_read`/`kernel_write` (so through the page
//! cache of the file or device), synced with `vfs_fsync_range`.
//!
//! All calls may sleep: use them only from a context that can, such as a
//! `BLK_MQ_F_BLOCKING` queue or configfs.
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h)

use super::{
    bio::{Access, Sink},
    pdu::Pdu,
    Bio, Op, Pending, Request,
};
use core::{ptr::NonNull, sync::atomic::Ordering};
use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    prelude::*,
};

// The bindings' structs end in zero-length arrays, which this lint flags;
// they are only passed by pointer here.
#[allow(improper_ctypes)]
extern "C" {
    fn rdif_file_page_uptodate(file: *mut bindings::file, pos: bindings::loff_t) -> bool;
    fn rdif_file_in_shmem(file: *mut bindings::file) -> bool;
    fn rdif_rq_bvecs(rq: *mut bindings::request, bvec: *mut bindings::bio_vec, max: u32) -> u32;
    fn rdif_kiocb_start_write(iocb: *mut bindings::kiocb);
    fn rdif_kiocb_end_write(iocb: *mut bindings::kiocb);
}

/// `FALLOC_FL_KEEP_SIZE` and `FALLOC_FL_PUNCH_HOLE` (checked in
/// `helpers.c`).
const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
/// `FMODE_CAN_ODIRECT` (checked in `helpers.c`).
const FMODE_CAN_ODIRECT: bindings::fmode_t = 1 << 22;

/// The bytes left in an iov_iter (`iov_iter_count`).
fn iter_count(iter: &bindings::iov_iter) -> usize {
    // SAFETY: `count` is the member of the anonymous union that every
    // kind of iov_iter uses.
    unsafe { iter.__bindgen_anon_1.__bindgen_anon_1.as_ref().count }
}

/// Limits an iov_iter to `n` bytes (`iov_iter_truncate`).
fn iter_truncate(iter: &mut bindings::iov_iter, n: usize) {
    // SAFETY: as in `iter_count`.
    let count = unsafe { &mut iter.__bindgen_anon_1.__bindgen_anon_1.as_mut().count };
    *count = (*count).min(n);
}

/// Where a path leads, as far as deciding whether to open it goes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PathInfo {
    /// The magic number of the file system it is on (`s_magic`).
    pub(crate) fs_magic: u64,
    /// Whether it is a block device node.
    pub(crate) block_device: bool,
}

/// Most buffers [`BackingFile::write_vec_at`] writes with one call.
pub(crate) const WRITE_VEC_MAX: usize = 16;

/// Drops one reference of the kiocb of `pdu`: the last one completes its
/// request through the queue's `->complete`.
///
/// # Safety
///
/// `pdu` must be the PDU of a request started with
/// [`BackingFile::start_request`], and the caller must hold one of its
/// references.
unsafe fn kiocb_put(pdu: *mut Pdu) {
    // SAFETY: the caller holds a reference.
    if !unsafe { Pdu::put(pdu) } {
        return;
    }
    // SAFETY: the last reference: nothing else uses the PDU.
    let rq = unsafe {
        drop((*pdu).bvec.take());
        Pdu::request(pdu)
    };
    // SAFETY: the request is valid until it ends, below.
    let write = unsafe { Request::from_raw(rq) }.op() == Op::Write;
    if write {
        // SAFETY: started with `rdif_kiocb_start_write`.
        unsafe { rdif_kiocb_end_write(&raw mut (*pdu).iocb) };
    }
    // SAFETY: a started request that its I/O owned, handed to
    // `->complete`.
    unsafe { bindings::blk_mq_complete_request(rq.as_ptr()) };
}

/// The completion of a backing file's kiocb.
///
/// # Safety
///
/// Called by the file (or by `start_request`) once for a kiocb in a
/// `Pdu`, holding one of its references.
unsafe extern "C" fn kiocb_done(iocb: *mut bindings::kiocb, ret: kernel::ffi::c_long) {
    // SAFETY: the kiocb of a `Pdu` (the function's requirement).
    let pdu = unsafe { Pdu::from_iocb(iocb) };
    // SAFETY: written before the last reference goes; read after it.
    unsafe { (*pdu).ret = ret };
    // SAFETY: the reference of the I/O.
    unsafe { kiocb_put(pdu) };
}

/// An open backing file.
///
/// # Invariants
///
/// `ptr` is a file opened by `filp_open` that this object owns (it is closed
/// on drop) and that is a regular file or a block device.
pub(crate) struct BackingFile {
    ptr: NonNull<bindings::file>,
}

// SAFETY: `struct file` is reference counted and its I/O entry points may be
// called from any thread.
unsafe impl Send for BackingFile {}
// SAFETY: as above; concurrent reads and writes at explicit offsets are fine.
unsafe impl Sync for BackingFile {}

fn loff(v: u64) -> Result<bindings::loff_t> {
    bindings::loff_t::try_from(v).map_err(|_| EFBIG)
}

/// The result of a C helper that moves `bytes` in one call: its return value
/// `n` is the bytes moved or a negative errno.
fn moved(n: isize, bytes: u64) -> Result {
    match n {
        n if n < 0 => Err(Error::from_errno(n as i32)),
        n if n as u64 == bytes => Ok(()),
        // Short: an I/O error part-way (or the end of a block device).
        _ => Err(EIO),
    }
}

impl BackingFile {
    /// `filp_open`, as a result.
    fn filp_open(path: &CStr, flags: u32) -> Result<NonNull<bindings::file>> {
        // SAFETY: `path` is NUL-terminated; `filp_open` returns a file or an
        // error pointer.
        let file = from_err_ptr(unsafe {
            bindings::filp_open(path.as_char_ptr(), flags as core::ffi::c_int, 0o600)
        })?;
        NonNull::new(file).ok_or(ENOENT)
    }

    /// What `path` (absolute) leads to; if nothing, what its directory
    /// does (as a place to create a file in).
    fn lookup(path: &CStr) -> Result<PathInfo> {
        let look = |p: &CStr| -> Result<PathInfo> {
            // `O_PATH` only looks the path up: no device is opened.
            let f = Self::filp_open(p, bindings::O_PATH)?;
            // INVARIANT: a file opened above, closed on drop.
            let f = BackingFile { ptr: f };
            Ok(f.info())
        };
        match look(path) {
            Err(e) if e == ENOENT => {
                let bytes = path.to_bytes_with_nul();
                let slash = bytes.iter().rposition(|&b| b == b'/').ok_or(EINVAL)?;
                let mut dir = KVec::with_capacity(slash + 2, GFP_KERNEL)?;
                dir.extend_from_slice(&bytes[..slash.max(1)], GFP_KERNEL)?;
                dir.push(0, GFP_KERNEL)?;
                let info = look(CStr::from_bytes_with_nul(&dir).map_err(|_| EINVAL)?)?;
                Ok(PathInfo {
                    block_device: false,
                    ..info
                })
            }
            r => r,
        }
    }

    /// The inode behind the open file.
    fn inode(&self) -> *mut bindings::inode {
        // SAFETY: `self.ptr` is a valid open file (type invariant), which
        // holds its inode (`file_inode`).
        unsafe { (*self.ptr.as_ptr()).f_inode }
    }

    /// The file's type (`S_IFMT` bits of its mode).
    fn file_type(&self) -> u32 {
        // SAFETY: the inode of an open file is valid; its type never
        // changes.
        u32::from(unsafe { (*self.inode()).i_mode }) & bindings::S_IFMT
    }

    /// What the open file is, as [`PathInfo`].
    fn info(&self) -> PathInfo {
        // SAFETY: the inode of an open file and its super block are valid.
        let fs_magic = unsafe { (*(*self.inode()).i_sb).s_magic } as u64;
        PathInfo {
            fs_magic,
            block_device: self.is_block_device(),
        }
    }

    /// Opens `path` for reading and writing; creates a regular file (mode
    /// 0600) if it does not exist and `create` is set. A block device is
    /// opened exclusively (`EBUSY` if it is mounted or claimed by another
    /// holder); regular files have no such claim, callers keep their own
    /// (see [`Self::identity`]). `path` must be absolute, lead to a regular
    /// file or a block device, and be one that `accept` accepts (asked
    /// before it is opened, and again after: a file could be swapped in
    /// meanwhile); otherwise `EINVAL`.
    pub(crate) fn open(
        path: &CStr,
        create: bool,
        accept: impl Fn(&PathInfo) -> bool,
    ) -> Result<Self> {
        if path.to_bytes().first() != Some(&b'/') {
            return Err(EINVAL);
        }
        if !accept(&Self::lookup(path)?) {
            return Err(EINVAL);
        }
        let flags = bindings::O_RDWR | bindings::O_LARGEFILE;
        let f = match Self::filp_open(path, flags) {
            Err(e) if e == ENOENT && create => {
                Self::filp_open(path, flags | bindings::O_CREAT | bindings::O_EXCL)?
            }
            r => r?,
        };
        // INVARIANT: opened above; closed on drop unless kept.
        let f = BackingFile { ptr: f };
        let t = f.file_type();
        if (t != bindings::S_IFREG && t != bindings::S_IFBLK) || !accept(&f.info()) {
            return Err(EINVAL);
        }
        if t == bindings::S_IFREG {
            return Ok(f);
        }
        drop(f);
        // `O_EXCL` on a block device claims it with the file as holder.
        // INVARIANT: opened here; checked to be a block device below.
        let f = BackingFile {
            ptr: Self::filp_open(path, flags | bindings::O_EXCL)?,
        };
        if !f.is_block_device() {
            // Replaced since the first open.
            return Err(EBUSY);
        }
        Ok(f)
    }

    /// What identifies the file or device while it is open: two open
    /// `BackingFile`s have the same identity exactly if they are the same
    /// file or device.
    pub(crate) fn identity(&self) -> usize {
        self.inode() as usize
    }

    /// Current size in bytes (for a block device, its capacity).
    pub(crate) fn size(&self) -> u64 {
        // The mapping's host holds the data (for a block device node, the
        // device's inode); its size may change under us (`i_size_read`).
        // SAFETY: `self.ptr` is a valid open file (type invariant).
        let size = unsafe {
            core::ptr::read_volatile(&raw const (*(*(*self.ptr.as_ptr()).f_mapping).host).i_size)
        };
        u64::try_from(size).unwrap_or(0)
    }

    /// Whether this is a block device (rather than a regular file).
    pub(crate) fn is_block_device(&self) -> bool {
        self.file_type() == bindings::S_IFBLK
    }

    /// Reads `buf.len()` bytes at `pos`; what lies beyond the end of a
    /// regular file reads as zeroes.
    pub(crate) fn read_at(&self, buf: &mut [u8], pos: u64) -> Result {
        let mut done = 0;
        while done < buf.len() {
            let mut off = loff(pos.checked_add(done as u64).ok_or(EFBIG)?)?;
            let rest = &mut buf[done..];
            // SAFETY: the file is valid (type invariant); `rest` is valid
            // for writes of its length; `off` is a valid position pointer.
            let n = unsafe {
                bindings::kernel_read(
                    self.ptr.as_ptr(),
                    rest.as_mut_ptr().cast(),
                    rest.len(),
                    &mut off,
                )
            };
            match n {
                0 => {
                    rest.fill(0);
                    return Ok(());
                }
                n if n < 0 => return Err(Error::from_errno(n as i32)),
                n => done += n as usize,
            }
        }
        Ok(())
    }

    /// Makes sure that a buffered write to part of the page at `pos` will
    /// not have to read it from the medium: reads one byte of it unless the
    /// page cache already holds it up to date. A read error of the medium
    /// is returned here, before the caller changed anything.
    pub(crate) fn touch_page(&self, pos: u64) -> Result {
        // SAFETY: the file is valid (type invariant); the helper only looks
        // the page up in the file's mapping and drops its reference.
        if unsafe { rdif_file_page_uptodate(self.ptr.as_ptr(), loff(pos)?) } {
            return Ok(());
        }
        self.read_at(&mut [0u8; 1], pos)
    }

    /// Writes all of `buf` at `pos`.
    pub(crate) fn write_at(&self, buf: &[u8], pos: u64) -> Result {
        let mut done = 0;
        while done < buf.len() {
            let mut off = loff(pos.checked_add(done as u64).ok_or(EFBIG)?)?;
            let rest = &buf[done..];
            // SAFETY: the file is valid (type invariant); `rest` is valid
            // for reads of its length; `off` is a valid position pointer.
            let n = unsafe {
                bindings::kernel_write(
                    self.ptr.as_ptr(),
                    rest.as_ptr().cast(),
                    rest.len(),
                    &mut off,
                )
            };
            match n {
                n if n < 0 => return Err(Error::from_errno(n as i32)),
                0 => return Err(EIO),
                n => done += n as usize,
            }
        }
        Ok(())
    }

    /// Writes the buffers of `bufs` (at most [`WRITE_VEC_MAX`]), one after
    /// another, at `pos`, with one iov_iter over them.
    pub(crate) fn write_vec_at(&self, bufs: &[&[u8]], pos: u64) -> Result {
        let mut vec = [bindings::kvec {
            iov_base: core::ptr::null_mut(),
            iov_len: 0,
        }; WRITE_VEC_MAX];
        if bufs.len() > WRITE_VEC_MAX {
            return Err(EINVAL);
        }
        let mut bytes = 0u64;
        for (v, b) in vec.iter_mut().zip(bufs) {
            v.iov_base = b.as_ptr().cast_mut().cast();
            v.iov_len = b.len();
            bytes += b.len() as u64;
        }
        let at = loff(pos)?;
        loff(pos.checked_add(bytes).ok_or(EFBIG)?)?;
        let mut iter = bindings::iov_iter::default();
        // SAFETY: `vec`'s first `bufs.len()` entries describe `bufs`'
        // slices, valid for reads while `iter` is used, below.
        unsafe {
            bindings::iov_iter_kvec(
                &mut iter,
                bindings::ITER_SOURCE,
                vec.as_ptr(),
                bufs.len() as kernel::ffi::c_ulong,
                bytes as usize,
            )
        };
        moved(self.rw_iter(&mut iter, at, true), bytes)
    }

    /// Moves the first `bytes` of `bio`'s data between its pages and `pos`
    /// of the file, with one iov_iter over the bio's segments (no copy of
    /// the driver's own: the file's write path reads the submitter's
    /// pages, which may change meanwhile, like any write's). The pages are
    /// never turned into Rust references.
    fn rw_bio<A: Access>(&self, bio: &Bio<'_, A>, bytes: u32, pos: u64, write: bool) -> Result {
        let at = loff(pos)?;
        loff(pos.checked_add(bytes.into()).ok_or(EFBIG)?)?;
        if bytes > bio.size() {
            return Err(EINVAL);
        }
        let mut iter = bindings::iov_iter::default();
        let dir = if write {
            bindings::ITER_SOURCE
        } else {
            bindings::ITER_DEST
        };
        // SAFETY: only a `Sink` bio is read into (`read_bio`); `iter` is
        // used only in this call, while `bio` lives.
        unsafe { bio.iov_iter(dir, &mut iter) };
        iter_truncate(&mut iter, bytes as usize);
        moved(self.rw_iter(&mut iter, at, write), bytes.into())
    }

    /// Moves all of `iter` at `pos` of the file, synchronously. Returns the
    /// bytes moved or a negative errno. A transfer that stops short is
    /// taken up again where it stopped, so that running out of memory
    /// part-way (a page cache allocation) comes back as `-ENOMEM`, a
    /// shortage to retry, and not as a short count; what stops it for good
    /// (an I/O error after some bytes, the end of a device) still returns
    /// the count so far.
    fn rw_iter(
        &self,
        iter: &mut bindings::iov_iter,
        mut pos: bindings::loff_t,
        write: bool,
    ) -> isize {
        let mut done = 0;
        while iter_count(iter) > 0 {
            // SAFETY: the file is valid (type invariant); `iter` describes
            // memory valid for its direction (the callers' duty).
            let n = unsafe {
                if write {
                    bindings::vfs_iter_write(self.ptr.as_ptr(), iter, &mut pos, 0)
                } else {
                    bindings::vfs_iter_read(self.ptr.as_ptr(), iter, &mut pos, 0)
                }
            };
            if n == ENOMEM.to_errno() as isize || (n < 0 && done == 0) {
                return n;
            }
            if n <= 0 {
                break;
            }
            done += n;
        }
        done
    }

    /// Writes the first `bytes` of `bio`'s data at `pos`, from its pages.
    pub(crate) fn write_bio(&self, bio: &Bio<'_>, bytes: u32, pos: u64) -> Result {
        self.rw_bio(bio, bytes, pos, true)
    }

    /// Reads `bytes` at `pos` into the first `bytes` of `bio`'s data.
    pub(crate) fn read_bio(&self, bio: &Bio<'_, Sink>, bytes: u32, pos: u64) -> Result {
        self.rw_bio(bio, bytes, pos, false)
    }

    /// Whether the file takes direct I/O; if so, the granule of its sizes
    /// and offsets and the alignment mask of its memory (as loop works them
    /// out).
    pub(crate) fn direct_io_align(&self) -> Option<DirectIoAlign> {
        let file = self.ptr.as_ptr();
        // SAFETY: the file is valid (type invariant).
        if unsafe { (*file).f_mode } & FMODE_CAN_ODIRECT == 0 {
            return None;
        }
        // tmpfs takes O_DIRECT but ignores it (its data lives in the page
        // cache): the I/O would be as synchronous as a buffered one, only
        // dearer.
        // SAFETY: the file is valid.
        if self.file_type() == bindings::S_IFREG && unsafe { rdif_file_in_shmem(file) } {
            return None;
        }
        let mut st = bindings::kstat::default();
        // SAFETY: the file and its path are valid; `st` is valid for
        // writes.
        let r = unsafe {
            bindings::vfs_getattr(
                &raw mut (*file).__bindgen_anon_1.f_path,
                &mut st,
                bindings::STATX_DIOALIGN,
                0,
            )
        };
        let (min_size, mem_align) =
            if r == 0 && st.result_mask & bindings::STATX_DIOALIGN != 0 && st.dio_mem_align != 0 {
                (
                    st.dio_offset_align,
                    (st.dio_mem_align - 1).min(bindings::PAGE_SIZE as u32 - 1),
                )
            } else {
                let bdev = if self.is_block_device() {
                    // SAFETY: an open block device node.
                    unsafe { bindings::file_bdev(file) }
                } else {
                    // SAFETY: the mapping's host and its super block are valid
                    // while the file is open.
                    unsafe { (*(*(*(*file).f_mapping).host).i_sb).s_bdev }
                };
                match NonNull::new(bdev) {
                    // SAFETY: a block device in use (the file's, or its file
                    // system's), whose queue is valid.
                    Some(b) => unsafe {
                        let lim = &(*(*b.as_ptr()).bd_queue).limits;
                        (lim.logical_block_size, lim.dma_alignment)
                    },
                    None => (512, 511),
                }
            };
        (min_size != 0).then_some(DirectIoAlign {
            min_size,
            mem_align,
        })
    }

    /// Starts moving the whole of `rq`'s data between its pages and `pos`
    /// of the file (a write if `write`), with one kiocb over the request's
    /// segments, as direct I/O that the file may complete later, from any
    /// context (as loop's `lo_rw_aio`). Use it only if
    /// [`Self::direct_io_align`] allows, with requests aligned as it says.
    /// Once started, the request is the file's: it comes back through
    /// [`super::Operations::file_done`] with the result, perhaps before
    /// this returns. If it cannot be started (no memory for the segment
    /// array of a request of several bios), it is handed back untouched.
    /// Must be called where the caller may sleep, with allocations that
    /// cannot recurse into I/O ([`super::with_backing_io`]).
    pub(crate) fn start_request(
        &self,
        rq: Pending,
        pos: u64,
        write: bool,
    ) -> Result<(), (Pending, Error)> {
        let end = u64::from(rq.request().bytes()).checked_add(pos);
        let at = match (loff(pos), end.map(loff)) {
            (Ok(at), Some(Ok(_))) => at,
            _ => return Err((rq, EFBIG)),
        };
        let mut iter = bindings::iov_iter::default();
        let bvec = match self.request_iter(&rq, write, &mut iter) {
            Ok(bvec) => bvec,
            Err(e) => return Err((rq, e)),
        };
        let file = self.ptr.as_ptr();
        // SAFETY: the file is valid (type invariant).
        let f_op = unsafe { (*file).f_op };
        // SAFETY: a valid file's operations are static.
        let rw = unsafe {
            if write {
                (*f_op).write_iter
            } else {
                (*f_op).read_iter
            }
        };
        let Some(rw) = rw else {
            return Err((rq, EINVAL));
        };
        let ioprio = rq.request().ioprio();
        let raw = rq.into_raw();
        // SAFETY: every request of the driver's tag sets has a `Pdu`.
        let pdu = unsafe { Pdu::of(raw.as_ptr()) };
        // SAFETY: the request is started and owned here (it came from a
        // `Pending`): nothing else uses its PDU until the kiocb starts.
        unsafe {
            (*pdu).bvec = bvec;
            (*pdu).ret = 0;
            (*pdu).refs.store(2, Ordering::Relaxed);
            let iocb = &raw mut (*pdu).iocb;
            iocb.write(bindings::kiocb {
                ki_filp: file,
                ki_pos: at,
                ki_complete: Some(kiocb_done),
                ki_flags: bindings::IOCB_DIRECT as i32,
                ki_ioprio: ioprio,
                ..Default::default()
            });
            if write {
                rdif_kiocb_start_write(iocb);
            }
        }
        // SAFETY: the file and the iterator over the request's pages are
        // valid until the kiocb completes (the request ends only then);
        // the kiocb lives in the request's PDU.
        let ret = unsafe { rw(&raw mut (*pdu).iocb, &mut iter) };
        // SAFETY: the submitter's reference, taken above.
        unsafe { kiocb_put(pdu) };
        if ret != -(bindings::EIOCBQUEUED as isize) {
            // SAFETY: the file did not take the kiocb: this is its end.
            unsafe { kiocb_done(&raw mut (*pdu).iocb, ret) };
        }
        Ok(())
    }

    /// Sets `iter` up over the whole of the data of `rq`: over the table of
    /// its bio if it has one, else over a table of the segments of all of
    /// them, which is returned.
    fn request_iter(
        &self,
        rq: &Pending,
        write: bool,
        iter: &mut bindings::iov_iter,
    ) -> Result<Option<KVec<bindings::bio_vec>>> {
        let r = rq.request();
        let dir = if write {
            bindings::ITER_SOURCE
        } else {
            bindings::ITER_DEST
        };
        let Some(first) = r.bios().next() else {
            return Err(EINVAL);
        };
        if first.next().is_none() {
            // SAFETY: the I/O moves the request's data in its direction
            // (a read fills its pages), and `iter` is used only until the
            // request ends.
            unsafe { first.iov_iter(dir, iter) };
            return Ok(None);
        }
        let raw = rq.as_raw();
        // SAFETY: a started request; with no table, the helper only
        // counts.
        let nr = unsafe { rdif_rq_bvecs(raw, core::ptr::null_mut(), 0) };
        let mut bvec = KVec::with_capacity(nr as usize, GFP_KERNEL)?;
        // SAFETY: `bvec` has room for `nr` entries, which the helper
        // fills (bios may start inside an entry when split: it copies the
        // parts they use).
        unsafe {
            let n = rdif_rq_bvecs(raw, bvec.as_mut_ptr(), nr);
            bvec.inc_len(n as usize);
        }
        // SAFETY: `bvec` describes the request's data, `bytes` long.
        unsafe {
            bindings::iov_iter_bvec(
                iter,
                dir,
                bvec.as_ptr(),
                bvec.len() as kernel::ffi::c_ulong,
                r.bytes() as usize,
            )
        };
        Ok(Some(bvec))
    }

    /// Writes back and waits for the byte range `[start, end]` and, unless
    /// `data_only`, the metadata needed to find it (`vfs_fsync_range`).
    pub(crate) fn sync_range(&self, start: u64, end: u64, data_only: bool) -> Result {
        // SAFETY: the file is valid (type invariant).
        to_result(unsafe {
            bindings::vfs_fsync_range(
                self.ptr.as_ptr(),
                loff(start)?,
                loff(end)?,
                data_only.into(),
            )
        })
    }

    /// Writes back the whole file and its metadata.
    pub(crate) fn sync(&self) -> Result {
        self.sync_range(0, i64::MAX as u64, false)
    }

    /// Makes `len` bytes at `pos` read as zeroes and frees their space
    /// (punches a hole in a regular file, discards on a block device).
    /// Fails if the file system or device cannot.
    pub(crate) fn punch(&self, pos: u64, len: u64) -> Result {
        pos.checked_add(len).ok_or(EFBIG)?;
        // SAFETY: the file is valid (type invariant).
        to_result(unsafe {
            bindings::vfs_fallocate(
                self.ptr.as_ptr(),
                FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                loff(pos)?,
                loff(len)?,
            )
        })
    }
}

/// What direct I/O to a file needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DirectIoAlign {
    /// Sizes and offsets must be multiples of this (a power of two).
    pub(crate) min_size: u32,
    /// Memory must be aligned to this mask plus one.
    pub(crate) mem_align: u32,
}

impl Drop for BackingFile {
    fn drop(&mut self) {
        // SAFETY: the file was opened by `filp_open` and is owned by `self`
        // (type invariant); nothing uses it after this.
        unsafe { bindings::filp_close(self.ptr.as_ptr(), core::ptr::null_mut()) };
    }
}
