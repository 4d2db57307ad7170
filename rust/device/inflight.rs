// SPDX-License-Identifier: GPL-2.0

//! The byte ranges of the requests in flight to a backing file, so that
//! requests that overlap one of them wait for it (as a disk serialises
//! overlapping commands): readers never see a block of a write in
//! progress, and overlapping writes land in the order they came.

use crate::stats::Tally;
use kernel::{alloc::AllocError, prelude::*};

/// The bytes a request touches, and whether it changes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    /// First byte.
    pub(crate) start: u64,
    /// One past the last byte.
    pub(crate) end: u64,
    /// Whether the request changes the bytes (a write, discard, ...).
    pub(crate) write: bool,
}

impl Span {
    /// Whether one of the two must wait for the other: they share a byte
    /// and at least one of them changes it.
    pub(crate) fn conflicts(&self, other: &Span) -> bool {
        self.start < other.end && other.start < self.end && (self.write || other.write)
    }
}

/// The spans of the requests in flight, each under its request's key, with
/// what was counted for it (see [`Tally`]).
///
/// # Invariants
///
/// `spans` never grows beyond the capacity it was created with (no
/// allocation after creation).
pub(crate) struct InFlight {
    spans: KVVec<(usize, Span, Tally)>,
    /// A request waits for one of `spans` to leave.
    waiting: bool,
    /// Most spans in flight at once.
    peak: usize,
}

impl InFlight {
    /// Room for `max` requests in flight.
    pub(crate) fn new(max: usize) -> Result<Self, AllocError> {
        Ok(InFlight {
            spans: KVVec::with_capacity(max, GFP_KERNEL)?,
            waiting: false,
            peak: 0,
        })
    }

    /// Whether a request of `span` may start now; if not, remembers that
    /// one waits (see [`Self::leave`]).
    pub(crate) fn admit(&mut self, span: &Span) -> bool {
        let clear = !self.spans.iter().any(|(_, s, _)| s.conflicts(span));
        self.waiting |= !clear;
        clear
    }

    /// Records the request `key` of `span` as in flight, with its counts
    /// `t`. Hands `t` back if there is no room (more requests than it was
    /// made for).
    pub(crate) fn enter(&mut self, key: usize, span: Span, t: Tally) -> Result<(), Tally> {
        if let Err(e) = self.spans.push_within_capacity((key, span, t)) {
            return Err(e.0 .2);
        }
        self.peak = self.peak.max(self.spans.len());
        Ok(())
    }

    /// The request `key` is done. Returns its counts, and whether a
    /// request was waiting (it may start now: wake whoever starts
    /// requests).
    pub(crate) fn leave(&mut self, key: usize) -> (Option<Tally>, bool) {
        let mut t = None;
        if let Some(i) = self.spans.iter().position(|(k, _, _)| *k == key) {
            let last = self.spans.len() - 1;
            self.spans.swap(i, last);
            t = self.spans.pop().map(|(_, _, t)| t);
        }
        (t, core::mem::take(&mut self.waiting))
    }

    /// Most requests that were in flight at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak
    }
}
