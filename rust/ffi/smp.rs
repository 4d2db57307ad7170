// SPDX-License-Identifier: GPL-2.0

//! Running code on every CPU (used by the KUnit tests of per-CPU state).
//!
//! C header: [`include/linux/smp.h`](srctree/include/linux/smp.h)

use core::ffi::c_void;

extern "C" {
    fn rdif_on_each_cpu(f: unsafe extern "C" fn(*mut c_void), ctx: *mut c_void);
    fn rdif_num_online_cpus() -> u32;
}

/// The number of CPUs online now.
pub(crate) fn num_online_cpus() -> u32 {
    // SAFETY: no preconditions.
    unsafe { rdif_num_online_cpus() }
}

/// # Safety
///
/// `ctx` must point to an `F` that lives for the call.
unsafe extern "C" fn on_cpu<F: Fn() + Sync>(ctx: *mut c_void) {
    // SAFETY: `ctx` points to an `F` for the call (the function's
    // requirement); `F: Sync`, so sharing it between CPUs is fine.
    let f = unsafe { &*ctx.cast_const().cast::<F>() };
    f();
}

/// Runs `f` on every online CPU (`on_each_cpu`, waiting until all have
/// run it), in interrupt context with interrupts off: `f` must neither
/// sleep nor take locks that interrupts may not take.
pub(crate) fn on_each_cpu<F: Fn() + Sync>(f: &F) {
    // SAFETY: `f` lives across the call, which waits for every CPU to have
    // run it; `on_cpu::<F>` is the trampoline for its type.
    unsafe { rdif_on_each_cpu(on_cpu::<F>, core::ptr::from_ref(f).cast_mut().cast()) };
}
