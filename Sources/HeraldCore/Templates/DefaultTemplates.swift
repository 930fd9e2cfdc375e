/// The messages a sink sends when its configuration names no template.
public enum DefaultTemplates {
    /// The code first and bold, so it can be read at a glance on a phone; then who sent it; then
    /// the SMS itself.
    public static let slackSource = "{{#otp}}*{{otp}}*  ·  {{/otp}}{{#app}}{{app}}  ·  {{/app}}from {{from}}\n{{body}}"

    /// SMS to backup phones: the text as received, prefixed with the app when the route names one.
    public static let smsSource = "{{#app}}[{{app}}] {{/app}}{{body}}"

    /// Email archive: `[AWS] 482913` when there is a code, else `SMS from +1555…`.
    public static let emailSubjectSource = "{{#otp}}{{#app}}[{{app}}] {{/app}}{{otp}}{{/otp}}{{^otp}}SMS from {{from}}{{/otp}}"
    public static let emailBodySource = "{{body}}\n\n--\nFrom: {{from}}\nTo: {{to}}\nReceived: {{received_at}}\nRoute: {{route}}\nEvent: {{id}}\n"

    // The sources above are constants that compile; a failure is a programming error caught by tests.
    public static let slack = try! MessageTemplate(slackSource, escaping: .slack)
    public static let sms = try! MessageTemplate(smsSource, escaping: .text)
    public static let emailSubject = try! MessageTemplate(emailSubjectSource, escaping: .text)
    public static let emailBody = try! MessageTemplate(emailBodySource, escaping: .text)
}
