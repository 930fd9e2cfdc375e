import Foundation
import HeraldCore

/// `type: teams`: a Microsoft Teams channel through a Workflows ("When a Teams webhook request is
/// received") webhook, as an Adaptive Card.
public struct TeamsSinkSettings: SinkBuilding {
    public static let type = "teams"
    /// Power Automate's throttling is not documented for this trigger; one a second is a guess
    /// well inside it.
    public static let defaults = SinkDefaults(rateLimit: 1, burst: 5)

    /// The Workflows URL carries its own signature (`sig=`): a credential.
    public var webhookURL: Secret
    /// The SMS text under the code, shown as plain text (an Adaptive Card `TextRun`, where
    /// markdown is not interpreted).
    public var text: MessageTemplate

    public static func decode(_ section: ConfigSection) -> TeamsSinkSettings? {
        let url = section.require("webhook_url") ? section.url("webhook_url", schemes: ["https", "http"]) : nil
        if let url, let host = URLComponents(string: url)?.host?.lowercased(), host.hasSuffix("webhook.office.com") {
            section.warn("\(section.keyPath("webhook_url")) is an Office 365 connector URL; Microsoft retired those connectors. Create a Workflows webhook instead (README → Teams)")
        }
        let text = section.has("text") ? section.template("text", escaping: .text) : DefaultTemplates.notificationText
        guard let url, let text else { return nil }
        return TeamsSinkSettings(webhookURL: Secret(url), text: text)
    }

    public func preview(_ context: TemplateContext, event: Event) -> String {
        let header = TeamsSink.header(context)
        return (event.otp.map { "[\($0)]\n" } ?? "") + header + "\n" + text.render(context)
    }

    public func makeSink(_ config: SinkConfig, context: SinkContext) -> any Sink {
        TeamsSink(name: config.name, settings: self, timeout: config.timeout, client: context.client)
    }

    /// A Workflows webhook answers `202 Accepted` before its flow runs (a flow that fails later is
    /// only in its run history); 4xx are permanent, 429 and 5xx retried.
    public static let rules = ClassificationRules(service: "Teams: ", delivered: { status, _ in
        (status == 202 ? "Teams: accepted by the workflow" : "Teams HTTP \(status)", nil)
    })
}
