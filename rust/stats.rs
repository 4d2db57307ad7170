// SPDX-License-Identifier: GPL-2.0

//! Per-device counters.
//!
//! Per-CPU counters ([`PerCpuCounters`]): counting on the I/O path is one
//! unlocked add to the CPU's own copy; reading the `stats` file adds the
//! copies up.

use crate::ffi::percpu::PerCpuCounters;
use core::cell::Cell;
use kernel::{fmt, prelude::*};

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident => $text:literal,)*) => {
        /// What a device counts; the names are those of the `stats` file.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub(crate) enum Counter {
            $($(#[doc = $doc])* $name,)*
        }

        impl Counter {
            /// Every counter, in `stats` file order.
            pub(crate) const ALL: &[Counter] = &[$(Counter::$name,)*];

            /// The counter's name in the `stats` file.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(Counter::$name => $text,)*
                }
            }
        }
    };
}

counters! {
    /// Read requests ended (each once, however often it was retried).
    Reads => "reads",
    /// Write requests ended (each once).
    Writes => "writes",
    /// Flush requests ended (each once).
    Flushes => "flushes",
    /// Discard, secure-erase and write-zeroes requests ended (each once).
    Discards => "discards",
    /// Intervals returned by reads.
    ReadIntervals => "read_intervals",
    /// Intervals stored by writes.
    WriteIntervals => "write_intervals",
    /// Intervals whose PI the device checked on write.
    CheckedWrite => "checked_write",
    /// Intervals whose PI the device checked on read.
    CheckedRead => "checked_read",
    /// Writes rejected for a guard mismatch.
    GuardErrorsWrite => "guard_errors_write",
    /// Writes rejected for a reference tag mismatch.
    RefErrorsWrite => "ref_errors_write",
    /// Writes rejected for an application tag mismatch.
    AppErrorsWrite => "app_errors_write",
    /// Reads failed by the device's check for a guard mismatch.
    GuardErrorsRead => "guard_errors_read",
    /// Reads failed by the device's check for a reference tag mismatch.
    RefErrorsRead => "ref_errors_read",
    /// Reads failed by the device's check for an application tag mismatch.
    AppErrorsRead => "app_errors_read",
    /// Intervals written without PI that got PI generated (PRACT).
    PractGenerated => "pract_generated",
    /// Intervals written without PI that got escape PI (`pract` off).
    EscapeWritten => "escape_written",
    /// Intervals read whose PI is an escape (unwritten, discarded, ...).
    EscapeRead => "escape_read",
    /// Intervals corrupted by injection (stored now, or on each read).
    InjCorrupt => "inj_corrupt",
    /// Writes stored at another place by injection.
    InjMisdirected => "inj_misdirected",
    /// Writes acknowledged but not stored by injection.
    InjLost => "inj_lost",
    /// Requests failed by injection.
    InjFailed => "inj_failed",
    /// Requests handed back to blk-mq (resource busy) by injection.
    InjRequeued => "inj_requeued",
    /// Requests started as whole transfers to or from a backing file.
    FileRequests => "file_requests",
    /// Requests that waited for an overlapping one in flight to the
    /// backing file (those queued behind them not counted).
    FileWaited => "file_waited",
    /// Requests handed back to blk-mq, unchanged, to be retried after a
    /// shortage (an allocation failed).
    Requeued => "requeued",
}

const NR_COUNTERS: usize = Counter::ALL.len();

/// Something to count into: the device's counters, or a request's
/// [`Tally`].
pub(crate) trait Counts {
    /// Adds `n` to counter `c`.
    fn add(&self, c: Counter, n: u64);

    /// Adds one to counter `c`.
    fn inc(&self, c: Counter) {
        self.add(c, 1);
    }
}

/// The counts of one request, added to the device's counters when it
/// ends ([`Stats::commit`]): a request handed back to blk-mq after a
/// shortage is counted by the try that ends it, once.
pub(crate) struct Tally {
    counts: [Cell<u32>; NR_COUNTERS],
    /// Bit `c` set: counter `c` was counted (so that committing touches
    /// only those, one or two for most requests).
    touched: Cell<u32>,
}

// One bit of `Tally::touched` per counter.
const _: () = assert!(NR_COUNTERS <= 32);

impl Tally {
    /// Nothing counted.
    pub(crate) fn new() -> Self {
        Tally {
            counts: [const { Cell::new(0) }; NR_COUNTERS],
            touched: Cell::new(0),
        }
    }
}

impl Counts for Tally {
    fn add(&self, c: Counter, n: u64) {
        let x = &self.counts[c as usize];
        x.set(x.get().saturating_add(u32::try_from(n).unwrap_or(u32::MAX)));
        self.touched.set(self.touched.get() | 1 << (c as u32));
    }
}

/// A device's counters.
pub(crate) struct Stats {
    counters: PerCpuCounters<NR_COUNTERS>,
}

impl Stats {
    /// Zeroed counters.
    pub(crate) fn new() -> Result<Self> {
        Ok(Stats {
            counters: PerCpuCounters::new()?,
        })
    }

    /// Adds `n` to counter `c`.
    #[inline]
    pub(crate) fn add(&self, c: Counter, n: u64) {
        self.counters.add(c as usize, n);
    }

    /// Adds one to counter `c`.
    #[inline]
    pub(crate) fn inc(&self, c: Counter) {
        self.add(c, 1);
    }

    /// Adds what `t` counted.
    pub(crate) fn commit(&self, t: &Tally) {
        let mut touched = t.touched.get();
        while touched != 0 {
            let i = touched.trailing_zeros() as usize;
            touched &= touched - 1;
            if let Some(n) = t.counts.get(i) {
                self.counters.add(i, n.get().into());
            }
        }
    }

    /// The current value of counter `c`.
    pub(crate) fn get(&self, c: Counter) -> u64 {
        self.counters.sum(c as usize)
    }

    /// Zeroes every counter. Counts racing with the reset may survive it.
    pub(crate) fn reset(&self) {
        self.counters.zero();
    }

    /// Writes `name value` lines, one per counter.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &c in Counter::ALL {
            writeln!(f, "{} {}", c.name(), self.get(c))?;
        }
        Ok(())
    }
}

impl Counts for Stats {
    fn add(&self, c: Counter, n: u64) {
        Stats::add(self, c, n);
    }
}
