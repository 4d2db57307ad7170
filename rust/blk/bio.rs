// SPDX-License-Identifier: GPL-2.0

//! Bios of a request: their data and integrity payloads.
//!
//! C headers: [`include/linux/bio.h`](srctree/include/linux/bio.h),
//! [`include/linux/bio-integrity.h`](srctree/include/linux/bio-integrity.h)

use core::{ffi::c_void, marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings,
    iov::{IovIterDest, IovIterSource},
};

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
    fn rdif_bio_iov_iter(bio: *mut bindings::bio, dir: u32, iter: *mut bindings::iov_iter);
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

/// How the driver may access the pages of a bio and of its integrity
/// payload: only read them ([`Source`]), or also write them ([`Sink`]).
pub(crate) trait Access: Copy {}

/// Pages the driver may only read: a write's data and PI, which the
/// submitter may have pinned read-only (an `O_DIRECT` write from a
/// read-only mapping) and may change while the device works.
#[derive(Clone, Copy)]
pub(crate) struct Source;

/// Pages the driver may write: a read's, which the block layer pinned or
/// allocated for it to fill, or a copy the driver made and owns.
#[derive(Clone, Copy)]
pub(crate) struct Sink;

impl Access for Source {}
impl Access for Sink {}

/// A bio of a request that the driver owns; `A` says whether the driver
/// may write its pages.
///
/// # Invariants
///
/// `ptr` points to a valid `struct bio` that belongs to a request the driver
/// is processing (or is a clone of one that the driver owns and has not
/// submitted yet), and stays valid (with its pages and integrity payload)
/// for `'a`. The driver only reads the bio's fields; it never changes them.
/// With `A` = [`Sink`], its data pages and payload may be written for `'a`.
#[derive(Clone, Copy)]
pub(crate) struct Bio<'a, A: Access = Source> {
    ptr: NonNull<bindings::bio>,
    _p: PhantomData<(&'a bindings::bio, A)>,
}

impl<'a> Bio<'a, Sink> {
    /// The bio's data, as bytes that go into its pages (a read's).
    pub(crate) fn data_dest(&self) -> DataStream<'a, false> {
        DataStream::dest(Some(*self), false)
    }
}

impl<'a, A: Access> Bio<'a, A> {
    /// Wraps a bio pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid bio of a started request that is not
    /// completed for `'a`, or to a clone of one that the caller owns and
    /// does not submit for `'a`; with `A` = [`Sink`], one whose pages the
    /// driver may write (see [`Sink`]).
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
    pub(crate) fn next(&self) -> Option<Bio<'a, A>> {
        // SAFETY: `self.ptr` is a valid bio by the type invariant; the chain
        // of a started request's bios does not change until it ends.
        let next = unsafe { (*self.ptr.as_ptr()).bi_next };
        // SAFETY: bios chained to a request's bio belong to the same request
        // (of the same direction) and live as long as it does.
        NonNull::new(next).map(|p| unsafe { Bio::from_raw(p) })
    }

    /// An iov_iter of direction `dir` (`ITER_SOURCE` or `ITER_DEST`) over
    /// the bio's data from its current position, into `iter`.
    ///
    /// # Safety
    ///
    /// `dir` must be an access the driver is allowed (`ITER_DEST` only
    /// for a [`Sink`] bio or a request's pages the I/O fills), and the
    /// iterator must not be used after `'a`.
    pub(super) unsafe fn iov_iter(&self, dir: u32, iter: &mut bindings::iov_iter) {
        // SAFETY: `self.ptr` is a valid bio whose pages stay valid for
        // `'a` (type invariant); `iter` is valid for writes.
        unsafe { rdif_bio_iov_iter(self.ptr.as_ptr(), dir, iter) };
    }

    /// The same bio, to be read only.
    pub(crate) fn as_source(&self) -> Bio<'a, Source> {
        // INVARIANT: reading is allowed whatever `A` is.
        Bio {
            ptr: self.ptr,
            _p: PhantomData,
        }
    }

    /// First 512-byte sector of the bio's data.
    pub(crate) fn sector(&self) -> u64 {
        // SAFETY: `self.ptr` is a valid bio by the type invariant, and the
        // driver does not change `bi_iter`.
        unsafe { (*self.ptr.as_ptr()).bi_iter.bi_sector }
    }

    /// The I/O priority.
    pub(crate) fn ioprio(&self) -> u16 {
        // SAFETY: as in `sector`.
        unsafe { (*self.ptr.as_ptr()).bi_ioprio }
    }

    /// Number of data bytes.
    pub(crate) fn size(&self) -> u32 {
        // SAFETY: as in `sector`.
        unsafe { (*self.ptr.as_ptr()).bi_iter.bi_size }
    }

    /// The bio's data, as bytes that come from its pages.
    pub(crate) fn data_source(&self) -> DataStream<'a, true> {
        DataStream::source(Some(*self), false)
    }

    /// The integrity payload attached to the bio, if any.
    pub(crate) fn integrity(&self) -> Option<Integrity<'a, A>> {
        // SAFETY: `self.ptr` is a valid bio by the type invariant.
        let bip = unsafe { rdif_bio_integrity(self.ptr.as_ptr()) };
        // INVARIANT: a non-NULL payload of a valid bio lives as long as it.
        NonNull::new(bip).map(|bip| Integrity {
            bip,
            _p: PhantomData,
        })
    }
}

/// The integrity payload (`struct bio_integrity_payload`) of a bio; `A`
/// as for its [`Bio`].
///
/// # Invariants
///
/// `bip` points to the valid integrity payload of a bio that is valid for
/// `'a`, whose buffer may be written if `A` is [`Sink`].
#[derive(Clone, Copy)]
pub(crate) struct Integrity<'a, A: Access = Source> {
    bip: NonNull<RawBip>,
    _p: PhantomData<(&'a RawBip, A)>,
}

impl<'a, A: Access> Integrity<'a, A> {
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

    /// The payload's seed: the reference tag of its first interval as the
    /// submitter sees it (before the block layer maps it to the device's).
    pub(crate) fn seed(&self) -> u64 {
        let mut iter = bindings::bvec_iter::default();
        // SAFETY: `self.bip` is valid; `iter` is a valid out pointer.
        unsafe { rdif_bip_iter(self.bip.as_ptr(), &mut iter) };
        iter.bi_sector
    }

    /// Iterator over the metadata segments, each within one page.
    pub(crate) fn segments(&self) -> Segments<'a, A> {
        let mut iter = bindings::bvec_iter::default();
        // SAFETY: `self.bip` is valid; `iter` is a valid out pointer.
        unsafe { rdif_bip_iter(self.bip.as_ptr(), &mut iter) };
        Segments {
            bip: self.bip,
            iter,
            _p: PhantomData,
        }
    }
}

/// Iterator over the single-page segments of a bio's integrity buffer.
///
/// # Invariants
///
/// `bip` is valid for `'a` and `iter` is a position inside its buffer.
pub(crate) struct Segments<'a, A: Access = Source> {
    bip: NonNull<RawBip>,
    iter: bindings::bvec_iter,
    _p: PhantomData<(&'a (), A)>,
}

impl<'a, A: Access> Segments<'a, A> {
    /// Bytes not yet iterated.
    pub(crate) fn remaining(&self) -> u32 {
        self.iter.bi_size
    }
}

impl<'a, A: Access> Iterator for Segments<'a, A> {
    type Item = Segment<'a, A>;

    fn next(&mut self) -> Option<Segment<'a, A>> {
        let mut page = core::ptr::null_mut();
        let (mut offset, mut len) = (0u32, 0u32);
        // SAFETY: the payload is valid for `'a` and `self.iter` is a
        // position inside its buffer (type invariant); the out pointers are
        // valid locals.
        let more = unsafe {
            rdif_bip_next_segment(
                self.bip.as_ptr(),
                &mut self.iter,
                &mut page,
                &mut offset,
                &mut len,
            )
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

/// A segment of a bio's integrity buffer that lies within one page.
///
/// # Invariants
///
/// `offset + len <= PAGE_SIZE`, and `page` stays valid for `'a`, writable
/// if `A` is [`Sink`].
pub(crate) struct Segment<'a, A: Access = Source> {
    page: NonNull<bindings::page>,
    offset: usize,
    len: usize,
    _p: PhantomData<(&'a (), A)>,
}

impl<A: Access> Segment<'_, A> {
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
}

impl Segment<'_, Sink> {
    /// Copies `src` into the segment from its byte `off` on
    /// (`memcpy_to_page`, which also flushes the data cache where needed).
    fn copy_in(&mut self, off: usize, src: &[u8]) -> Result<(), ShortBuffer> {
        if off.checked_add(src.len()).is_none_or(|end| end > self.len) {
            return Err(ShortBuffer);
        }
        // SAFETY: as in `copy_out`; the bytes written lie in the segment,
        // which the driver may write (`Sink`, type invariant).
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
pub(crate) struct Cursor<'a, A: Access = Source> {
    segs: Segments<'a, A>,
    cur: Option<Segment<'a, A>>,
    off: usize,
}

/// The buffer ended before the cursor could move as far as asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ShortBuffer;

impl<'a, A: Access> Cursor<'a, A> {
    /// A cursor at the start of `segs`.
    pub(crate) fn new(segs: Segments<'a, A>) -> Self {
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
        mut f: impl FnMut(&mut Segment<'a, A>, usize, usize) -> Result<(), ShortBuffer>,
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

    /// Moves over the next `n` bytes without touching them.
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), ShortBuffer> {
        self.walk(n, |_, _, _| Ok(()))
    }
}

impl Cursor<'_, Sink> {
    /// Copies `src` into the next `src.len()` bytes of the buffer.
    pub(crate) fn copy_from(&mut self, src: &[u8]) -> Result<(), ShortBuffer> {
        let mut done = 0;
        self.walk(src.len(), |seg, off, k| {
            let piece = src.get(done..done + k).ok_or(ShortBuffer)?;
            done += k;
            seg.copy_in(off, piece)
        })
    }
}
/// The data of a bio, or of a bio and the bios chained after it (a
/// request's), as one stream of bytes, copied with the kernel's bvec
/// `iov_iter`: one call per piece, however many pages it spans. `SOURCE` says which way the bytes
/// go: out of the bios' pages (a write's data, [`DataStream::copy_to`]) or
/// into them (a read's, [`DataStream::copy_from`]).
///
/// # Invariants
///
/// `iter` is an `ITER_BVEC` iov_iter, `ITER_SOURCE` if `SOURCE` else
/// `ITER_DEST`, over what is left of the data of a bio of a started
/// request; `next` is the bio to go on with after that one, if any (the
/// next of the chain). The request's bios,
/// their chain and their pages stay valid and unchanged for `'a`. If not
/// `SOURCE`, the bios are [`Sink`] ones: the driver may write their pages.
pub(crate) struct DataStream<'a, const SOURCE: bool> {
    iter: bindings::iov_iter,
    next: Option<Bio<'a>>,
}

impl<'a, const SOURCE: bool> DataStream<'a, SOURCE> {
    /// The data of `bio`, and with `chain` of the bios chained after it;
    /// without `SOURCE`, `bio` must be a [`Sink`] one (see [`Self::dest`]).
    fn new(bio: Option<Bio<'a>>, chain: bool) -> Self {
        let mut s = Self {
            // An empty iov_iter of the right direction until `bio` is set.
            iter: bindings::iov_iter {
                data_source: SOURCE,
                ..Default::default()
            },
            next: bio,
        };
        s.next_bio();
        if !chain {
            s.next = None;
        }
        s
    }

    /// Moves on to the next bio; `false` if there is none.
    fn next_bio(&mut self) -> bool {
        let Some(bio) = self.next else {
            return false;
        };
        self.next = bio.next();
        let dir = if SOURCE {
            bindings::ITER_SOURCE
        } else {
            bindings::ITER_DEST
        };
        // INVARIANT: `iter` becomes an iov_iter of direction `dir` over the
        // bio's data from its current position.
        // SAFETY: a stream that fills pages is only made of `Sink` bios
        // (`DataStream::dest`); the iterator is used for `'a` at most.
        unsafe { bio.iov_iter(dir, &mut self.iter) };
        true
    }

    /// Bytes left in the current bio.
    fn left(&self) -> usize {
        // SAFETY: `count` is the member of the anonymous union that an
        // ITER_BVEC iov_iter uses (type invariant).
        unsafe { self.iter.__bindgen_anon_1.__bindgen_anon_1.as_ref().count }
    }

    /// Moves `len` bytes with `step`, going on from bio to bio:
    /// `step(iter, done)` moves bytes `done..` through the current bio's
    /// iov_iter and returns how many it moved (none: the stream is short).
    fn transfer(
        &mut self,
        len: usize,
        mut step: impl FnMut(*mut bindings::iov_iter, usize) -> usize,
    ) -> Result<(), ShortBuffer> {
        let mut done = 0;
        while done < len {
            if self.left() == 0 && !self.next_bio() {
                return Err(ShortBuffer);
            }
            match step(&mut self.iter, done) {
                0 => return Err(ShortBuffer),
                k => done += k,
            }
        }
        Ok(())
    }

    /// Moves over the next `n` bytes without touching them.
    pub(crate) fn skip(&mut self, mut n: usize) -> Result<(), ShortBuffer> {
        while n > 0 {
            if self.left() == 0 && !self.next_bio() {
                return Err(ShortBuffer);
            }
            let k = n.min(self.left());
            // SAFETY: `self.iter` is a valid iov_iter (type invariant) and
            // `k` is at most its count.
            unsafe { bindings::iov_iter_advance(&mut self.iter, k) };
            n -= k;
        }
        Ok(())
    }
}

impl<'a> DataStream<'a, true> {
    /// The data of `bio` (with `chain`, and of the bios chained after it),
    /// to be read.
    pub(super) fn source<A: Access>(bio: Option<Bio<'a, A>>, chain: bool) -> Self {
        Self::new(bio.map(|b| b.as_source()), chain)
    }

    /// Copies the next `out.len()` bytes of the bios into `out`.
    ///
    /// The pages may belong to a user who changes them while the device
    /// works (an O_DIRECT writer reusing its buffer): the kernel's copy
    /// reads them without the driver ever holding a Rust reference to
    /// them, and `out` holds whatever the bytes were at the time.
    pub(crate) fn copy_to(&mut self, out: &mut [u8]) -> Result<(), ShortBuffer> {
        self.transfer(out.len(), |iter, done| {
            // SAFETY: `iter` is the stream's valid ITER_SOURCE iov_iter,
            // whose pages may be read for `'a`, and this is its only user
            // while the reference lives (type invariant).
            let src = unsafe { IovIterSource::from_raw(iter) };
            out.get_mut(done..)
                .map_or(0, |rest| src.copy_from_iter(rest))
        })
    }
}

impl<'a> DataStream<'a, false> {
    /// The data of `bio` (with `chain`, and of the bios chained after it),
    /// to be filled.
    pub(super) fn dest(bio: Option<Bio<'a, Sink>>, chain: bool) -> Self {
        // INVARIANT: `Sink` bios, whose pages the driver may write.
        Self::new(bio.map(|b| b.as_source()), chain)
    }

    /// Copies `src` into the next `src.len()` bytes of the bios.
    pub(crate) fn copy_from(&mut self, src: &[u8]) -> Result<(), ShortBuffer> {
        self.transfer(src.len(), |iter, done| {
            // `iter` has no other user while the reference lives.
            // SAFETY: the stream's valid ITER_DEST iov_iter over pages the
            // driver may write for `'a` (type invariant: `Sink` bios).
            let dst = unsafe { IovIterDest::from_raw(iter) };
            src.get(done..).map_or(0, |rest| dst.copy_to_iter(rest))
        })
    }
}
