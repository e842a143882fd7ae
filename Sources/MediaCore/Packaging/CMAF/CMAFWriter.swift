/// Writes CMAF headers (init segments) and CMAF segments for one audio track
/// (ISO/IEC 23000-19 on ISO/IEC 14496-12 movie fragments), for HLS (`EXT-X-MAP`) and DASH.
///
/// Every segment holds exactly one CMAF fragment (`moof` + `mdat`) with one `traf` and one
/// `trun`; decode times are explicit (`tfdt`) and data offsets are relative to the `moof`
/// (`default-base-is-moof`), so segments can be served, cached and concatenated on their own.
public enum CMAFWriter {
    /// Writes the CMAF header: `ftyp` + `moov`.
    ///
    /// - `ftyp`: major brand `cmfc`, compatible `iso6`, `cmfc`, `mp41`, plus the media profile
    ///   brand `caac` (AAC-LC/HE-AAC up to 48 kHz stereo) or `Opus` (Opus-in-ISOBMFF §4.1).
    /// - `moov`: `mvhd`, `trak` (`tkhd`, `edts`/`elst` when there is priming (for Opus: the
    ///   pre-skip) or a duration is given, `mdia`: `mdhd`, `hdlr` "soun", `minf`: `smhd`, `dinf`/`dref`, `stbl` with
    ///   `stsd` and empty `stts`/`stsc`/`stsz`/`stco`, plus the `roll` group for Opus),
    ///   `mvex` (`mehd` when the duration is known, `trex`).
    ///
    /// - Parameters:
    ///   - track: the track to describe.
    ///   - mediaDuration: the presentation duration in timescale units, i.e. the number of
    ///     valid samples after the priming is trimmed (the source's sample count, in the
    ///     track's timescale), when known (VOD); nil for live. It becomes the edit's
    ///     `segment_duration` (trimming the trailing padding too), `mvhd`/`tkhd` duration and
    ///     `mehd`. With nil, the edit (if priming needs one) runs to the end of the media.
    /// - Returns: the bytes of `init.mp4`.
    public static func initSegment(track: CMAFTrack, mediaDuration: Int64?) -> [UInt8] {
        var w = MP4ByteWriter(reservingCapacity: 1024)
        w.fileType(major: "cmfc", compatible: initBrands(track))
        let duration = UInt64(max(mediaDuration ?? 0, 0))
        w.box("moov") { w in
            w.movieHeader(timescale: track.timescale, duration: duration)
            w.box("trak") { w in
                w.trackHeader(duration: duration)
                if track.editMediaTime > 0 || mediaDuration != nil {
                    // segment_duration 0: "the rest of the media" when the length is unknown.
                    w.editList(segmentDuration: duration, mediaTime: Int64(track.editMediaTime))
                }
                w.box("mdia") { w in
                    w.mediaHeader(timescale: track.timescale, duration: 0, language: track.language)
                    w.handler("soun", name: "SoundHandler")
                    w.box("minf") { w in
                        w.soundMediaHeaderAndDataInformation()
                        w.box("stbl") { w in
                            w.sampleDescription(track)
                            w.fullBox("stts") { w in w.u32(0) }
                            w.fullBox("stsc") { w in w.u32(0) }
                            w.fullBox("stsz") { w in w.u32(0); w.u32(0) }
                            w.fullBox("stco") { w in w.u32(0) }
                            if case .opus = track.codec {
                                // Opus-in-ISOBMFF §4.3.6.2 wants a 'roll' sgpd + sbgp in stbl.
                                // Fragments carry their own exact entry; this default assumes
                                // 20 ms packets (libopus' default frame size).
                                w.rollGroupDescription(rollDistance: opusRollDistance(packetDuration: track.timescale / 50, timescale: track.timescale))
                                w.rollSampleToGroup([])
                            }
                        }
                    }
                }
            }
            if let encryption = track.encryption { w.commonProtectionHeader(encryption) }
            w.box("mvex") { w in
                if mediaDuration != nil {
                    w.fullBox("mehd", version: duration > UInt64(UInt32.max) ? 1 : 0) { w in
                        if duration > UInt64(UInt32.max) { w.u64(duration) } else { w.u32(UInt32(duration)) }
                    }
                }
                w.fullBox("trex") { w in
                    w.u32(trackID)
                    w.u32(1)                      // default_sample_description_index
                    w.u32(0)                      // default_sample_duration
                    w.u32(0)                      // default_sample_size
                    w.u32(0)                      // default_sample_flags
                }
            }
        }
        return w.bytes
    }

    /// Writes one CMAF segment holding one CMAF fragment:
    /// `styp` (`cmfs`; compatible `cmfs`, `cmff`, `msdh`) + `moof` (`mfhd` with
    /// `sequenceNumber`; `traf`: `tfhd` with default-base-is-moof, `tfdt` version 1 with
    /// `baseMediaDecodeTime`, `trun` with data offset, per-sample durations and sizes, and for
    /// Opus a `roll` `sgpd` + `sbgp`) + `mdat` with the packets back to back.
    ///
    /// - Parameters:
    ///   - track: the track described by the init segment.
    ///   - sequenceNumber: `mfhd` sequence number; must increase from segment to segment
    ///     (the segment number from 1 is a good choice).
    ///   - baseMediaDecodeTime: decode time of the first packet in timescale units: the sum
    ///     of the durations of all earlier packets, priming included.
    ///   - packets: the packets of the segment, at least one.
    /// - Returns: the bytes of the `.m4s` segment.
    public static func mediaSegment(track: CMAFTrack, sequenceNumber: UInt32, baseMediaDecodeTime: UInt64, packets: [EncodedPacket]) -> [UInt8] {
        mediaSegment(track: track, sequenceNumber: sequenceNumber, baseMediaDecodeTime: baseMediaDecodeTime, packets: packets, writer: MP4ByteWriter())
    }

    /// `mediaSegment` with a preconfigured writer (tests lower its large-box threshold).
    static func mediaSegment(track: CMAFTrack, sequenceNumber: UInt32, baseMediaDecodeTime: UInt64, packets: [EncodedPacket], writer: MP4ByteWriter) -> [UInt8] {
        var packets = packets
        var ivs: [UInt64] = []
        switch track.encryption {
        case let encryption? where encryption.scheme == .cenc:
            // Random per segment, one up per sample: unique under the key across renditions and segments.
            var generator = SystemRandomNumberGenerator()
            let base = UInt64.random(in: 0 ... (UInt64.max >> 1), using: &generator)
            ivs = (0..<packets.count).map { base + UInt64($0) }
            for index in packets.indices {
                packets[index].data = CommonEncryption.encryptSample(packets[index].data, key: encryption.key, iv: ivs[index])
            }
        case let encryption?:
            // cbcs: the constant IV of tenc, no per-sample information.
            for index in packets.indices {
                packets[index].data = CommonEncryption.encryptBlocks(packets[index].data, key: encryption.key, iv: encryption.constantIV)
            }
        case nil:
            break
        }
        let payloadSize = packets.reduce(0) { $0 + $1.data.count }
        var w = writer
        w.fileType("styp", major: "cmfs", compatible: ["cmfs", "cmff", "msdh"])
        let moofStart = w.count
        var dataOffsetField = 0
        var auxiliaryOffsetField = 0
        var firstIV = 0
        w.box("moof") { w in
            w.fullBox("mfhd") { w in w.u32(sequenceNumber) }
            w.box("traf") { w in
                // 0x020000 default-base-is-moof, 0x000020 default-sample-flags-present.
                w.fullBox("tfhd", flags: 0x020020) { w in
                    w.u32(trackID)
                    // sample_depends_on = 2 (independent): every audio packet is a sync sample.
                    w.u32(0x0200_0000)
                }
                w.fullBox("tfdt", version: 1) { w in w.u64(baseMediaDecodeTime) }
                // 0x000001 data-offset, 0x000100 sample-duration, 0x000200 sample-size present.
                w.fullBox("trun", flags: 0x000301) { w in
                    w.u32(UInt32(packets.count))
                    dataOffsetField = w.count
                    w.i32(0)                      // data_offset, patched below
                    for packet in packets {
                        w.u32(UInt32(packet.duration))
                        w.u32(UInt32(packet.data.count))
                    }
                }
                if case .opus = track.codec, let first = packets.first {
                    // Fragment-local description (index 0x10001 = first sgpd in this traf).
                    w.rollGroupDescription(rollDistance: opusRollDistance(packetDuration: first.duration, timescale: track.timescale))
                    w.rollSampleToGroup([(UInt32(packets.count), 0x1_0001)])
                }
                if !ivs.isEmpty {
                    // ISO/IEC 23001-7 §7: the IVs in 'senc', located by 'saiz' and 'saio'.
                    w.fullBox("saiz") { w in
                        w.u8(8)                   // default_sample_info_size: an 8-byte IV, no subsamples
                        w.u32(UInt32(ivs.count))
                    }
                    w.fullBox("saio") { w in
                        w.u32(1)                  // entry_count
                        auxiliaryOffsetField = w.count
                        w.u32(0)                  // offset from the moof, patched below
                    }
                    w.fullBox("senc") { w in
                        w.u32(UInt32(ivs.count))
                        firstIV = w.count
                        for iv in ivs { w.u64(iv) }
                    }
                }
            }
        }
        if !ivs.isEmpty { w.patchU32(at: auxiliaryOffsetField, UInt32(firstIV - moofStart)) }
        let moofSize = w.count - moofStart
        // Offset from the first byte of the moof to the first byte of mdat's payload.
        w.patchU32(at: dataOffsetField, UInt32(moofSize + w.headerSize(forPayload: payloadSize)))
        w.boxHeader("mdat", payloadSize: payloadSize)
        for packet in packets { w.append(packet.data) }
        return w.bytes
    }

    /// Compatible brands of the CMAF header.
    static func initBrands(_ track: CMAFTrack) -> [String] {
        var brands = ["iso6", "cmfc"]
        switch track.codec {
        case .aac(let config):
            // 'caac': CMAF AAC media profile (23000-19 Annex A.3): AAC-LC, HE-AAC (v2), up to 48 kHz stereo.
            let objectType = CMAFCodec.audioObjectType(config) ?? 0
            if [2, 5, 29].contains(objectType) && track.channelCount <= 2 && track.sampleRate <= 48000 {
                brands.append("caac")
            }
        case .opus:
            brands.append("Opus")
        case .flac:
            break
        }
        brands.append("mp41")
        return brands
    }
}
