import AsyncHTTPClient
import Foundation
import HeraldTesting
import NIOCore
import NIOHTTP1
import Testing

/// The real `herald serve` with the given sources routed to one recording `http` sink (`hook`),
/// for the tests of each source type.
struct SourceTestServer {
    let herald: HeraldProcess
    let port: Int
    let sink: FakeReceiver
    let folder: URL

    /// - Parameters:
    ///   - server: the `server` mapping's contents (listen on a free port by default);
    ///   - sources: the `sources` entries, indented by two spaces;
    ///   - match: the source names routed to `hook`.
    static func start(server: String = #"listen: "127.0.0.1:0""#, sources: String, match: [String]) async throws -> SourceTestServer {
        let sink = try await FakeReceiver.start()
        let folder = try HeraldProcess.tempFolder()
        try """
            server: { \(server) }
            storage: sqlite:state/herald.db
            sources:
            \(sources)
            sinks:
              hook: { type: http, url: "\(sink.url("/hook"))" }
            routes:
              - match: { source: [\(match.joined(separator: ", "))] }
                deliver: [hook]
            """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)
        let herald = try HeraldProcess(["serve"], directory: folder)
        let port = try #require(await herald.listeningPort(), "\(herald.text)")
        return SourceTestServer(herald: herald, port: port, sink: sink, folder: folder)
    }

    /// SIGTERM: Herald must exit cleanly; then the sink stops and the folder goes.
    func stop() async {
        herald.signal(SIGTERM)
        #expect(await herald.wait() == 0)
        await sink.stop()
        try? FileManager.default.removeItem(at: folder)
    }
}

/// Sends a request and reads its answer whole.
func send(_ request: HTTPClientRequest) async throws -> (status: Int, body: String) {
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(15))
    return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
}
