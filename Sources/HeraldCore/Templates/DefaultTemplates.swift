/// The messages a sink sends when its configuration names no template.
public enum DefaultTemplates {
    /// The code first and bold, so it can be read at a glance on a phone; then who sent it; then
    /// the SMS itself.
    public static let slackSource = "{{#otp}}*{{otp}}*  ·  {{/otp}}{{#app}}{{app}}  ·  {{/app}}from {{from}}\n{{body}}"

    /// SMS to backup phones: the text as received, prefixed with the app when the route names one.
    public static let smsSource = "{{#app}}[{{app}}] {{/app}}{{body}}"

    // The sources above are constants that compile; a failure is a programming error caught by tests.
    public static let slack = try! MessageTemplate(slackSource, escaping: .slack)
    public static let sms = try! MessageTemplate(smsSource, escaping: .text)
}
