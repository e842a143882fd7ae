#ifndef VEZA_CEBUR128_SHIM_H
#define VEZA_CEBUR128_SHIM_H
// libebur128 is used only as the reference that tests and benchmarks measure MediaCore's
// own loudness meter against; MediaCore itself does not link it.
#include <ebur128.h>
#endif
