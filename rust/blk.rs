// SPDX-License-Identifier: GPL-2.0

//! Block-layer abstractions for rdif.
//!
//! The 7.3 `kernel::block::mq` API cannot report a request's position,
//! direction or data, end a request with an error status, or describe an
//! integrity profile in the queue limits. This module provides those pieces
//! as a thin, documented layer over `kernel::bindings` and a few C helpers
//! (`helpers.c`) for the static inlines bindgen cannot see. With
//! [`crate::ffi`], it holds all of rdif's code that must be trusted to
//! keep Rust's rules; the driver above it is safe Rust.
//!
//! The abstraction starts each request and hands it to the driver as an
//! owned [`Pending`] request, which ends it exactly once: explicitly, or
//! with an I/O error if the driver drops it.

pub(crate) mod bio;
pub(crate) mod disk;
pub(crate) mod file;
pub(crate) mod lower;
mod pdu;
pub(crate) mod request;
pub(crate) mod tag_set;
mod task;
pub(crate) mod wq;

pub(crate) use bio::{Bio, Cursor, ShortBuffer};
pub(crate) use disk::{GenDisk, Limits};
pub(crate) use request::{Op, Pending, Request};
pub(crate) use tag_set::{Operations, TagSet};
pub(crate) use task::{cond_resched, with_backing_io};

/// The status a request completes with (the C `blk_status_t`).
///
/// The values are checked against the C definitions in `helpers.c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Status(u8);

impl Status {
    /// `BLK_STS_NOTSUPP`: the operation is not supported (`-EOPNOTSUPP`).
    pub(crate) const NOT_SUPPORTED: Status = Status(1);
    /// `BLK_STS_PROTECTION`: protection information mismatch (`-EILSEQ`).
    pub(crate) const PROTECTION: Status = Status(8);
    /// `BLK_STS_RESOURCE`: out of memory or another resource (`-ENOMEM`).
    pub(crate) const RESOURCE: Status = Status(9);
    /// `BLK_STS_IOERR`: generic I/O error (`-EIO`).
    pub(crate) const IO_ERROR: Status = Status(10);

    /// A `blk_status_t` as the block layer gave it.
    pub(crate) fn from_raw(raw: u8) -> Self {
        Status(raw)
    }

    /// The raw `blk_status_t` value.
    pub(crate) fn raw(self) -> u8 {
        self.0
    }
}

/// `BLK_FEAT_WRITE_CACHE`: the device has a volatile write cache (flush).
pub(crate) const FEAT_WRITE_CACHE: u32 = 1 << 0;
/// `BLK_FEAT_FUA`: the device supports forced unit access.
pub(crate) const FEAT_FUA: u32 = 1 << 1;
/// `BLK_FEAT_ATOMIC_WRITES`: the device supports atomic writes.
pub(crate) const FEAT_ATOMIC_WRITES: u32 = 1 << 14;

/// `REQ_FUA`: the write must be durable when it completes.
pub(crate) const REQ_FUA: u32 = 1 << kernel::bindings::req_flag_bits___REQ_FUA;
/// `REQ_ATOMIC`: the write must never be torn.
pub(crate) const REQ_ATOMIC: u32 = 1 << kernel::bindings::req_flag_bits___REQ_ATOMIC;

/// Integrity payload flags (`enum bip_flags`), checked in `helpers.c`.
pub(crate) mod bip {
    /// The block layer allocated the buffer (auto-PI), not the submitter.
    pub(crate) const BLOCK_INTEGRITY: u16 = 1 << 0;
    /// Check the guard tag.
    pub(crate) const CHECK_GUARD: u16 = 1 << 5;
    /// Check the reference tag.
    pub(crate) const CHECK_REFTAG: u16 = 1 << 6;
    /// Check the application tag against the payload's app tag.
    pub(crate) const CHECK_APPTAG: u16 = 1 << 7;
    /// Any check requested.
    pub(crate) const CHECK_FLAGS: u16 = CHECK_GUARD | CHECK_REFTAG | CHECK_APPTAG;
}
