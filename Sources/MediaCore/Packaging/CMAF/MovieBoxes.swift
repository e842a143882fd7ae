// Boxes shared by the fragmented (CMAF) and the progressive writer.
// Layouts: ISO/IEC 14496-12 (§8.x below), ISO/IEC 14496-1/-3/-14 for esds,
// Opus-in-ISOBMFF §4.3 for dOps, FLAC-in-ISOBMFF §3.3 for dfLa.

/// The one track every file here holds.
let trackID: UInt32 = 1

/// 16.16 identity matrix used by mvhd and tkhd.
private let unityMatrix: [UInt32] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000]

extension MP4ByteWriter {
    /// `ftyp` (§4.3) or `styp` (§8.16.2).
    mutating func fileType(_ type: String = "ftyp", major: String, minor: UInt32 = 0, compatible: [String]) {
        box(type) { w in
            w.fourCC(major)
            w.u32(minor)
            for brand in compatible { w.fourCC(brand) }
        }
    }

    /// `mvhd` (§8.2.2); version 1 only when the duration needs 64 bits.
    mutating func movieHeader(timescale: Int, duration: UInt64) {
        let version: UInt8 = duration > UInt64(UInt32.max) ? 1 : 0
        fullBox("mvhd", version: version) { w in
            if version == 1 {
                w.u64(0); w.u64(0)                // creation, modification time
                w.u32(UInt32(timescale))
                w.u64(duration)
            } else {
                w.u32(0); w.u32(0)
                w.u32(UInt32(timescale))
                w.u32(UInt32(duration))
            }
            w.u32(0x0001_0000)                    // rate 1.0
            w.u16(0x0100)                         // volume 1.0
            w.zeros(2 + 8)                        // reserved
            for value in unityMatrix { w.u32(value) }
            w.zeros(24)                           // pre_defined
            w.u32(trackID + 1)                    // next_track_ID
        }
    }

    /// `tkhd` (§8.3.2) for an enabled audio track (flags track_enabled | track_in_movie).
    mutating func trackHeader(duration: UInt64) {
        let version: UInt8 = duration > UInt64(UInt32.max) ? 1 : 0
        fullBox("tkhd", version: version, flags: 0x000003) { w in
            if version == 1 {
                w.u64(0); w.u64(0)
                w.u32(trackID)
                w.u32(0)
                w.u64(duration)
            } else {
                w.u32(0); w.u32(0)
                w.u32(trackID)
                w.u32(0)
                w.u32(UInt32(duration))
            }
            w.zeros(8)                            // reserved
            w.u16(0)                              // layer
            w.u16(0)                              // alternate_group
            w.u16(0x0100)                         // volume 1.0 (audio)
            w.u16(0)                              // reserved
            for value in unityMatrix { w.u32(value) }
            w.u32(0); w.u32(0)                    // width, height
        }
    }

    /// `edts` + `elst` (§8.6.5, §8.6.6) with one edit: present `segmentDuration` (movie
    /// timescale; 0 = "to the end of the media", used for fragmented tracks of unknown
    /// length) starting at media time `mediaTime` (media timescale).
    mutating func editList(segmentDuration: UInt64, mediaTime: Int64) {
        box("edts") { w in
            let needs64 = segmentDuration > UInt64(UInt32.max) || mediaTime > Int64(Int32.max)
            w.fullBox("elst", version: needs64 ? 1 : 0) { w in
                w.u32(1)                          // entry_count
                if needs64 {
                    w.u64(segmentDuration)
                    w.u64(UInt64(bitPattern: mediaTime))
                } else {
                    w.u32(UInt32(segmentDuration))
                    w.i32(Int32(mediaTime))
                }
                w.u16(1); w.u16(0)                // media_rate 1.0
            }
        }
    }

    /// `mdhd` (§8.4.2) with the packed ISO 639-2/T language.
    mutating func mediaHeader(timescale: Int, duration: UInt64, language: String) {
        let version: UInt8 = duration > UInt64(UInt32.max) ? 1 : 0
        fullBox("mdhd", version: version) { w in
            if version == 1 {
                w.u64(0); w.u64(0)
                w.u32(UInt32(timescale))
                w.u64(duration)
            } else {
                w.u32(0); w.u32(0)
                w.u32(UInt32(timescale))
                w.u32(UInt32(duration))
            }
            w.u16(packedLanguage(language))
            w.u16(0)                              // pre_defined
        }
    }

    /// `hdlr` (§8.4.3).
    mutating func handler(_ type: String, name: String, reserved: [UInt32] = [0, 0, 0]) {
        fullBox("hdlr") { w in
            w.u32(0)                              // pre_defined
            w.fourCC(type)
            for value in reserved { w.u32(value) }
            w.cString(name)
        }
    }

    /// `minf` header part: `smhd` (§12.2.2) and `dinf`/`dref` with one self-contained `url `.
    mutating func soundMediaHeaderAndDataInformation() {
        fullBox("smhd") { w in
            w.u16(0)                              // balance
            w.u16(0)                              // reserved
        }
        box("dinf") { w in
            w.fullBox("dref") { w in
                w.u32(1)
                w.fullBox("url ", flags: 0x000001) { _ in }   // media is in this file
            }
        }
    }

    /// `stsd` (§8.5.2) with the one audio sample entry of `track`.
    /// `maxBitrate`/`bufferSize` feed `esds` and `btrt` where known (progressive files).
    mutating func sampleDescription(_ track: CMAFTrack, maxBitrate: Int? = nil, bufferSize: Int = 0) {
        fullBox("stsd") { w in
            w.u32(1)
            w.audioSampleEntry(track, maxBitrate: maxBitrate, bufferSize: bufferSize)
        }
    }

    /// AudioSampleEntry (§12.2.3, version 0) plus the codec's configuration box.
    private mutating func audioSampleEntry(_ track: CMAFTrack, maxBitrate: Int?, bufferSize: Int) {
        let coding: String
        switch track.codec {
        case .aac: coding = "mp4a"
        case .opus: coding = "Opus"
        case .flac: coding = "fLaC"
        }
        box(track.encryption == nil ? coding : "enca") { w in
            w.zeros(6)                            // reserved
            w.u16(1)                              // data_reference_index
            w.zeros(8)                            // reserved (version, revision, vendor)
            w.u16(UInt16(clamping: track.channelCount))
            w.u16(UInt16(clamping: track.bitsPerSample))
            w.u16(0)                              // pre_defined
            w.u16(0)                              // reserved
            let rate: Int
            if case .opus = track.codec { rate = 48000 } else { rate = sampleEntryRate(track.sampleRate) }
            w.u32(UInt32(rate) << 16)             // 16.16 fixed point
            let average = track.averageBitrate ?? 0
            let maximum = max(maxBitrate ?? average, average)
            switch track.codec {
            case .aac(let config):
                w.elementaryStreamDescriptor(config: config, average: average, maximum: maximum, bufferSize: bufferSize)
            case .opus(let preSkip, let inputSampleRate):
                w.opusSpecificBox(channels: track.channelCount, preSkip: preSkip, inputSampleRate: inputSampleRate)
            case .flac(let streamInfo):
                w.fullBox("dfLa") { w in
                    w.u8(0x80)                    // last-metadata-block flag | type 0 (STREAMINFO)
                    w.u24(UInt32(streamInfo.count))
                    w.append(streamInfo)
                }
            }
            if track.averageBitrate != nil {
                w.box("btrt") { w in              // BitRateBox (§8.5.2.2)
                    w.u32(UInt32(clamping: bufferSize))
                    w.u32(UInt32(clamping: maximum))
                    w.u32(UInt32(clamping: average))
                }
            }
            if let encryption = track.encryption { w.protectionScheme(originalFormat: coding, encryption) }
        }
    }

    /// `esds` (ISO/IEC 14496-14 §5.6): ES_Descriptor → DecoderConfigDescriptor (MPEG-4
    /// Audio 0x40, AudioStream 0x05) → DecoderSpecificInfo (AudioSpecificConfig), plus the
    /// SLConfigDescriptor (predefined = 2, "reserved for use in MP4 files").
    private mutating func elementaryStreamDescriptor(config: [UInt8], average: Int, maximum: Int, bufferSize: Int) {
        var decoderSpecific = MP4ByteWriter()
        decoderSpecific.descriptor(tag: 0x05, config)
        var decoderConfig = MP4ByteWriter()
        decoderConfig.u8(0x40)                    // objectTypeIndication: Audio ISO/IEC 14496-3
        decoderConfig.u8(0x05 << 2 | 0x01)        // streamType 5, upStream 0, reserved 1
        decoderConfig.u24(UInt32(min(bufferSize, 0xFF_FFFF)))
        decoderConfig.u32(UInt32(clamping: maximum))
        decoderConfig.u32(UInt32(clamping: average))
        decoderConfig.append(decoderSpecific.bytes)
        var es = MP4ByteWriter()
        es.u16(0)                                 // ES_ID: 0 in files (14496-14 §3.1.2)
        es.u8(0)                                  // no dependency, URL or OCR stream; priority 0
        es.descriptor(tag: 0x04, decoderConfig.bytes)
        es.descriptor(tag: 0x06, [0x02])          // SLConfigDescriptor, predefined = 2
        fullBox("esds") { w in w.descriptor(tag: 0x03, es.bytes) }
    }

    /// An MPEG-4 descriptor (14496-1 §8.3.3): tag, expandable size (7 bits per byte), body.
    private mutating func descriptor(tag: UInt8, _ body: [UInt8]) {
        u8(tag)
        var groups: [UInt8] = []
        var size = body.count
        repeat {
            groups.insert(UInt8(size & 0x7F), at: 0)
            size >>= 7
        } while size > 0
        for (index, group) in groups.enumerated() {
            u8(index < groups.count - 1 ? group | 0x80 : group)
        }
        append(body)
    }

    /// `dOps` (Opus-in-ISOBMFF §4.3.2): all fields big-endian, Version 0.
    private mutating func opusSpecificBox(channels: Int, preSkip: Int, inputSampleRate: Int) {
        box("dOps") { w in
            w.u8(0)                               // Version
            w.u8(UInt8(clamping: channels))       // OutputChannelCount
            w.u16(UInt16(clamping: preSkip))      // PreSkip (48 kHz samples)
            w.u32(UInt32(clamping: inputSampleRate))
            w.i16(0)                              // OutputGain (Q7.8 dB)
            if let surround = opusSurroundMapping(channels: channels) {
                w.u8(1)                           // ChannelMappingFamily 1 (Vorbis order)
                w.u8(surround.streams)
                w.u8(surround.coupled)
                w.append(surround.mapping)
            } else {
                w.u8(0)                           // family 0: mono or stereo, one stream
            }
        }
    }

    /// `sgpd` (§8.9.3, version 1) holding one AudioRollRecoveryEntry ('roll', §10.1):
    /// Opus needs 80 ms of pre-roll after random access (Opus-in-ISOBMFF §4.3.6.2).
    /// `sinf` (ISO/IEC 23001-7 §8): the original format, the scheme (`cenc` or `cbcs`, 1.0) and
    /// `tenc` (protected, the default KID; `cenc`: 8-byte per-sample IVs; `cbcs`: the constant IV).
    mutating func protectionScheme(originalFormat: String, _ encryption: CMAFEncryption) {
        box("sinf") { w in
            w.box("frma") { w in w.fourCC(originalFormat) }
            w.fullBox("schm") { w in
                w.fourCC(encryption.scheme.rawValue)
                w.u32(0x0001_0000)                // scheme_version 1.0
            }
            w.box("schi") { w in
                switch encryption.scheme {
                case .cenc:
                    w.fullBox("tenc") { w in
                        w.u8(0)                   // reserved
                        w.u8(0)                   // reserved (pattern: version 1 only)
                        w.u8(1)                   // default_isProtected
                        w.u8(8)                   // default_Per_Sample_IV_Size
                        w.append(encryption.keyID) // default_KID
                    }
                case .cbcs:
                    w.fullBox("tenc", version: 1) { w in
                        w.u8(0)                   // reserved
                        w.u8(0)                   // crypt 0, skip 0: no pattern, every whole block
                        w.u8(1)                   // default_isProtected
                        w.u8(0)                   // default_Per_Sample_IV_Size: the constant IV
                        w.append(encryption.keyID) // default_KID
                        w.u8(16)                  // default_constant_IV_size
                        w.append(encryption.constantIV)
                    }
                }
            }
        }
    }

    /// `pssh` version 1 of the W3C common system, naming the KID (what EME's `cenc` init data is).
    mutating func commonProtectionHeader(_ encryption: CMAFEncryption) {
        fullBox("pssh", version: 1) { w in
            w.append(CMAFEncryption.commonSystemID)
            w.u32(1)                              // KID_count
            w.append(encryption.keyID)
            w.u32(0)                              // DataSize
        }
    }

    mutating func rollGroupDescription(rollDistance: Int16) {
        fullBox("sgpd", version: 1) { w in
            w.fourCC("roll")
            w.u32(2)                              // default_length
            w.u32(1)                              // entry_count
            w.i16(rollDistance)
        }
    }

    /// `sbgp` (§8.9.2) for 'roll': `runs` of (sample_count, group_description_index).
    mutating func rollSampleToGroup(_ runs: [(count: UInt32, index: UInt32)]) {
        fullBox("sbgp") { w in
            w.fourCC("roll")
            w.u32(UInt32(runs.count))
            for run in runs {
                w.u32(run.count)
                w.u32(run.index)
            }
        }
    }
}

/// Packs an ISO 639-2/T code into 15 bits: each letter minus 0x60 in five bits
/// (§8.4.2.3). Anything that is not three lowercase ASCII letters becomes "und".
func packedLanguage(_ code: String) -> UInt16 {
    var letters = Array(code.utf8)
    if letters.count != 3 || !letters.allSatisfy({ (0x61...0x7A).contains($0) }) {
        letters = Array("und".utf8)
    }
    return letters.reduce(UInt16(0)) { ($0 << 5) | UInt16($1 - 0x60) }
}

/// The `samplerate` written in an AudioSampleEntry: 16.16 fixed point holds at most
/// 65535 Hz, so higher rates are halved until they fit (96/192 kHz → 48 kHz, 88.2 kHz →
/// 44.1 kHz) and rates with no such division become 65535, as FLAC-in-ISOBMFF §3.3.1
/// prescribes. The codec configuration (AudioSpecificConfig, STREAMINFO) keeps the real rate.
func sampleEntryRate(_ rate: Int) -> Int {
    var value = rate
    while value > 0xFFFF && value % 2 == 0 { value /= 2 }
    return value > 0xFFFF ? 0xFFFF : max(value, 0)
}

/// The Vorbis-order channel mapping libopus' surround encoder (and FFmpeg's libopus
/// wrapper) uses for 3...8 channels (RFC 7845 §5.1.1.2), or nil for mono/stereo (family 0).
func opusSurroundMapping(channels: Int) -> (streams: UInt8, coupled: UInt8, mapping: [UInt8])? {
    switch channels {
    case 3: (2, 1, [0, 2, 1])
    case 4: (2, 2, [0, 1, 2, 3])
    case 5: (3, 2, [0, 4, 1, 2, 3])
    case 6: (4, 2, [0, 4, 1, 2, 3, 5])
    case 7: (4, 3, [0, 4, 1, 2, 3, 5, 6])
    case 8: (5, 3, [0, 6, 1, 2, 3, 4, 5, 7])
    default: nil
    }
}

/// The `roll_distance` (in samples, i.e. packets, negative) covering Opus' 80 ms pre-roll
/// for packets of `packetDuration` ticks at `timescale`.
func opusRollDistance(packetDuration: Int, timescale: Int) -> Int16 {
    let preRoll = timescale * 80 / 1000
    guard packetDuration > 0 else { return -4 }
    return -Int16(clamping: (preRoll + packetDuration - 1) / packetDuration)
}
