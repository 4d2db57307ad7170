// SPDX-License-Identifier: GPL-2.0

//! The module's string parameters, declared in C (`modparams.c`): the
//! `module!` macro of 7.3 only declares integer and bool ones.

use kernel::prelude::*;

extern "C" {
    fn rdif_param_csum() -> *const kernel::ffi::c_char;
}

/// The `csum` parameter's value.
pub(crate) fn csum() -> &'static CStr {
    // SAFETY: the parameter is a NUL-terminated string owned by the module
    // parameter code, read-only (mode 0444), so it neither changes nor goes
    // away while the module is loaded.
    unsafe { CStr::from_char_ptr(rdif_param_csum()) }
}
