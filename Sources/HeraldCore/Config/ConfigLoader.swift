import Foundation
import Yams

/// Reads `channels.yaml`: parse (Yams) → check shape and interpolate → validate references →
/// build `HeraldConfig`. All problems are reported together as `ConfigErrors`.
public enum ConfigLoader {
    /// `--config`, else `$HERALD_CONFIG`, else `./channels.yaml`.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        environment["HERALD_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } ?? "channels.yaml"
    }

    /// `sinkTypes`: the sink types the file may use (`SinkRegistry.types` in `HeraldSinks`, whose
    /// `ConfigLoader.load(path:environment:)` passes them).
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment, sinkTypes: [any SinkSettings.Type]) throws -> HeraldConfig {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigErrors([ConfigError(file: path, line: 1, column: 1, message: "cannot read the configuration file: \(Self.reason(error))")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigErrors([ConfigError(file: path, line: 1, column: 1, message: "the file is not UTF-8 text")])
        }
        return try parse(text, file: path, environment: environment, sinkTypes: sinkTypes)
    }

    public static func parse(_ text: String, file: String = "channels.yaml", environment: [String: String] = [:], sinkTypes: [any SinkSettings.Type]) throws -> HeraldConfig {
        let root: Node?
        do {
            // The reader types every scalar itself (`bool`, `int`, `isNull`), so no tags are resolved:
            // Yams' default resolver would match each scalar (and each key looked up) against its
            // regular expressions, which load ICU into the process for nothing.
            root = try Yams.compose(yaml: text, .basic)
        } catch let error as YamlError {
            throw ConfigErrors([yamlError(error, file: file, text: text)])
        }
        guard let root, !YAMLReader.isNull(root) else {
            throw ConfigErrors([ConfigError(file: file, line: 1, column: 1, message: "the configuration is empty: it needs at least `sinks` and `routes`")])
        }
        let reader = YAMLReader(file: file, environment: environment)
        var builder = ConfigBuilder(reader: reader, sinkTypes: sinkTypes)
        let config = builder.build(root)
        if let config, reader.errors.isEmpty { return config }
        throw ConfigErrors(reader.errors.sorted { ($0.line, $0.column) < ($1.line, $1.column) })
    }

    private static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if nsError.domain == NSCocoaErrorDomain, nsError.code == NSFileReadNoSuchFileError { return "no such file" }
        return nsError.localizedDescription
    }

    /// Yams errors carry the whole document; only the problem and its position are kept.
    /// Yams points at the mapping; point at the repeated key instead, which is what needs fixing.
    static func secondOccurrence(of key: String, in text: String, after mark: Mark) -> (Int, Int) {
        var seen = 0
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where index + 1 >= mark.line {
            let indent = line.prefix { $0 == " " }.count
            let rest = line.dropFirst(indent)
            guard indent + 1 == mark.column, rest.hasPrefix(key + ":") || rest.hasPrefix("\"\(key)\":") || rest.hasPrefix("'\(key)':") else { continue }
            seen += 1
            if seen == 2 { return (index + 1, indent + 1) }
        }
        return (mark.line, mark.column)
    }

    private static func yamlError(_ error: YamlError, file: String, text: String) -> ConfigError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ConfigError(file: file, line: mark.line, column: mark.column, message: "YAML syntax: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let (line, column) = secondOccurrence(of: duplicates.first ?? "", in: text, after: context.mark)
            return ConfigError(file: file, line: line, column: column,
                               message: "duplicate key '\(duplicates.joined(separator: "', '"))': each name may appear once in a mapping")
        case .reader(let problem, _, _, _):
            return ConfigError(file: file, line: 1, column: 1, message: "YAML: \(problem)")
        default:
            return ConfigError(file: file, line: 1, column: 1, message: "YAML: the file could not be read")
        }
    }
}

/// The sections of the file, each read with a `ConfigSection` (which reports unknown keys) and
/// then checked against the others (routes name sinks that exist).
struct ConfigBuilder {
    let reader: YAMLReader
    let sinkTypes: [any SinkSettings.Type]
    /// Every sink name in the file, including sinks with errors, so a broken sink is reported once
    /// and not again by each route that names it.
    private var definedSinkNames: Set<String> = []
    /// The sources a route may match: twilio and http always, and every named source.
    private var sourceNames: [String] = ["twilio", "http"]

    init(reader: YAMLReader, sinkTypes: [any SinkSettings.Type]) {
        self.reader = reader
        self.sinkTypes = sinkTypes
    }

    mutating func build(_ root: Node) -> HeraldConfig? {
        guard let top = ConfigSection(root, path: "", reader: reader) else { return nil }
        let server = top["server"].map { readServer($0) } ?? defaultServer()
        let storage = top["storage"].flatMap { readStorage($0) } ?? ConfigDefaults.storage
        let defaults = top["defaults"].map { readDefaults($0) } ?? DefaultsConfig(expireAfter: ConfigDefaults.expireAfter, retry: ConfigDefaults.retry)
        let sources = top["sources"].map { readSources($0, server: server) } ?? SourcesConfig(twilio: nil, http: nil)
        sourceNames = ["twilio", "http"] + sources.named.map(\.name)
        let logBodies = top.bool("log_bodies") ?? false
        let retention = top.positiveDuration("retention") ?? ConfigDefaults.retention
        var sinks: [SinkConfig] = []
        if let node = top["sinks"] {
            sinks = readSinks(node, defaults: defaults)
        } else {
            reader.fail(root, "missing key 'sinks': name at least one place to deliver to")
        }
        var routes: [RouteConfig] = []
        if let node = top["routes"] {
            routes = readRoutes(node, sinks: sinks, defined: definedSinkNames)
        } else {
            reader.fail(root, "missing key 'routes': without routes no event is delivered")
        }
        top.finish()
        if logBodies { reader.warnings.append("log_bodies is on: message bodies and codes will appear in logs") }
        for sink in sinks {
            for route in routes {
                for number in route.match.to ?? [] where sink.settings.smsRecipients.contains(number) {
                    reader.warnings.append("sink '\(sink.name)' sends SMS to \(PhoneNumber.masked(number)), a number route '\(route.name)' receives on: a message could loop")
                }
            }
        }
        return HeraldConfig(
            file: reader.file, server: server, storage: storage, defaults: defaults, sources: sources,
            sinks: sinks, routes: routes, retention: retention, logBodies: logBodies, warnings: reader.warnings
        )
    }

    // MARK: server, storage, defaults

    private func defaultServer() -> ServerConfig {
        ServerConfig(host: ConfigDefaults.host, port: ConfigDefaults.port, publicURL: nil, adminToken: nil, shutdownGrace: ConfigDefaults.shutdownGrace)
    }

    private func readServer(_ node: Node) -> ServerConfig {
        var server = defaultServer()
        guard let section = ConfigSection(node, path: "server", reader: reader) else { return server }
        defer { section.finish() }
        if let value = section.bool("trust_forwarded_headers") { server.trustForwardedHeaders = value }
        if let list = section.stringList("trusted_proxies") {
            var ranges: [TrustedProxies.Range] = []
            for text in list {
                if let range = TrustedProxies.Range(text) { ranges.append(range) } else {
                    section.fail("trusted_proxies", "server.trusted_proxies: '\(text)' is not an IP address or a CIDR block like 10.0.0.0/8 or fd00::/8")
                }
            }
            server.trustedProxies = TrustedProxies(ranges)
        }
        if let limits = section.section("limits") {
            server.limits = readLimits(limits)
        }
        if let text = section.string("listen") {
            if let (host, port) = Self.parseListen(text) {
                server.host = host
                server.port = port
            } else {
                section.fail("listen", "server.listen must be host:port, like 127.0.0.1:8080 or [::1]:8080, not \(section.shown("listen", text))")
            }
        }
        if let url = section.url("public_url") {
            server.publicURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        }
        if let token = section.string("admin_token"), !token.isEmpty {
            server.adminToken = Secret(token)
        }
        if let grace = section.duration("shutdown_grace") { server.shutdownGrace = grace }
        if let text = section.string("cpu_scheduling") {
            if let policy = CPUScheduling(rawValue: text) { server.cpuScheduling = policy } else {
                section.fail("cpu_scheduling", "server.cpu_scheduling must be batch or normal, not \(section.shown("cpu_scheduling", text))")
            }
        }
        if let id = section.string("node_id") {
            if id.isEmpty || id.count > 100 || id.contains(where: { $0.isWhitespace || $0.isNewline }) {
                section.fail("node_id", "server.node_id must be 1–100 characters without spaces, like herald-a")
            } else {
                server.nodeID = id
            }
        }
        return server
    }

    private func readLimits(_ section: ConfigSection) -> InboundLimits {
        defer { section.finish() }
        var limits = ConfigDefaults.limits
        if let text = section.string("max_body") {
            if let bytes = Self.parseSize(text), bytes > 0 { limits.maxBody = bytes } else {
                section.fail("max_body", "server.limits.max_body must be a size like 64KiB, 1MiB or 65536, not \(section.shown("max_body", text))")
            }
        }
        if let text = section.string("per_client") {
            if let rate = ConfigLoader.parseRate(text) { limits.perClient = rate } else {
                section.fail("per_client", "server.limits.per_client must be a rate like 100/s or 600/m, not \(section.shown("per_client", text))")
            }
        }
        if let value = section.int("per_client_burst", range: 1...1_000_000) { limits.perClientBurst = value }
        if let value = section.duration("header_timeout") { limits.headerTimeout = value }
        if let value = section.positiveDuration("body_timeout") { limits.bodyTimeout = value }
        if let value = section.positiveDuration("idle_timeout") { limits.idleTimeout = value }
        if let value = section.int("max_connections", range: 1...1_000_000) { limits.maxConnections = value }
        if let value = section.duration("intake_wait") { limits.intakeWait = value }
        if let text = section.string("refuse_when") {
            switch text {
            case "expiry": limits.refuseWhen = .expiry
            case "never": limits.refuseWhen = .never
            default:
                if let wait = Duration.parse(text), wait > .zero { limits.refuseWhen = .after(wait) } else {
                    section.fail("refuse_when", "server.limits.refuse_when must be expiry, never, or a duration like 30s, not \(section.shown("refuse_when", text))")
                }
            }
        }
        return limits
    }

    /// `64KiB`, `1MiB`, `512KB`, `65536`.
    static func parseSize(_ text: String) -> Int? {
        let units: [(String, Int)] = [("KiB", 1024), ("MiB", 1024 * 1024), ("KB", 1000), ("MB", 1_000_000), ("B", 1)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            return Int(text.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)).map { $0 * scale }
        }
        return Int(text)
    }

    static func parseListen(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        return (host, port)
    }

    private func readStorage(_ node: Node) -> StorageConfig? {
        guard let text = reader.string(node, "storage") else { return nil }
        if text == "memory" { return .memory }
        if text.hasPrefix("sqlite:") {
            let path = String(text.dropFirst("sqlite:".count))
            guard !path.isEmpty else {
                reader.fail(node, "storage sqlite: needs a file path, like sqlite:data/herald.db")
                return nil
            }
            return .sqlite(path: path)
        }
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            switch PostgresStorage.parse(text) {
            case .success(let url): return .postgres(url)
            case .failure(let error):
                reader.fail(node, "storage \(error.description)")
                return nil
            }
        }
        reader.fail(node, "storage must be sqlite:PATH (like sqlite:data/herald.db), postgres://user:password@host:5432/db, or memory")
        return nil
    }

    private func readDefaults(_ node: Node) -> DefaultsConfig {
        var defaults = DefaultsConfig(expireAfter: ConfigDefaults.expireAfter, retry: ConfigDefaults.retry)
        guard let section = ConfigSection(node, path: "defaults", reader: reader) else { return defaults }
        defer { section.finish() }
        if let value = section.positiveDuration("expire_after") { defaults.expireAfter = value }
        if let retry = section.section("retry") { defaults.retry = readRetry(retry, base: defaults.retry) }
        if let value = section.positiveDuration("lease") { defaults.lease = value }
        return defaults
    }

    private func readRetry(_ section: ConfigSection, base: RetryPolicy) -> RetryPolicy {
        defer { section.finish() }
        var policy = base
        if let value = section.int("max_attempts", range: 1...1000) { policy.maxAttempts = value }
        if let value = section.duration("initial_backoff") { policy.initialBackoff = value }
        if let value = section.duration("max_backoff") { policy.maxBackoff = value }
        if policy.maxBackoff < policy.initialBackoff {
            section.fail(nil, "\(section.path).max_backoff (\(policy.maxBackoff.shortDescription)) is shorter than initial_backoff (\(policy.initialBackoff.shortDescription))")
        }
        return policy
    }

    // MARK: sources

    private func readSources(_ node: Node, server: ServerConfig) -> SourcesConfig {
        var sources = SourcesConfig(twilio: nil, http: nil)
        guard let section = ConfigSection(node, path: "sources", reader: reader) else { return sources }
        defer { section.finish() }
        if let twilio = section.section("twilio") {
            sources.twilio = readTwilioSource(twilio, server: server)
        }
        if let http = section.section("http") {
            sources.http = readHTTPSource(http)
        }
        if let twilio = sources.twilio, let http = sources.http, twilio.path == http.path {
            section.fail(nil, "sources.twilio.path and sources.http.path are both '\(http.path)'")
        }
        var paths: [String: String] = [:]
        if let twilio = sources.twilio { paths[twilio.path] = "twilio" }
        if let http = sources.http { paths[http.path] = "http" }
        for (name, keyNode, source) in section.remainingSections() {
            defer { source.finish() }
            guard Self.isSourceName(name) else {
                reader.fail(keyNode, "source name '\(name)' must be lower-case letters, digits and dashes, like work-phone")
                continue
            }
            let type = source.string("type") ?? name
            let named: NamedSource?
            switch type {
            case SMSGatewaySourceConfig.type:
                named = readSMSGatewaySource(source, name: name).map(NamedSource.smsGateway)
            case TelnyxSourceConfig.type:
                named = readTelnyxSource(source, name: name).map(NamedSource.telnyx)
            case VonageSourceConfig.type:
                named = readVonageSource(source, name: name).map(NamedSource.vonage)
            case PlivoSourceConfig.type:
                named = readPlivoSource(source, name: name, server: server).map(NamedSource.plivo)
            case SmsForwarderSourceConfig.type:
                named = readSmsForwarderSource(source, name: name).map(NamedSource.smsForwarder)
            case SMSToURLSourceConfig.type:
                named = readSMSToURLSource(source, name: name).map(NamedSource.smsToURL)
            case HTTPSMSSourceConfig.type:
                named = readHTTPSMSSource(source, name: name, server: server).map(NamedSource.httpSMS)
            case "twilio":
                named = readTwilioSource(source, server: server, name: name).map(NamedSource.twilio)
            case "http":
                named = readHTTPSource(source, name: name).map(NamedSource.http)
            default:
                named = nil
                source.fail(source.has("type") ? "type" : nil, "sources.\(name): unknown source type '\(type)'; expected one of \(Self.sourceTypes)")
            }
            guard let named else { continue }
            if let other = paths[named.path] {
                source.fail("path", "sources.\(name).path '\(named.path)' is also the path of sources.\(other)")
                continue
            }
            paths[named.path] = name
            sources.named.append(named)
        }
        return sources
    }

    private func readVonageSource(_ section: ConfigSection, name: String) -> VonageSourceConfig? {
        let path = readPath(section, "path") ?? "/sources/\(name)"
        let secret = section.string("signature_secret").flatMap { $0.isEmpty ? nil : Secret($0) }
        let token = section.string("token").flatMap { $0.isEmpty ? nil : Secret($0) }
        let method = section.string("signature_method") ?? "md5hash"
        guard VonageSignature.Method(rawValue: method) != nil else {
            section.fail("signature_method", "sources.\(name).signature_method must be one of \(VonageSignature.Method.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        let wait = section.positiveDuration("multipart_wait") ?? .seconds(5)
        if secret == nil && token == nil {
            section.fail(nil, "sources.\(name) (vonage) needs a `signature_secret` (ask Vonage support to sign inbound messages) or a `token` (?token=… in the inbound URL)")
            return nil
        }
        if secret == nil {
            section.warn("sources.\(name): without Vonage's signature only the URL's token proves a request; keep it secret and use HTTPS")
        }
        return VonageSourceConfig(name: name, path: path, signatureSecret: secret, signatureMethod: method, token: token, multipartWait: wait)
    }

    private func readPlivoSource(_ section: ConfigSection, name: String, server: ServerConfig) -> PlivoSourceConfig? {
        let path = readPath(section, "path") ?? "/sources/\(name)"
        guard section.hasValue("auth_token"), let token = section.string("auth_token"), !token.isEmpty else {
            section.fail(section.has("auth_token") ? "auth_token" : nil, "sources.\(name) needs the Plivo account's `auth_token` (Plivo console → Overview): it signs every webhook")
            return nil
        }
        guard let base = server.publicURL else {
            section.fail(nil, "sources.\(name) (plivo) needs server.public_url: Plivo signs the exact URL it calls")
            return nil
        }
        return PlivoSourceConfig(name: name, path: path, authToken: Secret(token), publicURL: base)
    }

    private func readSmsForwarderSource(_ section: ConfigSection, name: String) -> SmsForwarderSourceConfig? {
        let path = readPath(section, "path") ?? "/sources/\(name)"
        let maxSkew = section.positiveDuration("max_skew") ?? .seconds(300)
        var ok = true
        for key in ["secret", "token"] where !section.hasValue(key) || section.string(key)?.isEmpty == true {
            ok = false
            section.fail(section.has(key) ? key : nil, key == "secret"
                ? "sources.\(name) needs the `secret` set in SmsForwarder's webhook sender (its sign)"
                : "sources.\(name) needs a `token` too (in the app's URL as ?token=…, or as https://user:TOKEN@host): SmsForwarder signs only its timestamp, never the message, so a signed request proves nothing about the text")
        }
        guard ok, let secret = section.string("secret"), let token = section.string("token") else { return nil }
        return SmsForwarderSourceConfig(name: name, path: path, secret: Secret(secret), token: Secret(token), maxSkew: maxSkew)
    }

    private func readSMSToURLSource(_ section: ConfigSection, name: String) -> SMSToURLSourceConfig? {
        let path = readPath(section, "path") ?? "/sources/\(name)"
        let key = section.string("signing_key").flatMap { $0.isEmpty ? nil : Secret($0) }
        let token = section.string("token").flatMap { $0.isEmpty ? nil : Secret($0) }
        if key == nil && token == nil {
            section.fail(nil, "sources.\(name) (sms-to-url) needs a `token` (put ?token=… in the app's URL) or the app's `signing_key`: versions before 2.4 do not sign, so without one anyone could post messages")
            return nil
        }
        if token == nil {
            section.warn("sources.\(name): the app's signature has no timestamp, so a captured request can be sent again (Herald stores it once); a `token` in the URL adds nothing against that, HTTPS does")
        } else if key == nil {
            section.warn("sources.\(name): only the token proves a request (the body is not signed); keep the URL secret and use HTTPS")
        }
        return SMSToURLSourceConfig(name: name, path: path, signingKey: key, token: token)
    }

    private func readHTTPSMSSource(_ section: ConfigSection, name: String, server: ServerConfig) -> HTTPSMSSourceConfig? {
        let path = readPath(section, "path") ?? "/sources/\(name)"
        guard section.has("signing_key") else {
            section.fail(nil, "sources.\(name) needs a `signing_key`: the webhook's signing key in httpSMS (Settings → Webhooks)")
            return nil
        }
        guard let key = section.string("signing_key") else { return nil }
        guard !key.isEmpty else {
            section.fail("signing_key", "sources.\(name).signing_key is empty; set one on the webhook in httpSMS")
            return nil
        }
        guard let base = server.publicURL else {
            section.fail(nil, "sources.\(name) (httpsms) needs server.public_url: httpSMS's token names the exact URL it calls, public_url + \(path)")
            return nil
        }
        section.warn("sources.\(name): httpSMS's token proves the sender for 10 minutes but does not cover the message; use HTTPS so nobody can capture one")
        return HTTPSMSSourceConfig(name: name, path: path, signingKey: Secret(key), audience: base + path)
    }

    private func readTelnyxSource(_ section: ConfigSection, name: String) -> TelnyxSourceConfig? {
        let path = readPath(section, "path") ?? "/sources/\(name)"
        let maxSkew = section.positiveDuration("max_skew") ?? .seconds(300)
        guard section.has("public_key") else {
            section.fail(nil, "sources.\(name) needs a `public_key`: Telnyx Mission Control → Keys & Credentials → Public Key")
            return nil
        }
        guard let text = section.string("public_key") else { return nil }
        guard let key = Data(base64Encoded: text.trimmingCharacters(in: .whitespaces)), key.count == 32 else {
            section.fail("public_key", "sources.\(name).public_key must be the base64 of a 32-byte Ed25519 key, as Telnyx shows it")
            return nil
        }
        return TelnyxSourceConfig(name: name, path: path, publicKey: Array(key), maxSkew: maxSkew)
    }

    static let sourceTypes = "twilio, http, sms-gateway, smsforwarder, httpsms, sms-to-url, telnyx, vonage, plivo"

    static func isSourceName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
            && name.first != "-"
    }

    private func readSMSGatewaySource(_ section: ConfigSection, name: String) -> SMSGatewaySourceConfig? {
        let path = readPath(section, "path") ?? "/sources/\(name)"
        let maxSkew = section.positiveDuration("max_skew") ?? .seconds(300)
        guard section.has("signing_key") else {
            section.fail(nil, "sources.\(name) needs a `signing_key`: the one in the app's Settings → Webhooks (every request it sends is signed with it)")
            return nil
        }
        guard let key = section.string("signing_key") else { return nil }
        guard !key.isEmpty else {
            section.fail("signing_key", "sources.\(name).signing_key is empty; copy it from the app's Settings → Webhooks")
            return nil
        }
        return SMSGatewaySourceConfig(name: name, path: path, signingKey: Secret(key), maxSkew: maxSkew)
    }

    /// `sources.http`, or a further JSON source under another name (default path `/sources/<name>`).
    private func readHTTPSource(_ section: ConfigSection, name: String = "http") -> HTTPSourceConfig? {
        defer { section.finish() }
        let path = readPath(section, "path") ?? (name == "http" ? ConfigDefaults.httpPath : "/sources/\(name)")
        guard section.has("token") else {
            section.fail(nil, "sources.http needs a `token`: POST \(path) is never open without one")
            return nil
        }
        guard let token = section.string("token") else { return nil }
        if token.isEmpty {
            reader.warnings.append("sources.http is off: its token is empty (set HERALD_INBOUND_TOKEN to turn on POST \(path))")
            return nil
        }
        return HTTPSourceConfig(name: name, path: path, token: Secret(token))
    }

    /// `sources.twilio`, or a further Twilio source under another name (default path `/sources/<name>`).
    private func readTwilioSource(_ section: ConfigSection, server: ServerConfig, name: String = "twilio") -> TwilioSourceConfig? {
        defer { section.finish() }
        let path = readPath(section, "path") ?? (name == "twilio" ? ConfigDefaults.twilioPath : "/sources/\(name)")
        let verify = section.bool("verify_signature") ?? true
        var token = ""
        if section.has("auth_token") {
            guard let value = section.string("auth_token") else { return nil }
            token = value
        }
        if !verify {
            reader.warnings.append("sources.twilio.verify_signature is false: anyone who can reach \(path) can inject messages")
        }
        if token.isEmpty && verify {
            // The development token is published: it is only for a Herald nobody else can reach.
            let reachable: String? = if !server.isLoopback {
                "server.listen is not a loopback address"
            } else if let url = server.publicURL, !(URLComponents(string: url)?.host.map(ServerConfig.isLoopback(host:)) ?? false) {
                "server.public_url names a host others can reach"
            } else if server.trustForwardedHeaders {
                "server.trust_forwarded_headers is on, so a proxy forwards to it"
            } else {
                nil
            }
            if let reachable {
                section.fail("auth_token", "sources.twilio.auth_token is empty; set TWILIO_AUTH_TOKEN (the published development token is only allowed for a Herald nobody else can reach, and \(reachable))")
                return nil
            }
            reader.warnings.append("TWILIO_AUTH_TOKEN is not set: Twilio signatures are checked with the DEVELOPMENT token '\(TwilioSourceConfig.developmentToken)'. Real Twilio requests will be refused (403). Set TWILIO_AUTH_TOKEN before pointing a number here.")
            return TwilioSourceConfig(name: name, path: path, authToken: Secret(TwilioSourceConfig.developmentToken), usesDevelopmentToken: true, verifySignature: verify)
        }
        return TwilioSourceConfig(name: name, path: path, authToken: Secret(token), usesDevelopmentToken: false, verifySignature: verify)
    }

    private func readPath(_ section: ConfigSection, _ key: String) -> String? {
        guard let value = section.string(key) else { return nil }
        guard value.hasPrefix("/"), !value.contains("?"), !value.contains("#"), !value.contains(" ") else {
            section.fail(key, "\(section.path).\(key) must be a URL path starting with '/', like /twilio/sms")
            return nil
        }
        return value
    }

    // MARK: sinks

    private mutating func readSinks(_ node: Node, defaults: DefaultsConfig) -> [SinkConfig] {
        var sinks: [SinkConfig] = []
        for (name, keyNode, value) in reader.namedMapping(node, "sinks") {
            definedSinkNames.insert(name)
            if let sink = readSink(name: name, keyNode: keyNode, node: value, defaults: defaults) {
                sinks.append(sink)
            }
        }
        if sinks.isEmpty, reader.errors.isEmpty {
            reader.fail(node, "sinks is empty: name at least one place to deliver to")
        }
        return sinks
    }

    private func readSink(name: String, keyNode: Node, node: Node, defaults: DefaultsConfig) -> SinkConfig? {
        let path = "sinks.\(name)"
        guard case .mapping = node else {
            reader.fail(node, "\(path) must be a mapping with at least a `type`")
            return nil
        }
        guard let section = ConfigSection(node, path: path, reader: reader) else { return nil }
        let typeNames = sinkTypes.map { $0.type }.joined(separator: ", ")
        guard let typeNode = section["type"] else {
            reader.fail(keyNode, "\(path) needs a `type`: one of \(typeNames)")
            return nil
        }
        guard let typeText = reader.string(typeNode, "\(path).type") else { return nil }
        guard let type = sinkTypes.first(where: { $0.type == typeText }) else {
            reader.fail(typeNode, "unknown sink type \(reader.shown(typeNode, typeText)) for \(path); expected one of \(typeNames)")
            return nil
        }
        let optional = section.bool("optional") ?? false
        if optional { reader.missingVariables = [] }
        defer { reader.missingVariables = nil }

        let timeout = section.positiveDuration("timeout") ?? ConfigDefaults.sinkTimeout
        let retry = section.section("retry").map { readRetry($0, base: defaults.retry) } ?? defaults.retry
        let concurrency = section.int("concurrency", range: 1...256) ?? type.defaults.concurrency
        var rateLimit = type.defaults.rateLimit
        if let text = section.string("rate_limit") {
            if let rate = ConfigLoader.parseRate(text) { rateLimit = rate } else {
                section.fail("rate_limit", "\(path).rate_limit must be a rate like 1/s or 30/m, not \(section.shown("rate_limit", text))")
            }
        }
        let burst = section.int("burst", range: 1...10_000) ?? type.defaults.burst
        let settings: (any SinkSettings)? = type.decode(section)
        section.finish()
        var disabledReason: String?
        if let missing = reader.missingVariables, !missing.isEmpty {
            let names = Array(Set(missing)).sorted().joined(separator: ", ")
            disabledReason = "\(names) \(Set(missing).count == 1 ? "is" : "are") not set"
            reader.warnings.append("sink '\(name)' is disabled: \(disabledReason!) (it is optional)")
        }
        guard let settings else { return nil }
        return SinkConfig(
            name: name, type: type.type, timeout: timeout, retry: retry, concurrency: concurrency, rateLimit: rateLimit, burst: burst,
            optional: optional, disabledReason: disabledReason, settings: settings
        )
    }

    // MARK: routes

    private func readRoutes(_ node: Node, sinks: [SinkConfig], defined: Set<String>) -> [RouteConfig] {
        guard let items = reader.sequence(node, "routes") else { return [] }
        var routes: [RouteConfig] = []
        var names: [String: Int] = [:]
        for (index, item) in items.enumerated() {
            guard let section = ConfigSection(item, path: "routes[\(index)]", reader: reader) else { continue }
            defer { section.finish() }
            var name = "route-\(index + 1)"
            if let node = section["name"], let value = reader.nonEmptyString(node, "routes[\(index)].name") {
                if let line = names[value] {
                    reader.fail(node, "duplicate route name '\(value)' (first used on line \(line))")
                }
                name = value
                names[value] = node.mark?.line ?? 0
            }
            let label = "route '\(name)'"
            let match = section["match"].map { readMatch($0, label: label) } ?? RouteMatch()
            let app = section["app"].flatMap { reader.string($0, "app of \(label)") }
            var deliver: [String] = []
            if let node = section["deliver"] {
                let list: [Node] = { if case .sequence(let s) = node { return Array(s) } else { return [node] } }()
                for item in list {
                    guard let sinkName = reader.string(item, "deliver of \(label)") else { continue }
                    if sinks.contains(where: { $0.name == sinkName }) {
                        if !deliver.contains(sinkName) { deliver.append(sinkName) }
                    } else if !defined.contains(sinkName) {
                        let known = defined.isEmpty ? "no sinks are defined" : "defined sinks: " + defined.sorted().joined(separator: ", ")
                        reader.fail(item, "\(label) delivers to unknown sink '\(sinkName)'; \(known)")
                    }
                }
            } else {
                reader.fail(item, "\(label) needs `deliver`: a list of sink names")
            }
            let continues = section["continue"].flatMap { reader.bool($0, "continue of \(label)") } ?? false
            var otpPattern: Pattern?
            if let node = section["otp_pattern"], let source = reader.string(node, "otp_pattern of \(label)") {
                if let pattern = compile(source, node: node, what: "otp_pattern of \(label)") {
                    if pattern.captureGroups == 1 { otpPattern = pattern } else {
                        reader.fail(node, "otp_pattern of \(label) must have exactly one capture group (the code), it has \(pattern.captureGroups)")
                    }
                }
            }
            var expireAfter: Duration?
            if let node = section["expire_after"], let value = reader.duration(node, "expire_after of \(label)") {
                if value <= .zero { reader.fail(node, "expire_after of \(label) must be longer than zero") } else { expireAfter = value }
            }
            routes.append(RouteConfig(name: name, match: match, app: app, deliver: deliver, continues: continues, otpPattern: otpPattern, expireAfter: expireAfter))
        }
        return routes
    }

    private func readMatch(_ node: Node, label: String) -> RouteMatch {
        var match = RouteMatch()
        guard let section = ConfigSection(node, path: "match of \(label)", reader: reader) else { return match }
        defer { section.finish() }
        match.from = section["from"].flatMap { reader.stringList($0, "match.from of \(label)") }.map { $0.map(PhoneNumber.normalize) }
        match.to = section["to"].flatMap { reader.stringList($0, "match.to of \(label)") }.map { $0.map(PhoneNumber.normalize) }
        if let node = section["body"], let source = reader.string(node, "match.body of \(label)") {
            match.body = compile(source, node: node, what: "match.body of \(label)")
        }
        if let node = section["source"], let values = reader.stringList(node, "match.source of \(label)") {
            for value in values where !sourceNames.contains(value) {
                reader.fail(node, "match.source of \(label): unknown source \(reader.shown(node, value)); expected one of \(sourceNames.joined(separator: ", "))")
            }
            match.source = values
        }
        if let node = section["otp_domain"], let values = reader.stringList(node, "match.otp_domain of \(label)") {
            match.otpDomain = values.map { $0.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "@")) }
        }
        return match
    }

    private func compile(_ source: String, node: Node, what: String) -> Pattern? {
        do {
            return try Pattern(source)
        } catch {
            reader.fail(node, "\(what) is not a valid regular expression: \(reader.shown(node, source))")
            return nil
        }
    }
}

extension ConfigLoader {
    /// `100/s`, `600/m`, `3600/h` as events per second.
    public static func parseRate(_ text: String) -> Double? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let count = Double(parts[0].trimmingCharacters(in: .whitespaces)), count > 0 else { return nil }
        switch parts[1].trimmingCharacters(in: .whitespaces) {
        case "s": return count
        case "m": return count / 60
        case "h": return count / 3600
        default: return nil
        }
    }
}
