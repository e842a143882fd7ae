#ifndef CSOXR_SHIM_H
#define CSOXR_SHIM_H
#include <soxr.h>

/// `SOXR_HQ` is a macro defined through another macro; exposed as a function.
static inline unsigned long csoxr_recipe_hq(void) { return SOXR_HQ; }
#endif
