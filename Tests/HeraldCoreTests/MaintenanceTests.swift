import Foundation
import HeraldCore
import HeraldTesting
import Logging
import Testing

@Suite("Maintenance")
struct MaintenanceTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    @Test func sweepPicksUpWorkAddedBehindTheDispatchersBack() async throws {
        let clock = ManualClock()
        let store = InMemoryOutboxStore(clock: clock)
        let sink = RecordingSink(name: "slack")
        let dispatcher = Dispatcher(store: store, sinks: [sink], lanes: [LaneSettings(sink: "slack", concurrency: 1, timeout: .seconds(5))], clock: clock, logger: logger)
        let maintenance = Maintenance(store: store, dispatcher: dispatcher, clock: clock, retention: .seconds(86400), logger: logger)
        let task = Task { try await dispatcher.run() }
        defer { task.cancel() }
        #expect(await eventually { dispatcher.phase == .running })
        // Another process wrote a pending delivery; this dispatcher was never told.
        let now = clock.now()
        let event = Event(id: "evt_1", source: "twilio", sourceID: nil, from: "+1", to: nil, body: "x", receivedAt: now)
        let delivery = Delivery(id: "dlv_1", eventID: "evt_1", sink: "slack", route: "all", app: nil, nextAttemptAt: now, expiresAt: now.addingTimeInterval(600), createdAt: now)
        _ = try await store.insert(event, deliveries: [delivery])
        await maintenance.sweep()
        #expect(await eventually { sink.requests.count == 1 })
        #expect(try await eventually { try await store.delivery(id: "dlv_1")?.state == .delivered })
        await maintenance.sweep()
        await maintenance.sweep()
        #expect(await eventually { dispatcher.idle })
        #expect(sink.requests.count == 1, "a delivered delivery is not swept again")
    }

    @Test func purgeUsesTheRetention() async throws {
        let clock = ManualClock()
        let store = InMemoryOutboxStore(clock: clock)
        let dispatcher = Dispatcher(store: store, sinks: [], lanes: [], clock: clock, logger: logger)
        let maintenance = Maintenance(store: store, dispatcher: dispatcher, clock: clock, retention: .seconds(3600), logger: logger)
        let now = clock.now()
        for (id, age) in [("evt_old", 3601.0), ("evt_new", 3599.0)] {
            _ = try await store.insert(Event(id: id, source: "twilio", sourceID: nil, from: "+1", to: nil, body: "x", receivedAt: now.addingTimeInterval(-age)), deliveries: [])
        }
        await maintenance.purge()
        #expect(await store.allEvents().map(\.id) == ["evt_new"])
    }
}
