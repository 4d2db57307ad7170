// SPDX-License-Identifier: GPL-2.0

//! Per-CPU 64-bit counters.
//!
//! C header: [`include/linux/percpu.h`](srctree/include/linux/percpu.h)
//!
//! An update is `this_cpu_add`: on x86 one instruction on the CPU's own
//! copy, with neither a `lock` prefix nor a shared cache line, and safe
//! against preemption and interrupts. A read adds up every possible CPU's
//! copy, so it is slow and may miss updates that race with it.

use core::ptr::NonNull;
use kernel::alloc::AllocError;

extern "C" {
    fn rdif_percpu_u64_alloc(n: usize) -> *mut u64;
    fn rdif_percpu_u64_free(p: *mut u64);
    fn rdif_percpu_u64_add(p: *mut u64, i: usize, v: u64);
    fn rdif_percpu_u64_sum(p: *mut u64, i: usize) -> u64;
    fn rdif_percpu_u64_zero(p: *mut u64, n: usize);
}

/// `N` counters, each with one copy per possible CPU.
///
/// # Invariants
///
/// `ptr` is a percpu allocation of `N` `u64`s (`__percpu` in C) that this
/// object owns and frees when dropped.
pub(crate) struct PerCpuCounters<const N: usize> {
    ptr: NonNull<u64>,
}

// SAFETY: the counters are only accessed through the percpu accessors,
// which may be used from any thread; ownership is a plain allocation.
unsafe impl<const N: usize> Send for PerCpuCounters<N> {}

// SAFETY: shared access only updates the current CPU's copy with
// `this_cpu_add`, which is safe against concurrent updates on other CPUs
// and against preemption, or reads all copies with `READ_ONCE`.
unsafe impl<const N: usize> Sync for PerCpuCounters<N> {}

impl<const N: usize> PerCpuCounters<N> {
    /// `N` zeroed counters.
    pub(crate) fn new() -> Result<Self, AllocError> {
        // SAFETY: no requirements; the result is checked for NULL.
        let ptr = NonNull::new(unsafe { rdif_percpu_u64_alloc(N) }).ok_or(AllocError)?;
        // INVARIANT: `ptr` is a fresh percpu allocation of `N` `u64`s.
        Ok(Self { ptr })
    }

    /// Adds `v` to counter `i` (wrapping); an index beyond `N` is ignored.
    #[inline]
    pub(crate) fn add(&self, i: usize, v: u64) {
        if i < N {
            // SAFETY: `ptr` is a live percpu allocation of `N` `u64`s (type
            // invariant) and `i < N`.
            unsafe { rdif_percpu_u64_add(self.ptr.as_ptr(), i, v) };
        }
    }

    /// The sum of counter `i` over all CPUs (wrapping); 0 for an index
    /// beyond `N`.
    pub(crate) fn sum(&self, i: usize) -> u64 {
        if i >= N {
            return 0;
        }
        // SAFETY: as in `add`.
        unsafe { rdif_percpu_u64_sum(self.ptr.as_ptr(), i) }
    }

    /// Zeroes every counter; updates racing with it may survive.
    pub(crate) fn zero(&self) {
        // SAFETY: `ptr` is a live percpu allocation of `N` `u64`s (type
        // invariant).
        unsafe { rdif_percpu_u64_zero(self.ptr.as_ptr(), N) };
    }
}

impl<const N: usize> Drop for PerCpuCounters<N> {
    fn drop(&mut self) {
        // SAFETY: `ptr` is the percpu allocation this object owns (type
        // invariant), and this is its last use.
        unsafe { rdif_percpu_u64_free(self.ptr.as_ptr()) };
    }
}
