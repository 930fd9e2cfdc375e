import Foundation
import HeraldCore
import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// Builds the whole Herald service: HTTP routes plus the dispatcher as a service. `herald serve`
/// and the integration tests both call this.
public func buildApplication(
    runtime: HeraldRuntime,
    onServerRunning: @escaping @Sendable (_ host: String, _ port: Int) async -> Void = { _, _ in }
) -> some ApplicationProtocol {
    let config = runtime.config
    let logger = runtime.logger
    let router = Router(context: HeraldRequestContext.self)
    var sourcePaths: [String: String] = [:]
    if let twilio = config.sources.twilio { sourcePaths[twilio.path] = "twilio" }
    if let http = config.sources.http { sourcePaths[http.path] = "http" }
    for source in config.sources.named { sourcePaths[source.path] = source.name }
    router.add(middleware: ClientRateLimiter<HeraldRequestContext>(
        limits: config.server.limits, proxies: config.server.trustedProxies, metrics: runtime.metrics, sources: sourcePaths
    ))
    router.get("/healthz") { _, _ in "ok\n" }
    router.get("/readyz") { _, _ -> Response in
        // Ready: the configuration is loaded (it is, or nothing would serve) and the store answers
        // within a second.
        let answer = await withTaskGroup(of: String?.self) { group -> String? in
            group.addTask {
                do {
                    _ = try await runtime.store.count(state: .pending)
                    return nil
                } catch {
                    return "the store failed: \(type(of: error))"
                }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(1))
                return "the store did not answer within 1 s"
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        if let problem = answer {
            return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "not ready: \(problem)\n")))
        }
        return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ready\n")))
    }
    router.get("/metrics") { _, _ -> Response in
        // The gauge is read from the store when scraped, so it is never stale.
        let pending = (try? await runtime.store.count(state: .pending)) ?? 0
        let inFlight = (try? await runtime.store.count(state: .inFlight)) ?? 0
        runtime.metrics.pending(pending + inFlight)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: runtime.metricsRegistry.emitToBuffer()))
        )
    }
    func twilioSource(_ twilio: TwilioSourceConfig) {
        let inbound = TwilioInbound(
            config: twilio, publicURL: config.server.publicURL, trustForwarded: config.server.trustForwardedHeaders, proxies: config.server.trustedProxies,
            maxBody: config.server.limits.maxBody, ingestor: runtime.ingestor, metrics: runtime.metrics, logger: logger
        )
        router.post(RouterPath(twilio.path)) { request, context in runtime.heard(twilio.name, try await inbound.handle(request, context: context)) }
        router.get(RouterPath(twilio.path)) { request, context in runtime.heard(twilio.name, try await inbound.handle(request, context: context)) }
    }
    if let twilio = config.sources.twilio { twilioSource(twilio) }
    if let token = config.server.adminToken {
        AdminAPI(token: token, runtime: runtime).register(on: router.group("admin"))
    }
    func jsonSource(_ http: HTTPSourceConfig) {
        let inbound = JSONInbound(config: http, maxBody: config.server.limits.maxBody, ingestor: runtime.ingestor, metrics: runtime.metrics, logger: logger)
        router.post(RouterPath(http.path)) { request, context in runtime.heard(http.name, try await inbound.handle(request, context: context)) }
    }
    if let http = config.sources.http { jsonSource(http) }
    func signed(_ adapter: some SourceAdapter, path: String, get: Bool = false) {
        let inbound = SignedSourceInbound(
            adapter: adapter, maxBody: config.server.limits.maxBody, ingestor: runtime.ingestor, metrics: runtime.metrics,
            liveness: runtime.liveness, clock: runtime.clock, logger: logger
        )
        router.post(RouterPath(path)) { request, context in try await inbound.handle(request, context: context) }
        if get { router.get(RouterPath(path)) { request, context in try await inbound.handle(request, context: context) } }
    }
    for source in config.sources.named {
        switch source {
        case .smsGateway(let gateway): signed(SMSGatewayAdapter(config: gateway), path: gateway.path)
        case .telnyx(let telnyx): signed(TelnyxAdapter(config: telnyx), path: telnyx.path)
        case .httpSMS(let httpSMS): signed(HTTPSMSAdapter(config: httpSMS), path: httpSMS.path)
        case .smsToURL(let smsToURL): signed(SMSToURLAdapter(config: smsToURL), path: smsToURL.path)
        case .smsForwarder(let forwarder): signed(SmsForwarderAdapter(config: forwarder), path: forwarder.path)
        case .plivo(let plivo): signed(PlivoAdapter(config: plivo), path: plivo.path)
        case .vonage(let vonage): signed(VonageAdapter(config: vonage), path: vonage.path, get: true)
        case .twilio(let twilio): twilioSource(twilio)
        case .http(let http): jsonSource(http)
        }
    }
    let host = config.server.host
    let limits = config.server.limits
    func amount(_ duration: Duration) -> TimeAmount { .milliseconds(Int64(min(duration.seconds, 1e12) * 1000)) }
    let timeouts = ConnectionLimitsHandler.Timeouts(header: amount(limits.headerTimeout), body: amount(limits.bodyTimeout), idle: amount(limits.idleTimeout))
    let connections = ConnectionLimitsHandler.Connections(limit: limits.maxConnections)
    return Application(
        router: router,
        server: .http1(configuration: .init(additionalChannelHandlers: [ConnectionLimitsHandler(timeouts: timeouts, connections: connections)])),
        configuration: .init(address: .hostname(host, port: config.server.port), serverName: nil),
        // In start order; a graceful shutdown stops them in reverse, so the store closes last.
        services: [runtime.storeService].compactMap { $0 } + [runtime.dispatcher, runtime.maintenance] + (runtime.configPath == nil ? [] : [runtime.reloader]),
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? config.server.port
            logger.info("listening", metadata: ["server.address": "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"])
            await onServerRunning(host, port)
        },
        logger: logger
    )
}

/// Builds the runtime from a configuration and then the application.
public func buildApplication(config: HeraldConfig, logger: Logger) throws -> some ApplicationProtocol {
    buildApplication(runtime: try HeraldRuntime(config: config, logger: logger, configPath: config.file))
}
