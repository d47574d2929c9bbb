import Foundation
import Network
import os
import MeshdropFFI

/// The node's link driver for medium `awdl`: Bonjour over Apple's peer-to-peer Wi-Fi, so two
/// devices with no access point between them find each other and open links (`LinkPump`).
///
/// - An `NWListener` (TCP, `includePeerToPeer`) advertises `_meshdrop-link._tcp` under the node's
///   instance name with this node's peer id in its TXT record (`peer`); each connection it accepts
///   is handed to the node as an inbound link.
/// - An `NWBrowser` with the same parameters reports every such service to the node
///   (`deviceNearby`, with the peer id of its TXT record) and every loss (`deviceLost`). The
///   device is the service's instance name.
/// - `openLink` connects to the service found under that name and hands the connection over as an
///   outbound link.
///
/// The core decides which devices are worth a link and when (its own service included: it is
/// reported like any other and the core never links to itself). Calls from the core return at once;
/// all state lives on `queue`.
///
/// Wi-Fi Aware (iOS 26) is a second medium, `wifi-aware`, driven the same way by
/// `WiFiAwareLinkDriver`; `LinkDrivers` gives the node both.
public final class PeerToPeerLinkDriver: LinkDriver, @unchecked Sendable {
    /// The medium this driver serves (what `setLinkDriver` names).
    public static let medium = "awdl"
    /// The Bonjour service type of links (Info.plist's NSBonjourServices lists it).
    static let serviceType = "_meshdrop-link._tcp"
    /// The TXT key of the advertising node's peer id.
    static let peerKey = "peer"

    private let node: Node
    private let queue = DispatchQueue(label: "meshdrop.links")
    private let log = Logger(subsystem: "org.meshdrop", category: "links")
    private var listener: NWListener?
    private var browser: NWBrowser?
    /// The services found, by instance name (the device).
    private var endpoints: [String: NWEndpoint] = [:]

    public init(node: Node) {
        self.node = node
    }

    // MARK: LinkDriver (called on a core thread: each starts the work on `queue` and returns)

    public func startDiscovery(medium: String) {
        queue.async {
            guard self.serves(medium) else { return }
            self.listen()
            self.browse()
        }
    }

    public func stopDiscovery(medium: String) {
        queue.async {
            guard self.serves(medium) else { return }
            self.browser?.cancel()
            self.browser = nil
            self.listener?.cancel()
            self.listener = nil
            self.endpoints = [:]
        }
    }

    public func openLink(medium: String, device: String) {
        queue.async {
            guard self.serves(medium) else { return }
            guard let endpoint = self.endpoints[device] else {
                self.log.info("no service \(device, privacy: .public) to link to (lost meanwhile)")
                return
            }
            self.hand(NWConnection(to: endpoint, using: self.parameters), .outbound, device: device)
        }
    }

    // MARK: The platform's part

    private func serves(_ medium: String) -> Bool {
        if medium != Self.medium {
            log.error("asked for medium \(medium, privacy: .public); this driver serves \(Self.medium, privacy: .public)")
        }
        return medium == Self.medium
    }

    /// TCP that may run over peer-to-peer Wi-Fi (AWDL) as well as the networks the device is on.
    private var parameters: NWParameters {
        let params = NWParameters.tcp
        params.includePeerToPeer = true
        return params
    }

    private func listen() {
        guard listener == nil else { return }
        do {
            let listener = try NWListener(using: parameters)
            let txt = NWTXTRecord([Self.peerKey: node.peerId()])
            listener.service = NWListener.Service(
                name: node.advertisement().instanceName, type: Self.serviceType, domain: nil, txtRecord: txt)
            listener.newConnectionHandler = { [weak self] connection in
                self?.hand(connection, .inbound, device: nil)
            }
            listener.stateUpdateHandler = { [weak self, weak listener] state in
                guard let self, case .failed(let error) = state else { return }
                // Failed for good (AWDL idle timeout, policy): the core calls startDiscovery again
                // after a wait, which makes a new one.
                self.log.error("link listener failed: \(String(describing: error), privacy: .public)")
                if let listener, self.listener === listener {
                    listener.cancel()
                    self.listener = nil
                    self.discoveryFailed()
                }
            }
            listener.start(queue: queue)
            self.listener = listener
        } catch {
            log.error("cannot listen for links: \(String(describing: error), privacy: .public)")
        }
    }

    /// Tells the core; it decides when to start discovery again.
    private func discoveryFailed() {
        let node = self.node
        Task { try? await node.linkDiscoveryFailed(medium: Self.medium) }
    }

    private func browse() {
        guard browser == nil else { return }
        let browser = NWBrowser(for: .bonjourWithTXTRecord(type: Self.serviceType, domain: nil), using: parameters)
        browser.stateUpdateHandler = { [weak self, weak browser] state in
            guard let self else { return }
            switch state {
            case .waiting(let error):
                self.log.error("browsing for links: \(String(describing: error), privacy: .public)")
            case .failed(let error):
                // Failed for good, like the listener: the next startDiscovery browses afresh.
                self.log.error("browsing for links failed: \(String(describing: error), privacy: .public)")
                if let browser, self.browser === browser {
                    browser.cancel()
                    self.browser = nil
                    self.discoveryFailed()
                }
            default:
                break
            }
        }
        browser.browseResultsChangedHandler = { [weak self] _, changes in
            for change in changes { self?.handle(change) }
        }
        browser.start(queue: queue)
        self.browser = browser
    }

    private func handle(_ change: NWBrowser.Result.Change) {
        switch change {
        case .added(let result), .changed(_, let result, _):
            guard case .service(let name, _, _, _) = result.endpoint else { return }
            endpoints[name] = result.endpoint
            var peerId: String?
            if case .bonjour(let record) = result.metadata {
                peerId = record.dictionary[Self.peerKey]
            }
            Task { [node, log] in
                do {
                    try await node.deviceNearby(medium: Self.medium, device: name, peerId: peerId)
                } catch {
                    log.error("core rejected link service \(name, privacy: .public): \(String(describing: error), privacy: .public)")
                }
            }
        case .removed(let result):
            guard case .service(let name, _, _, _) = result.endpoint else { return }
            endpoints.removeValue(forKey: name)
            Task { [node, log] in
                do {
                    try await node.deviceLost(medium: Self.medium, device: name)
                } catch {
                    log.error("core rejected the loss of \(name, privacy: .public): \(String(describing: error), privacy: .public)")
                }
            }
        default:
            break
        }
    }

    /// Hands a connection to the node as a link (its pump runs on `queue`).
    private func hand(_ connection: NWConnection, _ direction: LinkDirection, device: String?) {
        Task { [node, queue, log] in
            do {
                let peer = try await LinkPump.addLink(
                    connection, direction: direction, medium: Self.medium, device: device, node: node, queue: queue)
                log.info("link up with \(peer, privacy: .public) (\(String(describing: direction), privacy: .public))")
            } catch {
                log.error("link \(device ?? "accepted", privacy: .public) not taken: \(String(describing: error), privacy: .public)")
            }
        }
    }
}
