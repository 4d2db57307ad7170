// SPDX-License-Identifier: GPL-2.0

//! Bios of a request: data segments and integrity payloads.
//!
//! C headers: [`include/linux/bio.h`](srctree/include/linux/bio.h),
//! [`include/linux/bio-integrity.h`](srctree/include/linux/bio-integrity.h)

use core::{ffi::c_void, marker::PhantomData, ptr::NonNull};
use kernel::bindings;

/// Opaque stand-in for `struct bio_integrity_payload`, which the kernel's
/// bindings do not include.
#[repr(C)]
pub(crate) struct RawBip {
    _opaque: [u8; 0],
}

// The bindings' structs end in zero-length arrays, which this lint flags;
// they are only passed by pointer here.
#[allow(improper_ctypes)]
extern "C" {
    fn rdif_bio_next_segment(
        bio: *mut bindings::bio,
        iter: *mut bindings::bvec_iter,
        page: *mut *mut bindings::page,
        offset: *mut u32,
        len: *mut u32,
    ) -> bool;
    fn rdif_bio_integrity(bio: *mut bindings::bio) -> *mut RawBip;
    fn rdif_bip_flags(bip: *const RawBip) -> u16;
    fn rdif_bip_app_tag(bip: *const RawBip) -> u16;
    fn rdif_bip_iter(bip: *const RawBip, iter: *mut bindings::bvec_iter);
    fn rdif_bip_next_segment(
        bip: *mut RawBip,
        iter: *mut bindings::bvec_iter,
        page: *mut *mut bindings::page,
        offset: *mut u32,
        len: *mut u32,
    ) -> bool;
    fn rdif_memcpy_from_page(to: *mut c_void, page: *mut bindings::page, off: usize, len: usize);
    fn rdif_memcpy_to_page(page: *mut bindings::page, off: usize, from: *const c_void, len: usize);
}

/// A bio of a request that the driver owns.
///
/// # Invariants
///
/// `ptr` points to a valid `struct bio` that belongs to a request the driver
/// is processing, and stays valid (with its pages and integrity payload) for
/// `'a`. The driver only reads the bio's fields; it never changes them.
#[derive(Clone, Copy)]
pub(crate) struct Bio<'a> {
    ptr: NonNull<bindings::bio>,
    _p: PhantomData<&'a bindings::bio>,
}

impl<'a> Bio<'a> {
    /// Wraps a bio pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid bio of a started request that is not
    /// completed for `'a`.
    pub(crate) unsafe fn from_raw(ptr: NonNull<bindings::bio>) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            ptr,
            _p: PhantomData,
        }
    }

    /// The raw bio, valid for `'a` (type invariant).
    pub(crate) fn as_ptr(&self) -> *mut bindings::bio {
        self.ptr.as_ptr()
    }

    /// The next bio of the same request, if any.
    pub(crate) fn next(&self) -> Option<Bio<'a>> {
        // SAFETY: `self.ptr` is a valid bio by the type invariant; the chain
        // of a started request's bios does not change until it ends.
        let next = unsafe { (*self.ptr.as_ptr()).bi_next };
        // SAFETY: bios chained to a request's bio belong to the same request
        // and live as long as it does.
        NonNull::new(next).map(|p| unsafe { Bio::from_raw(p) })
    }

    /// First 512-byte sector of the bio's data.
    pub(crate) fn sector(&self) -> u64 {
        // SAFETY: `self.ptr` is a valid bio by the type invariant, and the
        // driver does not change `bi_iter`.
        unsafe { (*self.ptr.as_ptr()).bi_iter.bi_sector }
    }

    /// Number of data bytes.
    pub(crate) fn size(&self) -> u32 {
        // SAFETY: as in `sector`.
        unsafe { (*self.ptr.as_ptr()).bi_iter.bi_size }
    }

    /// Iterator over the data segments, each within one page.
    pub(crate) fn segments(&self) -> Segments<'a> {
        // SAFETY: as in `sector`: a copy of the bio's position.
        let iter = unsafe { (*self.ptr.as_ptr()).bi_iter };
        Segments {
            source: Source::Data(self.ptr),
            iter,
            _p: PhantomData,
        }
    }

    /// The integrity payload attached to the bio, if any.
    pub(crate) fn integrity(&self) -> Option<Integrity<'a>> {
        // SAFETY: `self.ptr` is a valid bio by the type invariant.
        let bip = unsafe { rdif_bio_integrity(self.ptr.as_ptr()) };
        // INVARIANT: a non-NULL payload of a valid bio lives as long as it.
        NonNull::new(bip).map(|bip| Integrity {
            bip,
            _p: PhantomData,
        })
    }
}

/// The integrity payload (`struct bio_integrity_payload`) of a bio.
///
/// # Invariants
///
/// `bip` points to the valid integrity payload of a bio that is valid for
/// `'a`.
#[derive(Clone, Copy)]
pub(crate) struct Integrity<'a> {
    bip: NonNull<RawBip>,
    _p: PhantomData<&'a RawBip>,
}

impl<'a> Integrity<'a> {
    /// The payload's `bip_flags` (see [`super::bip`]).
    pub(crate) fn flags(&self) -> u16 {
        // SAFETY: `self.bip` is valid by the type invariant.
        unsafe { rdif_bip_flags(self.bip.as_ptr()) }
    }

    /// The application tag to check when `BIP_CHECK_APPTAG` is set.
    pub(crate) fn app_tag(&self) -> u16 {
        // SAFETY: `self.bip` is valid by the type invariant.
        unsafe { rdif_bip_app_tag(self.bip.as_ptr()) }
    }

    /// Iterator over the metadata segments, each within one page.
    pub(crate) fn segments(&self) -> Segments<'a> {
        let mut iter = bindings::bvec_iter::default();
        // SAFETY: `self.bip` is valid; `iter` is a valid out pointer.
        unsafe { rdif_bip_iter(self.bip.as_ptr(), &mut iter) };
        Segments {
            source: Source::Integrity(self.bip),
            iter,
            _p: PhantomData,
        }
    }
}

#[derive(Clone, Copy)]
enum Source {
    Data(NonNull<bindings::bio>),
    Integrity(NonNull<RawBip>),
}

/// Iterator over the single-page segments of a bio's data or integrity
/// buffer.
///
/// # Invariants
///
/// `source` is valid for `'a` and `iter` is a position inside it.
pub(crate) struct Segments<'a> {
    source: Source,
    iter: bindings::bvec_iter,
    _p: PhantomData<&'a ()>,
}

impl<'a> Segments<'a> {
    /// Bytes not yet iterated.
    pub(crate) fn remaining(&self) -> u32 {
        self.iter.bi_size
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        let mut page = core::ptr::null_mut();
        let (mut offset, mut len) = (0u32, 0u32);
        let more = match self.source {
            // SAFETY: the source is valid for `'a` and `self.iter` is a
            // position inside it (type invariant); the out pointers are
            // valid locals.
            Source::Data(bio) => unsafe {
                rdif_bio_next_segment(
                    bio.as_ptr(),
                    &mut self.iter,
                    &mut page,
                    &mut offset,
                    &mut len,
                )
            },
            // SAFETY: as above.
            Source::Integrity(bip) => unsafe {
                rdif_bip_next_segment(
                    bip.as_ptr(),
                    &mut self.iter,
                    &mut page,
                    &mut offset,
                    &mut len,
                )
            },
        };
        if !more {
            return None;
        }
        // INVARIANT: the helper returned a single-page segment of a buffer
        // that is valid for `'a`.
        NonNull::new(page).map(|page| Segment {
            page,
            offset: offset as usize,
            len: len as usize,
            _p: PhantomData,
        })
    }
}

/// A segment of a bio's data or integrity buffer that lies within one page.
///
/// # Invariants
///
/// `offset + len <= PAGE_SIZE`, and `page` stays valid for `'a`.
pub(crate) struct Segment<'a> {
    page: NonNull<bindings::page>,
    offset: usize,
    len: usize,
    _p: PhantomData<&'a ()>,
}

impl Segment<'_> {
    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Copies `out.len()` bytes of the segment from its byte `off` into
    /// `out`.
    ///
    /// The page may belong to a user who changes it while the device
    /// works (an O_DIRECT writer reusing its buffer): `memcpy_from_page`
    /// copies it without the driver ever holding a Rust reference to it,
    /// and `out` holds whatever the bytes were at the time of the copy.
    fn copy_out(&self, off: usize, out: &mut [u8]) -> Result<(), ShortBuffer> {
        if off.checked_add(out.len()).is_none_or(|end| end > self.len) {
            return Err(ShortBuffer);
        }
        // SAFETY: `self.page` is valid for `'a` and `offset + off +
        // out.len() <= offset + len <= PAGE_SIZE` (type invariant and the
        // check above); `out` is a valid destination of that length.
        unsafe {
            rdif_memcpy_from_page(
                out.as_mut_ptr().cast(),
                self.page.as_ptr(),
                self.offset + off,
                out.len(),
            )
        };
        Ok(())
    }

    /// Copies `src` into the segment from its byte `off` on
    /// (`memcpy_to_page`, which also flushes the data cache where needed).
    fn copy_in(&mut self, off: usize, src: &[u8]) -> Result<(), ShortBuffer> {
        if off.checked_add(src.len()).is_none_or(|end| end > self.len) {
            return Err(ShortBuffer);
        }
        // SAFETY: as in `copy_out`; the bytes written lie in the segment,
        // which is the buffer of a request the driver is serving.
        unsafe {
            rdif_memcpy_to_page(
                self.page.as_ptr(),
                self.offset + off,
                src.as_ptr().cast(),
                src.len(),
            )
        };
        Ok(())
    }
}

/// A byte cursor over [`Segments`], for walking a buffer in units (such as
/// protection intervals) that do not line up with its segments.
pub(crate) struct Cursor<'a> {
    segs: Segments<'a>,
    cur: Option<Segment<'a>>,
    off: usize,
}

/// The buffer ended before the cursor could move as far as asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ShortBuffer;

impl<'a> Cursor<'a> {
    /// A cursor at the start of `segs`.
    pub(crate) fn new(segs: Segments<'a>) -> Self {
        Self {
            segs,
            cur: None,
            off: 0,
        }
    }

    /// Moves to a segment with bytes left, if the current one is used up.
    fn advance(&mut self) -> Result<(), ShortBuffer> {
        while self.cur.as_ref().is_none_or(|s| self.off >= s.len()) {
            self.cur = Some(self.segs.next().ok_or(ShortBuffer)?);
            self.off = 0;
        }
        Ok(())
    }

    /// Calls `f(segment, offset, k)` for the next `n` bytes, in one or
    /// more pieces of `k` bytes within one segment each.
    fn walk(
        &mut self,
        mut n: usize,
        mut f: impl FnMut(&mut Segment<'a>, usize, usize) -> Result<(), ShortBuffer>,
    ) -> Result<(), ShortBuffer> {
        while n > 0 {
            self.advance()?;
            let off = self.off;
            let seg = self.cur.as_mut().ok_or(ShortBuffer)?;
            let k = n.min(seg.len() - off);
            f(seg, off, k)?;
            self.off += k;
            n -= k;
        }
        Ok(())
    }

    /// Copies the next `out.len()` bytes of the buffer into `out`.
    pub(crate) fn copy_to(&mut self, out: &mut [u8]) -> Result<(), ShortBuffer> {
        let mut done = 0;
        self.walk(out.len(), |seg, off, k| {
            let dst = out.get_mut(done..done + k).ok_or(ShortBuffer)?;
            done += k;
            seg.copy_out(off, dst)
        })
    }

    /// Copies `src` into the next `src.len()` bytes of the buffer.
    pub(crate) fn copy_from(&mut self, src: &[u8]) -> Result<(), ShortBuffer> {
        let mut done = 0;
        self.walk(src.len(), |seg, off, k| {
            let piece = src.get(done..done + k).ok_or(ShortBuffer)?;
            done += k;
            seg.copy_in(off, piece)
        })
    }

    /// Moves over the next `n` bytes without touching them.
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), ShortBuffer> {
        self.walk(n, |_, _, _| Ok(()))
    }
}
