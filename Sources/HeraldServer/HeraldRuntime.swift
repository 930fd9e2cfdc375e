import AsyncHTTPClient
import HeraldCore
import HeraldSQLite
import HeraldSinks
import Logging
import Prometheus

/// Everything a running Herald is made of, built from one configuration: the store, the sinks,
/// the dispatcher and the ingest path. Tests build one with fakes and a manual clock.
public struct HeraldRuntime: Sendable {
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

    /// - Parameters:
    ///   - sinks: replaces the sinks the configuration describes (tests); by default they are built
    ///     from the configuration.
    public init(
        config: HeraldConfig, store: (any OutboxStore)? = nil, sinks: [any Sink]? = nil,
        clock: any HeraldClock = SystemClock(), httpClient: HTTPClient = SinkHTTPClient.shared, logger: Logger
    ) throws {
        self.config = config
        self.clock = clock
        self.logger = logger
        let registry = PrometheusCollectorRegistry()
        self.metricsRegistry = registry
        self.metrics = HeraldMetrics(factory: PrometheusMetricsFactory(registry: registry))
        let store = try store ?? Self.makeStore(config.storage)
        self.store = store
        let sinks = sinks ?? SinkFactory.makeSinks(config, client: httpClient)
        let lanes = sinks.map { sink in
            let settings = config.sink(named: sink.name)
            return Dispatcher.Lane(
                sink: sink, retry: settings?.retry ?? config.defaults.retry,
                concurrency: settings?.concurrency ?? 4, timeout: settings?.timeout ?? .seconds(10),
                rateLimit: settings?.rateLimit, burst: settings?.burst ?? 1
            )
        }
        self.dispatcher = Dispatcher(
            store: store, lanes: lanes, clock: clock, logger: logger,
            logBodies: config.logBodies, shutdownGrace: config.server.shutdownGrace, metrics: metrics
        )
        self.maintenance = Maintenance(store: store, dispatcher: dispatcher, clock: clock, retention: config.retention, logger: logger)
        var infos: [String: Ingestor.SinkInfo] = [:]
        for sink in sinks { infos[sink.name] = Ingestor.SinkInfo(recipients: sink.recipients) }
        for sink in config.sinks where infos[sink.name] == nil {
            infos[sink.name] = Ingestor.SinkInfo(disabledReason: sink.disabledReason ?? "not available")
        }
        self.ingestor = Ingestor(
            router: Router(config: config), store: store, dispatcher: dispatcher, sinks: infos,
            clock: clock, logger: logger, logBodies: config.logBodies
        )
    }

    /// Opens the configured store. A SQLite database that is not Herald's is refused untouched.
    public static func makeStore(_ storage: StorageConfig) throws -> any OutboxStore {
        switch storage {
        case .memory: InMemoryOutboxStore()
        case .sqlite(let path): try SQLiteOutboxStore(path: path)
        }
    }
}
