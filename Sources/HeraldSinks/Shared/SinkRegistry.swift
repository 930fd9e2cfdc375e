import Foundation
import HeraldCore

/// Every sink type Herald knows. Adding one: a folder with its settings (`SinkBuilding`) and
/// its sink, and one line here.
public enum SinkRegistry {
    public static let types: [any SinkBuilding.Type] = [
        SlackSinkSettings.self,
        HTTPSinkSettings.self,
        FileSinkSettings.self,
        TwilioSinkSettings.self,
        EmailSinkSettings.self,
        TelegramSinkSettings.self,
        DiscordSinkSettings.self,
        NtfySinkSettings.self,
        PushoverSinkSettings.self,
        MatrixSinkSettings.self,
        TeamsSinkSettings.self,
    ]

    /// The same list, as the configuration loader takes it.
    public static var settingsTypes: [any SinkSettings.Type] { types.map { $0 } }
}

extension ConfigLoader {
    /// Loads `channels.yaml` with every sink type of `SinkRegistry`.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> HeraldConfig {
        try load(path: path, environment: environment, sinkTypes: SinkRegistry.settingsTypes)
    }

    /// Parses a configuration text with every sink type of `SinkRegistry`.
    public static func parse(_ text: String, file: String = "channels.yaml", environment: [String: String] = [:]) throws -> HeraldConfig {
        try parse(text, file: file, environment: environment, sinkTypes: SinkRegistry.settingsTypes)
    }
}
