// SPDX-License-Identifier: GPL-2.0

//! What a power cut keeps: the policies, and the one pre-image each
//! interval goes back to.
//!
//! The volatile write cache logs each write it applies with the contents
//! its intervals had before (pre-images), in the order the writes were
//! applied. A power cut decides for each logical block of each logged
//! write whether it reached the medium; an interval then holds what the
//! newest write that reached the medium put there, which is the pre-image
//! of the write after it, or its current contents if that write is the
//! newest. The decision is the same for every interval of a logical block
//! (all the block's intervals are in the same writes), so no block is ever
//! torn; an atomic write is decided as a whole.

use crate::settings::parse_u64;

/// How a power cut treats the volatile writes (`powercut POLICY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Every volatile write is lost.
    All,
    /// Every completed write survives.
    None,
    /// Each logical block of each volatile write (each atomic write as a
    /// whole) survives with probability `percent` %, decided by `seed`.
    Random {
        /// Any number: the same seed on the same writes cuts the same way.
        seed: u64,
        /// 0 to 100.
        percent: u8,
    },
    /// The first `n` volatile writes, in the order they were applied,
    /// survive; the others are lost.
    Prefix(u64),
}

/// Default survival percentage of `random`.
const DEFAULT_PERCENT: u8 = 50;

impl Policy {
    /// Parses `all`, `none`, `random SEED [PERCENT]` or `prefix N`.
    pub(crate) fn parse(line: &[u8]) -> Result<Self, &'static str> {
        const USAGE: &str = "write all, none, random SEED [PERCENT] or prefix N";
        let mut toks = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty());
        let policy = match toks.next().ok_or(USAGE)? {
            b"all" => Policy::All,
            b"none" => Policy::None,
            b"random" => {
                let seed = toks
                    .next()
                    .and_then(parse_u64)
                    .ok_or("random: SEED must be a number below 2^64")?;
                let percent = match toks.next() {
                    None => DEFAULT_PERCENT,
                    Some(t) => parse_u64(t)
                        .filter(|&p| p <= 100)
                        .ok_or("random: PERCENT must be 0 to 100")?
                        as u8,
                };
                Policy::Random { seed, percent }
            }
            b"prefix" => Policy::Prefix(
                toks.next()
                    .and_then(parse_u64)
                    .ok_or("prefix: N must be a number")?,
            ),
            _ => return Err(USAGE),
        };
        match toks.next() {
            None => Ok(policy),
            Some(_) => Err(USAGE),
        }
    }

    /// Whether logical block `block` of the volatile write numbered `k`
    /// (0: the oldest the cache holds) survives; an `atomic` write
    /// survives or is lost whole.
    pub(crate) fn survives(&self, k: u64, block: u64, atomic: bool) -> bool {
        match *self {
            Policy::All => false,
            Policy::None => true,
            Policy::Prefix(n) => k < n,
            Policy::Random { seed, percent } => {
                let block = if atomic { u64::MAX } else { block };
                let h = mix(mix(seed ^ mix(k)) ^ block);
                h % 100 < u64::from(percent)
            }
        }
    }
}

/// SplitMix64's finaliser: a well-spread 64-bit hash.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One interval of one logged write. Ordered by interval, and for each
/// interval newest write first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mark {
    /// The interval.
    pub(crate) interval: u64,
    /// The write's place in the log (applied in this order).
    pub(crate) entry: u32,
    /// The write reached the medium for this interval.
    pub(crate) keep: bool,
}

impl Ord for Mark {
    fn cmp(&self, o: &Self) -> core::cmp::Ordering {
        self.interval
            .cmp(&o.interval)
            .then(o.entry.cmp(&self.entry))
            .then(self.keep.cmp(&o.keep))
    }
}

impl PartialOrd for Mark {
    fn partial_cmp(&self, o: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// Calls `restore(interval, entry)` for each interval of `marks` that must
/// go back to the pre-image `entry` logged for it: the pre-image of the
/// write just after the newest one kept, or of the oldest if none was.
/// Intervals whose newest write was kept stay as they are. Sorts `marks`.
pub(crate) fn plan<E>(
    marks: &mut [Mark],
    mut restore: impl FnMut(u64, u32) -> Result<(), E>,
) -> Result<(), E> {
    // By interval, newest write first (the kernel's sort: core's has
    // panics objtool does not know of).
    crate::ffi::sort::sort_slice(marks);
    for group in marks.chunk_by(|a, b| a.interval == b.interval) {
        match group.iter().position(|m| m.keep) {
            Some(0) => {}
            Some(k) => restore(group[k - 1].interval, group[k - 1].entry)?,
            None => {
                if let Some(oldest) = group.last() {
                    restore(oldest.interval, oldest.entry)?;
                }
            }
        }
    }
    Ok(())
}
