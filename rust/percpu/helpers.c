// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers for rdif's per-CPU counters (rust/percpu.rs): the percpu
 * accessors are macros that bindgen cannot see.
 */

#include <linux/cpumask.h>
#include <linux/percpu.h>
#include <linux/types.h>

#include "helpers.h"

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
