import NIOCore
import NIOHTTPTypes
import Synchronization

/// Bounds how long a connection may hold Herald without sending anything useful, so a client
/// trickling one byte a second cannot hold connections forever (`server.limits`):
/// - `header_timeout`: from the moment it opens until a request's headers are complete;
/// - `body_timeout`: from the headers until the body is complete;
/// - `idle_timeout`: after an answer, until the next request's headers are complete (keep-alive).
/// No timer runs while a request is being answered, however long the answer takes. And at most
/// `max_connections` are open at once: one more is closed as it opens.
final class ConnectionLimitsHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Open connections, shared by every connection's handler.
    final class Connections: Sendable {
        let open = Atomic<Int>(0)
        let limit: Int

        init(limit: Int) {
            self.limit = limit
        }
    }

    struct Timeouts {
        var header: TimeAmount
        var body: TimeAmount
        var idle: TimeAmount
    }

    private let timeouts: Timeouts
    private let connections: Connections
    private var counted = false
    private var timer: Scheduled<Void>?
    /// Requests whose head arrived and whose answer has not been written to the end.
    private var unanswered = 0

    init(timeouts: Timeouts, connections: Connections) {
        self.timeouts = timeouts
        self.connections = connections
    }

    func handlerAdded(context: ChannelHandlerContext) {
        counted = true
        let open = connections.open.wrappingAdd(1, ordering: .relaxed).newValue
        if open > connections.limit {
            context.close(promise: nil)
            return
        }
        if context.channel.isActive { arm(context, timeouts.header) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context, timeouts.header)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            unanswered += 1
            arm(context, timeouts.body)
        case .body:
            break
        case .end:
            cancel()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            unanswered = max(0, unanswered - 1)
            if unanswered == 0 { arm(context, timeouts.idle) }
        }
        context.write(data, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancel()
        if counted {
            counted = false
            connections.open.subtract(1, ordering: .relaxed)
        }
    }

    private func cancel() {
        timer?.cancel()
        timer = nil
    }

    private func arm(_ context: ChannelHandlerContext, _ timeout: TimeAmount) {
        timer?.cancel()
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) {
            channel.close(promise: nil)
        }
    }
}
