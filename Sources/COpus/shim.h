#ifndef VEZA_COPUS_SHIM_H
#define VEZA_COPUS_SHIM_H
#include <opus.h>
#endif
