import HeraldCore
import Synchronization

/// A sink that records every attempt and answers from a script (then `fallback`).
public final class RecordingSink: Sink {
    public let name: String
    public let recipients: [String]
    private let script: Mutex<[DeliveryOutcome]>
    private let fallback: DeliveryOutcome
    private let recorded = Mutex<[DeliveryRequest]>([])

    public init(name: String, recipients: [String] = [], script: [DeliveryOutcome] = [], fallback: DeliveryOutcome = .delivered(detail: nil)) {
        self.name = name
        self.recipients = recipients
        self.script = Mutex(script)
        self.fallback = fallback
    }

    public var requests: [DeliveryRequest] { recorded.withLock { $0 } }

    public func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome {
        recorded.withLock { $0.append(request) }
        return script.withLock { $0.isEmpty ? fallback : $0.removeFirst() }
    }
}
