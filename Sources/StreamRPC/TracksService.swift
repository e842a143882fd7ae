import Foundation
import GRPCCore
import HTTPTypes
import SwiftProtobuf
import MediaCore
import StreamHost

/// `veza.v1.Tracks`: the track API for services, over the same operations as the HTTP routes
/// (``TrackOperations``).
struct TracksService: Veza_V1_Tracks.ServiceProtocol {
    let operations: TrackOperations
    let authorization: RPCAuthorization
    /// How often ``watchTrack(request:context:)`` reads the catalog (every host on a shared
    /// catalog moves the track, so a change is read rather than signalled in process).
    let watchInterval: Duration

    func createTrack(request: ServerRequest<Veza_V1_CreateTrackRequest>, context: ServerContext) async throws -> ServerResponse<Veza_V1_Track> {
        let principal = try await authorization.require([.upload], request.metadata, route: (.post, "/v1/tracks"))
        let message = request.message
        guard message.idempotencyKey.utf8.count <= 200 else {
            throw RPCError(code: .invalidArgument, message: "idempotency_key must be at most 200 bytes")
        }
        return try await RPCAuthorization.mapping {
            let priority: JobPriority = message.priority == .background ? .backCatalogue : .interactive
            let record = try await operations.accept(storedObject: message.sourceKey,
                                                     idempotencyKey: message.idempotencyKey.isEmpty ? nil : message.idempotencyKey,
                                                     priority: priority)
            return ServerResponse(message: Veza_V1_Track(try await operations.resource(id: record.id, for: principal)))
        }
    }

    func getTrack(request: ServerRequest<Veza_V1_GetTrackRequest>, context: ServerContext) async throws -> ServerResponse<Veza_V1_Track> {
        let id = request.message.id
        let principal = try await authorization.require([.stream, .upload, .admin], request.metadata, track: id)
        return try await RPCAuthorization.mapping {
            ServerResponse(message: Veza_V1_Track(try await operations.resource(id: id, for: principal)))
        }
    }

    func listTracks(request: ServerRequest<Veza_V1_ListTracksRequest>, context: ServerContext) async throws -> ServerResponse<Veza_V1_ListTracksResponse> {
        try await authorization.require([.stream, .admin], request.metadata)
        let limit = request.message.limit == 0 ? 50 : Int(request.message.limit)
        guard (1...500).contains(limit) else { throw RPCError(code: .invalidArgument, message: "limit must be 1–500 (0: 50)") }
        let after = request.message.after
        return try await RPCAuthorization.mapping {
            let page = try await operations.page(limit: limit, after: after.isEmpty ? nil : after)
            return ServerResponse(message: .with {
                $0.tracks = page.tracks.map(Veza_V1_Track.init)
                $0.next = page.next ?? ""
            })
        }
    }

    func deleteTrack(request: ServerRequest<Veza_V1_DeleteTrackRequest>, context: ServerContext) async throws -> ServerResponse<Veza_V1_DeleteTrackResponse> {
        try await authorization.require([.admin], request.metadata)
        let id = request.message.id
        return try await RPCAuthorization.mapping {
            try await operations.delete(id: id)
            return ServerResponse(message: Veza_V1_DeleteTrackResponse())
        }
    }

    func watchTrack(request: ServerRequest<Veza_V1_WatchTrackRequest>, context: ServerContext) async throws -> StreamingServerResponse<Veza_V1_Track> {
        let id = request.message.id
        let principal = try await authorization.require([.stream, .upload, .admin], request.metadata, track: id)
        let operations = self.operations
        let interval = watchInterval
        // The first read answers NOT_FOUND as a status, before the stream begins.
        let first = try await RPCAuthorization.mapping { try await operations.resource(id: id, for: principal) }
        return StreamingServerResponse { writer in
            var current = first
            try await writer.write(Veza_V1_Track(current))
            while current.status != .ready && current.status != .failed {
                try await Task.sleep(for: interval)
                let next = try await RPCAuthorization.mapping { try await operations.resource(id: id, for: principal) }
                if next.status != current.status || next.progress != current.progress {
                    try await writer.write(Veza_V1_Track(next))
                }
                current = next
            }
            return [:]
        }
    }
}

extension Veza_V1_Track {
    /// The gRPC form of what `GET /v1/tracks/{id}` answers.
    init(_ resource: TrackResource) {
        self.init()
        id = resource.id
        jobID = resource.jobId
        status = switch resource.status {
        case .queued: .queued
        case .processing: .processing
        case .ready: .ready
        case .failed: .failed
        }
        progress = resource.progress
        createdAt = Google_Protobuf_Timestamp(date: resource.createdAt)
        updatedAt = Google_Protobuf_Timestamp(date: resource.updatedAt)
        failureReason = resource.failureReason ?? ""
        version = Int64(resource.version ?? 0)
        durationSeconds = resource.metadata?.durationSeconds ?? 0
        if let loudness = resource.loudness { integratedLoudnessLufs = loudness.integratedLoudness }
        if let gain = resource.gainDB { gainDb = gain }
        renditions = (resource.renditions ?? []).map { rendition in
            .with {
                $0.id = rendition.id
                $0.codec = rendition.codec
                $0.codecs = rendition.codecs
                $0.sampleRate = Int32(clamping: rendition.sampleRate)
                $0.channelCount = Int32(clamping: rendition.channelCount)
                $0.targetBitrate = Int32(clamping: rendition.targetBitrate ?? 0)
                $0.segmentCount = Int32(clamping: rendition.segmentCount)
                $0.switchingSet = rendition.switchingSet ?? ""
            }
        }
        if let playback = resource.playback {
            self.playback = .with {
                if let expires = playback.expires { $0.expires = Google_Protobuf_Timestamp(date: expires) }
                $0.hls = playback.hls ?? ""
                $0.hlsByCodec = playback.hlsByCodec
                $0.dash = playback.dash ?? ""
                $0.waveform = playback.waveform
                $0.progressive = playback.progressive.map { file in
                    .with {
                        $0.rendition = file.rendition
                        $0.mimeType = file.mimeType
                        $0.url = file.url
                    }
                }
            }
        }
    }
}
