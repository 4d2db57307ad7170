// SPDX-License-Identifier: GPL-2.0

//! The kernel's in-place sort (lib/sort.c), over slices.
//!
//! C header: [`include/linux/sort.h`](srctree/include/linux/sort.h)

use core::ffi::{c_int, c_void};

// The kernel's own prototype: `helpers.c` fails to build if the header
// says otherwise.
extern "C" {
    fn sort(
        base: *mut c_void,
        num: usize,
        size: usize,
        cmp: Option<unsafe extern "C" fn(*const c_void, *const c_void) -> c_int>,
        swap: Option<unsafe extern "C" fn(*mut c_void, *mut c_void, c_int)>,
    );
}

/// Compares the `T`s at `a` and `b` as `sort()` asks: negative, zero or
/// positive.
///
/// # Safety
///
/// `a` and `b` must point to valid `T`s that nothing changes meanwhile.
unsafe extern "C" fn compare<T: Ord>(a: *const c_void, b: *const c_void) -> c_int {
    // SAFETY: `sort` passes pointers to two elements of the slice that
    // `sort_slice` handed it, which it only swaps between calls.
    let (a, b) = unsafe { (&*a.cast::<T>(), &*b.cast::<T>()) };
    a.cmp(b) as c_int
}

/// Sorts `v` in ascending order (`sort()`: heapsort, in place, not
/// stable). Allocates nothing and never sleeps, so it may run under a
/// spinlock; O(n log n) even at worst.
pub(crate) fn sort_slice<T: Ord>(v: &mut [T]) {
    let size = core::mem::size_of::<T>();
    if v.len() < 2 || size == 0 {
        return;
    }
    // `sort` only moves elements by swapping their bytes (its own swap),
    // a valid move for any Rust type; `compare::<T>` reads them as `T`s.
    // SAFETY: `v` is valid for reads and writes of `len * size` bytes and
    // borrowed exclusively for the call; see above for what `sort` does.
    unsafe {
        sort(
            v.as_mut_ptr().cast(),
            v.len(),
            size,
            Some(compare::<T>),
            None,
        )
    };
}
