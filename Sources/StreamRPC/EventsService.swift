import Foundation
import GRPCCore
import SwiftProtobuf
import StreamHost

/// `veza.v1.Events`: the webhook events as a stream (scope `admin`), read from the catalog's
/// outbox in commit order (``Catalog/events(after:limit:)``), so every host on a shared catalog
/// streams every host's events, and a subscriber that reconnects with its last cursor misses
/// none and gets none twice.
struct EventsService: Veza_V1_Events.ServiceProtocol {
    let catalog: any Catalog
    let authorization: RPCAuthorization
    /// How often the outbox is read while there is nothing new.
    let pollInterval: Duration

    func subscribe(request: ServerRequest<Veza_V1_SubscribeRequest>, context: ServerContext) async throws -> StreamingServerResponse<Veza_V1_Event> {
        try await authorization.require([.admin], request.metadata)
        let types = try Self.types(request.message.types)
        let start = try await startCursor(request.message.afterCursor)
        let catalog = self.catalog
        let interval = pollInterval
        return StreamingServerResponse { writer in
            var cursor = start
            // Until the client cancels (the sleep then throws) or the host shuts down.
            while !Task.isCancelled {
                let events = try await RPCAuthorization.mapping { try await catalog.events(after: cursor, limit: 100) }
                try await writer.write(contentsOf: events.filter { types.isEmpty || types.contains($0.type) }.map(Veza_V1_Event.init))
                if let last = events.last { cursor = last.cursor }
                // A full batch: more may be waiting; read again at once.
                if events.count < 100 { try await Task.sleep(for: interval) }
            }
            return [:]
        }
    }
}

extension EventsService {
    /// The requested event types, each of which must be known (empty: every type).
    static func types(_ requested: [String]) throws -> Set<String> {
        let known = Set(HostEvent.Kind.allCases.map(\.rawValue))
        if let unknown = requested.first(where: { !known.contains($0) }) {
            throw RPCError(code: .invalidArgument, message: "unknown event type \(unknown); known: \(known.sorted().joined(separator: ", "))")
        }
        return Set(requested)
    }

    /// Where a subscription starts: after `text` (a cursor an event carried, or `0`), or at the
    /// newest event now when it is empty.
    func startCursor(_ text: String) async throws -> EventCursor {
        if text.isEmpty {
            do {
                return try await catalog.latestEventCursor()
            } catch {
                throw RPCAuthorization.status(of: error)
            }
        }
        guard let cursor = EventCursor(text) else {
            throw RPCError(code: .invalidArgument, message: "after_cursor must be a cursor an event carried, or 0")
        }
        return cursor
    }
}

extension Veza_V1_Event {
    /// The gRPC form of an outbox event.
    init(_ event: LoggedEvent) {
        self.init()
        id = event.id
        type = event.type
        subject = event.subject
        createdAt = Google_Protobuf_Timestamp(date: event.createdAt)
        bodyJson = event.body
        cursor = event.cursor.description
    }
}
