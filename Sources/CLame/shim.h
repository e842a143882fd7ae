#ifndef VEZA_CLAME_SHIM_H
#define VEZA_CLAME_SHIM_H
#include <lame/lame.h>
#endif
