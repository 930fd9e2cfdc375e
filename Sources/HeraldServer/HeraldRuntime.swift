import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldPostgres
import HeraldSQLite
import HeraldSinks
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization

/// Everything a running Herald is made of, built from one configuration: the store, the sinks,
/// the dispatcher and the ingest path. Tests build one with fakes and a manual clock.
public struct HeraldRuntime: Sendable {
    /// The configuration the server started with (listen address, sources, storage).
    public let config: HeraldConfig
    public let store: any OutboxStore
    public let dispatcher: Dispatcher
    public let maintenance: Maintenance
    public let ingestor: Ingestor
    public let clock: any HeraldClock
    public let logger: Logger
    /// This runtime's metrics, served at `/metrics`.
    public let metricsRegistry: PrometheusCollectorRegistry
    public let metrics: HeraldMetrics
    /// When each source last sent a message or (phones) a ping.
    public let liveness: SourceLiveness
    /// Where a reload reads the configuration from (nil: reload is not possible).
    public let configPath: String?
    let environment: @Sendable () -> [String: String]
    let httpClient: HTTPClient
    /// The configuration in force now (routes, sinks, defaults), after any reload.
    public let live: LiveConfig
    /// Serializes reloads; a service of the application when there is a file to reload.
    public let reloader: ConfigReloader

    public final class LiveConfig: Sendable {
        let state: Mutex<HeraldConfig>
        init(_ config: HeraldConfig) { state = Mutex(config) }
        public var current: HeraldConfig { state.withLock { $0 } }
    }

    /// - Parameters:
    ///   - sinks: replaces the sinks the configuration describes (tests); by default they are built
    ///     from the configuration.
    ///   - configPath: the file `reload()` reads again.
    ///   - asLoaded: the configuration as that file said it, when `config` overrides some of it
    ///     (tests force a free port): what a reload compares restart-only keys against.
    public init(
        config: HeraldConfig, store: (any OutboxStore)? = nil, sinks: [any Sink]? = nil,
        clock: any HeraldClock = SystemClock(), httpClient: HTTPClient = SinkHTTPClient.shared, logger: Logger,
        configPath: String? = nil, asLoaded: HeraldConfig? = nil,
        environment: @escaping @Sendable () -> [String: String] = { ProcessInfo.processInfo.environment }
    ) throws {
        self.config = config
        self.clock = clock
        self.logger = logger
        self.configPath = configPath
        self.environment = environment
        self.httpClient = httpClient
        self.live = LiveConfig(config)
        let registry = PrometheusCollectorRegistry()
        self.metricsRegistry = registry
        self.metrics = HeraldMetrics(factory: PrometheusMetricsFactory(registry: registry))
        self.liveness = SourceLiveness(metrics: metrics)
        let store = try store ?? Self.makeStore(config.storage, serving: true)
        self.store = store
        let sinks = sinks ?? SinkFactory.makeSinks(config, client: httpClient)
        self.dispatcher = Dispatcher(
            store: store, sinks: sinks, lanes: Self.lanes(config, sinks), clock: clock, logger: logger,
            logBodies: config.logBodies, metrics: metrics
        )
        // A shared store also gets work from other processes: its sweep is the fallback poll for
        // an announcement the listener missed, so it runs every second rather than every five.
        self.maintenance = Maintenance(
            store: store, dispatcher: dispatcher, clock: clock, retention: config.retention,
            interval: store is PostgresOutboxStore ? .seconds(1) : .seconds(5), logger: logger
        )
        let infos = Self.sinkInfos(config, sinks)
        for warning in Self.retractionWarnings(config, infos) { logger.warning("\(warning)") }
        let ingestor = Ingestor(
            router: Router(config: config), store: store, dispatcher: dispatcher, sinks: infos,
            clock: clock, logger: logger, logBodies: config.logBodies, metrics: metrics,
            intakeWait: config.server.limits.intakeWait, refuseWhen: config.server.limits.refuseWhen
        )
        self.ingestor = ingestor
        let path = configPath ?? "-"
        let metrics = self.metrics
        let target = ReloadTarget(
            started: asLoaded ?? config, dispatcher: dispatcher, ingestor: ingestor, live: live, metrics: metrics,
            clock: clock, logger: logger, httpClient: httpClient
        )
        self.reloader = ConfigReloader(
            load: { try ConfigLoader.load(path: path, environment: environment()) },
            apply: { new in try target.apply(new) },
            refused: { error in
                metrics.reload(success: false, at: clock.now())
                logger.error("configuration reload refused; the previous configuration stays in force", metadata: ["error": "\(error)"])
            }
        )
    }

    static func lanes(_ config: HeraldConfig, _ sinks: [any Sink]) -> [LaneSettings] {
        sinks.map { sink in
            let settings = config.sink(named: sink.name)
            return LaneSettings(
                sink: sink.name, retry: settings?.retry ?? config.defaults.retry,
                concurrency: settings?.concurrency ?? ConfigDefaults.sinkConcurrency, timeout: settings?.timeout ?? ConfigDefaults.sinkTimeout,
                rateLimit: settings?.rateLimit, burst: settings?.burst ?? 1, minimumLease: config.defaults.lease
            )
        }
    }

    /// What planning needs of each configured sink: its recipients and whether it retracts, or
    /// why it is disabled.
    public static func sinkInfos(_ config: HeraldConfig, _ sinks: [any Sink]) -> [String: DeliveryPlan.SinkInfo] {
        var infos: [String: Ingestor.SinkInfo] = [:]
        for sink in sinks { infos[sink.name] = Ingestor.SinkInfo(recipients: sink.recipients, retraction: sink.retraction) }
        for sink in config.sinks where infos[sink.name] == nil {
            infos[sink.name] = Ingestor.SinkInfo(disabledReason: sink.disabledReason ?? "not available")
        }
        return infos
    }

    /// Routes whose codes outlive what a retracting sink can still delete (Telegram deletes only
    /// messages under 48 h old): their messages to that sink are never retracted. Said by
    /// `herald check` and at start-up.
    public static func retractionWarnings(_ config: HeraldConfig, _ infos: [String: DeliveryPlan.SinkInfo]) -> [String] {
        var warnings: [String] = []
        for route in config.routes {
            let life = route.expireAfter ?? config.defaults.expireAfter
            for name in route.deliver {
                guard let plan = infos[name]?.retraction, let window = plan.sentWithin else { continue }
                if !plan.retracts(codesLiving: life) {
                    warnings.append("route '\(route.name)' keeps codes for \(life.shortDescription), but sink '\(name)' can retract only messages under \(window.shortDescription) old: its messages from this route will not be retracted")
                }
            }
        }
        return warnings
    }

    /// Reads the configuration file again and, only if it is valid, applies its routes, sinks and
    /// defaults: the next message uses them, pending deliveries to a changed sink use its new
    /// settings, and those to a removed sink fail with "sink removed". Changes to `server`,
    /// `sources` or `storage` need a restart and are reported as warnings. A bad file changes
    /// nothing and throws `ConfigErrors` (with file, line and column). Reloads are serialized by
    /// `reloader`, which runs as a service of the application.
    @discardableResult
    public func reload() async throws -> [String] {
        guard configPath != nil else { throw ConfigErrors([ConfigError(file: "-", line: 1, column: 1, message: "this server was not started from a file")]) }
        return try await reloader.reload()
    }

    /// Opens the configured store. A SQLite database that is not Herald's is refused untouched.
    /// `serving`: the store of `herald serve`, which must be the only one serving from it (SQLite),
    /// or the only one with its `server.node_id` (PostgreSQL).
    public static func openStore(_ config: HeraldConfig, serving: Bool = false, logger: Logger) async throws -> any OutboxStore {
        if case .postgres(let url) = config.storage {
            return try await PostgresOutboxStore.open(url, nodeID: config.server.effectiveNodeID, serving: serving, logger: logger)
        }
        return try makeStore(config.storage, serving: serving)
    }

    /// The stores that open without a network round trip (memory, SQLite); PostgreSQL needs
    /// `openStore`.
    public static func makeStore(_ storage: StorageConfig, serving: Bool = false) throws -> any OutboxStore {
        switch storage {
        case .memory: InMemoryOutboxStore()
        case .sqlite(let path): try SQLiteOutboxStore(path: path, exclusive: serving)
        case .postgres(let url): throw PostgresOutboxStore.OpenError(description: "the outbox \(url) must be opened with openStore")
        }
    }

    /// A source's request was taken (stored, or a duplicate): it is alive.
    func heard(_ source: String, _ response: Response) -> Response {
        liveness.message(source, at: clock.now())
        return response
    }

    /// Closes a store that holds connections (PostgreSQL); others need nothing.
    public static func close(_ store: any OutboxStore) async {
        if let shared = store as? PostgresOutboxStore { await shared.close() }
    }

    /// A store failure as a person should read it (PostgreSQL's errors say little by themselves).
    public static func describe(storeError error: any Error) -> String {
        PostgresStoreError.describe(error)
    }

    /// A store with connections of its own to keep (PostgreSQL): a service started before the
    /// engine and stopped after it.
    public var storeService: (any Service)? { store as? PostgresOutboxStore }
}

/// What a reload changes, and how: sinks first, then the dispatcher, then the router, so a
/// message routed by the new table finds its lane ready.
struct ReloadTarget: Sendable {
    /// The configuration the server started with: changes to what needs a restart are reported.
    let started: HeraldConfig
    let dispatcher: Dispatcher
    let ingestor: Ingestor
    let live: HeraldRuntime.LiveConfig
    let metrics: HeraldMetrics
    let clock: any HeraldClock
    let logger: Logger
    let httpClient: HTTPClient

    /// The keys a running Herald cannot change (they are read once, at start-up), which differ in
    /// `new`: a reload that changes one is refused as a whole, so a reload never reports success
    /// for a change it ignores (a signature check switched on, a rotated admin token).
    func restartOnly(_ new: HeraldConfig) -> [String] {
        let (a, b) = (started, new)
        let checks: [(String, Bool)] = [
            ("server.listen", a.server.host != b.server.host || a.server.port != b.server.port),
            ("server.public_url", a.server.publicURL != b.server.publicURL),
            ("server.admin_token", a.server.adminToken != b.server.adminToken),
            ("server.limits", a.server.limits != b.server.limits),
            ("server.trust_forwarded_headers", a.server.trustForwardedHeaders != b.server.trustForwardedHeaders),
            ("server.trusted_proxies", a.server.trustedProxies != b.server.trustedProxies),
            ("server.shutdown_grace", a.server.shutdownGrace != b.server.shutdownGrace),
            ("server.cpu_scheduling", a.server.cpuScheduling != b.server.cpuScheduling),
            ("storage", a.storage != b.storage),
            ("sources.twilio", a.sources.twilio.map { [$0.path, $0.authToken.value, "\($0.verifySignature)"] } != b.sources.twilio.map { [$0.path, $0.authToken.value, "\($0.verifySignature)"] }),
            ("sources.http", a.sources.http.map { [$0.path, $0.token.value] } != b.sources.http.map { [$0.path, $0.token.value] }),
            ("sources (named)", a.sources.named != b.sources.named),
            ("log_bodies", a.logBodies != b.logBodies),
        ]
        return checks.filter(\.1).map(\.0)
    }

    func apply(_ new: HeraldConfig) throws -> [String] {
        let changed = restartOnly(new)
        if !changed.isEmpty {
            throw ConfigErrors([ConfigError(file: new.file, line: 1, column: 1, message:
                "\(changed.joined(separator: ", ")) changed, which takes effect only at a restart: the reload is refused and the running configuration stays; restart Herald to apply it")])
        }
        let sinks = SinkFactory.makeSinks(new, client: httpClient)
        dispatcher.reconfigure(sinks: sinks, lanes: HeraldRuntime.lanes(new, sinks))
        ingestor.table.update(router: Router(config: new), sinks: HeraldRuntime.sinkInfos(new, sinks))
        live.state.withLock { $0 = new }
        let warnings = new.warnings
        metrics.reload(success: true, at: clock.now())
        logger.notice("configuration reloaded", metadata: [
            "config.routes": "\(new.routes.count)", "config.sinks": "\(sinks.count)", "config.warnings": "\(warnings.count)",
        ])
        for warning in warnings { logger.warning("\(warning)") }
        return warnings
    }
}
