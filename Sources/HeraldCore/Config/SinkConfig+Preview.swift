/// What a sink would send for an event, for `herald route` (a dry run that sends nothing).
extension SinkConfig {
    public func preview(event: Event, route: String?, app: String?) -> String {
        let context = TemplateContext(event: event, route: route, app: app)
        switch settings {
        case .slack(let slack):
            return slack.text.render(context)
        case .http(let http):
            let body = http.body?.render(context) ?? String(decoding: event.jsonData(), as: UTF8.self)
            return "\(http.method) \(body)"
        case .file(let file):
            return "append to \(file.path): " + String(decoding: event.jsonData(), as: UTF8.self)
        case .email(let email):
            return "mail to \(email.to.joined(separator: ", ")), subject: \(email.subject.render(context))\n" + email.body.render(context)
        case .twilio(let twilio):
            return "SMS to \(twilio.to.map(PhoneNumber.masked).joined(separator: ", ")): " + twilio.body.render(context)
        }
    }
}
