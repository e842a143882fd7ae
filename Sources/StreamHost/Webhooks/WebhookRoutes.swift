public import Hummingbird
import Foundation
import Logging
import NIOCore

/// The `/v1/webhooks` API (admin scope): subscribe an endpoint to event types, list, inspect
/// and delete subscriptions, see an endpoint's deliveries (the failed ones stay visible) and
/// send a failed one again.
///
/// The secret that signs an endpoint's deliveries is returned once, in the `201` of its
/// creation; it is never shown again.
public struct WebhookRoutes: Sendable {
    let catalog: any Catalog
    let auth: HostAuth
    let configuration: WebhookConfiguration
    /// Called when a delivery was put back to pending (wakes the dispatcher).
    let onRetry: @Sendable () -> Void

    /// Subscriptions beyond which creation is refused (each event fans out to every one).
    static let maximumEndpoints = 100
    /// Addresses no endpoint may point at unless ``WebhookConfiguration/allowPrivateTargets``.
    static let privateRanges = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
                                "192.168.0.0/16", "::/128", "::1/128", "fc00::/7", "fe80::/10"].compactMap { IPRange($0) }

    public init(catalog: any Catalog, auth: HostAuth, configuration: WebhookConfiguration, onRetry: @escaping @Sendable () -> Void = {}) {
        self.catalog = catalog
        self.auth = auth
        self.configuration = configuration
        self.onRetry = onRetry
    }

    /// Adds the routes to `router`.
    public func register<Context: RequestContext>(on router: some RouterMethods<Context>) {
        router.post("/v1/webhooks") { request, context -> Response in
            try await self.auth.require(.admin, request)
            let body = try await request.decode(as: Subscription.self, context: context)
            let endpoint = try self.validated(body)
            guard try await self.catalog.webhooks().count < Self.maximumEndpoints else {
                throw APIError(.conflict, code: "too_many_webhooks", "at most \(Self.maximumEndpoints) webhook endpoints; delete one first")
            }
            try await self.catalog.createWebhook(endpoint)
            context.logger.info("webhook endpoint created", metadata: ["webhook": "\(endpoint.id)", "events": "\(endpoint.events)"])
            return try Response.json(EndpointResource(endpoint, showSecret: true), status: .created,
                                 extra: [.location: "/v1/webhooks/\(endpoint.id)"])
        }
        router.get("/v1/webhooks") { request, _ -> Response in
            try await self.auth.require(.admin, request)
            return try Response.json(EndpointList(webhooks: try await self.catalog.webhooks().map { EndpointResource($0, showSecret: false) }))
        }
        router.get("/v1/webhooks/:id") { request, context -> Response in
            try await self.auth.require(.admin, request)
            return try Response.json(EndpointResource(try await self.endpoint(context), showSecret: false))
        }
        router.delete("/v1/webhooks/:id") { request, context -> Response in
            try await self.auth.require(.admin, request)
            let id = try context.parameters.require("id")
            guard try await self.catalog.deleteWebhook(id: id) else { throw APIError.notFound("no webhook endpoint \(id)") }
            return Response(status: .noContent)
        }
        router.get("/v1/webhooks/:id/deliveries") { request, context -> Response in
            try await self.auth.require(.admin, request)
            let endpoint = try await self.endpoint(context)
            var state: WebhookDeliveryState?
            if let text = request.uri.queryParameters.get("state") {
                guard let parsed = WebhookDeliveryState(rawValue: text) else {
                    throw APIError(.badRequest, code: "bad_request", "state must be pending, delivered or failed")
                }
                state = parsed
            }
            let limit = try request.integerQuery("limit", default: 100, range: 1...1000)
            return try Response.json(DeliveryList(deliveries: try await self.catalog.webhookDeliveries(endpoint: endpoint.id, state: state, limit: limit)))
        }
        router.post("/v1/webhooks/:id/deliveries/:delivery/retry") { request, context -> Response in
            try await self.auth.require(.admin, request)
            let endpoint = try await self.endpoint(context)
            let delivery = try context.parameters.require("delivery")
            guard try await self.catalog.retryWebhookDelivery(id: delivery, endpoint: endpoint.id, now: Date()) else {
                throw APIError.notFound("no failed delivery \(delivery) to webhook endpoint \(endpoint.id)")
            }
            self.onRetry()
            return Response(status: .accepted)
        }
    }

    private func endpoint(_ context: some RequestContext) async throws -> WebhookEndpoint {
        let id = try context.parameters.require("id")
        guard let endpoint = try await catalog.webhook(id: id) else { throw APIError.notFound("no webhook endpoint \(id)") }
        return endpoint
    }

    /// The endpoint a subscription asks for, or a 422 saying what is wrong with it.
    func validated(_ body: Subscription) throws -> WebhookEndpoint {
        func invalid(_ message: String) -> APIError { APIError(.unprocessableContent, code: "invalid_webhook", message) }
        guard body.url.utf8.count <= 2048, let url = URLComponents(string: body.url), let scheme = url.scheme?.lowercased(),
              ["http", "https"].contains(scheme), let host = url.host, !host.isEmpty, url.user == nil, url.password == nil else {
            throw invalid("url must be an absolute http or https URL without credentials, at most 2048 bytes")
        }
        if !configuration.allowPrivateTargets {
            let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
            let isLocalName = bare == "localhost" || bare.hasSuffix(".localhost")
            if isLocalName || IPAddress(bare).map({ address in Self.privateRanges.contains { $0.contains(address) } }) == true {
                throw invalid("\(host) is a loopback or private address (allowed only with webhooks.allowPrivateTargets)")
            }
        }
        let known = Set(HostEvent.Kind.allCases.map(\.rawValue))
        guard !body.events.isEmpty, body.events.count <= 32 else { throw invalid("events must list 1–32 event types, or \"*\"") }
        for event in body.events where event != "*" && !known.contains(event) {
            throw invalid("unknown event type \(event.prefix(64)); known: \(known.sorted().joined(separator: ", "))")
        }
        if let description = body.description, description.utf8.count > 500 { throw invalid("description must be at most 500 bytes") }
        let events = body.events.contains("*") ? ["*"] : Array(Set(body.events)).sorted()
        return WebhookEndpoint(id: "wh_" + TrackRoutes.newID(), url: body.url, events: events, secret: .generate(),
                               description: body.description, createdAt: Date())
    }
}

/// The body of `POST /v1/webhooks`.
struct Subscription: Decodable {
    var url: String
    var events: [String]
    var description: String?
}

/// An endpoint as the API shows it (the secret only in the reply that creates it).
struct EndpointResource: Encodable {
    var id: String
    var url: String
    var events: [String]
    var description: String?
    var createdAt: Date
    var secret: String?

    init(_ endpoint: WebhookEndpoint, showSecret: Bool) {
        id = endpoint.id
        url = endpoint.url
        events = endpoint.events
        description = endpoint.description
        createdAt = endpoint.createdAt
        secret = showSecret ? endpoint.secret.description : nil
    }
}

struct EndpointList: Encodable {
    var webhooks: [EndpointResource]
}

struct DeliveryList: Encodable {
    var deliveries: [WebhookDeliveryRecord]
}
