import CCurl
import Dispatch
import Foundation
import HeraldCore

/// Email over SMTP with libcurl. `smtp://` requires STARTTLS unless `starttls: none`; `smtps://`
/// is TLS from the first byte. Each attempt uses its own easy handle, and the blocking transfer
/// runs on a dedicated dispatch queue, never on Swift's cooperative pool.
public struct EmailSink: Sink {
    public let name: String
    let settings: EmailSinkSettings
    let timeout: Duration
    let now: @Sendable () -> Date

    /// `curl_global_init` once per process, before any transfer (the `herald` executable calls
    /// `CurlRuntime.initialize()` at start-up; this is the fallback for other hosts). libcurl is
    /// told not to use signals, and ignores SIGPIPE itself while a transfer runs, so the sink
    /// leaves the process's signal handling alone.
    static let initialized: Bool = CurlRuntime.initialize()

    public init(name: String, settings: EmailSinkSettings, timeout: Duration, now: @escaping @Sendable () -> Date = { Date() }) {
        self.name = name
        self.settings = settings
        self.timeout = timeout
        self.now = now
        // Initialise libcurl while the sinks are built at start-up, not in the first transfer.
        _ = Self.initialized
    }

    public func message(for request: DeliveryRequest) -> Data {
        let context = request.templateContext
        let domain = EmailAddress.address(in: settings.from)?.split(separator: "@").last.map(String.init) ?? "herald.local"
        return EmailMessage.build(
            from: settings.from, to: settings.to, subject: settings.subject.render(context), body: settings.body.render(context),
            messageID: "\(request.delivery.id).\(request.delivery.attempts)@\(domain)", date: now()
        )
    }

    public func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome {
        let message = message(for: request)
        let settings = self.settings
        let timeout = self.timeout
        let cancel = AtomicFlag()
        // The transfer blocks its thread, so it runs off the cooperative pool; cancellation (the
        // shutdown grace running out) reaches it through libcurl's progress callback.
        return await withTaskCancellationHandler {
            await Blocking.run { Self.transfer(message: message, settings: settings, timeout: timeout, cancel: cancel) }
        } onCancel: {
            cancel.set()
        }
    }

    /// The message and how far the upload got; reached from libcurl's read callback.
    final class Upload {
        let bytes: [UInt8]
        var offset = 0

        init(_ data: Data) {
            bytes = [UInt8](data)
        }
    }

    static func transfer(message: Data, settings: EmailSinkSettings, timeout: Duration, cancel: AtomicFlag = AtomicFlag()) -> DeliveryOutcome {
        // The error buffer outlives the handle that writes into it (freed after the cleanup below).
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        defer { errorBuffer.deallocate() }
        guard initialized, let handle = curl_easy_init() else { return .retry(reason: "libcurl could not be initialised") }
        defer { curl_easy_cleanup(handle) }
        var recipients: UnsafeMutablePointer<curl_slist>?
        for address in settings.to {
            guard let bare = EmailAddress.address(in: address) else { continue }
            recipients = curl_slist_append(recipients, "<\(bare)>")
        }
        defer { curl_slist_free_all(recipients) }
        let upload = Upload(message)
        let uploadPointer = Unmanaged.passRetained(upload)
        defer { uploadPointer.release() }
        let cancelPointer = Unmanaged.passRetained(cancel)
        defer { cancelPointer.release() }
        let result: CURLcode = {
            // SMTP and nothing else, whatever the URL says (no file://, no redirects elsewhere).
            herald_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "smtp,smtps")
            herald_setopt_string(handle, CURLOPT_REDIR_PROTOCOLS_STR, "smtp,smtps")
            herald_setopt_string(handle, CURLOPT_URL, settings.url)
            herald_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
            herald_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(settings.connectTimeout.seconds * 1000))
            herald_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(timeout.seconds * 1000))
            if settings.url.lowercased().hasPrefix("smtp://") && settings.startTLS == .required {
                herald_setopt_long(handle, CURLOPT_USE_SSL, Int(CURLUSESSL_ALL.rawValue))
            }
            if !settings.tlsVerify {
                herald_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 0)
                herald_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 0)
            }
            if let username = settings.username, let password = settings.password {
                herald_setopt_string(handle, CURLOPT_USERNAME, username)
                herald_setopt_string(handle, CURLOPT_PASSWORD, password.value)
            }
            herald_setopt_string(handle, CURLOPT_MAIL_FROM, "<\(EmailAddress.address(in: settings.from) ?? "")>")
            herald_setopt_slist(handle, CURLOPT_MAIL_RCPT, recipients)
            herald_setopt_long(handle, CURLOPT_UPLOAD, 1)
            herald_setopt_long(handle, CURLOPT_INFILESIZE, message.count)
            herald_setopt_pointer(handle, CURLOPT_READDATA, uploadPointer.toOpaque())
            herald_setopt_read_function(handle) { buffer, size, count, userdata in
                guard let buffer, let userdata else { return 0 }
                let upload = Unmanaged<Upload>.fromOpaque(userdata).takeUnretainedValue()
                let room = size * count
                let remaining = upload.bytes.count - upload.offset
                let n = min(room, remaining)
                if n > 0 {
                    upload.bytes.withUnsafeBufferPointer { source in
                        UnsafeMutableRawPointer(buffer).copyMemory(from: source.baseAddress! + upload.offset, byteCount: n)
                    }
                    upload.offset += n
                }
                return n
            }
            herald_setopt_long(handle, CURLOPT_NOPROGRESS, 0)
            herald_setopt_pointer(handle, CURLOPT_XFERINFODATA, cancelPointer.toOpaque())
            herald_setopt_xferinfo_function(handle) { userdata, _, _, _, _ in
                guard let userdata else { return 0 }
                return Unmanaged<AtomicFlag>.fromOpaque(userdata).takeUnretainedValue().isSet ? 1 : 0
            }
            herald_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer)
            return curl_easy_perform(handle)
        }()
        if result == CURLE_ABORTED_BY_CALLBACK { return .retry(reason: "cancelled") }
        var replyCode = 0
        herald_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &replyCode)
        let detail = String(cString: errorBuffer).trimmingCharacters(in: .whitespacesAndNewlines)
        return Classifier.classify(report(result, replyCode: replyCode, detail: detail.isEmpty ? String(cString: curl_easy_strerror(result)) : detail))
    }

    /// What libcurl's result says happened: the server's reply, a refusal of our own rules
    /// (credentials, TLS), or no answer. `Classifier` decides what it means.
    static func report(_ result: CURLcode, replyCode: Int, detail: String) -> SinkReport {
        if result == CURLE_OK { return .smtp(code: replyCode == 0 ? 250 : replyCode, reply: detail) }
        if result == CURLE_LOGIN_DENIED {
            return .refused("SMTP authentication failed (\(replyCode == 0 ? "login denied" : "reply \(replyCode)")): check username and password")
        }
        if result == CURLE_USE_SSL_FAILED {
            return .refused("the mail server does not offer STARTTLS; use smtps:// or, on a trusted network, starttls: none")
        }
        if result == CURLE_PEER_FAILED_VERIFICATION {
            return .refused("the mail server's TLS certificate is not trusted (\(detail)); set tls_verify: false only for a server you control")
        }
        if (400..<600).contains(replyCode) { return .smtp(code: replyCode, reply: detail) }
        return .transport("SMTP transfer failed: \(detail)")
    }
}
