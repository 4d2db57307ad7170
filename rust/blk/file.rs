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
    Bio, Pending,
};
use core::ptr::NonNull;
use kernel::{bindings, error::to_result, prelude::*};

// The bindings' structs end in zero-length arrays, which this lint flags;
// they are only passed by pointer here.
#[allow(improper_ctypes)]
extern "C" {
    fn rdif_file_size(file: *mut bindings::file) -> bindings::loff_t;
    fn rdif_file_is_bdev(file: *mut bindings::file) -> bool;
    fn rdif_file_is_reg(file: *mut bindings::file) -> bool;
    fn rdif_file_punch(
        file: *mut bindings::file,
        offset: bindings::loff_t,
        len: bindings::loff_t,
    ) -> core::ffi::c_int;
    fn rdif_file_page_uptodate(file: *mut bindings::file, pos: bindings::loff_t) -> bool;
    fn rdif_is_err(ptr: *const core::ffi::c_void) -> bool;
    fn rdif_file_inode(file: *mut bindings::file) -> *const core::ffi::c_void;
    fn rdif_file_is_pseudo(file: *mut bindings::file) -> bool;
    fn rdif_path_is_pseudo(name: *const kernel::ffi::c_char) -> core::ffi::c_int;
    fn rdif_rq_file_start(
        file: *mut bindings::file,
        rq: *mut bindings::request,
        pos: bindings::loff_t,
        write: bool,
    ) -> core::ffi::c_int;
    fn rdif_file_dio_align(
        file: *mut bindings::file,
        min_size: *mut u32,
        mem_align: *mut u32,
    ) -> bool;
    fn rdif_file_rw_bio(
        file: *mut bindings::file,
        bio: *mut bindings::bio,
        pos: bindings::loff_t,
        bytes: u32,
        write: bool,
    ) -> isize;
    fn rdif_file_write_kvec(
        file: *mut bindings::file,
        vec: *const bindings::kvec,
        nr: core::ffi::c_ulong,
        pos: bindings::loff_t,
    ) -> isize;
}

/// Most buffers [`BackingFile::write_vec_at`] writes with one call.
pub(crate) const WRITE_VEC_MAX: usize = 16;

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
        let file =
            unsafe { bindings::filp_open(path.as_char_ptr(), flags as core::ffi::c_int, 0o600) };
        // SAFETY: `rdif_is_err` only looks at the pointer value.
        if file.is_null() || unsafe { rdif_is_err(file.cast()) } {
            return Err(Error::from_errno(file as isize as i32));
        }
        NonNull::new(file).ok_or(ENOENT)
    }

    /// Opens `path` for reading and writing; creates a regular file (mode
    /// 0600) if it does not exist and `create` is set. A block device is
    /// opened exclusively (`EBUSY` if it is mounted or claimed by another
    /// holder); regular files have no such claim, callers keep their own
    /// (see [`Self::identity`]). `path` must be absolute, and a regular
    /// file must not be on a pseudo file system (proc, sysfs, configfs,
    /// ...).
    pub(crate) fn open(path: &CStr, create: bool) -> Result<Self> {
        if path.to_bytes().first() != Some(&b'/') {
            return Err(EINVAL);
        }
        // SAFETY: `path` is NUL-terminated.
        match unsafe { rdif_path_is_pseudo(path.as_char_ptr()) } {
            0 => {}
            1 => return Err(EINVAL),
            e => return Err(Error::from_errno(e)),
        }
        let flags = bindings::O_RDWR | bindings::O_LARGEFILE;
        let f = match Self::filp_open(path, flags) {
            Err(e) if e == ENOENT && create => {
                Self::filp_open(path, flags | bindings::O_CREAT | bindings::O_EXCL)?
            }
            r => r?,
        };
        // SAFETY: `f` is a valid open file.
        let (reg, bdev) = unsafe { (rdif_file_is_reg(f.as_ptr()), rdif_file_is_bdev(f.as_ptr())) };
        // SAFETY: `f` is a valid open file.
        if (!reg && !bdev) || (reg && unsafe { rdif_file_is_pseudo(f.as_ptr()) }) {
            // SAFETY: `f` was opened above and is not used after this.
            unsafe { bindings::filp_close(f.as_ptr(), core::ptr::null_mut()) };
            return Err(EINVAL);
        }
        if !bdev {
            // INVARIANT: opened above; a regular file.
            return Ok(Self { ptr: f });
        }
        // SAFETY: `f` was opened above and is not used after this.
        unsafe { bindings::filp_close(f.as_ptr(), core::ptr::null_mut()) };
        // `O_EXCL` on a block device claims it with the file as holder.
        let f = Self::filp_open(path, flags | bindings::O_EXCL)?;
        // SAFETY: `f` is a valid open file.
        if !unsafe { rdif_file_is_bdev(f.as_ptr()) } {
            // Replaced since the first open.
            // SAFETY: `f` was opened above and is not used after this.
            unsafe { bindings::filp_close(f.as_ptr(), core::ptr::null_mut()) };
            return Err(EBUSY);
        }
        // INVARIANT: opened above; a block device.
        Ok(Self { ptr: f })
    }

    /// What identifies the file or device while it is open: two open
    /// `BackingFile`s have the same identity exactly if they are the same
    /// file or device.
    pub(crate) fn identity(&self) -> usize {
        // SAFETY: `self.ptr` is a valid open file (type invariant); the
        // inode lives at least as long as the open file.
        unsafe { rdif_file_inode(self.ptr.as_ptr()) as usize }
    }

    /// Current size in bytes (for a block device, its capacity).
    pub(crate) fn size(&self) -> u64 {
        // SAFETY: `self.ptr` is a valid open file (type invariant).
        let size = unsafe { rdif_file_size(self.ptr.as_ptr()) };
        u64::try_from(size).unwrap_or(0)
    }

    /// Whether this is a block device (rather than a regular file).
    pub(crate) fn is_block_device(&self) -> bool {
        // SAFETY: `self.ptr` is a valid open file (type invariant).
        unsafe { rdif_file_is_bdev(self.ptr.as_ptr()) }
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
        // SAFETY: the file is valid (type invariant); `vec`'s first
        // `bufs.len()` entries describe `bufs`' slices, valid for reads
        // during the call (the write path only reads through them).
        let n = unsafe {
            rdif_file_write_kvec(
                self.ptr.as_ptr(),
                vec.as_ptr(),
                bufs.len() as core::ffi::c_ulong,
                at,
            )
        };
        moved(n, bytes)
    }

    /// Moves the first `bytes` of `bio`'s data between its pages and `pos`
    /// of the file, with one iov_iter over the bio's segments (no copy of
    /// the driver's own: the file's write path reads the submitter's
    /// pages, which may change meanwhile, like any write's). The pages are
    /// never turned into Rust references.
    fn rw_bio<A: Access>(&self, bio: &Bio<'_, A>, bytes: u32, pos: u64, write: bool) -> Result {
        let at = loff(pos)?;
        loff(pos.checked_add(bytes.into()).ok_or(EFBIG)?)?;
        // SAFETY: the file is valid (type invariant); the bio and its pages
        // stay valid while `bio` lives (its invariant); the helper hands
        // `vfs_iter_*` an iterator over them, at most `bytes <= bi_size`.
        let n = unsafe { rdif_file_rw_bio(self.ptr.as_ptr(), bio.as_ptr(), at, bytes, write) };
        moved(n, bytes.into())
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
        let (mut min_size, mut mem_align) = (0, 0);
        // SAFETY: the file is valid (type invariant); the out pointers are
        // valid for writes.
        unsafe { rdif_file_dio_align(self.ptr.as_ptr(), &mut min_size, &mut mem_align) }.then_some(
            DirectIoAlign {
                min_size,
                mem_align,
            },
        )
    }

    /// Starts moving the whole of `rq`'s data between its pages and `pos`
    /// of the file (a write if `write`), with one kiocb over the request's
    /// segments, as direct I/O that the file may complete later, from any
    /// context. Use it only if [`Self::direct_io_align`] allows, with
    /// requests aligned as it says. Once started, the request is the file's:
    /// it comes back through [`super::Operations::file_done`] with the
    /// result, perhaps before this returns. If it cannot be started (no
    /// memory for the segment array of a request of several bios), it is
    /// handed back untouched.
    ///
    /// The queue's tag set must have been created with room for the kiocb
    /// ([`super::TagSet::new`] with `file_io`), or the request comes back
    /// with `EINVAL`.
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
        let raw = rq.into_raw();
        // On 0 the request completes through `->complete`, which rebuilds
        // its `Pending`; on an error (the helper checks the PDU's room) it
        // was not touched and is handed back below.
        // SAFETY: the file is valid (type invariant); `raw` is a started
        // request that nothing else ends (it came from a `Pending`).
        let r = unsafe { rdif_rq_file_start(self.ptr.as_ptr(), raw.as_ptr(), at, write) };
        if r == 0 {
            return Ok(());
        }
        // SAFETY: not started (above): still a started request that only
        // this `Pending` ends.
        Err((unsafe { Pending::from_raw(raw) }, Error::from_errno(r)))
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
        to_result(unsafe { rdif_file_punch(self.ptr.as_ptr(), loff(pos)?, loff(len)?) })
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
