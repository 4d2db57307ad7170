// SPDX-License-Identifier: GPL-2.0

//! What every store's accesses hand out, and how they fail.

use super::mem::Chunk;
use kernel::prelude::*;

/// Why a store access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreError {
    /// Memory ran short. Nothing was changed (or, for a backing file,
    /// nothing that a retry of the whole request does not write again):
    /// the request is retried later.
    NoMemory,
    /// The backing file or device failed.
    Io,
}

/// Where one interval of a write goes.
pub(crate) enum Slot<'a> {
    /// Into these bytes: the interval's data and metadata, which the
    /// writer must fill completely (their contents are unspecified).
    Stored {
        /// `interval` bytes of data.
        data: &'a mut [u8],
        /// `metadata_size` bytes of metadata.
        meta: &'a mut [u8],
    },
    /// Into this block of the memory store, which holds just this
    /// interval ([`super::CHUNK`] bytes of data): to fill like
    /// [`Slot::Stored`], or to exchange for a block of data of the
    /// writer's own, which saves the copy.
    Whole {
        /// The block's data.
        data: &'a mut KBox<Chunk>,
        /// `metadata_size` bytes of metadata.
        meta: &'a mut [u8],
    },
    /// Nowhere: a concurrent discard freed the interval's place after the
    /// write reserved it, and it could not be allocated again. The discard
    /// is ordered after the write for this interval, which keeps reading
    /// as zeroes with escape PI (memory stores only).
    Gone,
}

impl<'a> Slot<'a> {
    /// The bytes to fill with the interval's data and metadata (`None`
    /// for [`Slot::Gone`]).
    pub(crate) fn bytes(self) -> Option<(&'a mut [u8], &'a mut [u8])> {
        match self {
            Slot::Stored { data, meta } => Some((data, meta)),
            Slot::Whole { data, meta } => Some((&mut data.0[..], meta)),
            Slot::Gone => None,
        }
    }
}
