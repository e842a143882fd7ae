import Foundation
import Logging
import MediaCore
import NIOCore
import Synchronization

/// A mount's show: the real-time ladder that runs from the first source's connection until no
/// source has been back for ``LiveConfiguration/graceSeconds``, through any number of source
/// reconnects (and takeovers) in between.
///
/// One task per session decodes the current source (``LiveDecoder``), applies the live loudness
/// stage when configured, encodes every rung (``LiveLadder``) and publishes the parts to LL-HLS
/// and DASH (``LivePresentation``), to the ICY listeners of each rung (ADTS or Ogg Opus) and to the
/// recording. While no source sends, the ladder is fed silence in real time (the fallback),
/// so the timeline of every output goes on without a gap and a returning source simply
/// continues it: players need no discontinuity, since every rung is re-encoded on one clock.
///
/// Each part has a deadline: it is published within one part's duration of the arrival of the
/// audio that completes it, or the miss is counted (`veza_live_part_deadline_misses_total`).
final class LiveSession: Sendable {
    enum Event: Sendable {
        case source(LiveStreamFormat, generation: UInt64)
        case unit(LiveFrame, generation: UInt64, arrived: ContinuousClock.Instant)
        case sourceEnded(generation: UInt64)
        case tick
        case end
    }

    /// One rung served to ICY listeners without a container: ADTS for AAC, Ogg for Opus.
    struct RungStream: Sendable {
        var rung: String
        var contentType: String
        var fileExtension: String
        var bitrate: Int
        var fanout: LiveFanout
    }

    struct Status: Sendable {
        var id: String
        var startedAt: Date
        var ended: Bool
        var sourceConnected: Bool
        var fallbackSeconds: Double
        var reconnects: Int
        var loudnessGain: Double?
        var recordingTrack: String?
        var recordingError: String?
        var rungListeners: Int
        /// WebSocket listeners (CMAF parts), all rungs.
        var webSocketListeners: Int
        /// What plays while the source is away (`mount:NAME`, `tracks:N`), nil for silence.
        var fallback: String?
        /// Seconds from the arrival of the audio completing the last part to its publication.
        var lastPublishSeconds: Double?
    }

    fileprivate struct State {
        var ended = false
        var sourceConnected = true
        var fallbackSeconds = 0.0
        var reconnects = 0
        var loudnessGain: Double?
        var recordingTrack: String?
        var recordingError: String?
        var fallback: String?
        var lastPublishSeconds: Double?
    }

    let id: String
    let mountName: String
    let startedAt: Date
    let hls: LivePresentation
    let rungStreams: [String: RungStream]
    /// Each CMAF rung's parts as they are encoded, for WebSocket listeners (the init segment
    /// first, then the latest part; see ``LiveRoutes/webSocket(_:_:mount:)``).
    let partStreams: [String: LiveFanout]
    /// The rung WebRTC listeners hear: the ladder's first Opus rung (nil: none).
    let webRTCRung: String?
    private let events: AsyncStream<Event>.Continuation
    private let queued = Atomic<Int>(0)
    private let state = Mutex(State())

    /// Units waiting for the ladder beyond which new ones are dropped (about a minute of MP3).
    static let maximumQueuedUnits = 3000

    /// What the session needs from the host.
    struct Context: Sendable {
        var live: LiveConfiguration
        var metrics: HostMetrics
        var logger: Logger
        /// Where recordings are written, when the mount records.
        var recordingDirectory: String?
        /// Hands a finished recording to the ingest pipeline; returns the track's id.
        var archive: (@Sendable (_ path: String, _ key: String) async throws -> String)?
        /// Called once a show has begun (its first source connected to a mount without a show).
        var onStart: @Sendable (LiveSession) -> Void = { _ in }
        /// Called once the session has ended (the mount forgets it).
        var onEnd: @Sendable (LiveSession) -> Void
        /// The mount's now-playing title (set by the mount), carried to LL-HLS and DASH
        /// players as ID3 timed metadata.
        var title: @Sendable () -> String? = { nil }
        /// Makes the feed the show plays while its source is away (nil: silence), for the
        /// ladder's rate and channels.
        var makeFallback: (@Sendable (_ sampleRate: Int, _ channelCount: Int) -> LiveFallbackFeed?)?
        /// Receives the source's audio as the ladder hears it (other mounts' fallback feeds).
        var tap: (@Sendable ([Float]) -> Void)?
        /// A mount by name (for a fallback to another mount).
        var mountNamed: (@Sendable (String) -> LiveMount?)?
        /// Receives the Opus packets of the show's WebRTC rung as soon as they are encoded
        /// (``LiveWebRTC``): the mount's name, the first packet's decode time at 48 kHz.
        var opusPackets: (@Sendable (_ mount: String, _ startTime: Int64, _ packets: [EncodedPacket]) -> Void)?
        /// The local path of a catalog track's audio (for a fallback to tracks).
        var trackAudio: (@Sendable (String) async throws -> String)?
    }

    /// Starts a session for the first source (`format`, `generation`).
    init(mountName: String, format: LiveStreamFormat, generation: UInt64, context: Context) throws(MediaError) {
        let ladder = try LiveLadder(rungs: context.live.rungs, partBlocks: Int((context.live.partSeconds / 0.32).rounded()))
        let loudness = try context.live.loudnessTarget.map { target throws(MediaError) in
            try LiveLoudnessStage(sampleRate: ladder.sampleRate, channelCount: ladder.channelCount, targetLoudness: target)
        }
        id = "live_" + TrackRoutes.newID()
        self.mountName = mountName
        startedAt = Date()
        hls = LivePresentation(ladder: ladder, windowSeconds: context.live.dvrSeconds, startedAt: startedAt)
        var streams: [String: RungStream] = [:]
        for rung in ladder.rungs {
            let (type, ext) = switch rung.settings.codec {
            case .aac: ("audio/aac", "aac")
            case .mp3: ("audio/mpeg", "mp3")
            default: ("audio/ogg", "opus")
            }
            let bitrate = switch rung.settings {
            case .mp3CBR(let bitrate): bitrate.bitsPerSecond
            default: hls.rung(rung.id)?.nominalBitrate ?? 0
            }
            streams[rung.id] = RungStream(rung: rung.id, contentType: type, fileExtension: ext, bitrate: bitrate,
                                          fanout: LiveFanout(burstBytes: context.live.burstBytes, lagBytes: context.live.listenerLagBytes))
        }
        rungStreams = streams
        webRTCRung = ladder.rungs.first { $0.settings.codec == .opus }?.id
        // A joining WebSocket listener gets the init segment and the latest part (a burst of
        // one byte keeps only the last buffer); it may fall behind by the listener allowance.
        partStreams = Dictionary(uniqueKeysWithValues: hls.rungs.map { rung in
            let fanout = LiveFanout(burstBytes: 1, lagBytes: context.live.listenerLagBytes)
            fanout.setHeaders([ByteBuffer(bytes: rung.initSegment)])
            return (rung.id, fanout)
        })
        let (stream, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .unbounded)
        events = continuation
        continuation.yield(.source(format, generation: generation))
        var recording: LiveRecording?
        if let directory = context.recordingDirectory {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                recording = try LiveRecording(path: "\(directory)/\(mountName)~\(id).wav", sampleRate: ladder.sampleRate,
                                              channelCount: ladder.channelCount)
            } catch {
                state.withLock { $0.recordingError = "cannot record: \(error)" }
            }
        }
        let fallback = context.makeFallback?(ladder.sampleRate, ladder.channelCount)
        state.withLock { $0.fallback = fallback?.description }
        let worker = Worker(session: self, ladder: ladder, loudness: loudness, recording: recording, fallback: fallback, context: context)
        Task { await worker.run(stream) }
        Task { [weak self] in
            while let self, !self.isEnded {
                try? await Task.sleep(for: .milliseconds(100))
                self.events.yield(.tick)
            }
        }
    }

    // MARK: Events from the mount

    func sourceStarted(_ format: LiveStreamFormat, generation: UInt64) {
        events.yield(.source(format, generation: generation))
    }

    func sourceEnded(generation: UInt64) {
        events.yield(.sourceEnded(generation: generation))
    }

    /// Queues a unit for the ladder; false when the ladder is too far behind and the unit was
    /// dropped.
    @discardableResult
    func push(_ frame: LiveFrame, generation: UInt64) -> Bool {
        guard queued.add(1, ordering: .relaxed).newValue <= Self.maximumQueuedUnits else {
            queued.subtract(1, ordering: .relaxed)
            return false
        }
        events.yield(.unit(frame, generation: generation, arrived: .now))
        return true
    }

    /// Ends the show now (the mount is being deleted or the host stops).
    func end() { events.yield(.end) }

    var isEnded: Bool { state.withLock { $0.ended } }

    var status: Status {
        let listeners = rungStreams.values.reduce(0) { $0 + $1.fanout.listenerCount }
        let webSocketListeners = partStreams.values.reduce(0) { $0 + $1.listenerCount }
        return state.withLock { state in
            Status(id: id, startedAt: startedAt, ended: state.ended, sourceConnected: state.sourceConnected,
                   fallbackSeconds: (state.fallbackSeconds * 10).rounded() / 10, reconnects: state.reconnects,
                   loudnessGain: state.loudnessGain.map { ($0 * 100).rounded() / 100 }, recordingTrack: state.recordingTrack,
                   recordingError: state.recordingError, rungListeners: listeners, webSocketListeners: webSocketListeners, fallback: state.fallback,
                   lastPublishSeconds: state.lastPublishSeconds.map { ($0 * 10_000).rounded() / 10_000 })
        }
    }

    fileprivate func update(_ body: (inout State) -> Void) { state.withLock { body(&$0) } }
    fileprivate func unitTaken() { queued.subtract(1, ordering: .relaxed) }

    /// The session's task: everything that touches the decoder, ladder and recording.
    private final class Worker: @unchecked Sendable {
        // @unchecked: used only from the one task that `run` executes in.
        let session: LiveSession
        let ladder: LiveLadder
        var loudness: LiveLoudnessStage?
        let recording: LiveRecording?
        let context: Context
        var decoder: LiveDecoder?
        var generation: UInt64 = 0
        var sourcePresent = false
        /// Whether the current source's audio has started (a new source's first audio can take
        /// a second: an Ogg page holds about that much).
        var sourceAudioStarted = false
        var sourcesWithAudio = 0
        /// The instant and frame count at which the timeline was last known to be on time: the
        /// last source audio, or the silence that followed it.
        var anchor: (instant: ContinuousClock.Instant, frames: Int64) = (.now, 0)
        var lostAt: ContinuousClock.Instant?
        var frames: Int64 = 0
        var oggStreams: [String: OggOpusStream] = [:]
        /// The title last announced in the parts, and its event id.
        var announced: (title: String, id: UInt32, rungs: Set<String>)?
        var adtsConfigs: [String: [UInt8]] = [:]
        /// What plays while the source is away (nil: silence).
        let fallback: LiveFallbackFeed?

        init(session: LiveSession, ladder: LiveLadder, loudness: LiveLoudnessStage?, recording: LiveRecording?, fallback: LiveFallbackFeed?,
             context: Context) {
            self.session = session
            self.fallback = fallback
            self.ladder = ladder
            self.loudness = loudness
            self.recording = recording
            self.context = context
            for rung in ladder.rungs {
                guard let track = ladder.tracks[rung.id] else { continue }
                switch track.codec {
                case .aac(let config): adtsConfigs[rung.id] = config
                case .opus(let preSkip, let rate):
                    let stream = OggOpusStream(channelCount: track.channelCount, preSkip: preSkip, inputSampleRate: rate)
                    oggStreams[rung.id] = stream
                    session.rungStreams[rung.id]?.fanout.setHeaders([ByteBuffer(bytes: stream.headers())])
                default: break
                }
            }
        }

        func run(_ events: AsyncStream<Event>) async {
            let live = context.live
            loop: for await event in events {
                switch event {
                case .source(let format, let generation):
                    self.generation = generation
                    do {
                        decoder = try LiveDecoder(format: format, outputRate: ladder.sampleRate, outputChannels: ladder.channelCount)
                    } catch {
                        decoder = nil
                        context.logger.warning("live source cannot be decoded", metadata: ["mount": "\(session.mountName)", "error": "\(error.message)"])
                    }
                    sourcePresent = true
                    sourceAudioStarted = false
                    lostAt = nil
                    session.update { $0.sourceConnected = true }
                case .unit(let unit, let generation, let arrived):
                    session.unitTaken()
                    guard generation == self.generation, let decoder else { continue }
                    do {
                        let samples = try decoder.decode(unit)
                        guard !samples.isEmpty else { continue }
                        publish(samples, arrived: arrived)
                        context.tap?(samples)
                        anchor = (.now, frames)
                        if !sourceAudioStarted {
                            // A reconnect is a source that brings audio after another did (not
                            // a connection closed before any, as libshout's first one is).
                            sourcesWithAudio += 1
                            if sourcesWithAudio > 1 {
                                context.metrics.liveSourceReconnected()
                                session.update { $0.reconnects += 1 }
                            }
                        }
                        sourceAudioStarted = true
                        recording?.showFrames = recording?.frames ?? 0
                    } catch {
                        context.logger.warning("live ladder stopped", metadata: ["mount": "\(session.mountName)", "error": "\(error.message)"])
                        self.decoder = nil
                    }
                case .sourceEnded(let generation):
                    guard generation == self.generation, sourcePresent else { continue }
                    sourcePresent = false
                    decoder = nil
                    lostAt = .now
                    session.update { $0.sourceConnected = false }
                case .tick:
                    let now = ContinuousClock.now
                    if let lostAt, now - lostAt > .seconds(live.graceSeconds) { break loop }
                    // Silence in real time from where the timeline was last on time: at once
                    // when the source is gone (or a new one has not sent audio yet), after
                    // `stallSeconds` when it is connected but stops sending (its late audio
                    // then follows the silence).
                    // (A show's first source is not bridged before its audio starts: that
                    // silence would only add latency.)
                    let hold: Duration = sourcePresent && (sourceAudioStarted || sourcesWithAudio == 0) ? .seconds(live.stallSeconds) : .zero
                    let elapsed = now - anchor.instant - hold
                    guard elapsed > .zero else { continue }
                    let due = anchor.frames + Int64(elapsed / .seconds(1) * Double(ladder.sampleRate))
                    guard due > frames else { continue }
                    let count = Int(min(due - frames, Int64(ladder.sampleRate)))
                    // A source that is away is replaced by the fallback feed; one that is only
                    // stalled is bridged with silence (its late audio follows).
                    let away = !sourcePresent || !sourceAudioStarted
                    publish(away ? fallback?.take(frames: count) ?? [Float](repeating: 0, count: count * ladder.channelCount)
                                 : [Float](repeating: 0, count: count * ladder.channelCount), arrived: now)
                    anchor = (now, frames)
                    session.update { $0.fallbackSeconds += Double(count) / Double(ladder.sampleRate) }
                    context.metrics.liveFallbackSeconds(Double(count) / Double(ladder.sampleRate))
                case .end:
                    break loop
                }
            }
            finish()
        }

        /// Encodes and publishes `samples`; `arrived` is when the audio completing them reached the host.
        private func publish(_ samples: [Float], arrived: ContinuousClock.Instant) {
            var samples = samples
            if var stage = loudness {
                samples = stage.process(samples)
                loudness = stage
                let gain = stage.gain
                session.update { $0.loudnessGain = gain }
            }
            frames += Int64(samples.count / ladder.channelCount)
            do {
                try recording?.append(samples)
            } catch {
                session.update { $0.recordingError = "recording stopped: \(error)" }
            }
            let parts: [LivePart]
            do {
                let (mount, rtpRung, sink) = (session.mountName, session.webRTCRung, context.opusPackets)
                parts = try ladder.push(samples) { rung, startTime, packets in
                    if rung == rtpRung { sink?(mount, startTime, packets) }
                }
            } catch {
                context.logger.error("live ladder failed", metadata: ["mount": "\(session.mountName)", "error": "\(error.message)"])
                return
            }
            guard !parts.isEmpty else { return }
            for part in parts { serveICY(part) }
            let announced = announcingTitle(parts)
            session.hls.append(announced)
            for part in announced { session.partStreams[part.rung]?.publish(ByteBuffer(bytes: part.bytes)) }
            let latency = ContinuousClock.now - arrived
            session.update { $0.lastPublishSeconds = latency / .seconds(1) }
            context.metrics.livePartPublished(latency: latency, missed: latency > .seconds(ladder.partSeconds), count: parts.count { ladder.isCMAF($0.rung) } / max(1, session.hls.rungs.count))
        }

        /// `parts` with the now-playing title as ID3 timed metadata (an `emsg` before the
        /// fragment) in the first part after it changes and, for players that join later, in
        /// the first part of every segment (with the same event id: not a new event).
        private func announcingTitle(_ parts: [LivePart]) -> [LivePart] {
            guard let title = context.title(), !title.isEmpty else { return parts }
            var current: (title: String, id: UInt32, rungs: Set<String>) = announced?.title == title ? announced! : (title, (announced?.id ?? 0) &+ 1, [])
            let per = session.hls.partsPerSegment
            let timescale = UInt32(session.hls.timescale)
            defer { announced = current }
            return parts.map { part in
                guard part.index % per == 0 || !current.rungs.contains(part.rung) else { return part }
                current.rungs.insert(part.rung)
                var part = part
                part.bytes = TimedMetadata.id3Event(title: title, presentationTime: UInt64(part.startTime), timescale: timescale, id: current.id)
                    + part.bytes
                return part
            }
        }

        private func serveICY(_ part: LivePart) {
            guard let stream = session.rungStreams[part.rung] else { return }
            var bytes: [UInt8] = []
            if let config = adtsConfigs[part.rung] {
                for packet in part.packets { bytes += ADTS.frame(packet.data, audioSpecificConfig: config) ?? [] }
            } else if var ogg = oggStreams[part.rung] {
                bytes = ogg.pages(part.packets)
                oggStreams[part.rung] = ogg
            } else if stream.fileExtension == "mp3" {
                // MP3 frames stand alone: the stream is the frames, one after another.
                for packet in part.packets { bytes += packet.data }
            }
            if !bytes.isEmpty { stream.fanout.publish(ByteBuffer(bytes: bytes)) }
        }

        private func finish() {
            fallback?.close()
            session.update { $0.ended = true }
            session.hls.end()
            for stream in session.rungStreams.values { stream.fanout.reset() }
            for fanout in session.partStreams.values { fanout.reset() }
            context.logger.info("live show ended", metadata: ["mount": "\(session.mountName)", "session": "\(session.id)"])
            context.onEnd(session)
            guard let recording else { return }
            let minimum = Int64(ladder.sampleRate)
            do {
                try recording.finish()
            } catch {
                session.update { $0.recordingError = "cannot finish the recording: \(error)" }
                return
            }
            guard recording.frames >= minimum, let archive = context.archive else {
                try? FileManager.default.removeItem(atPath: recording.path)
                return
            }
            let session = self.session
            let logger = context.logger
            Task {
                do {
                    let track = try await archive(recording.path, session.id)
                    session.update { $0.recordingTrack = track }
                    logger.info("live show archived", metadata: ["mount": "\(session.mountName)", "track": "\(track)"])
                } catch {
                    session.update { $0.recordingError = "the recording was not accepted: \(error)" }
                    logger.error("live show not archived", metadata: ["mount": "\(session.mountName)", "error": "\(error)"])
                }
            }
        }
    }
}
