#ifndef VEZA_COPUS_SHIM_H
#define VEZA_COPUS_SHIM_H
#include <opus.h>

// opus_encoder_ctl is C-variadic and its requests are macros: one shim per request used.
static inline int veza_opus_set_bitrate(OpusEncoder *encoder, opus_int32 bitrate) {
    return opus_encoder_ctl(encoder, OPUS_SET_BITRATE(bitrate));
}
static inline int veza_opus_set_complexity(OpusEncoder *encoder, opus_int32 complexity) {
    return opus_encoder_ctl(encoder, OPUS_SET_COMPLEXITY(complexity));
}
static inline int veza_opus_set_vbr(OpusEncoder *encoder, opus_int32 vbr) {
    return opus_encoder_ctl(encoder, OPUS_SET_VBR(vbr));
}
static inline int veza_opus_get_lookahead(OpusEncoder *encoder, opus_int32 *lookahead) {
    return opus_encoder_ctl(encoder, OPUS_GET_LOOKAHEAD(lookahead));
}
#endif
