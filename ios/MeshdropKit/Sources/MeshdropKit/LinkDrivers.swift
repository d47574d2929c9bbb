import Foundation
import MeshdropFFI

/// The node's one link driver over the device's radios: each medium's calls go to the driver that
/// serves it. AWDL (`PeerToPeerLinkDriver`) always; Wi-Fi Aware (`WiFiAwareLinkDriver`) too where
/// the SDK has the WiFiAware framework, the system is iOS 26 or later, the device does Wi-Fi Aware
/// and the app declares its service. Both run side by side: AWDL reaches any nearby iPhone,
/// Wi-Fi Aware the devices the user paired with this one. The core decides which
/// device gets a link on which medium.
public final class LinkDrivers: LinkDriver {
    private let drivers: [String: LinkDriver]

    /// The media served, for `setLinkDriver(driver:media:)`.
    public var media: [String] { drivers.keys.sorted() }

    /// The drivers this device can run for `node`.
    public init(node: Node) {
        var drivers: [String: LinkDriver] = [PeerToPeerLinkDriver.medium: PeerToPeerLinkDriver(node: node)]
        #if canImport(WiFiAware)
        if #available(iOS 26, *), WiFiAwareLinkDriver.isAvailable {
            drivers[WiFiAwareLinkDriver.medium] = WiFiAwareLinkDriver(node: node)
        }
        #endif
        self.drivers = drivers
    }

    public func startDiscovery(medium: String) {
        drivers[medium]?.startDiscovery(medium: medium)
    }

    public func stopDiscovery(medium: String) {
        drivers[medium]?.stopDiscovery(medium: medium)
    }

    public func openLink(medium: String, device: String) {
        drivers[medium]?.openLink(medium: medium, device: device)
    }
}
