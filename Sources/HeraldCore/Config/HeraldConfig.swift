import Foundation

/// The validated contents of `channels.yaml`. Built only by `ConfigLoader`, so every value in it
/// has been checked: names resolve, patterns and templates compile, URLs parse.
public struct HeraldConfig: Sendable {
    /// The path the configuration was read from, as given.
    public var file: String
    public var server: ServerConfig
    public var storage: StorageConfig
    public var defaults: DefaultsConfig
    public var sources: SourcesConfig
    /// Every sink in file order, including disabled optional ones.
    public var sinks: [SinkConfig]
    public var routes: [RouteConfig]
    /// Finished events older than this are deleted, bodies and all.
    public var retention: Duration
    /// Show message bodies and codes in logs. Off by default: they are secrets.
    public var logBodies: Bool
    /// Things worth saying at start-up that do not stop it (disabled sinks, the development token).
    public var warnings: [String]

    public func sink(named name: String) -> SinkConfig? {
        sinks.first { $0.name == name }
    }

    /// Sinks that will deliver: not disabled.
    public var enabledSinks: [SinkConfig] { sinks.filter { $0.disabledReason == nil } }

    /// The numbers our own Twilio sinks send from: an inbound message from one of them is never
    /// sent by SMS again (loop guard).
    public var ownSMSNumbers: Set<String> {
        Set(sinks.compactMap(\.settings.smsSender))
    }
}

public struct ServerConfig: Sendable {
    public var host: String
    public var port: Int
    /// The base URL the provider calls, used to rebuild the signed URL. Nil: `http://` + Host.
    public var publicURL: String?
    /// Empty or nil: the admin API is off.
    public var adminToken: Secret?
    public var shutdownGrace: Duration
    public var limits: InboundLimits = InboundLimits()
    /// Use `X-Forwarded-Proto`/`-Host` for signature URLs (behind a proxy); only from a trusted proxy.
    public var trustForwardedHeaders: Bool = false
    /// Peers whose `X-Forwarded-For` is believed for client addresses (the per-client limit).
    public var trustedProxies: TrustedProxies = .loopback
    /// This process's name in a shared outbox (`lease_owner`): stable across restarts, unique
    /// among the processes sharing it. Default: the host name and the port.
    public var nodeID: String?

    /// How `herald serve`'s threads are scheduled (`cpu_scheduling`).
    public var cpuScheduling: CPUScheduling = .batch

    /// `node_id`, or the host name and listening port.
    public var effectiveNodeID: String {
        if let nodeID { return nodeID }
        return "\(ProcessInfo.processInfo.hostName):\(port)"
    }

    public var isLoopback: Bool { Self.isLoopback(host: host) }

    /// `localhost`, `127.x.x.x`, `::1` (bracketed or not): this machine only.
    public static func isLoopback(host: String) -> Bool {
        let host = host.lowercased()
        return ["localhost", "::1", "[::1]"].contains(host) || host.hasPrefix("127.")
    }
}

/// `server.cpu_scheduling`. `batch` (Linux's `SCHED_BATCH`): a thread that wakes does not preempt
/// the one running, so Herald's own threads (the event loop, the task pool, the database queue)
/// hand work over without a context switch each time (on one core: ~10 % less CPU per message
/// under load, BENCHMARKS.md). `normal`: the system's default.
public enum CPUScheduling: String, Sendable, Equatable {
    case batch, normal
}

/// `server.limits`: what one client may send.
public struct InboundLimits: Sendable, Equatable {
    /// Bodies larger than this get 413 (checked before the signature).
    public var maxBody: Int = 64 * 1024
    /// Requests per second from one client address, and the burst above that rate.
    public var perClient: Double = 100
    public var perClientBurst: Int = 200
    /// A client that has not sent its request headers by then is disconnected.
    public var headerTimeout: Duration = .seconds(10)
    /// A client that has not sent its whole body this long after its headers is disconnected.
    public var bodyTimeout: Duration = .seconds(10)
    /// A kept-alive connection whose next request has not arrived by then is closed.
    public var idleTimeout: Duration = .seconds(60)
    /// Connections open at once; one more is closed as it opens.
    public var maxConnections: Int = 1024
    /// How long a webhook may wait for a delivery slot on a healthy sink that is only busy,
    /// before its deliveries are stored to wait in the outbox.
    public var intakeWait: Duration = .seconds(1)
    /// When a webhook is refused with 503: `.expiry` (default) when none of its deliveries could
    /// start before its code expires, `.after(d)` when none could start within `d`, `.never`.
    public var refuseWhen: QueueBound = .expiry

    public init() {}
}

/// `server.limits.refuse_when`: how long the work queued ahead of a new message may be.
public enum QueueBound: Sendable, Equatable {
    case expiry
    case after(Duration)
    case never
}

public enum StorageConfig: Sendable, Equatable {
    case memory
    /// A path relative to the working directory; folders are created.
    case sqlite(path: String)
    /// A PostgreSQL database several Herald processes share.
    case postgres(PostgresStorage)

    /// What `herald check` and errors show: never a password.
    public var shown: String {
        switch self {
        case .memory: "memory"
        case .sqlite(let path): "sqlite:\(path)"
        case .postgres(let url): url.description
        }
    }
}

public struct DefaultsConfig: Sendable {
    public var expireAfter: Duration
    public var retry: RetryPolicy
    /// How long a claim lasts before another process may take the delivery over (at least each
    /// sink's timeout plus 10 s, whatever is set here).
    public var lease: Duration = LaneSettings.defaultLease
}

public struct SourcesConfig: Sendable {
    public var twilio: TwilioSourceConfig?
    public var http: HTTPSourceConfig?
    /// The sources named by the user (`sources.<name>: { type: … }`), in file order.
    public var named: [NamedSource] = []

    /// Android phones running SMS Gateway for Android (`type: sms-gateway`).
    public var smsGateways: [SMSGatewaySourceConfig] {
        named.compactMap { if case .smsGateway(let config) = $0 { config } else { nil } }
    }

    /// Every source's name (the event's `source`), in file order after twilio and http.
    public var names: [String] {
        [twilio.map { _ in "twilio" }, http.map { _ in "http" }].compactMap { $0 } + named.map(\.name)
    }
}

/// A source of one of the types beyond twilio and http.
public enum NamedSource: Sendable, Equatable {
    case smsGateway(SMSGatewaySourceConfig)
    case telnyx(TelnyxSourceConfig)
    case httpSMS(HTTPSMSSourceConfig)
    case smsToURL(SMSToURLSourceConfig)
    case smsForwarder(SmsForwarderSourceConfig)
    case plivo(PlivoSourceConfig)
    case vonage(VonageSourceConfig)
    case twilio(TwilioSourceConfig)
    case http(HTTPSourceConfig)

    public var name: String {
        switch self {
        case .smsGateway(let config): config.name
        case .telnyx(let config): config.name
        case .httpSMS(let config): config.name
        case .smsToURL(let config): config.name
        case .smsForwarder(let config): config.name
        case .plivo(let config): config.name
        case .vonage(let config): config.name
        case .twilio(let config): config.name
        case .http(let config): config.name
        }
    }

    public var path: String {
        switch self {
        case .smsGateway(let config): config.path
        case .telnyx(let config): config.path
        case .httpSMS(let config): config.path
        case .smsToURL(let config): config.path
        case .smsForwarder(let config): config.path
        case .plivo(let config): config.path
        case .vonage(let config): config.path
        case .twilio(let config): config.path
        case .http(let config): config.path
        }
    }

    public var type: String {
        switch self {
        case .smsGateway: SMSGatewaySourceConfig.type
        case .telnyx: TelnyxSourceConfig.type
        case .httpSMS: HTTPSMSSourceConfig.type
        case .smsToURL: SMSToURLSourceConfig.type
        case .smsForwarder: SmsForwarderSourceConfig.type
        case .plivo: PlivoSourceConfig.type
        case .vonage: VonageSourceConfig.type
        case .twilio: "twilio"
        case .http: "http"
        }
    }
}

/// `sources.<name>: { type: vonage, signature_secret?, signature_method?, token?, path?, multipart_wait? }`:
/// a Vonage number's inbound SMS (GET query, POST form or JSON). Signing is switched on by Vonage
/// support; without it a `token` in the URL is the proof. Long messages arrive in parts, joined
/// before routing: each part's answer waits (up to `multipart_wait`) until the whole message is stored.
public struct VonageSourceConfig: Sendable, Equatable {
    public static let type = "vonage"
    public var name: String
    public var path: String
    public var signatureSecret: Secret?
    public var signatureMethod: String
    public var token: Secret?
    public var multipartWait: Duration
}

/// `sources.<name>: { type: plivo, auth_token, path? }`: a Plivo number's inbound SMS (its
/// `message_url`), signed with `X-Plivo-Signature-V3` over the public URL, the form and a nonce.
public struct PlivoSourceConfig: Sendable, Equatable {
    public static let type = "plivo"
    public var name: String
    public var path: String
    public var authToken: Secret
    /// `server.public_url`: the URL Plivo calls is signed, so it must be the public one.
    public var publicURL: String
}

/// `sources.<name>: { type: smsforwarder, secret, token, path?, max_skew? }`: SmsForwarder's
/// "Webhook" sender. Its signature covers only the timestamp, so a `token` is required too.
public struct SmsForwarderSourceConfig: Sendable, Equatable {
    public static let type = "smsforwarder"
    public var name: String
    public var path: String
    public var secret: Secret
    public var token: Secret
    public var maxSkew: Duration
}

/// `sources.<name>: { type: sms-to-url, signing_key?, token?, path? }`: "Incoming SMS to URL
/// forwarder". At least one of the two: the app's body signature (newer versions), or a token for
/// versions that do not sign.
public struct SMSToURLSourceConfig: Sendable, Equatable {
    public static let type = "sms-to-url"
    public var name: String
    public var path: String
    public var signingKey: Secret?
    public var token: Secret?
}

/// `sources.<name>: { type: httpsms, signing_key, path? }`: httpSMS's `message.phone.received`
/// webhooks, with a bearer JWT whose audience is the URL httpSMS calls (`server.public_url` + path).
public struct HTTPSMSSourceConfig: Sendable, Equatable {
    public static let type = "httpsms"
    public var name: String
    public var path: String
    public var signingKey: Secret
    /// The exact URL configured in httpSMS: the token's `aud`.
    public var audience: String
}

/// `sources.<name>: { type: telnyx, public_key, path?, max_skew? }`: a Telnyx number's inbound
/// `message.received` webhooks, signed with Ed25519 (`public_key`: Mission Control → Keys & Credentials
/// → Public Key, base64 of the 32-byte key).
public struct TelnyxSourceConfig: Sendable, Equatable {
    public static let type = "telnyx"
    public var name: String
    public var path: String
    public var publicKey: [UInt8]
    public var maxSkew: Duration
}

/// `sources.<name>: { type: sms-gateway, signing_key, path?, max_skew? }`: one Android phone whose
/// SMS Gateway app posts `sms:received` (and `system:ping`) webhooks, signed with its signing key.
public struct SMSGatewaySourceConfig: Sendable, Equatable {
    public static let type = "sms-gateway"
    public var name: String
    public var path: String
    public var signingKey: Secret
    /// How far `X-Timestamp` may be from this server's clock (a replay older than this is refused).
    public var maxSkew: Duration
}

public struct TwilioSourceConfig: Sendable, Equatable {
    /// Used when `auth_token` is empty and Herald listens on loopback only, so `make run` works
    /// without credentials. Start-up says so loudly.
    public static let developmentToken = "herald-dev-token"

    /// The event's `source`: `twilio`, or the name of a further Twilio source (a second account).
    public var name: String = "twilio"
    public var path: String
    public var authToken: Secret
    public var usesDevelopmentToken: Bool
    public var verifySignature: Bool
}

public struct HTTPSourceConfig: Sendable, Equatable {
    /// The event's `source`: `http`, or the name of a further JSON source (its own token).
    public var name: String = "http"
    public var path: String
    public var token: Secret
}

public struct SinkConfig: Sendable {
    public var name: String
    /// The `type:` word (`slack`, `twilio`, …).
    public var type: String
    public var timeout: Duration
    public var retry: RetryPolicy
    /// How many deliveries to this sink may be under way at once.
    public var concurrency: Int
    /// Deliveries per second (nil: no limit) and the burst above it (each type has defaults).
    public var rateLimit: Double?
    public var burst: Int
    public var optional: Bool
    /// Why this sink is off (an optional sink with an unset secret); nil when it delivers.
    public var disabledReason: String?
    /// The type's own settings, decoded and validated in its folder of `HeraldSinks`.
    public var settings: any SinkSettings

    /// What the sink would send for an event, for `herald route` (a dry run that sends nothing).
    public func preview(event: Event, route: String?, app: String?) -> String {
        settings.preview(TemplateContext(event: event, route: route, app: app), event: event)
    }
}

public struct RouteConfig: Sendable {
    public var name: String
    public var match: RouteMatch
    public var app: String?
    public var deliver: [String]
    public var continues: Bool
    public var otpPattern: Pattern?
    public var expireAfter: Duration?
}

public struct RouteMatch: Sendable {
    /// Normalized phone numbers or sender names; any of them matches.
    public var from: [String]?
    public var to: [String]?
    public var body: Pattern?
    public var source: [String]?
    /// Lower-cased domains of origin-bound codes; any of them matches.
    public var otpDomain: [String]?

    public init(from: [String]? = nil, to: [String]? = nil, body: Pattern? = nil, source: [String]? = nil, otpDomain: [String]? = nil) {
        self.from = from
        self.to = to
        self.body = body
        self.source = source
        self.otpDomain = otpDomain
    }

    public var isEmpty: Bool { from == nil && to == nil && body == nil && source == nil && otpDomain == nil }
}
