// SPDX-License-Identifier: GPL-2.0

//! Thin, safe wrappers over kernel C interfaces that the `kernel` crate of
//! 7.3 does not offer yet and that are not block-layer ones (those are in
//! [`crate::blk`]): the kernel's checksum library and sort, per-CPU counters,
//! random numbers and the module's string parameter. Together with
//! [`crate::blk`], this holds every `extern` block of rdif and all of its
//! code that must be trusted to keep Rust's rules.
//!
//! `smp.rs` (running a closure on every CPU) serves the KUnit tests only
//! and is built into `rdif_kunit.ko` alone.
//!
//! The prototypes of exported kernel functions declared here are checked
//! against the kernel's headers at build time (`helpers.c`).

pub(crate) mod crc;
pub(crate) mod param;
pub(crate) mod percpu;
pub(crate) mod random;
pub(crate) mod sort;
