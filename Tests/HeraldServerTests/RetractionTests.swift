import Foundation
import HeraldCore
import HeraldTesting
import Testing

/// `retract: on_expiry` with the real binary and a SQLite outbox: the Telegram message is deleted
/// when its code expires, a failed delete is retried, and a restart in between changes nothing.
@Suite("Retraction (the herald binary)")
struct RetractionTests {
    static let token = "retraction-token"

    static func writeConfig(_ folder: URL, telegram: ChatServiceFake, expireAfter: String = "3s") throws {
        try """
            server: { listen: "127.0.0.1:0", public_url: "http://herald.test" }
            storage: sqlite:state/herald.db
            sources: { twilio: { auth_token: \(token) } }
            defaults: { expire_after: \(expireAfter), retry: { max_attempts: 20, initial_backoff: 200ms, max_backoff: 400ms } }
            sinks:
              phone: { type: telegram, bot_token: "123456:ABC-def", chat_id: "4242", retract: on_expiry, copy_button: true, base_url: "\(telegram.url())" }
            routes:
              - deliver: [phone]
            """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)
    }

    static func post(_ port: Int, sid: String) async throws -> Int {
        try await postSignedWebhook(port: port, publicURL: "http://herald.test", token: token,
                                    [("MessageSid", twilioSID(sid)), ("From", "+15551234567"), ("To", "+15005550006"), ("Body", "Your code is 482913")])
    }

    static func deletes(_ fake: ChatServiceFake) -> [FakeReceiver.Recorded] {
        fake.requests.filter { $0.path.hasSuffix("/deleteMessage") }
    }

    @Test func theMessageIsDeletedWhenTheCodeExpires() async throws {
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let telegram = try await ChatServiceFake.start(.telegram)
        defer { Task { await telegram.stop() } }
        // 3 s rather than 2: under the whole suite's load a debug build may take a while to send.
        try Self.writeConfig(folder, telegram: telegram, expireAfter: "3s")
        let herald = try HeraldProcess(["serve"], directory: folder)
        let port = try #require(await herald.listeningPort(), "\(herald.text)")
        let posted = Date()
        #expect(try await Self.post(port, sid: "SMretract1") == 200)
        let answered = Date()
        let sent = try #require(await telegram.receiver.waitForRequests(1).first)
        #expect(sent.path.hasSuffix("/sendMessage"))
        _ = await eventually(timeout: .seconds(12)) { Self.deletes(telegram).count == 1 }
        let delete = try #require(Self.deletes(telegram).first, "\(herald.text)")
        #expect(delete.receivedAt > sent.receivedAt)
        #expect(delete.receivedAt.timeIntervalSince(posted) >= 2.9, "not before the code expired")
        #expect(delete.receivedAt.timeIntervalSince(answered) < 3 + 3, "soon after it expired (no sweep wait)")
        #expect(delete.json?["chat_id"] as? Int == 4242)
        #expect(delete.json?["message_id"] as? Int == 101, "the id Telegram gave the sent message")
        #expect(telegram.problems == [])
        // The delivery keeps its own outcome; the retraction is its own row.
        _ = await eventually { (try? DurabilityTests.query(folder, "SELECT state FROM deliveries WHERE retracts IS NOT NULL")) == "delivered" }
        #expect(try DurabilityTests.query(folder, "SELECT state || ',' || receipt FROM deliveries WHERE retracts IS NULL") == "delivered,4242:101")
        #expect(try DurabilityTests.query(folder, "SELECT state FROM deliveries WHERE retracts IS NOT NULL") == "delivered")
        herald.signal(SIGTERM)
        _ = await herald.wait()
        let list = try HeraldProcess(["deliveries"], directory: folder)
        _ = await list.wait()
        #expect(list.text.contains("retracts dlv_"), "\(list.text)")
        #expect(!herald.text.contains("ABC-def"), "the bot token is never logged")
    }

    @Test func aFailedDeleteIsRetriedWithoutTouchingTheDelivery() async throws {
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let telegram = try await ChatServiceFake.start(.telegram, script: [.success, .serverError])
        defer { Task { await telegram.stop() } }
        try Self.writeConfig(folder, telegram: telegram)
        let herald = try HeraldProcess(["serve"], directory: folder)
        let port = try #require(await herald.listeningPort(), "\(herald.text)")
        #expect(try await Self.post(port, sid: "SMretract2") == 200)
        _ = await eventually(timeout: .seconds(10)) { Self.deletes(telegram).count == 2 }
        #expect(Self.deletes(telegram).count == 2, "the delete answered 500 was sent again: \(herald.text)")
        _ = await eventually { (try? DurabilityTests.query(folder, "SELECT state || ',' || attempts FROM deliveries WHERE retracts IS NOT NULL")) == "delivered,2" }
        #expect(try DurabilityTests.query(folder, "SELECT state || ',' || attempts FROM deliveries WHERE retracts IS NOT NULL") == "delivered,2")
        #expect(try DurabilityTests.query(folder, "SELECT state || ',' || attempts FROM deliveries WHERE retracts IS NULL") == "delivered,1")
        #expect(try DurabilityTests.query(folder, "SELECT outcome FROM attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.retracts IS NOT NULL ORDER BY number") == "retry\ndelivered")
        herald.signal(SIGTERM)
        _ = await herald.wait()
    }

    @Test func aRestartBetweenSendAndExpiryStillDeletes() async throws {
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let telegram = try await ChatServiceFake.start(.telegram)
        defer { Task { await telegram.stop() } }
        try Self.writeConfig(folder, telegram: telegram, expireAfter: "3s")
        let first = try HeraldProcess(["serve"], directory: folder)
        let port = try #require(await first.listeningPort(), "\(first.text)")
        let posted = Date()
        #expect(try await Self.post(port, sid: "SMretract3") == 200)
        _ = await telegram.receiver.waitForRequests(1)
        // Once the delivery is recorded (a kill before that would repeat it, by design).
        _ = await eventually { (try? DurabilityTests.query(folder, "SELECT state FROM deliveries WHERE retracts IS NULL")) == "delivered" }
        first.signal(SIGKILL)
        _ = await first.wait()
        #expect(Self.deletes(telegram).isEmpty)
        let second = try HeraldProcess(["serve"], directory: folder)
        _ = try #require(await second.listeningPort(), "\(second.text)")
        _ = await eventually(timeout: .seconds(10)) { Self.deletes(telegram).count == 1 }
        let delete = try #require(Self.deletes(telegram).first, "\(second.text)")
        #expect(delete.receivedAt.timeIntervalSince(posted) >= 2.9)
        #expect(telegram.requests.filter { $0.path.hasSuffix("/sendMessage") }.count == 1, "the message was not sent twice")
        second.signal(SIGTERM)
        _ = await second.wait()
    }
}
