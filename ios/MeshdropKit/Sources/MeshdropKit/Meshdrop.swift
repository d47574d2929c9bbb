import Foundation
// The generated types (Node, NodeEvent, PeerInfo, ...) are part of MeshdropKit's API.
@_exported import MeshdropFFI

/// A meshdrop node: the generated `Node` (async methods for peers, share, sendFiles, messages,
/// shutdown, ...) and its events as an `AsyncStream`, and each transfer's status as one
/// (`Transfer.statuses`). The same shape as the Kotlin facade.
///
/// It holds no state and decides nothing: views show what `events` and `node.peers()` say, and
/// taps call `node` (through `MeshdropHost` where the platform has a part).
public final class Meshdrop: @unchecked Sendable {
    /// The node; every call of the bindings.
    public let node: Node
    /// Every event since start, in order; it finishes after `.stopped`. Iterate it once
    /// (`MeshdropHost` does) and fan out from there.
    public let events: AsyncStream<NodeEvent>

    private init(node: Node, events: AsyncStream<NodeEvent>) {
        self.node = node
        self.events = events
    }

    /// Starts a node; its events from the start on go to `events`.
    public static func start(config: NodeConfig) async throws -> Meshdrop {
        let (stream, continuation) = AsyncStream.makeStream(of: NodeEvent.self, bufferingPolicy: .unbounded)
        let node = try await startNode(config: config, listener: StreamListener(continuation))
        return Meshdrop(node: node, events: stream)
    }

    /// Stops the node; returns when every task and callback of it has ended.
    public func shutdown() async throws {
        try await node.shutdown()
    }
}

extension TransferProtocol {
    /// This download's status: where it is now, then each change (a few a second at most); it
    /// finishes after `.finished` or `.failed`. Iterate it once per transfer.
    public var statuses: AsyncStream<TransferStatus> {
        AsyncStream(unfolding: { await self.nextStatus() })
    }
}

/// Hands each event, delivered on a bindings thread, to the stream.
final class StreamListener: EventListener {
    private let continuation: AsyncStream<NodeEvent>.Continuation

    init(_ continuation: AsyncStream<NodeEvent>.Continuation) {
        self.continuation = continuation
    }

    func onEvent(event: NodeEvent) {
        continuation.yield(event)
        if case .stopped = event { continuation.finish() }
    }
}
