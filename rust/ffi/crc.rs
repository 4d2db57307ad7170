// SPDX-License-Identifier: GPL-2.0

//! The kernel's checksum library (lib/crc, the architecture's
//! `csum_partial`), over byte slices.
//!
//! C headers: [`include/linux/crc-t10dif.h`](srctree/include/linux/crc-t10dif.h),
//! [`include/linux/crc64.h`](srctree/include/linux/crc64.h),
//! [`include/linux/crc32.h`](srctree/include/linux/crc32.h),
//! [`include/net/checksum.h`](srctree/include/net/checksum.h)

use core::ffi::{c_int, c_void};

// These prototypes are the kernel's own: `helpers.c` fails to build if a
// header says otherwise.
extern "C" {
    fn crc_t10dif_update(crc: u16, p: *const u8, len: usize) -> u16;
    fn crc64_nvme(crc: u64, p: *const c_void, len: usize) -> u64;
    fn crc32c(crc: u32, p: *const c_void, len: usize) -> u32;
    fn csum_partial(buff: *const c_void, len: c_int, sum: u32) -> u32;
}

/// `crc_t10dif_update()`: the T10 DIF CRC16 of `data`, continued from `crc`.
#[inline]
pub(crate) fn crc_t10dif(crc: u16, data: &[u8]) -> u16 {
    // SAFETY: `data` is valid for reads of its length, which is all the
    // function reads.
    unsafe { crc_t10dif_update(crc, data.as_ptr(), data.len()) }
}

/// `crc64_nvme()`: the NVMe CRC64 of `data`, continued from `crc`.
#[inline]
pub(crate) fn crc64_nvme_update(crc: u64, data: &[u8]) -> u64 {
    // SAFETY: as in `crc_t10dif`.
    unsafe { crc64_nvme(crc, data.as_ptr().cast(), data.len()) }
}

/// `crc32c()`: the CRC-32C of `data`, continued from `crc` (no final
/// complement).
#[inline]
pub(crate) fn crc32c_update(crc: u32, data: &[u8]) -> u32 {
    // SAFETY: as in `crc_t10dif`.
    unsafe { crc32c(crc, data.as_ptr().cast(), data.len()) }
}

/// Longest slice [`csum_partial_part`] takes (`csum_partial` takes an `int`
/// length).
pub(crate) const CSUM_PARTIAL_MAX: usize = 1 << 30;

/// `csum_partial()`: the 32-bit one's complement partial sum of `data`
/// (at most [`CSUM_PARTIAL_MAX`] bytes; a longer slice is summed only up to
/// that), added to `sum`.
#[inline]
pub(crate) fn csum_partial_part(data: &[u8], sum: u32) -> u32 {
    let data = &data[..data.len().min(CSUM_PARTIAL_MAX)];
    // SAFETY: as in `crc_t10dif`; the length fits in a `c_int`.
    unsafe { csum_partial(data.as_ptr().cast(), data.len() as c_int, sum) }
}
