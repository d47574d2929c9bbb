import Foundation
import Network
import os
import MeshdropFFI

/// Moves one link's bytes between an `NWConnection` and the core's `LinkStream`, as a socket
/// would: what the connection reads goes to `stream.receive` (the next read waits until the core
/// took it: back-pressure), what `stream.nextOutgoing` returns is sent (the next one waits until
/// the stack took it). When the core ends the link (`nextOutgoing` is nil) the connection is
/// write-closed and cancelled; when the connection ends (the device closed it, it failed or was
/// cancelled) the stream is closed, so the core hears the end. It decides nothing: the core's
/// Noise and Yamux run over the bytes, and the core says when the link is over.
///
/// The pump lives as long as its connection: the connection's state handler holds it until the
/// connection is cancelled.
public final class LinkPump: @unchecked Sendable {
    /// The most one read takes: the size of the core's chunks (`nextOutgoing` returns at most this).
    static let maxRead = 64 * 1024

    private let connection: NWConnection
    private let stream: LinkStream
    private let queue: DispatchQueue
    private let log = Logger(subsystem: "org.meshdrop", category: "links")
    /// Whether the loops started (on `queue`).
    private var pumping = false

    private init(connection: NWConnection, stream: LinkStream, queue: DispatchQueue) {
        self.connection = connection
        self.stream = stream
        self.queue = queue
    }

    /// Hands `connection` (not yet started) to the node as a link: makes its `LinkStream`, starts
    /// the connection and the pump on `queue`, and returns the peer once the core's handshake
    /// authenticated it. `direction` is `.outbound` when this device opened the connection (it
    /// dials), `.inbound` when a listener accepted it; `device` is the driver's name for the device
    /// when it found it. When the core refuses the link or its handshake fails, the connection is
    /// cancelled and the error thrown.
    @discardableResult
    public static func addLink(
        _ connection: NWConnection, direction: LinkDirection, medium: String, device: String?,
        node: Node, queue: DispatchQueue
    ) async throws -> String {
        let stream = LinkStream()
        LinkPump(connection: connection, stream: stream, queue: queue).start()
        do {
            return try await node.addLink(stream: stream, direction: direction, medium: medium, device: device)
        } catch {
            connection.cancel()
            throw error
        }
    }

    private func start() {
        connection.stateUpdateHandler = { [self] state in
            switch state {
            case .ready:
                pump()
            case .waiting(let error):
                log.info("link waiting: \(String(describing: error), privacy: .public)")
            case .failed(let error):
                log.info("link failed: \(String(describing: error), privacy: .public)")
                connection.cancel()
            case .cancelled:
                connection.stateUpdateHandler = nil
                Task { await stream.end() }
            default:
                break
            }
        }
        connection.start(queue: queue)
    }

    /// Starts the reader and the writer, once (a connection can be ready again after waiting).
    private func pump() {
        guard !pumping else { return }
        pumping = true
        receive()
        Task { await write() }
    }

    /// One read; the next one only once the core took its bytes.
    private func receive() {
        connection.receive(minimumIncompleteLength: 1, maximumLength: Self.maxRead) { [self] data, _, isComplete, error in
            Task {
                if let data, !data.isEmpty {
                    do {
                        try await stream.receive(bytes: data)
                    } catch {
                        // The core ended the link: the writer sees it too and closes the connection.
                        return
                    }
                }
                if let error {
                    log.info("link read failed: \(String(describing: error), privacy: .public)")
                    connection.cancel()
                } else if isComplete {
                    // The device closed its side: the core hears the end, then ends the link.
                    await stream.end()
                } else {
                    receive()
                }
            }
        }
    }

    /// Sends what the core writes, one chunk at a time; write-closes and cancels the connection
    /// once the core ended the link.
    private func write() async {
        while let bytes = await stream.nextOutgoing() {
            if let error = await send(bytes) {
                log.info("link write failed: \(String(describing: error), privacy: .public)")
                connection.cancel()
                return
            }
        }
        connection.send(content: nil, contentContext: .finalMessage, isComplete: true, completion: .contentProcessed { [connection] _ in
            connection.cancel()
        })
    }

    /// Sends `bytes`; returns once the stack processed them, with the error if it failed.
    private func send(_ bytes: Data) async -> NWError? {
        await withCheckedContinuation { done in
            connection.send(content: bytes, completion: .contentProcessed { error in
                done.resume(returning: error)
            })
        }
    }
}
