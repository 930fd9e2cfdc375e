import Foundation
import Yams

/// Reads `channels.yaml`: parse (Yams) → check shape and interpolate → validate references →
/// build `HeraldConfig`. All problems are reported together as `ConfigErrors`.
public enum ConfigLoader {
    /// `--config`, else `$HERALD_CONFIG`, else `./channels.yaml`.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        environment["HERALD_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } ?? "channels.yaml"
    }

    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> HeraldConfig {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigErrors([ConfigError(file: path, line: 1, column: 1, message: "cannot read the configuration file: \(Self.reason(error))")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigErrors([ConfigError(file: path, line: 1, column: 1, message: "the file is not UTF-8 text")])
        }
        return try parse(text, file: path, environment: environment)
    }

    public static func parse(_ text: String, file: String = "channels.yaml", environment: [String: String] = [:]) throws -> HeraldConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigErrors([yamlError(error, file: file, text: text)])
        }
        guard let root, !YAMLReader.isNull(root) else {
            throw ConfigErrors([ConfigError(file: file, line: 1, column: 1, message: "the configuration is empty: it needs at least `sinks` and `routes`")])
        }
        var builder = ConfigBuilder(reader: YAMLReader(file: file, environment: environment))
        let config = builder.build(root)
        if let config, builder.reader.errors.isEmpty { return config }
        throw ConfigErrors(builder.reader.errors.sorted { ($0.line, $0.column) < ($1.line, $1.column) })
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

/// The shape and validation rules of each section.
struct ConfigBuilder {
    var reader: YAMLReader
    private var warnings: [String] = []
    /// Every sink name in the file, including sinks with errors, so a broken sink is reported once
    /// and not again by each route that names it.
    private var definedSinkNames: Set<String> = []

    init(reader: YAMLReader) {
        self.reader = reader
    }

    static let topLevelKeys = ["server", "storage", "retention", "defaults", "sources", "sinks", "routes", "log_bodies"]

    mutating func build(_ root: Node) -> HeraldConfig? {
        guard let top = reader.mapping(root, "the top level", allowed: Self.topLevelKeys) else { return nil }
        let server = top["server"].map { readServer($0) } ?? defaultServer()
        let storage = top["storage"].flatMap { readStorage($0) } ?? .sqlite(path: "data/herald.db")
        let defaults = top["defaults"].map { readDefaults($0) } ?? DefaultsConfig(expireAfter: .seconds(600), retry: .default)
        let sources = top["sources"].map { readSources($0, server: server) } ?? SourcesConfig(twilio: nil, http: nil)
        let logBodies = top["log_bodies"].flatMap { reader.bool($0, "log_bodies") } ?? false
        var retention = Duration.seconds(7 * 86400)
        if let node = top["retention"], let value = reader.duration(node, "retention") {
            if value <= .zero { reader.fail(node, "retention must be longer than zero") } else { retention = value }
        }

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
        if logBodies { warnings.append("log_bodies is on: message bodies and codes will appear in logs") }
        for sink in sinks {
            guard case .twilio(let twilio) = sink.settings else { continue }
            for route in routes {
                for number in route.match.to ?? [] where twilio.to.contains(number) {
                    warnings.append("sink '\(sink.name)' sends SMS to \(PhoneNumber.masked(number)), a number route '\(route.name)' receives on: a message could loop")
                }
            }
        }
        return HeraldConfig(
            file: reader.file, server: server, storage: storage, defaults: defaults, sources: sources,
            sinks: sinks, routes: routes, retention: retention, logBodies: logBodies, warnings: warnings
        )
    }

    // MARK: server, storage, defaults

    private func defaultServer() -> ServerConfig {
        ServerConfig(host: "127.0.0.1", port: 8080, publicURL: nil, adminToken: nil, shutdownGrace: .seconds(10))
    }

    private mutating func readServer(_ node: Node) -> ServerConfig {
        var server = defaultServer()
        guard let fields = reader.mapping(node, "server", allowed: ["listen", "public_url", "admin_token", "shutdown_grace", "limits", "trust_forwarded_headers"]) else { return server }
        if let node = fields["trust_forwarded_headers"], let value = reader.bool(node, "server.trust_forwarded_headers") {
            server.trustForwardedHeaders = value
        }
        if let node = fields["limits"], let limits = reader.mapping(node, "server.limits", allowed: ["max_body", "per_client", "per_client_burst", "header_timeout"]) {
            if let node = limits["max_body"], let text = reader.string(node, "server.limits.max_body") {
                if let bytes = Self.parseSize(text), bytes > 0 { server.limits.maxBody = bytes } else {
                    reader.fail(node, "server.limits.max_body must be a size like 64KiB, 1MiB or 65536, not \(reader.shown(node, text))")
                }
            }
            if let node = limits["per_client"], let text = reader.string(node, "server.limits.per_client") {
                if let rate = Self.parseRate(text) { server.limits.perClient = rate } else {
                    reader.fail(node, "server.limits.per_client must be a rate like 100/s or 600/m, not \(reader.shown(node, text))")
                }
            }
            if let node = limits["per_client_burst"], let value = reader.int(node, "server.limits.per_client_burst", range: 1...1_000_000) {
                server.limits.perClientBurst = value
            }
            if let node = limits["header_timeout"], let value = reader.duration(node, "server.limits.header_timeout") {
                server.limits.headerTimeout = value
            }
        }
        if let listen = fields["listen"], let text = reader.string(listen, "server.listen") {
            if let (host, port) = Self.parseListen(text) {
                server.host = host
                server.port = port
            } else {
                reader.fail(listen, "server.listen must be host:port, like 127.0.0.1:8080 or [::1]:8080, not \(reader.shown(listen, text))")
            }
        }
        if let node = fields["public_url"], let url = reader.url(node, "server.public_url") {
            server.publicURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        }
        if let node = fields["admin_token"], let token = reader.string(node, "server.admin_token"), !token.isEmpty {
            server.adminToken = Secret(token)
        }
        if let node = fields["shutdown_grace"], let grace = reader.duration(node, "server.shutdown_grace") {
            server.shutdownGrace = grace
        }
        return server
    }

    /// `64KiB`, `1MiB`, `512KB`, `65536`.
    static func parseSize(_ text: String) -> Int? {
        let units: [(String, Int)] = [("KiB", 1024), ("MiB", 1024 * 1024), ("KB", 1000), ("MB", 1_000_000), ("B", 1)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            return Int(text.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)).map { $0 * scale }
        }
        return Int(text)
    }

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

    static func parseListen(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        return (host, port)
    }

    private mutating func readStorage(_ node: Node) -> StorageConfig? {
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
            reader.fail(node, "storage postgres://… is not supported yet; use sqlite:PATH")
            return nil
        }
        reader.fail(node, "storage must be sqlite:PATH (like sqlite:data/herald.db) or memory")
        return nil
    }

    private mutating func readDefaults(_ node: Node) -> DefaultsConfig {
        var defaults = DefaultsConfig(expireAfter: .seconds(600), retry: .default)
        guard let fields = reader.mapping(node, "defaults", allowed: ["expire_after", "retry"]) else { return defaults }
        if let node = fields["expire_after"], let value = reader.duration(node, "defaults.expire_after") {
            if value <= .zero { reader.fail(node, "defaults.expire_after must be longer than zero") } else { defaults.expireAfter = value }
        }
        if let node = fields["retry"] { defaults.retry = readRetry(node, "defaults.retry", base: defaults.retry) }
        return defaults
    }

    private mutating func readRetry(_ node: Node, _ path: String, base: RetryPolicy) -> RetryPolicy {
        var policy = base
        guard let fields = reader.mapping(node, path, allowed: ["max_attempts", "initial_backoff", "max_backoff"]) else { return policy }
        if let node = fields["max_attempts"], let value = reader.int(node, "\(path).max_attempts", range: 1...1000) {
            policy.maxAttempts = value
        }
        if let node = fields["initial_backoff"], let value = reader.duration(node, "\(path).initial_backoff") {
            policy.initialBackoff = value
        }
        if let node = fields["max_backoff"], let value = reader.duration(node, "\(path).max_backoff") {
            policy.maxBackoff = value
        }
        if policy.maxBackoff < policy.initialBackoff {
            reader.fail(node, "\(path).max_backoff (\(policy.maxBackoff.shortDescription)) is shorter than initial_backoff (\(policy.initialBackoff.shortDescription))")
        }
        return policy
    }

    // MARK: sources

    private mutating func readSources(_ node: Node, server: ServerConfig) -> SourcesConfig {
        var sources = SourcesConfig(twilio: nil, http: nil)
        guard let fields = reader.mapping(node, "sources", allowed: ["twilio", "http"]) else { return sources }
        if let node = fields["twilio"] {
            sources.twilio = readTwilioSource(node, server: server)
        }
        if let node = fields["http"],
           let f = reader.mapping(node, "sources.http", allowed: ["path", "token"]) {
            let path = f["path"].flatMap { readPath($0, "sources.http.path") } ?? "/events"
            if let tokenNode = f["token"], let token = reader.string(tokenNode, "sources.http.token") {
                if token.isEmpty {
                    warnings.append("sources.http is off: its token is empty (set HERALD_INBOUND_TOKEN to turn on POST \(path))")
                } else {
                    sources.http = HTTPSourceConfig(path: path, token: Secret(token))
                }
            } else if f["token"] == nil {
                reader.fail(node, "sources.http needs a `token`: POST \(path) is never open without one")
            }
        }
        if let twilio = sources.twilio, let http = sources.http, twilio.path == http.path {
            reader.fail(node, "sources.twilio.path and sources.http.path are both '\(http.path)'")
        }
        return sources
    }

    private mutating func readTwilioSource(_ node: Node, server: ServerConfig) -> TwilioSourceConfig? {
        guard let f = reader.mapping(node, "sources.twilio", allowed: ["path", "auth_token", "verify_signature"]) else { return nil }
        let path = f["path"].flatMap { readPath($0, "sources.twilio.path") } ?? "/twilio/sms"
        let verify = f["verify_signature"].flatMap { reader.bool($0, "sources.twilio.verify_signature") } ?? true
        var token = ""
        if let tokenNode = f["auth_token"] {
            guard let value = reader.string(tokenNode, "sources.twilio.auth_token") else { return nil }
            token = value
        }
        if !verify {
            warnings.append("sources.twilio.verify_signature is false: anyone who can reach \(path) can inject messages")
        }
        if token.isEmpty && verify {
            guard server.isLoopback else {
                reader.fail(f["auth_token"] ?? node, "sources.twilio.auth_token is empty; set TWILIO_AUTH_TOKEN (the development token is only allowed when server.listen is a loopback address)")
                return nil
            }
            warnings.append("TWILIO_AUTH_TOKEN is not set: Twilio signatures are checked with the DEVELOPMENT token '\(TwilioSourceConfig.developmentToken)'. Real Twilio requests will be refused (403). Set TWILIO_AUTH_TOKEN before pointing a number here.")
            return TwilioSourceConfig(path: path, authToken: Secret(TwilioSourceConfig.developmentToken), usesDevelopmentToken: true, verifySignature: verify)
        }
        return TwilioSourceConfig(path: path, authToken: Secret(token), usesDevelopmentToken: false, verifySignature: verify)
    }

    private mutating func readPath(_ node: Node, _ path: String) -> String? {
        guard let value = reader.string(node, path) else { return nil }
        guard value.hasPrefix("/"), !value.contains("?"), !value.contains("#"), !value.contains(" ") else {
            reader.fail(node, "\(path) must be a URL path starting with '/', like /twilio/sms")
            return nil
        }
        return value
    }

    // MARK: sinks

    static let commonSinkKeys = ["type", "timeout", "retry", "rate_limit", "burst", "optional", "concurrency"]
    static let sinkKeys: [SinkKind: [String]] = [
        .slack: ["webhook_url", "text"],
        .http: ["url", "method", "headers", "body", "signing_secret"],
        .file: ["path"],
        .twilio: ["account_sid", "auth_token", "api_key_sid", "api_key_secret", "from", "messaging_service_sid", "to", "body", "base_url"],
        .email: ["url", "starttls", "username", "password", "from", "to", "subject", "body", "tls_verify", "connect_timeout"],
    ]

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

    private mutating func readSink(name: String, keyNode: Node, node: Node, defaults: DefaultsConfig) -> SinkConfig? {
        let path = "sinks.\(name)"
        guard case .mapping = node else {
            reader.fail(node, "\(path) must be a mapping with at least a `type`")
            return nil
        }
        // Read the type first, so unknown keys can be judged against that type's keys.
        guard let typeNode = mappingValue(node, "type") else {
            reader.fail(keyNode, "\(path) needs a `type`: one of slack, http, file, twilio, email")
            return nil
        }
        guard let typeText = reader.string(typeNode, "\(path).type") else { return nil }
        guard let kind = SinkKind(rawValue: typeText) else {
            reader.fail(typeNode, "unknown sink type \(reader.shown(typeNode, typeText)) for \(path); expected one of slack, http, file, twilio, email")
            return nil
        }
        guard let fields = reader.mapping(node, path, allowed: Self.commonSinkKeys + (Self.sinkKeys[kind] ?? [])) else { return nil }

        let optional = fields["optional"].flatMap { reader.bool($0, "\(path).optional") } ?? false
        if optional { reader.missingVariables = [] }
        defer { reader.missingVariables = nil }

        var timeout = Duration.seconds(10)
        if let node = fields["timeout"], let value = reader.duration(node, "\(path).timeout") {
            if value <= .zero { reader.fail(node, "\(path).timeout must be longer than zero") } else { timeout = value }
        }
        let retry = fields["retry"].map { readRetry($0, "\(path).retry", base: defaults.retry) } ?? defaults.retry
        let concurrency = fields["concurrency"].flatMap { reader.int($0, "\(path).concurrency", range: 1...256) } ?? 4
        var rateLimit: Double? = kind == .slack ? 1 : nil
        var burst = kind == .slack ? 5 : 1
        if let node = fields["rate_limit"], let text = reader.string(node, "\(path).rate_limit") {
            if let rate = Self.parseRate(text) { rateLimit = rate } else {
                reader.fail(node, "\(path).rate_limit must be a rate like 1/s or 30/m, not \(reader.shown(node, text))")
            }
        }
        if let node = fields["burst"], let value = reader.int(node, "\(path).burst", range: 1...10_000) { burst = value }

        let settings: SinkSettings?
        switch kind {
        case .slack: settings = readSlack(fields, path: path)
        case .http: settings = readHTTP(fields, path: path)
        case .file: settings = readFile(fields, path: path)
        case .twilio: settings = readTwilio(fields, path: path)
        case .email: settings = readEmail(fields, path: path)
        }
        var disabledReason: String?
        if let missing = reader.missingVariables, !missing.isEmpty {
            let names = Array(Set(missing)).sorted().joined(separator: ", ")
            disabledReason = "\(names) \(missing.count == 1 ? "is" : "are") not set"
            warnings.append("sink '\(name)' is disabled: \(disabledReason!) (it is optional)")
        }
        guard let settings else { return nil }
        return SinkConfig(
            name: name, kind: kind, timeout: timeout, retry: retry, concurrency: concurrency, rateLimit: rateLimit, burst: burst,
            optional: optional, disabledReason: disabledReason, settings: settings
        )
    }

    private func mappingValue(_ node: Node, _ key: String) -> Node? {
        guard case .mapping(let mapping) = node else { return nil }
        return mapping.first { $0.key.string == key }?.value
    }

    private mutating func requiredField(_ fields: YAMLReader.Fields, _ key: String, _ path: String) -> Node? {
        if let node = fields[key] { return node }
        reader.fail(fields.node, "\(path) needs `\(key)`")
        return nil
    }

    private mutating func template(_ node: Node, _ path: String, escaping: MessageTemplate.Escaping) -> MessageTemplate? {
        guard case .scalar(let scalar) = node, !YAMLReader.isNull(node) else {
            reader.fail(node, "\(path) must be a template string")
            return nil
        }
        do {
            // Templates are not interpolated: `${...}` inside one would be a secret in a message.
            return try MessageTemplate(scalar.string, escaping: escaping)
        } catch {
            reader.fail(node, "template \(path) does not compile: \(error)")
            return nil
        }
    }

    private mutating func readSlack(_ fields: YAMLReader.Fields, path: String) -> SinkSettings? {
        guard let urlNode = requiredField(fields, "webhook_url", path),
              let url = reader.url(urlNode, "\(path).webhook_url") else { return nil }
        let text: MessageTemplate?
        if let node = fields["text"] {
            text = template(node, "\(path).text", escaping: .slack)
        } else {
            text = DefaultTemplates.slack
        }
        guard let text else { return nil }
        return .slack(SlackSinkSettings(webhookURL: Secret(url), text: text))
    }

    private mutating func readHTTP(_ fields: YAMLReader.Fields, path: String) -> SinkSettings? {
        guard let urlNode = requiredField(fields, "url", path), let url = reader.url(urlNode, "\(path).url") else { return nil }
        var method = "POST"
        if let node = fields["method"], let value = reader.string(node, "\(path).method") {
            let upper = value.uppercased()
            if ["POST", "PUT", "PATCH"].contains(upper) { method = upper } else {
                reader.fail(node, "\(path).method must be POST, PUT or PATCH, not \(reader.shown(node, value))")
            }
        }
        var headers: [(String, Secret)] = []
        if let node = fields["headers"] {
            for (name, keyNode, value) in reader.namedMapping(node, "\(path).headers") {
                guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_".contains($0)) }) else {
                    reader.fail(keyNode, "\(path).headers: '\(name)' is not a valid header name")
                    continue
                }
                if let text = reader.string(value, "\(path).headers.\(name)") {
                    if text.contains("\r") || text.contains("\n") {
                        reader.fail(value, "\(path).headers.\(name) must be one line")
                    }
                    headers.append((name, Secret(text)))
                }
            }
        }
        let jsonBody = headers.first { $0.0.lowercased() == "content-type" }.map { $0.1.value.lowercased().contains("json") } ?? true
        var body: MessageTemplate?
        if let node = fields["body"], !YAMLReader.isNull(node) {
            guard let compiled = template(node, "\(path).body", escaping: jsonBody ? .json : .text) else { return nil }
            body = compiled
        }
        var signing: Secret?
        if let node = fields["signing_secret"], let secret = reader.string(node, "\(path).signing_secret"), !secret.isEmpty {
            if StandardWebhooks.key(fromSecret: secret) == nil {
                reader.fail(node, "\(path).signing_secret must be base64, optionally prefixed with whsec_")
            }
            signing = Secret(secret)
        }
        return .http(HTTPSinkSettings(url: Secret(url), method: method, headers: headers, body: body, signingSecret: signing))
    }

    private mutating func readTwilio(_ fields: YAMLReader.Fields, path: String) -> SinkSettings? {
        guard let sidNode = requiredField(fields, "account_sid", path), let sid = reader.nonEmptyString(sidNode, "\(path).account_sid") else { return nil }
        let credentials: TwilioSinkSettings.Credentials
        switch (fields["auth_token"], fields["api_key_sid"], fields["api_key_secret"]) {
        case (let token?, nil, nil):
            guard let value = reader.nonEmptyString(token, "\(path).auth_token") else { return nil }
            credentials = .authToken(Secret(value))
        case (nil, let keySID?, let keySecret?):
            guard let keyValue = reader.nonEmptyString(keySID, "\(path).api_key_sid"),
                  let secretValue = reader.nonEmptyString(keySecret, "\(path).api_key_secret") else { return nil }
            credentials = .apiKey(sid: keyValue, secret: Secret(secretValue))
        default:
            reader.fail(fields.node, "\(path) needs either `auth_token`, or `api_key_sid` and `api_key_secret`")
            return nil
        }
        let sender: TwilioSinkSettings.Sender
        switch (fields["from"], fields["messaging_service_sid"]) {
        case (let from?, nil):
            guard let value = reader.nonEmptyString(from, "\(path).from") else { return nil }
            sender = .number(PhoneNumber.normalize(value))
        case (nil, let service?):
            guard let value = reader.nonEmptyString(service, "\(path).messaging_service_sid") else { return nil }
            sender = .messagingService(value)
        default:
            reader.fail(fields.node, "\(path) needs exactly one of `from` and `messaging_service_sid`")
            return nil
        }
        guard let toNode = requiredField(fields, "to", path), let to = reader.stringList(toNode, "\(path).to") else { return nil }
        let body = fields["body"].map { template($0, "\(path).body", escaping: .text) } ?? DefaultTemplates.sms
        guard let body else { return nil }
        var baseURL = "https://api.twilio.com"
        if let node = fields["base_url"] {
            guard let url = reader.url(node, "\(path).base_url") else { return nil }
            baseURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        }
        return .twilio(TwilioSinkSettings(accountSID: sid, credentials: credentials, sender: sender, to: to.map(PhoneNumber.normalize), body: body, baseURL: baseURL))
    }

    private mutating func readEmail(_ fields: YAMLReader.Fields, path: String) -> SinkSettings? {
        guard let urlNode = requiredField(fields, "url", path), let url = reader.url(urlNode, "\(path).url", schemes: ["smtp", "smtps"]) else { return nil }
        var startTLS = EmailSinkSettings.StartTLS.required
        if let node = fields["starttls"], let text = reader.string(node, "\(path).starttls") {
            guard let value = EmailSinkSettings.StartTLS(rawValue: text) else {
                reader.fail(node, "\(path).starttls must be required or none, not \(reader.shown(node, text))")
                return nil
            }
            startTLS = value
        }
        let host = URLComponents(string: url)?.host ?? ""
        if url.lowercased().hasPrefix("smtp://"), startTLS == .none, !["127.0.0.1", "localhost", "::1"].contains(host) {
            warnings.append("sink \(path.dropFirst(6)) sends mail without TLS (starttls: none): the password and every code cross the network in clear text")
        }
        let username = fields["username"].flatMap { reader.string($0, "\(path).username") }.flatMap { $0.isEmpty ? nil : $0 }
        let password = fields["password"].flatMap { reader.string($0, "\(path).password") }.flatMap { $0.isEmpty ? nil : Secret($0) }
        if (username == nil) != (password == nil), reader.missingVariables?.isEmpty ?? true {
            reader.fail(fields.node, "\(path) needs both `username` and `password`, or neither (no AUTH)")
        }
        guard let fromNode = requiredField(fields, "from", path), let from = reader.nonEmptyString(fromNode, "\(path).from") else { return nil }
        if EmailAddress.address(in: from) == nil, reader.missingVariables?.isEmpty ?? true {
            reader.fail(fromNode, "\(path).from must be an address, like archive@example.com or \"Herald <archive@example.com>\"")
        }
        guard let toNode = requiredField(fields, "to", path), let to = reader.stringList(toNode, "\(path).to") else { return nil }
        for address in to where EmailAddress.address(in: address) == nil && (reader.missingVariables?.isEmpty ?? true) {
            reader.fail(toNode, "\(path).to: \(reader.shown(toNode, address)) is not an email address")
        }
        let subject = fields["subject"].map { template($0, "\(path).subject", escaping: .text) } ?? DefaultTemplates.emailSubject
        let body = fields["body"].map { template($0, "\(path).body", escaping: .text) } ?? DefaultTemplates.emailBody
        guard let subject, let body else { return nil }
        let tlsVerify = fields["tls_verify"].flatMap { reader.bool($0, "\(path).tls_verify") } ?? true
        if !tlsVerify { warnings.append("sink \(path.dropFirst(6)) does not verify the mail server's TLS certificate (tls_verify: false)") }
        var connectTimeout = Duration.seconds(10)
        if let node = fields["connect_timeout"], let value = reader.duration(node, "\(path).connect_timeout") { connectTimeout = value }
        return .email(EmailSinkSettings(url: url, startTLS: startTLS, username: username, password: password, from: from,
                                        to: to, subject: subject, body: body, tlsVerify: tlsVerify, connectTimeout: connectTimeout))
    }

    private mutating func readFile(_ fields: YAMLReader.Fields, path: String) -> SinkSettings? {
        guard let node = requiredField(fields, "path", path), let file = reader.nonEmptyString(node, "\(path).path") else { return nil }
        return .file(FileSinkSettings(path: file))
    }

    // MARK: routes

    private mutating func readRoutes(_ node: Node, sinks: [SinkConfig], defined: Set<String>) -> [RouteConfig] {
        guard let items = reader.sequence(node, "routes") else { return [] }
        var routes: [RouteConfig] = []
        var names: [String: Int] = [:]
        for (index, item) in items.enumerated() {
            let path = "routes[\(index)]"
            guard let f = reader.mapping(item, path, allowed: ["name", "match", "app", "deliver", "continue", "otp_pattern", "expire_after"]) else { continue }
            var name = "route-\(index + 1)"
            if let node = f["name"], let value = reader.nonEmptyString(node, "\(path).name") {
                if let line = names[value] {
                    reader.fail(node, "duplicate route name '\(value)' (first used on line \(line))")
                }
                name = value
                names[value] = node.mark?.line ?? 0
            }
            let label = "route '\(name)'"
            let match = f["match"].map { readMatch($0, label: label) } ?? RouteMatch()
            let app = f["app"].flatMap { reader.string($0, "app of \(label)") }
            var deliver: [String] = []
            if let node = f["deliver"] {
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
            let continues = f["continue"].flatMap { reader.bool($0, "continue of \(label)") } ?? false
            var otpPattern: Pattern?
            if let node = f["otp_pattern"], let source = reader.string(node, "otp_pattern of \(label)") {
                if let pattern = compile(source, node: node, what: "otp_pattern of \(label)") {
                    if pattern.captureGroups == 1 { otpPattern = pattern } else {
                        reader.fail(node, "otp_pattern of \(label) must have exactly one capture group (the code), it has \(pattern.captureGroups)")
                    }
                }
            }
            var expireAfter: Duration?
            if let node = f["expire_after"], let value = reader.duration(node, "expire_after of \(label)") {
                if value <= .zero { reader.fail(node, "expire_after of \(label) must be longer than zero") } else { expireAfter = value }
            }
            routes.append(RouteConfig(name: name, match: match, app: app, deliver: deliver, continues: continues, otpPattern: otpPattern, expireAfter: expireAfter))
        }
        return routes
    }

    private mutating func readMatch(_ node: Node, label: String) -> RouteMatch {
        var match = RouteMatch()
        guard let f = reader.mapping(node, "match of \(label)", allowed: ["from", "to", "body", "source"]) else { return match }
        match.from = f["from"].flatMap { reader.stringList($0, "match.from of \(label)") }.map { $0.map(PhoneNumber.normalize) }
        match.to = f["to"].flatMap { reader.stringList($0, "match.to of \(label)") }.map { $0.map(PhoneNumber.normalize) }
        if let node = f["body"], let source = reader.string(node, "match.body of \(label)") {
            match.body = compile(source, node: node, what: "match.body of \(label)")
        }
        if let node = f["source"], let values = reader.stringList(node, "match.source of \(label)") {
            for value in values where !["twilio", "http"].contains(value) {
                reader.fail(node, "match.source of \(label): unknown source \(reader.shown(node, value)); expected twilio or http")
            }
            match.source = values
        }
        return match
    }

    private mutating func compile(_ source: String, node: Node, what: String) -> Pattern? {
        do {
            return try Pattern(source)
        } catch {
            reader.fail(node, "\(what) is not a valid regular expression: \(reader.shown(node, source))")
            return nil
        }
    }
}
