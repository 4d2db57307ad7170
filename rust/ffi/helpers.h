/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Prototypes of the C helpers behind rust/ffi/ (helpers.c); rust/ffi/percpu.rs
 * declares the same functions in an extern block.
 */
#ifndef RDIF_FFI_HELPERS_H
#define RDIF_FFI_HELPERS_H

#include <linux/compiler_types.h>
#include <linux/types.h>

u64 __percpu *rdif_percpu_u64_alloc(size_t n);
void rdif_percpu_u64_free(u64 __percpu *p);
void rdif_percpu_u64_add(u64 __percpu *p, size_t i, u64 v);
u64 rdif_percpu_u64_sum(u64 __percpu *p, size_t i);
void rdif_percpu_u64_zero(u64 __percpu *p, size_t n);
void rdif_on_each_cpu(void (*func)(void *), void *info);
unsigned int rdif_num_online_cpus(void);

#endif /* RDIF_FFI_HELPERS_H */
