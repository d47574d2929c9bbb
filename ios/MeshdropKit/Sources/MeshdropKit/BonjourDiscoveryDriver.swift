import Foundation
import Network
import MeshdropFFI

/// Discovery through Bonjour: an `NWListener` advertises what the node says (`advertisement()`),
/// an `NWBrowser` finds `_meshdrop._udp` services, and every resolved or lost one is reported to
/// the node, which decides the rest (its own advert, bad records, dialling).
///
/// The node listens on its own sockets; the listener here only carries the advert and accepts no
/// connections. Its SRV port is not the node's: peers dial the `tcp` / `quic` ports of the TXT record.
public final class BonjourDiscoveryDriver: @unchecked Sendable {
    private let node: Node
    private let queue = DispatchQueue(label: "meshdrop.discovery")
    private var browser: NWBrowser?
    private var advertiser: NWListener?

    public init(node: Node) {
        self.node = node
    }

    /// Advertises and browses until `stop()`.
    public func start() throws {
        let advert = node.advertisement()
        let txt = NWTXTRecord(advert.txt)
        let params = NWParameters.udp
        params.includePeerToPeer = true
        let listener = try NWListener(using: params)
        listener.service = NWListener.Service(name: advert.instanceName, type: advert.serviceType, txtRecord: txt)
        listener.newConnectionHandler = { $0.cancel() }
        listener.start(queue: queue)
        advertiser = listener

        let browser = NWBrowser(for: .bonjourWithTXTRecord(type: advert.serviceType, domain: nil), using: params)
        browser.browseResultsChangedHandler = { [weak self] _, changes in
            for change in changes { self?.handle(change) }
        }
        browser.start(queue: queue)
        self.browser = browser
    }

    /// Stops advertising and browsing.
    public func stop() {
        browser?.cancel()
        advertiser?.cancel()
        browser = nil
        advertiser = nil
    }

    private func handle(_ change: NWBrowser.Result.Change) {
        switch change {
        case .added(let result), .changed(_, let result, _):
            resolve(result)
        case .removed(let result):
            if case .service(let name, _, _, _) = result.endpoint {
                Task { try? await node.peerGone(instanceName: name) }
            }
        default:
            break
        }
    }

    /// Resolves a service to its host IPs with a short-lived connection, then reports TXT + IPs.
    private func resolve(_ result: NWBrowser.Result) {
        guard case .bonjour(let record) = result.metadata else { return }
        let txt = record.dictionary
        let connection = NWConnection(to: result.endpoint, using: .udp)
        connection.stateUpdateHandler = { [node] state in
            switch state {
            case .ready:
                var ips: [String] = []
                if case .hostPort(let host, _) = connection.currentPath?.remoteEndpoint {
                    switch host {
                    case .ipv4(let a): ips.append("\(a)")
                    case .ipv6(let a): ips.append("\(a)".components(separatedBy: "%")[0])
                    default: break
                    }
                }
                connection.cancel()
                Task { try? await node.peerResolved(txt: txt, ips: ips) }
            case .failed, .cancelled:
                connection.cancel()
            default:
                break
            }
        }
        connection.start(queue: queue)
    }
}
