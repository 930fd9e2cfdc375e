import ServiceLifecycle
import UnixSignals

/// `kill -HUP`: reload the configuration (a bad file is refused and logged; the old one stays).
struct ReloadOnHangup: Service {
    let runtime: HeraldRuntime

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                _ = try? runtime.reload()
            }
        }
    }
}
