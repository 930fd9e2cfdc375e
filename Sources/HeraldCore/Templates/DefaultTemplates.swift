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

    /// Telegram (HTML): the code as `<code>`, which Telegram copies with one tap; the app in bold.
    public static let telegramSource = "{{#otp}}<code>{{otp}}</code>  ·  {{/otp}}{{#app}}<b>{{app}}</b>  ·  {{/app}}from {{from}}\n{{body}}"
    /// Discord (markdown): the code as inline code, easy to select and copy.
    public static let discordSource = "{{#otp}}`{{otp}}`  ·  {{/otp}}{{#app}}**{{app}}**  ·  {{/app}}from {{from}}\n{{body}}"
    /// Matrix: the plain `body`, and the HTML `formatted_body` clients show.
    public static let matrixTextSource = "{{#otp}}{{otp}}  ·  {{/otp}}{{#app}}{{app}}  ·  {{/app}}from {{from}}\n{{body}}"
    public static let matrixHTMLSource = "{{#otp}}<code>{{otp}}</code>  ·  {{/otp}}{{#app}}<b>{{app}}</b>  ·  {{/app}}from {{from}}<br>{{body}}"
    /// A notification's title (ntfy, Pushover): the code, then the app or the sender; its text is
    /// the SMS.
    public static let notificationTitleSource = "{{#otp}}{{otp}}  ·  {{/otp}}{{#app}}{{app}}{{/app}}{{^app}}from {{from}}{{/app}}"
    public static let notificationTextSource = "{{body}}"

    // The sources above are constants that compile; a failure is a programming error caught by tests.
    public static let slack = try! MessageTemplate(slackSource, escaping: .slack)
    public static let sms = try! MessageTemplate(smsSource, escaping: .text)
    public static let emailSubject = try! MessageTemplate(emailSubjectSource, escaping: .text)
    public static let emailBody = try! MessageTemplate(emailBodySource, escaping: .text)
    public static let telegram = try! MessageTemplate(telegramSource, escaping: .telegram)
    public static let discord = try! MessageTemplate(discordSource, escaping: .discord)
    public static let matrixText = try! MessageTemplate(matrixTextSource, escaping: .text)
    public static let matrixHTML = try! MessageTemplate(matrixHTMLSource, escaping: .htmlLines)
    public static let notificationTitle = try! MessageTemplate(notificationTitleSource, escaping: .text)
    public static let notificationText = try! MessageTemplate(notificationTextSource, escaping: .text)
}
