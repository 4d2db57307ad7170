/* SPDX-License-Identifier: GPL-2.0 */
#ifndef RDIF_MODPARAMS_H
#define RDIF_MODPARAMS_H

const char *rdif_param_csum(void);

#endif /* RDIF_MODPARAMS_H */
