import Foundation

/// Where one event goes: which routes matched, which sinks get it (each once), and its code.
public struct RoutingDecision: Sendable, Equatable {
    public struct Target: Sendable, Equatable {
        public var sink: String
        public var route: String
        public var app: String?
        public var expireAfter: Duration
    }

    public var matchedRoutes: [String]
    public var targets: [Target]
    public var otp: String?
    /// The domain an origin-bound code is for (`@example.com #123456`).
    public var otpDomain: String?
    /// The first matching route's label and name; nil when nothing matched.
    public var app: String?
    public var route: String?

    public var isRouted: Bool { !matchedRoutes.isEmpty }
}

/// Evaluates the routes in order. A route stops evaluation unless it says `continue: true`; a
/// sink named by several matching routes is delivered to once, under the first route naming it.
public struct Router: Sendable {
    public let routes: [RouteConfig]
    public let defaultExpireAfter: Duration

    public init(routes: [RouteConfig], defaultExpireAfter: Duration) {
        self.routes = routes
        self.defaultExpireAfter = defaultExpireAfter
    }

    public init(config: HeraldConfig) {
        self.init(routes: config.routes, defaultExpireAfter: config.defaults.expireAfter)
    }

    public func route(source: String, from: String, to: String?, body: String) -> RoutingDecision {
        let from = PhoneNumber.normalize(from)
        let to = to.map(PhoneNumber.normalize)
        let bound = OriginBoundCode.parse(body)
        var decision = RoutingDecision(matchedRoutes: [], targets: [], otp: nil, otpDomain: bound?.domain, app: nil, route: nil)
        var otpPattern: Pattern?
        for route in routes where Self.matches(route.match, source: source, from: from, to: to, body: body, otpDomain: bound?.domain) {
            if decision.matchedRoutes.isEmpty {
                decision.app = route.app
                decision.route = route.name
                otpPattern = route.otpPattern
            }
            decision.matchedRoutes.append(route.name)
            for sink in route.deliver where !decision.targets.contains(where: { $0.sink == sink }) {
                decision.targets.append(.init(sink: sink, route: route.name, app: route.app, expireAfter: route.expireAfter ?? defaultExpireAfter))
            }
            if !route.continues { break }
        }
        // An origin-bound code is exact: it wins over a route's pattern and over the finder.
        decision.otp = bound?.code ?? otpPattern.map { $0.firstCapture(in: body) } ?? OTPExtractor.find(in: body)
        return decision
    }

    static func matches(_ match: RouteMatch, source: String, from: String, to: String?, body: String, otpDomain: String?) -> Bool {
        if let sources = match.source, !sources.contains(source) { return false }
        if let domains = match.otpDomain {
            guard let otpDomain, domains.contains(otpDomain) else { return false }
        }
        if let numbers = match.from, !numbers.contains(from) { return false }
        if let numbers = match.to {
            guard let to, numbers.contains(to) else { return false }
        }
        if let pattern = match.body, !pattern.matches(body) { return false }
        return true
    }
}
