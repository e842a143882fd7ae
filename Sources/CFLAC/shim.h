#ifndef VEZA_CFLAC_SHIM_H
#define VEZA_CFLAC_SHIM_H
#include <FLAC/format.h>
#include <FLAC/metadata.h>
#include <FLAC/stream_decoder.h>
#include <FLAC/stream_encoder.h>

// FLAC__VERSION_STRING is a mutable C global, which Swift 6 refuses to read.
static inline const char *veza_flac_version(void) { return FLAC__VERSION_STRING; }
#endif
