#ifndef CSWRESAMPLE_SHIM_H
#define CSWRESAMPLE_SHIM_H
#include <libavutil/channel_layout.h>
#include <libavutil/samplefmt.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>

/// Fills `layout` with the default layout for `channels` channels (AV_CHANNEL_LAYOUT_* are
/// compound literals and do not import into Swift).
static inline void cswr_default_layout(AVChannelLayout *layout, int channels) {
    av_channel_layout_default(layout, channels);
}
#endif
