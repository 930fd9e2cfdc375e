import AsyncHTTPClient
import Foundation
import HeraldCore
@testable import HeraldSinks
import HeraldServer
import HeraldTesting
import Testing

/// The six chat sinks against fakes of their services: the exact request shape, and what each of
/// the service's answers (success, its own 429, a permanent error, a 5xx) becomes.
@Suite("Chat sinks")
struct ChatSinkTests {
    typealias Service = ChatServiceFake.Service

    static let pushoverApp = "azGDORePK8gMaC0QOYAMyEEuzJnyUi"
    static let pushoverUser = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"

    /// A sink of `service`'s type pointed at `fake`.
    static func config(_ service: Service, _ fake: ChatServiceFake, extra: String = "") -> String {
        switch service {
        case .telegram: "{ type: telegram, bot_token: \"123456:ABC-def_ghi\", chat_id: [\"4242\", \"@codes\"], base_url: \"\(fake.url())\"\(extra) }"
        case .discord: "{ type: discord, webhook_url: \"\(fake.url("/api/webhooks/11/tok"))\"\(extra) }"
        case .ntfy: "{ type: ntfy, url: \"\(fake.url("/codes"))\", token: tk_secret, tags: [key]\(extra) }"
        case .pushover: "{ type: pushover, app_token: \(pushoverApp), user_key: \(pushoverUser), base_url: \"\(fake.url())\"\(extra) }"
        case .matrix: "{ type: matrix, homeserver: \"\(fake.url())\", access_token: syt_secret, room_id: \"!room:example.org\"\(extra) }"
        case .teams: "{ type: teams, webhook_url: \"\(fake.url("/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=s3cret"))\"\(extra) }"
        }
    }

    static func sink(_ service: Service, _ fake: ChatServiceFake, extra: String = "") throws -> any Sink {
        let config = try ConfigLoader.parse("""
            sinks: { chat: \(config(service, fake, extra: extra)) }
            routes: [ { deliver: [chat] } ]
            """)
        return SinkFactory.makeSink(config.sinks[0])
    }

    static func request(_ sink: any Sink, body: String = "Your code is 123456") -> DeliveryRequest {
        var request = sampleRequest(body: body)
        request.delivery.recipient = sink.recipients.first
        request.delivery.sink = "chat"
        return request
    }

    static let expected: [Service: (wait: Duration?, permanent: String)] = [
        .telegram: (.seconds(3), "Forbidden: bot was blocked by the user"),
        .discord: (.milliseconds(1500), "the webhook is gone"),
        .ntfy: (nil, "code 40101: unauthorized"),
        .pushover: (nil, "user identifier is not a valid user"),
        .matrix: (.milliseconds(1500), "M_FORBIDDEN"),
        .teams: (.seconds(2), "TriggerInputSchemaMismatch"),
    ]

    @Test(arguments: Service.allCases)
    func eachServiceAnswerIsClassified(_ service: Service) async throws {
        let fake = try await ChatServiceFake.start(service, script: [.success, .rateLimited, .permanent, .serverError])
        defer { Task { await fake.stop() } }
        let sink = try Self.sink(service, fake)
        var outcomes: [DeliveryOutcome] = []
        for _ in 0..<4 { outcomes.append(await sink.deliver(Self.request(sink))) }
        #expect(fake.problems == [], "the requests have the service's shape")
        #expect(outcomes.map(\.label) == ["delivered", "retry", "permanent", "retry"], "\(outcomes)")
        if case .delivered(_, let receipt, _) = outcomes[0] {
            #expect((receipt != nil) == (service != .teams), "the sent message's id is kept where the service gives one")
        }
        let expected = try #require(Self.expected[service])
        if case .retry(let after, let reason) = outcomes[1] {
            if service == .pushover {
                let after = try #require(after, "Pushover's quota reset is honoured")
                #expect(after <= .seconds(3) && after >= .zero)
            } else {
                #expect(after == expected.wait, "\(service)'s own rate-limit signal")
            }
            #expect(!reason.isEmpty)
        }
        #expect(outcomes[2].detail?.contains(expected.permanent) == true, "\(outcomes[2])")
        if service == .pushover, case .retry(let after, _) = outcomes[3] { #expect(after == .seconds(5), "Pushover: 5xx no sooner than 5 s") }
        // Secrets never appear in what is kept with the attempt.
        for outcome in outcomes {
            for secret in ["ABC-def_ghi", "tok", "tk_secret", Self.pushoverApp, "syt_secret", "s3cret"] where secret != "tok" || service == .discord {
                #expect(outcome.detail?.contains(secret) != true)
            }
        }
    }

    @Test func telegramSendsHTMLEscapedWithACopyButton() async throws {
        let fake = try await ChatServiceFake.start(.telegram)
        defer { Task { await fake.stop() } }
        let sink = try Self.sink(.telegram, fake, extra: ", copy_button: true")
        #expect(sink.recipients == ["4242", "@codes"], "one delivery per chat")
        let outcome = await sink.deliver(Self.request(sink, body: "<b>Your</b> code is 123456 & <a href=x>go</a>"))
        #expect(outcome == .delivered(detail: "Telegram message 101", receipt: "4242:101"))
        let request = try #require(fake.requests.first)
        #expect(request.path == "/bot123456:ABC-def_ghi/sendMessage")
        let json = try #require(request.json)
        #expect(json["chat_id"] as? Int == 4242, "a numeric chat id is sent as a number")
        #expect(json["text"] as? String == "<code>123456</code>  ·  <b>AWS</b>  ·  from +15551234567\n&lt;b&gt;Your&lt;/b&gt; code is 123456 &amp; &lt;a href=x&gt;go&lt;/a&gt;")
        let keyboard = (json["reply_markup"] as? [String: Any])?["inline_keyboard"] as? [[[String: Any]]]
        #expect((keyboard?.first?.first?["copy_text"] as? [String: Any])?["text"] as? String == "123456")
        #expect((json["link_preview_options"] as? [String: Any])?["is_disabled"] as? Bool == true)
    }

    @Test func discordDisablesMentionsAndEscapesMarkdown() async throws {
        let fake = try await ChatServiceFake.start(.discord)
        defer { Task { await fake.stop() } }
        let sink = try Self.sink(.discord, fake)
        let outcome = await sink.deliver(Self.request(sink, body: "@everyone code 123456 **now** [x](http://e)"))
        #expect(outcome.isDelivered)
        let content = try #require(fake.requests.first?.json?["content"] as? String)
        #expect(content == "`123456`  ·  **AWS**  ·  from +15551234567\n\\@everyone code 123456 \\*\\*now\\*\\* \\[x\\]\\(http\\://e\\)")
    }

    @Test func discordRestsWhenItsBucketIsEmpty() throws {
        let outcome = Classifier.classify(.http(status: 200, retryAfter: nil, body: #"{"id":"9"}"#,
                                                headers: ["x-ratelimit-remaining": "0", "x-ratelimit-reset-after": "0.75"]),
                                          rules: DiscordSinkSettings.rules)
        #expect(outcome == .delivered(detail: "Discord message 9", receipt: "9", rest: .milliseconds(750)))
        let decision = DeliveryRules.decide(outcome, delivery: sampleRequest().delivery, policy: RetryPolicy(), now: Date(timeIntervalSince1970: 0), random: { $0.lowerBound })
        #expect(decision.pauseUntil == Date(timeIntervalSince1970: 0.75), "the sink pauses, the delivery is delivered")
        #expect(decision.result.next == .delivered)
    }

    @Test func matrixPrefersRetryAfterAndUsesTheDeliveryIDAsTransaction() async throws {
        let header = Classifier.classify(.http(status: 429, retryAfter: "4", body: #"{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":1500}"#,
                                               headers: ["retry-after": "4"]), rules: MatrixSinkSettings.rules)
        #expect(header == .retry(after: .seconds(4), reason: "Matrix HTTP 429, M_LIMIT_EXCEEDED"))
        let fake = try await ChatServiceFake.start(.matrix)
        defer { Task { await fake.stop() } }
        let sink = try Self.sink(.matrix, fake)
        _ = await sink.deliver(Self.request(sink, body: "Code 123456 <script>"))
        _ = await sink.deliver(Self.request(sink, body: "Code 123456 <script>"))
        let paths = fake.requests.map(\.path)
        #expect(paths == Array(repeating: "/_matrix/client/v3/rooms/%21room%3Aexample.org/send/m.room.message/dlv_test", count: 2),
                "a retry sends the same transaction id")
        let json = try #require(fake.requests.first?.json)
        #expect(json["formatted_body"] as? String == "<code>123456</code>  ·  <b>AWS</b>  ·  from +15551234567<br>Code 123456 &lt;script&gt;")
        #expect(json["body"] as? String == "123456  ·  AWS  ·  from +15551234567\nCode 123456 <script>")
        #expect(fake.requests.first?.header("Authorization") == "Bearer syt_secret")
    }

    @Test func ntfyAndPushoverCarryTitleTTLAndPriority() async throws {
        let ntfy = try await ChatServiceFake.start(.ntfy)
        defer { Task { await ntfy.stop() } }
        let sink = try Self.sink(.ntfy, ntfy, extra: ", copy_button: true")
        #expect(await sink.deliver(Self.request(sink)) == .delivered(detail: "ntfy message nt1abcDEF", receipt: "nt1abcDEF"))
        let json = try #require(ntfy.requests.first?.json)
        #expect(json["topic"] as? String == "codes")
        #expect(json["title"] as? String == "123456  ·  AWS")
        #expect(json["priority"] as? Int == 4)
        #expect(json["tags"] as? [String] == ["key"])
        #expect(((json["actions"] as? [[String: Any]])?.first)?["value"] as? String == "123456")
        #expect(ntfy.requests.first?.header("Authorization") == "Bearer tk_secret")

        let pushover = try await ChatServiceFake.start(.pushover)
        defer { Task { await pushover.stop() } }
        let now = Date()
        let settings = try #require(try Self.sink(.pushover, pushover) as? PushoverSink).settings
        let timed = PushoverSink(name: "chat", settings: settings, timeout: .seconds(5), client: SinkHTTPClient.shared, now: { now })
        var request = Self.request(timed)
        request.delivery.expiresAt = now.addingTimeInterval(90.5)
        #expect(await timed.deliver(request).isDelivered)
        let form = Dictionary(try #require(pushover.requests.first).form, uniquingKeysWith: { a, _ in a })
        #expect(form["ttl"] == "90", "ttl is the code's remaining life")
        #expect(form["title"] == "123456  ·  AWS")
    }

    @Test func teamsSendsAnAdaptiveCardWithTheCode() async throws {
        let fake = try await ChatServiceFake.start(.teams)
        defer { Task { await fake.stop() } }
        let sink = try Self.sink(.teams, fake)
        #expect(await sink.deliver(Self.request(sink, body: "Your code is 123456 **now**")) == .delivered(detail: "Teams: accepted by the workflow"))
        let card = try #require(((fake.requests.first?.json?["attachments"] as? [[String: Any]])?.first?["content"]) as? [String: Any])
        let blocks = try #require(card["body"] as? [[String: Any]])
        #expect(blocks.first?["text"] as? String == "123456")
        #expect(blocks.first?["fontType"] as? String == "Monospace")
        let run = ((blocks.last?["inlines"] as? [[String: Any]])?.first)?["text"] as? String
        #expect(run == "Your code is 123456 **now**", "the SMS is a TextRun: shown as written, never as markdown")
    }

    @Test(arguments: [
        ("{ type: telegram, chat_id: 1 }", "needs `bot_token`", 1),
        ("{ type: telegram, bot_token: nope, chat_id: 1 }", "does not look like a bot token", 1),
        ("{ type: telegram, bot_token: \"1:a\", chat_id: \"my group\" }", "neither a numeric chat id", 1),
        ("{ type: telegram, bot_token: \"1:a\", chat_id: 1, retract: later }", "must be on_expiry or never", 1),
        ("{ type: discord, webhook_url: \"https://discord.com/api/webhooks/1/t?wait=true\" }", "without a query", 1),
        ("{ type: ntfy, url: \"https://ntfy.sh/\" }", "topic's URL", 1),
        ("{ type: ntfy, url: \"https://ntfy.sh/t\", priority: 9 }", "priority must be 1–5", 1),
        ("{ type: pushover, app_token: short, user_key: \"uQiRzpo4DXghDmr9QzzfQu27cmVRsG\" }", "30-character application token", 1),
        ("{ type: pushover, app_token: azGDORePK8gMaC0QOYAMyEEuzJnyUi, user_key: u, priority: 2 }", "user_key must be", 1),
        ("{ type: matrix, homeserver: \"https://m.org\", access_token: t, room_id: \"#room:m.org\" }", "must be the room's id", 1),
        ("{ type: teams }", "needs `webhook_url`", 1),
    ])
    func badSettingsSayWhere(_ sink: String, _ message: String, _ line: Int) throws {
        let text = "sinks:\n  chat: \(sink)\nroutes: [ { deliver: [chat] } ]\n"
        do {
            _ = try ConfigLoader.parse(text)
            Issue.record("accepted: \(sink)")
        } catch {
            let description = "\(error)"
            #expect(description.contains(message), "\(description)")
            #expect(description.contains("channels.yaml:2:"), "\(description)")
            #expect(!description.contains("azGDORePK8gMaC0QOYAMyEEuzJnyUi"), "a token is never quoted back")
        }
    }

    @Test func deletesClassifyAlreadyGoneAsDone() {
        #expect(TelegramSink.classifyDelete(.http(status: 400, retryAfter: nil, body: #"{"ok":false,"error_code":400,"description":"Bad Request: message to delete not found"}"#)).isDelivered)
        #expect(TelegramSink.classifyDelete(.http(status: 400, retryAfter: nil, body: #"{"ok":false,"error_code":400,"description":"Bad Request: message can't be deleted"}"#)).label == "permanent")
        #expect(TelegramSink.classifyDelete(.http(status: 429, retryAfter: "7", body: #"{"ok":false,"parameters":{"retry_after":7}}"#)) == .retry(after: .seconds(7), reason: "Telegram HTTP 429"))
        #expect(DiscordSink.classifyDelete(.http(status: 404, retryAfter: nil, body: #"{"message":"Unknown Message","code":10008}"#)).isDelivered)
        #expect(DiscordSink.classifyDelete(.http(status: 404, retryAfter: nil, body: #"{"message":"Unknown Webhook","code":10015}"#)).label == "permanent")
    }

    @Test func thePlanAddsARetractionAfterEachDeliveryOfARetractingSink() throws {
        let config = try ConfigLoader.parse("""
            sinks:
              tg: { type: telegram, bot_token: "1:a", chat_id: [1, 2], retract: on_expiry }
              dc: { type: discord, webhook_url: "https://discord.com/api/webhooks/1/t" }
            routes: [ { deliver: [tg, dc], expire_after: 2m } ]
            """)
        let sinks = SinkFactory.makeSinks(config)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let plan = DeliveryPlan(message: InboundMessage(source: "twilio", sourceID: "SM1", from: "+15551234567", to: nil, body: "code 123456"),
                                router: Router(config: config), sinks: HeraldRuntime.sinkInfos(config, sinks), now: now)
        #expect(plan.deliveries.map(\.sink) == ["tg", "tg", "tg", "tg", "dc"])
        #expect(plan.sends.count == 3)
        let pairs = zip(plan.deliveries.dropLast().enumerated().filter { $0.offset % 2 == 0 }.map(\.element),
                        plan.deliveries.dropLast().enumerated().filter { $0.offset % 2 == 1 }.map(\.element))
        for (delivery, retraction) in pairs {
            #expect(retraction.retracts == delivery.id)
            #expect(retraction.recipient == delivery.recipient)
            #expect(retraction.id.hasPrefix("rtr_"))
            #expect(retraction.nextAttemptAt == delivery.expiresAt, "due when the code expires")
            #expect(retraction.expiresAt == delivery.expiresAt.addingTimeInterval(24 * 3600), "tried for a day after the code expired")
            #expect(retraction.state == .pending)
        }
        #expect(plan.deliveries.last?.retracts == nil, "a sink without retract: nothing more")
    }
}

@Suite("Retractions in the admin API")
struct AdminRetractionTests {
    @Test func aRetractionIsItsOwnKindOfRow() throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let retraction = Delivery(id: "rtr_1", eventID: "evt_1", sink: "tg", route: "all", app: nil, nextAttemptAt: now,
                                  expiresAt: now.addingTimeInterval(3600), retracts: "dlv_1", createdAt: now)
        let json = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(AdminDelivery(retraction))) as? [String: Any])
        #expect(json["kind"] as? String == "retraction")
        #expect(json["retracts"] as? String == "dlv_1")
        var delivery = retraction
        delivery.retracts = nil
        let plain = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(AdminDelivery(delivery))) as? [String: Any])
        #expect(plain["kind"] as? String == "delivery")
        #expect(plain["retracts"] is NSNull, "absent values are null, never left out")
        let decoded = try JSONDecoder().decode(AdminDelivery.self, from: JSONEncoder().encode(AdminDelivery(retraction)))
        #expect(decoded == AdminDelivery(retraction), "herald retry's client reads it back")
    }
}
