#if canImport(WiFiAware)
import Foundation
import Network
import WiFiAware
import os
import MeshdropFFI

/// The node's link driver for medium `wifi-aware`: Wi-Fi Aware (iOS 26, the WiFiAware framework)
/// with the devices the user paired with this one (DeviceDiscoveryUI or AccessorySetupKit pair
/// them; Wi-Fi Aware connects paired devices only), so two phones with no access point between
/// them open links (`LinkPump`) over Wi-Fi Aware's own data path.
///
/// - It publishes the service `_meshdrop-link._tcp` (Info.plist's `WiFiAwareServices`, with the
///   `com.apple.developer.wifi-aware` entitlement's `Publish`) to every paired device: an
///   `NWListener` on the `NWListener.Service` and parameters a `WAPublisherListener` configures.
///   Each connection it accepts is handed to the node as an inbound link.
/// - It subscribes to the same service on every paired device (`Subscribe`): an `NWBrowser` on the
///   descriptor a `WASubscriberBrowser` makes. Each paired device found is reported to the node
///   (`deviceNearby`; the device is the paired device's id, stable for this install) and each loss
///   (`deviceLost`). Wi-Fi Aware carries no TXT record here, so the peer id is learnt from the
///   link's handshake.
/// - `openLink` connects to the device's browse result with the parameters the subscriber
///   configures and hands the connection over as an outbound link.
/// - When the paired devices change (`WAPairedDevice.allDevices`: one paired or removed) it
///   publishes and subscribes afresh, so a device paired while discovery runs is found.
///
/// It uses the WiFiAware framework's adapters for the Network framework's NW* types
/// (`WAPublisherListener.configureParameters(_:)` and `.service`, `WASubscriberBrowser
/// .makeDescriptor()`, `.configureParameters(_:)` and `.makeEndpoint(from:)`) so that its links are
/// `NWConnection`s like the AWDL driver's, pumped by the same `LinkPump`; Apple's samples use the
/// newer `NetworkListener` / `NetworkBrowser` instead. Written against Apple's documentation of the
/// iOS 26 SDK and not compiled here (no Swift on the machines that wrote it): build it with Xcode 26
/// and try it between two paired devices before relying on it.
///
/// The core decides which devices are worth a link and when. Calls from the core return at once;
/// all state lives on `queue`.
@available(iOS 26, *)
public final class WiFiAwareLinkDriver: LinkDriver, @unchecked Sendable {
    /// The medium this driver serves (what `setLinkDriver` names).
    public static let medium = "wifi-aware"
    /// The Wi-Fi Aware service of links (Info.plist's WiFiAwareServices declares it publishable
    /// and subscribable); pairing (DeviceDiscoveryUI) names it too.
    public static let serviceName = "_meshdrop-link._tcp"

    /// Whether this device does Wi-Fi Aware and the app declares the service.
    public static var isAvailable: Bool {
        WACapabilities.supportedFeatures.contains(.wifiAware)
            && WAPublishableService.allServices[serviceName] != nil
            && WASubscribableService.allServices[serviceName] != nil
    }

    private let node: Node
    private let queue = DispatchQueue(label: "meshdrop.links.wifi-aware")
    private let log = Logger(subsystem: "org.meshdrop", category: "links")
    private var listener: NWListener?
    private var browser: NWBrowser?
    /// The subscription the browser runs: it turns browse results into paired devices and makes
    /// the parameters of connections to them.
    private var subscriber: WASubscriberBrowser?
    /// The devices found, by paired device id: where to connect.
    private var endpoints: [String: NWEndpoint] = [:]
    /// Follows the paired devices while discovery runs.
    private var pairings: Task<Void, Never>?

    public init(node: Node) {
        self.node = node
    }

    // MARK: LinkDriver (called on a core thread: each starts the work on `queue` and returns)

    public func startDiscovery(medium: String) {
        queue.async {
            guard self.serves(medium) else { return }
            self.publish()
            self.subscribe()
            self.followPairings()
        }
    }

    public func stopDiscovery(medium: String) {
        queue.async {
            guard self.serves(medium) else { return }
            self.browser?.cancel()
            self.browser = nil
            self.subscriber = nil
            self.listener?.cancel()
            self.listener = nil
            self.endpoints = [:]
            self.pairings?.cancel()
            self.pairings = nil
        }
    }

    public func openLink(medium: String, device: String) {
        queue.async {
            guard self.serves(medium) else { return }
            guard let endpoint = self.endpoints[device], let subscriber = self.subscriber else {
                self.log.info("no Wi-Fi Aware device \(device, privacy: .public) to link to (lost meanwhile)")
                return
            }
            let parameters = subscriber.configureParameters(NWParameters.tcp)
            self.hand(NWConnection(to: endpoint, using: parameters), .outbound, device: device)
        }
    }

    // MARK: The platform's part

    private func serves(_ medium: String) -> Bool {
        if medium != Self.medium {
            log.error("asked for medium \(medium, privacy: .public); this driver serves \(Self.medium, privacy: .public)")
        }
        return medium == Self.medium
    }

    /// Publishes the service to every paired device and accepts their connections.
    private func publish() {
        guard listener == nil else { return }
        guard let service = WAPublishableService.allServices[Self.serviceName] else {
            log.error("\(Self.serviceName, privacy: .public) is not publishable: Info.plist's WiFiAwareServices lacks it")
            return
        }
        let publisher = WAPublisherListener.wifiAware(.connecting(to: service, from: .allPairedDevices))
        let parameters = NWParameters.tcp
        publisher.configureParameters(parameters)
        do {
            let listener = try NWListener(service: publisher.service, using: parameters)
            listener.newConnectionHandler = { [weak self] connection in
                self?.hand(connection, .inbound, device: nil)
            }
            listener.stateUpdateHandler = { [weak self, weak listener] state in
                guard let self, case .failed(let error) = state else { return }
                // Failed for good (Wi-Fi off, no paired device, policy): the core calls
                // startDiscovery again after a wait, which publishes afresh.
                self.log.error("Wi-Fi Aware publisher failed: \(String(describing: error), privacy: .public)")
                if let listener, self.listener === listener {
                    listener.cancel()
                    self.listener = nil
                    self.discoveryFailed()
                }
            }
            listener.start(queue: queue)
            self.listener = listener
        } catch {
            log.error("cannot publish over Wi-Fi Aware: \(String(describing: error), privacy: .public)")
        }
    }

    /// Subscribes to the service on every paired device and reports those found.
    private func subscribe() {
        guard browser == nil else { return }
        guard let service = WASubscribableService.allServices[Self.serviceName] else {
            log.error("\(Self.serviceName, privacy: .public) is not subscribable: Info.plist's WiFiAwareServices lacks it")
            return
        }
        let subscriber = WASubscriberBrowser.wifiAware(.connecting(to: .allPairedDevices, from: service))
        let browser = NWBrowser(for: subscriber.makeDescriptor(), using: subscriber.configureParameters(NWParameters.tcp))
        browser.stateUpdateHandler = { [weak self, weak browser] state in
            guard let self else { return }
            switch state {
            case .waiting(let error):
                self.log.error("subscribing over Wi-Fi Aware: \(String(describing: error), privacy: .public)")
            case .failed(let error):
                // Failed for good, like the publisher: the next startDiscovery subscribes afresh.
                self.log.error("Wi-Fi Aware subscriber failed: \(String(describing: error), privacy: .public)")
                if let browser, self.browser === browser {
                    browser.cancel()
                    self.browser = nil
                    self.subscriber = nil
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
        self.subscriber = subscriber
    }

    /// Publishes and subscribes afresh whenever the set of paired devices changes.
    private func followPairings() {
        guard pairings == nil else { return }
        pairings = Task { [weak self] in
            var known: Set<WAPairedDevice.ID>?
            do {
                for try await devices in WAPairedDevice.allDevices {
                    let now = Set(devices.values.map(\.id))
                    defer { known = now }
                    guard let before = known, before != now else { continue }
                    self?.queue.async { self?.rediscover() }
                }
            } catch where !Task.isCancelled {
                self?.log.error("cannot follow the paired devices: \(String(describing: error), privacy: .public)")
            } catch {
                // Discovery stopped.
            }
        }
    }

    /// A device was paired or removed: the publisher and the subscriber start again for the
    /// devices paired now (links already up stay).
    private func rediscover() {
        guard listener != nil || browser != nil else { return }
        browser?.cancel()
        browser = nil
        subscriber = nil
        listener?.cancel()
        listener = nil
        publish()
        subscribe()
    }

    /// Tells the core; it decides when to start discovery again.
    private func discoveryFailed() {
        let node = self.node
        Task { try? await node.linkDiscoveryFailed(medium: Self.medium) }
    }

    private func handle(_ change: NWBrowser.Result.Change) {
        switch change {
        case .added(let result), .changed(_, let result, _):
            guard let device = device(of: result) else { return }
            endpoints[device] = result.endpoint
            Task { [node, log] in
                do {
                    try await node.deviceNearby(medium: Self.medium, device: device, peerId: nil)
                } catch {
                    log.error("core rejected Wi-Fi Aware device \(device, privacy: .public): \(String(describing: error), privacy: .public)")
                }
            }
        case .removed(let result):
            guard let device = device(of: result) else { return }
            endpoints.removeValue(forKey: device)
            Task { [node, log] in
                do {
                    try await node.deviceLost(medium: Self.medium, device: device)
                } catch {
                    log.error("core rejected the loss of \(device, privacy: .public): \(String(describing: error), privacy: .public)")
                }
            }
        default:
            break
        }
    }

    /// The paired device a browse result is, by its id.
    private func device(of result: NWBrowser.Result) -> String? {
        guard let subscriber else { return nil }
        do {
            guard let endpoint = try subscriber.makeEndpoint(from: result) else {
                log.info("a Wi-Fi Aware result that is no paired device: \(String(describing: result.endpoint), privacy: .public)")
                return nil
            }
            return String(endpoint.device.id)
        } catch {
            log.error("a Wi-Fi Aware result not understood: \(String(describing: error), privacy: .public)")
            return nil
        }
    }

    /// Hands a connection to the node as a link (its pump runs on `queue`).
    private func hand(_ connection: NWConnection, _ direction: LinkDirection, device: String?) {
        Task { [node, queue, log] in
            do {
                let peer = try await LinkPump.addLink(
                    connection, direction: direction, medium: Self.medium, device: device, node: node, queue: queue)
                log.info("Wi-Fi Aware link up with \(peer, privacy: .public) (\(String(describing: direction), privacy: .public))")
            } catch {
                log.error("Wi-Fi Aware link \(device ?? "accepted", privacy: .public) not taken: \(String(describing: error), privacy: .public)")
            }
        }
    }
}
#endif
