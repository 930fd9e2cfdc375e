import Foundation
import HTTPTypes
import HeraldCore
import Hummingbird

/// `/admin/...`, behind `Authorization: Bearer <server.admin_token>` (not served at all when the
/// token is empty): the audit trail and the retry button.
///
/// - `GET /admin/events?state=&route=&sink=&since=&until=&unrouted=true&limit=` newest first
/// - `GET /admin/events/{id}`: the event, its deliveries and every attempt
/// - `GET /admin/deliveries?state=&sink=&limit=`
/// - `POST /admin/deliveries/{id}/retry`: a `failed` or `expired` delivery goes out again now
/// - `GET /admin/sources`: each source and when it was last heard from
struct AdminAPI: Sendable {
    let token: Secret
    let runtime: HeraldRuntime

    func register<Context: RequestContext>(on group: RouterGroup<Context>) {
        group.get("events") { request, _ in try await self.listEvents(request) }
        group.get("events/{id}") { request, context in try await self.showEvent(request, id: context.parameters.require("id")) }
        group.get("deliveries") { request, _ in try await self.listDeliveries(request) }
        group.post("deliveries/{id}/retry") { request, context in try await self.retry(request, id: context.parameters.require("id")) }
        group.post("reload") { request, _ in try await self.reload(request) }
        group.get("sources") { request, _ in try await self.listSources(request) }
    }

    /// `GET /admin/sources`: every source with its type and path, and when it was last heard
    /// from (its last message; for a phone, also its last ping). Since this process started.
    private func listSources(_ request: Request) async throws -> Response {
        try authorize(request)
        let sources = runtime.config.sources
        var list: [AdminSource] = []
        func add(_ name: String, _ type: String, _ path: String) {
            let seen = runtime.liveness.current(name)
            list.append(AdminSource(name: name, type: type, path: path, lastMessageAt: seen.lastMessage.map(RFC3339.string(from:)),
                                    lastPingAt: seen.lastPing.map(RFC3339.string(from:))))
        }
        if let twilio = sources.twilio { add("twilio", "twilio", twilio.path) }
        if let http = sources.http { add("http", "http", http.path) }
        for source in sources.named { add(source.name, source.type, source.path) }
        return try json(AdminSourceList(sources: list))
    }

    /// `POST /admin/reload`: 200 with the warnings, or 400 with every problem (file:line:column);
    /// a bad file leaves the running configuration as it was.
    private func reload(_ request: Request) async throws -> Response {
        try authorize(request)
        do {
            let warnings = try await runtime.reload()
            return try json(AdminReload(reloaded: true, warnings: warnings, errors: nil))
        } catch let errors as ConfigErrors {
            return try json(AdminReload(reloaded: false, warnings: nil, errors: errors.errors.map(\.description)), status: .badRequest)
        }
    }

    private func authorize(_ request: Request) throws {
        guard request.hasBearerToken(token) else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "missing or wrong admin token")
        }
    }

    private func listEvents(_ request: Request) async throws -> Response {
        try authorize(request)
        let query = request.uri.queryParameters
        var filter = EventFilter(limit: try limit(query))
        filter.state = try state(query)
        filter.route = query["route"].map(String.init)
        filter.sink = query["sink"].map(String.init)
        filter.unrouted = query["unrouted"] == "true"
        filter.since = try time(query, "since")
        filter.until = try time(query, "until")
        let events = try await runtime.store.events(filter)
        return try json(AdminEventList(events: events.map { AdminEvent($0, attempts: false) }))
    }

    private func showEvent(_ request: Request, id: String) async throws -> Response {
        try authorize(request)
        guard let stored = try await runtime.store.event(id: id) else { throw HTTPError(.notFound, message: "no event \(id)") }
        return try json(AdminEvent(stored, attempts: true))
    }

    private func listDeliveries(_ request: Request) async throws -> Response {
        try authorize(request)
        let query = request.uri.queryParameters
        let filter = DeliveryFilter(state: try state(query), sink: query["sink"].map(String.init), limit: try limit(query))
        let deliveries = try await runtime.store.deliveries(filter)
        return try json(AdminDeliveryList(deliveries: deliveries.map(AdminDelivery.init)))
    }

    private func retry(_ request: Request, id: String) async throws -> Response {
        try authorize(request)
        // The store wakes the dispatcher itself (its `wakeups`), as it would for another process.
        guard let delivery = try await runtime.store.retry(deliveryID: id, expiresIn: runtime.live.current.defaults.expireAfter) else {
            throw try await runtime.store.delivery(id: id) != nil
                ? HTTPError(.conflict, message: "delivery \(id) is neither failed nor expired")
                : HTTPError(.notFound, message: "no delivery \(id)")
        }
        return try json(AdminDelivery(delivery))
    }

    // MARK: Query parameters

    private func limit(_ query: Parameters) throws -> Int {
        guard let text = query["limit"] else { return 50 }
        guard let value = Int(text), (1...1000).contains(value) else { throw HTTPError(.badRequest, message: "limit must be 1…1000") }
        return value
    }

    private func state(_ query: Parameters) throws -> DeliveryState? {
        guard let text = query["state"] else { return nil }
        guard let state = DeliveryState(rawValue: String(text)) else {
            throw HTTPError(.badRequest, message: "state must be one of \(DeliveryState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return state
    }

    private func time(_ query: Parameters, _ key: String) throws -> Date? {
        guard let text = query[Substring(key)] else { return nil }
        guard let date = RFC3339.date(from: String(text)) else { throw HTTPError(.badRequest, message: "\(key) must be an RFC 3339 time") }
        return date
    }

    private func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try AdminCoding.encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
