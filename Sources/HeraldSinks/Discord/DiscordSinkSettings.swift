import Foundation
import HeraldCore

/// `type: discord`: a channel webhook, mentions disabled, the message id kept (`?wait=true`) so
/// the message can be deleted once the code expired.
public struct DiscordSinkSettings: SinkBuilding {
    public static let type = "discord"
    /// Discord's per-webhook buckets are undocumented (about 5 requests per 2 s in practice);
    /// Herald also rests when the bucket's headers say it is empty.
    public static let defaults = SinkDefaults(rateLimit: 2, burst: 5)

    /// `https://discord.com/api/webhooks/{id}/{token}`: whoever has it can post to the channel.
    public var webhookURL: Secret
    public var content: MessageTemplate
    public var retract: Bool

    public static func decode(_ section: ConfigSection) -> DiscordSinkSettings? {
        var url = section.require("webhook_url") ? section.url("webhook_url") : nil
        if let value = url {
            if value.contains("?") || value.contains("#") {
                section.fail("webhook_url", "\(section.keyPath("webhook_url")) must be the webhook's URL without a query (Herald adds ?wait=true)")
                url = nil
            } else {
                url = URLPath.trimmed(value)
            }
        }
        let content = section.has("content") ? section.template("content", escaping: .discord) : DefaultTemplates.discord
        let retract = RetractSetting.decode(section)
        guard let url, let content, let retract else { return nil }
        return DiscordSinkSettings(webhookURL: Secret(url), content: content, retract: retract)
    }

    public func preview(_ context: TemplateContext, event: Event) -> String {
        content.render(context) + (retract ? "\n(deleted when the code expires)" : "")
    }

    public func makeSink(_ config: SinkConfig, context: SinkContext) -> any Sink {
        DiscordSink(name: config.name, settings: self, timeout: config.timeout, client: context.client)
    }

    /// Discord answers the Message (`id`) with `?wait=true`; errors are `{"message","code"}`:
    /// 404 code 10015 (the webhook was deleted), 401 50027 (bad token), 400 50035 (bad body) are
    /// permanent. 429 says `retry_after` in seconds with fractions (the `Retry-After` header
    /// rounds it up). After a success, `X-RateLimit-Remaining: 0` rests the sink for
    /// `X-RateLimit-Reset-After`.
    public static let rules = ClassificationRules(
        service: "Discord: ", gone: [404],
        failureReason: { status, body in
            let json = ChatJSON.object(body)
            var reason = "Discord HTTP \(status)"
            if let code = ChatJSON.id(json?["code"]) { reason += ", code \(code)" }
            if let message = json?["message"] as? String { reason += ": \(message.prefix(200))" }
            return reason
        },
        delivered: { status, body in
            let id = ChatJSON.id(ChatJSON.object(body)?["id"])
            return (id.map { "Discord message \($0)" } ?? "Discord HTTP \(status)", id)
        },
        wait: { _, _, body in
            ChatJSON.number(ChatJSON.object(body)?["retry_after"]).map(Duration.fractionalSeconds)
        },
        restAfterSuccess: { headers in
            guard headers["x-ratelimit-remaining"] == "0", let after = headers["x-ratelimit-reset-after"].flatMap(Double.init) else { return nil }
            return .fractionalSeconds(after)
        }
    )

    static let keptHeaders = ["x-ratelimit-remaining", "x-ratelimit-reset-after"]
}
