// SPDX-License-Identifier: GPL-2.0

//! The current task's memory allocation and scheduling context.
//!
//! C headers: [`include/linux/sched/mm.h`](srctree/include/linux/sched/mm.h),
//! [`include/linux/sched.h`](srctree/include/linux/sched.h)

extern "C" {
    fn rdif_backing_io_save() -> u32;
    fn rdif_backing_io_restore(old: u32);
    fn rdif_cond_resched();
}

/// Runs `f` as I/O on behalf of a device through a backing file, as loop's
/// worker runs: every allocation implicitly `GFP_NOIO`
/// (`PF_MEMALLOC_NOIO`), so reclaim cannot wait for I/O on the device
/// being served, and dirty throttling limited to the backing file's own
/// device (`PF_LOCAL_THROTTLE`), so the task is not held back by dirty
/// pages that only it can clean.
pub(crate) fn with_backing_io<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: sets two flags of the current task, restored below in stack
    // order.
    let old = unsafe { rdif_backing_io_save() };
    let ret = f();
    // SAFETY: `old` came from the matching save above.
    unsafe { rdif_backing_io_restore(old) };
    ret
}

/// Gives the CPU to other tasks if needed, in a long loop that may sleep.
pub(crate) fn cond_resched() {
    // SAFETY: no preconditions; callers are in a context that may sleep.
    unsafe { rdif_cond_resched() };
}
