#ifndef VEZA_CFFMPEG_SHIM_H
#define VEZA_CFFMPEG_SHIM_H

#include <errno.h>
#include <stdint.h>
#include <libavformat/avformat.h>
#include <libavformat/avio.h>
#include <libavcodec/avcodec.h>
#include <libavutil/avutil.h>
#include <libavutil/channel_layout.h>
#include <libavutil/dict.h>
#include <libavutil/error.h>
#include <libavutil/opt.h>
#include <libavutil/samplefmt.h>
#include <libavutil/log.h>
#include <libavutil/time.h>
#include <libavutil/tx.h>
#include <stdio.h>
#include <libswresample/swresample.h>

// Macros that Swift cannot import, as functions (MEDIA-NOTES.md).
static inline int veza_averror(int posix_errno) { return AVERROR(posix_errno); }
static inline int veza_averror_eof(void) { return AVERROR_EOF; }
static inline int veza_averror_invaliddata(void) { return AVERROR_INVALIDDATA; }
static inline int veza_averror_exit(void) { return AVERROR_EXIT; }
static inline int veza_averror_eagain(void) { return AVERROR(EAGAIN); }
static inline int veza_averror_enomem(void) { return AVERROR(ENOMEM); }
static inline int64_t veza_av_nopts_value(void) { return AV_NOPTS_VALUE; }

/// Writes FFmpeg's message for `code` into `buffer` (av_err2str is a compound literal).
static inline void veza_av_strerror(int code, char *buffer, size_t size) {
    if (av_strerror(code, buffer, size) < 0) {
        snprintf(buffer, size, "FFmpeg error %d", code);
    }
}

/// av_log_set_level is fine to call, but the level constants are macros of macros.
static inline void veza_av_log_quiet(void) { av_log_set_level(AV_LOG_QUIET); }
static inline void veza_av_log_errors(void) { av_log_set_level(AV_LOG_ERROR); }

/// The interrupt callback that bounds how long blocking I/O may take:
/// `opaque` points at an int64 deadline in av_gettime_relative() microseconds
/// (0 = no deadline) followed by an int flag set to 1 to abort at once.
typedef struct VezaInterruptState {
    int64_t deadline_us;
    int abort_now;
} VezaInterruptState;

static inline int veza_interrupt_callback(void *opaque) {
    VezaInterruptState *state = (VezaInterruptState *)opaque;
    if (state == NULL) return 0;
    if (state->abort_now) return 1;
    if (state->deadline_us > 0 && av_gettime_relative() > state->deadline_us) return 1;
    return 0;
}

static inline void veza_install_interrupt(AVFormatContext *ctx, VezaInterruptState *state) {
    ctx->interrupt_callback.callback = veza_interrupt_callback;
    ctx->interrupt_callback.opaque = state;
}

static inline int64_t veza_now_us(void) { return av_gettime_relative(); }

static inline int veza_disposition_attached_pic(void) { return AV_DISPOSITION_ATTACHED_PIC; }
static inline int veza_avfmt_flag_custom_io(void) { return AVFMT_FLAG_CUSTOM_IO; }

#endif
