import Foundation
import HeraldCore
import HeraldServer
import HeraldSinks
import HeraldTesting
import Testing

/// `server.cpu_scheduling`: every thread of a running `herald serve` (the event loop, the task
/// pool, the database queue, the sinks' client) has the configured policy.
@Suite("CPU scheduling (the herald binary)")
struct CPUSchedulingTests {
    static let token = "scheduling-token"

    func threadPolicies(cpuScheduling: String?) async throws -> [Int32] {
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let sink = try await FakeReceiver.start()
        let setting = cpuScheduling.map { ", cpu_scheduling: \($0)" } ?? ""
        try """
            server: { listen: "127.0.0.1:0", public_url: "http://herald.test"\(setting) }
            storage: sqlite:herald.db
            sources: { twilio: { auth_token: \(Self.token) } }
            sinks: { hook: { type: http, url: "http://127.0.0.1:\(sink.port)/hook" } }
            routes: [ { deliver: [hook] } ]
            """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)
        let herald = try HeraldProcess(["serve"], directory: folder)
        let port = try #require(await herald.listeningPort(), "\(herald.text)")
        // A message through every part (webhook, store, dispatcher, sink), so every thread exists.
        let status = try await postSignedWebhook(port: port, publicURL: "http://herald.test", token: Self.token,
                                                 [("MessageSid", twilioSID("SMsched")), ("From", "+15551234567"), ("To", "+15005550006"), ("Body", "Your code is 123456")])
        #expect(status == 200)
        #expect(await eventually(timeout: .seconds(10)) { sink.requests.count == 1 })
        let policies = ThreadScheduling.policies(ofProcess: herald.process.processIdentifier)
        herald.signal(SIGTERM)
        #expect(await herald.wait() == 0)
        await sink.stop()
        #expect(policies.count >= 3, "threads: \(policies)")
        return policies
    }

    @Test func batchByDefault() async throws {
        let policies = try await threadPolicies(cpuScheduling: nil)
        #expect(policies.allSatisfy { $0 == 3 }, "SCHED_BATCH is 3: \(policies)")
    }

    @Test func normalOnRequest() async throws {
        let policies = try await threadPolicies(cpuScheduling: "normal")
        #expect(policies.allSatisfy { $0 == 0 }, "SCHED_OTHER is 0: \(policies)")
    }

    @Test func anUnknownPolicyIsAConfigError() throws {
        let yaml = """
            server:
              cpu_scheduling: fast
            sinks: { inbox: { type: file, path: /dev/null } }
            routes: [ { deliver: [inbox] } ]
            """
        do {
            _ = try ConfigLoader.parse(yaml)
            Issue.record("loaded")
        } catch let error as ConfigErrors {
            #expect("\(error)".contains("channels.yaml:2:19"), "\(error)")
            #expect("\(error)".contains("server.cpu_scheduling must be batch or normal, not 'fast'"), "\(error)")
        }
    }

    @Test func theThreadsOfThisProcessAreRead() {
        let policies = ThreadScheduling.policies()
        #expect(!policies.isEmpty && policies.allSatisfy { [0, 3].contains($0) }, "\(policies)")
    }
}
