import Foundation
import HeraldCore

/// `type: slack`: an incoming webhook.
public struct SlackSinkSettings: SinkBuilding {
    public static let type = "slack"
    /// Slack allows about one message a second per webhook, with short bursts.
    public static let defaults = SinkDefaults(rateLimit: 1, burst: 5)

    /// A Slack webhook URL is a credential: whoever has it can post to the channel.
    public var webhookURL: Secret
    public var text: MessageTemplate

    public static func decode(_ section: ConfigSection) -> SlackSinkSettings? {
        let url = section.require("webhook_url") ? section.url("webhook_url") : nil
        let text = section.has("text") ? section.template("text", escaping: .slack) : DefaultTemplates.slack
        guard let url, let text else { return nil }
        return SlackSinkSettings(webhookURL: Secret(url), text: text)
    }

    public func preview(_ context: TemplateContext, event: Event) -> String {
        text.render(context)
    }

    public func makeSink(_ config: SinkConfig, context: SinkContext) -> any Sink {
        SlackSink(name: config.name, settings: self, timeout: config.timeout, client: context.client)
    }

    /// Slack answers `ok`, or a plain-text error code: 400 `invalid_payload`, 403 `invalid_token`,
    /// 404 `channel_not_found`, 410 `channel_is_archived`, 429 with `Retry-After`, 500 `rollup_error`.
    public static let rules = ClassificationRules(service: "Slack: ", gone: [404, 410], delivered: { _, body in
        // Slack answers a delivered message with exactly `ok`: no Foundation trimming for it.
        if body == "ok" { return (detail: "Slack: ok", receipt: nil) }
        let code = body.trimmingCharacters(in: .whitespacesAndNewlines)
        return (detail: "Slack: \(code.isEmpty ? "ok" : String(code.prefix(100)))", receipt: nil)
    })
}
