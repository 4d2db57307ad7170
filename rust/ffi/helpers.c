// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers behind rust/ffi/: the percpu accessors, which are macros that
 * bindgen cannot see, and build-time checks of the prototypes that
 * rust/ffi/crc.rs and rust/ffi/sort.rs declare for exported functions whose headers the
 * kernel's bindings do not include.
 */

#include <linux/cpumask.h>
#include <linux/crc-t10dif.h>
#include <linux/crc32.h>
#include <linux/crc64.h>
#include <linux/percpu.h>
#include <linux/smp.h>
#include <linux/sort.h>
#include <linux/types.h>
#include <net/checksum.h>

#include "helpers.h"

/* The prototypes of rust/ffi/crc.rs, exactly. */
static_assert(__builtin_types_compatible_p(typeof(&crc_t10dif_update),
					   u16 (*)(u16, const u8 *, size_t)));
static_assert(__builtin_types_compatible_p(typeof(&crc64_nvme),
					   u64 (*)(u64, const void *, size_t)));
static_assert(__builtin_types_compatible_p(typeof(&crc32c),
					   u32 (*)(u32, const void *, size_t)));
static_assert(__builtin_types_compatible_p(typeof(&csum_partial),
					   __wsum (*)(const void *, int, __wsum)));
static_assert(sizeof(__wsum) == sizeof(u32));
/* ... and that of rust/ffi/sort.rs. */
static_assert(__builtin_types_compatible_p(typeof(&sort),
					   void (*)(void *, size_t, size_t,
						    cmp_func_t, swap_func_t)));

u64 __percpu *rdif_percpu_u64_alloc(size_t n)
{
	/* Zeroed, as every percpu allocation. */
	return __alloc_percpu(n * sizeof(u64), sizeof(u64));
}

void rdif_percpu_u64_free(u64 __percpu *p)
{
	free_percpu(p);
}

void rdif_percpu_u64_add(u64 __percpu *p, size_t i, u64 v)
{
	/* One instruction on x86: safe against preemption and interrupts. */
	this_cpu_add(p[i], v);
}

u64 rdif_percpu_u64_sum(u64 __percpu *p, size_t i)
{
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += READ_ONCE(per_cpu_ptr(p, cpu)[i]);
	return sum;
}

void rdif_percpu_u64_zero(u64 __percpu *p, size_t n)
{
	size_t i;
	int cpu;

	for_each_possible_cpu(cpu)
		for (i = 0; i < n; i++)
			WRITE_ONCE(per_cpu_ptr(p, cpu)[i], 0);
}

void rdif_on_each_cpu(void (*func)(void *), void *info)
{
	on_each_cpu(func, info, 1);
}

unsigned int rdif_num_online_cpus(void)
{
	return num_online_cpus();
}
