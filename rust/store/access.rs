// SPDX-License-Identifier: GPL-2.0

//! What every store's accesses hand out, and how they fail.

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
    /// Nowhere: a concurrent discard freed the interval's place after the
    /// write reserved it, and it could not be allocated again. The discard
    /// is ordered after the write for this interval, which keeps reading
    /// as zeroes with escape PI (memory stores only).
    Gone,
}
