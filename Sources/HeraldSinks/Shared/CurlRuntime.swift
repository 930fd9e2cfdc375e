import CCurl
import Synchronization

/// libcurl's process-wide set-up, done once by whoever owns the process (the `herald` executable
/// at start-up), before any thread starts a transfer.
public enum CurlRuntime {
    private static let result = Mutex<Bool?>(nil)

    /// Initialises libcurl once; true when it is ready.
    @discardableResult
    public static func initialize() -> Bool {
        result.withLock { state in
            if let state { return state }
            let ok = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
            state = ok
            return ok
        }
    }
}
