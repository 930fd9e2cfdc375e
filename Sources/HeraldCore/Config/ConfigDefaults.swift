/// Every default of `channels.yaml` in one place: the loader fills them in and nothing else
/// repeats them.
public enum ConfigDefaults {
    public static let host = "127.0.0.1"
    public static let port = 8080
    public static let shutdownGrace = Duration.seconds(10)
    public static let storage = StorageConfig.sqlite(path: "data/herald.db")
    public static let retention = Duration.seconds(7 * 86400)
    public static let expireAfter = Duration.seconds(600)
    public static let retry = RetryPolicy.default
    public static let twilioPath = "/twilio/sms"
    public static let httpPath = "/events"
    public static let sinkTimeout = Duration.seconds(10)
    /// Attempts under way at once per sink, unless its type says otherwise: enough that a 50 ms
    /// receiver takes 500 messages a second without a queue (32 / 0.05 s = 640/s).
    public static let sinkConcurrency = 32
    /// `server.limits`, see `InboundLimits`.
    public static let limits = InboundLimits()
}
