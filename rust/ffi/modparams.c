// SPDX-License-Identifier: GPL-2.0
/*
 * rdif's string module parameters: the Rust `module!` macro of 7.3 only
 * declares integer and bool parameters.
 */

#include <linux/moduleparam.h>

#include "modparams.h"

static char *csum = "crc16";
module_param(csum, charp, 0444);
MODULE_PARM_DESC(csum, "Guard checksum of the default devices: crc16 (default), ip, crc64 or none");

const char *rdif_param_csum(void)
{
	return csum;
}
