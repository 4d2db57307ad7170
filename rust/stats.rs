// SPDX-License-Identifier: GPL-2.0

//! Per-device counters.
//!
//! Each CPU counts into its own cache-line-aligned block, so the I/O path
//! never bounces a shared line between CPUs; readers add the blocks up. A
//! task that migrates between picking its block and counting only costs an
//! atomic add on another CPU's line, never a lost count.

use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{cpu, fmt, prelude::*};

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
    /// Read requests.
    Reads => "reads",
    /// Write requests.
    Writes => "writes",
    /// Flush requests.
    Flushes => "flushes",
    /// Discard, secure-erase and write-zeroes requests.
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
}

const NR_COUNTERS: usize = Counter::ALL.len();

/// One CPU's counters, on cache lines of their own.
#[repr(C, align(64))]
struct Block([AtomicU64; NR_COUNTERS]);

impl Block {
    fn new() -> Self {
        Block([const { AtomicU64::new(0) }; NR_COUNTERS])
    }
}

/// A device's counters.
///
/// # Invariants
///
/// `blocks` is not empty.
pub(crate) struct Stats {
    blocks: KVec<Block>,
}

impl Stats {
    /// Zeroed counters, one block per possible CPU id.
    pub(crate) fn new() -> Result<Self> {
        let n = (cpu::nr_cpu_ids() as usize).max(1);
        let mut blocks = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            blocks.push(Block::new(), GFP_KERNEL)?;
        }
        // INVARIANT: `n >= 1` blocks were pushed.
        Ok(Stats { blocks })
    }

    fn block(&self) -> &Block {
        let i = cpu::CpuId::current().as_u32() as usize;
        // A CPU id is below `nr_cpu_ids`, so the fallback (there is a block
        // 0 by the type invariant) is never taken. No division here: the
        // remainder's divide-by-zero panic path would be one more.
        self.blocks.get(i).unwrap_or(&self.blocks[0])
    }

    /// Adds `n` to counter `c`.
    #[inline]
    pub(crate) fn add(&self, c: Counter, n: u64) {
        self.block().0[c as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to counter `c`.
    #[inline]
    pub(crate) fn inc(&self, c: Counter) {
        self.add(c, 1);
    }

    /// The current value of counter `c`.
    pub(crate) fn get(&self, c: Counter) -> u64 {
        self.blocks
            .iter()
            .map(|b| b.0[c as usize].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// Zeroes every counter. Counts racing with the reset may survive it.
    pub(crate) fn reset(&self) {
        for b in self.blocks.iter() {
            for c in b.0.iter() {
                c.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Writes `name value` lines, one per counter.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &c in Counter::ALL {
            writeln!(f, "{} {}", c.name(), self.get(c))?;
        }
        Ok(())
    }
}
