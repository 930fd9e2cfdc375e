import Foundation
import Logging
import ServiceLifecycle

/// The slow safety net beside the dispatcher's exact timetable: every `interval` it returns lost
/// claims (leases that ran out) and picks up pending work that another process put in the store
/// (`herald retry` while the server runs); every `purgeInterval` it deletes finished events older
/// than the retention. Nothing on the happy path waits for it.
public final class Maintenance: Service, Sendable {
    let store: any OutboxStore
    let dispatcher: Dispatcher
    let clock: any HeraldClock
    let retention: Duration
    let interval: Duration
    let purgeInterval: Duration
    let logger: Logger

    public init(
        store: any OutboxStore, dispatcher: Dispatcher, clock: any HeraldClock = SystemClock(), retention: Duration,
        interval: Duration = .seconds(5), purgeInterval: Duration = .seconds(3600), logger: Logger
    ) {
        self.store = store
        self.dispatcher = dispatcher
        self.clock = clock
        self.retention = retention
        self.interval = interval
        self.purgeInterval = purgeInterval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var nextPurge = self.clock.now()
            while !Task.isCancelled {
                let now = self.clock.now()
                await self.sweep()
                if now >= nextPurge {
                    await self.purge()
                    nextPurge = now.adding(self.purgeInterval)
                }
                do {
                    try await self.clock.sleep(until: now.adding(self.interval))
                } catch {
                    return
                }
            }
        }
    }

    /// Returns lost claims to pending and has every lane look in the store (work added behind
    /// the dispatcher's back, orphans of removed sinks).
    public func sweep() async {
        do {
            let released = try await store.releaseExpiredLeases()
            if !released.isEmpty {
                logger.warning("claims whose lease ran out are pending again", metadata: ["sink.names": "\(released.sorted().joined(separator: ","))"])
            }
            dispatcher.submit(.backlogCounted(try await store.pendingBySink()))
            dispatcher.submit(.wakeAll)
            try await store.maintain()
        } catch {
            logger.error("outbox sweep failed", metadata: ["error": "\(error)"])
        }
    }

    public func purge() async {
        do {
            let removed = try await store.purge(olderThan: retention)
            if removed > 0 {
                logger.info("purged finished events past retention", metadata: ["event.count": "\(removed)", "retention": "\(retention.shortDescription)"])
            }
        } catch {
            logger.error("retention purge failed", metadata: ["error": "\(error)"])
        }
    }
}
