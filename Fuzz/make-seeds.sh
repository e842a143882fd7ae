#!/usr/bin/env bash
# Writes the seed corpora of the fuzz harnesses into Fuzz/Corpus/<harness>/ (committed): small
# media files made with ffmpeg, request heads, playlists, ranges, multipart bodies, STUN and SDP,
# and (through the harness binary, with its own keys) signed-URL tokens and JWTs.
# Usage: Fuzz/make-seeds.sh BINARY   (BINARY: the built veza-fuzz; scripts/fuzz.sh builds it)
set -euo pipefail
binary=$(realpath "${1:?usage: Fuzz/make-seeds.sh BINARY}")
cd "$(dirname "$0")"
out=Corpus
rm -rf "$out"
mkdir -p "$out"/{media,live-source,icecast-source,hls,live-request,playback-target,ranges,signed-url,jwt,multipart,webrtc,client-address}
seed() { printf '%b' "$2" > "$out/$1"; }

# Media: a fifth of a second of a tone in each container the intake takes.
tone=(-f lavfi -i "sine=frequency=440:sample_rate=44100:duration=0.2" -ac 1)
ff() { ffmpeg -nostdin -v error -y "${tone[@]}" "$@"; }
ff -c:a libmp3lame -b:a 32k "$out/media/tone.mp3"
ff -c:a libmp3lame -b:a 32k -id3v2_version 3 -metadata title=Seed "$out/media/tagged.mp3"
ff -c:a aac -b:a 32k -f adts "$out/media/tone.aac"
ff -c:a aac -b:a 32k -movflags +faststart "$out/media/tone.m4a"
ff -c:a flac "$out/media/tone.flac"
ff -c:a libopus -b:a 16k "$out/media/tone.opus"
ff -c:a libvorbis -q:a 0 "$out/media/tone.ogg"
ff -ar 8000 -c:a pcm_s16le "$out/media/tone.wav"
ff -ar 8000 -c:a pcm_s16be "$out/media/tone.aiff"

# Live sources: the first byte picks MPEG audio (0), ADTS (1) or Ogg (2) and the piece sizes.
for pair in "0:tone.mp3" "1:tone.aac" "2:tone.opus" "5:tone.ogg" "48:tone.mp3"; do
    { printf "\\x$(printf %02x "${pair%%:*}")"; cat "$out/media/${pair#*:}"; } > "$out/live-source/${pair%%:*}-${pair#*:}"
done

seed icecast-source/source 'SOURCE /radio HTTP/1.0\r\nAuthorization: Basic c291cmNlOnJhZGlvLXB3LTE=\r\nContent-Type: audio/mpeg\r\nice-name: Radio\r\nice-public: 0\r\n\r\n'
seed icecast-source/put 'PUT /live/radio HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer abc.def.ghi\r\nContent-Type: audio/ogg; codecs=opus\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nUser-Agent: libshout/2.4.6\r\n\r\n'
seed icecast-source/icy-block "StreamTitle='Artist - It''s a title';StreamUrl='https://example.com/';"

seed hls/master '#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="aac-128/index.m3u8"\n#EXT-X-STREAM-INF:BANDWIDTH=140000,AVERAGE-BANDWIDTH=130000,CODECS="mp4a.40.2",AUDIO="aac"\naac-128/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=70000,CODECS="mp4a.40.5"\naac-64/index.m3u8?token=abc\n'
seed hls/vod '#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:6\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:6.000,\nseg-0.m4s\n#EXT-X-BYTERANGE:1000@2000\n#EXTINF:5.5,title\nall.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-12-06T07:00:00.000Z\n#EXTINF:1.25,\nseg-2.m4s\n#EXT-X-ENDLIST\n'
seed hls/llhls '#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,CAN-SKIP-UNTIL=12.0\n#EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:40\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:2.0,\nseg-43.m4s\n#EXT-X-PART:DURATION=0.5,URI="part-44.0.m4s",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.5,URI="part-44.1.m4s"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-44.2.m4s"\n#EXT-X-RENDITION-REPORT:URI="../aac-64/index.m3u8",LAST-MSN=44,LAST-PART=1\n'

seed live-request/part 'part-44.2.m4s\n44\n2\nYES'
seed live-request/segment 'seg-999999999.m4s\n999999999\n\nv2'
seed live-request/playlist 'index.m3u8\n12'

seed playback-target/segment '/media/abc123/v1/cmaf/aac-128/seg-3.m4s?token=AbC-_9.x&x=1'
seed playback-target/progressive '/media/abc123/v2/progressive/mp3-320.mp3?token=t'
seed playback-target/playlist '/hls/t1/aac-64.m3u8?a=b&token=one&token=two'
seed playback-target/master '/hls/t1/master-opus.m3u8'
seed playback-target/mpd '/dash/t1/manifest.mpd?token=x'

seed ranges/single 'bytes=0-499\n\n1048576'
seed ranges/multi 'bytes=0-1, 5-9,,-500, 1000-\n"v1-abc"\n4096'
seed ranges/date 'bytes=100-\nTue, 14 Nov 2023 22:13:20 GMT\n1048576'
seed ranges/weak 'bytes=-1\nW/"v1-abc"\n0'

seed multipart/file 'multipart/form-data; boundary=XyZ\n--XyZ\r\nContent-Disposition: form-data; name="title"\r\n\r\nA title\r\n--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\nContent-Type: audio/mpeg\r\n\r\nID3\x03\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64\r\n--XyZ--\r\n'
seed multipart/quoted 'multipart/form-data; boundary="a b"\n--a b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n0123456789\r\n--a b--\r\n'

# A STUN binding request (RFC 8489) with USERNAME, PRIORITY, ICE-CONTROLLING and USE-CANDIDATE.
seed webrtc/stun '\x00\x01\x00\x28\x21\x12\xa4\x42\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x00\x06\x00\x09abcd:efgh\x00\x00\x00\x00\x24\x00\x04\x6e\x00\x1e\xff\x80\x2a\x00\x08\x00\x00\x00\x00\x00\x00\x00\x01\x00\x25\x00\x00'
seed webrtc/offer 'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=msid-semantic: WMS\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:tT3F\r\na=ice-pwd:NKLYnGiQ4Ao3BYs5tWd/8RZ5\r\na=ice-options:trickle\r\na=fingerprint:sha-256 8C:71:B2:4B:42:0E:5E:8B:1B:8F:0A:6A:5B:44:9D:8C:5F:08:7E:0A:2D:39:86:3C:1E:2B:3C:43:67:5F:2B:61\r\na=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n'

seed client-address/forwarded '10.0.0.5\nfor=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"\n203.0.113.195, 10.0.0.7\n198.51.100.1\n192.0.2.0/24'
seed client-address/xff '::1\n\n198.51.100.9,10.1.1.1\t10.2.2.2\n\n2001:db8::/32'

VEZA_FUZZ_WRITE_SEEDS="$out" "$binary"
find "$out" -type f | wc -l | xargs printf 'seeds: %s files\n'
