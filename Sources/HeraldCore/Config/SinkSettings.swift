/// A sink type's own settings, and how they are read from `channels.yaml`. Each type lives in its
/// folder of `HeraldSinks` and is listed once in `SinkRegistry`; the loader decodes the keys every
/// sink takes (`timeout`, `retry`, `rate_limit`, `burst`, `concurrency`, `optional`) and hands
/// the rest of the mapping to the type.
public protocol SinkSettings: Sendable {
    /// The `type:` word.
    static var type: String { get }
    /// Defaults of this type that differ from every sink's.
    static var defaults: SinkDefaults { get }
    /// Reads and validates the type's keys; problems go to `section` with their place. Nil when
    /// the settings are unusable.
    static func decode(_ section: ConfigSection) -> Self?

    /// The text this sink would send (`herald route`).
    func preview(_ context: TemplateContext, event: Event) -> String
    /// For SMS sinks: the number they send from (the loop guard never sends a message from it
    /// again) and the numbers they send to (a route receiving on one of them could loop).
    var smsSender: String? { get }
    var smsRecipients: [String] { get }
}

extension SinkSettings {
    public static var defaults: SinkDefaults { SinkDefaults() }
    public var smsSender: String? { nil }
    public var smsRecipients: [String] { [] }
}

/// Per-type defaults of the keys every sink takes.
public struct SinkDefaults: Sendable {
    public var rateLimit: Double?
    public var burst: Int
    public var concurrency: Int

    public init(rateLimit: Double? = nil, burst: Int = 1, concurrency: Int = ConfigDefaults.sinkConcurrency) {
        self.rateLimit = rateLimit
        self.burst = burst
        self.concurrency = concurrency
    }
}
