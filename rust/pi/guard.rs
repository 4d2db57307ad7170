// SPDX-License-Identifier: GPL-2.0

//! Guard computation with the kernel's checksum routines.

use super::Csum;
use crate::ffi::crc;

/// A guard being accumulated over one interval's data and metadata prefix.
///
/// The value depends only on the bytes fed, not on how they were split
/// into pieces: an IP sum continued after an odd number of bytes is
/// realigned as `csum_block_add()` does.
pub(crate) struct Guard {
    csum: Csum,
    acc: u64,
    /// Whether an odd number of bytes was fed so far (IP only).
    odd: bool,
}

/// `csum_add()`: one's complement addition of two 32-bit partial sums.
fn csum_add(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(u32::from(carry))
}

impl Guard {
    /// Starts a guard of the given type (all start from 0, as in
    /// block/t10-pi.c).
    pub(crate) fn new(csum: Csum) -> Self {
        Self {
            csum,
            acc: 0,
            odd: false,
        }
    }

    /// Adds `data` to the guard.
    pub(crate) fn update(&mut self, data: &[u8]) {
        match self.csum {
            Csum::None => {}
            Csum::Crc16 => {
                self.acc = u64::from(crc::crc_t10dif(self.acc as u16, data));
            }
            Csum::Crc64 => self.acc = crc::crc64_nvme_update(self.acc, data),
            Csum::Ip => {
                // `csum_partial` takes an `int` length: feed huge slices in
                // pieces. Each piece is summed on its own and, if it starts
                // at an odd position of the stream, rotated by a byte before
                // it is added (`csum_block_add()`).
                for chunk in data.chunks(crc::CSUM_PARTIAL_MAX) {
                    let part = crc::csum_partial_part(chunk, 0);
                    let part = if self.odd { part.rotate_right(8) } else { part };
                    self.acc = u64::from(csum_add(self.acc as u32, part));
                    self.odd ^= chunk.len() % 2 == 1;
                }
            }
        }
    }

    /// The final guard value as stored in the tuple (for IP, the folded
    /// and complemented sum in CPU byte order, as `csum_fold` gives it).
    pub(crate) fn finish(self) -> u64 {
        match self.csum {
            Csum::Ip => u64::from(csum_fold(self.acc as u32)),
            _ => self.acc,
        }
    }
}

/// One's complement fold of a 32-bit partial sum, complemented: the value
/// `csum_fold()` returns (a static inline in C, so not callable from here).
pub(crate) fn csum_fold(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    let s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}
