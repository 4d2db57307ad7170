// SPDX-License-Identifier: GPL-2.0

//! The kernel's random number generator.
//!
//! C header: [`include/linux/random.h`](srctree/include/linux/random.h)

/// `get_random_u32()`: a random 32-bit number.
pub(crate) fn random_u32() -> u32 {
    // SAFETY: no preconditions; callable from any context.
    unsafe { kernel::bindings::get_random_u32() }
}
