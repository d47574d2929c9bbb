#if canImport(WiFiAware) && canImport(DeviceDiscoveryUI)
import DeviceDiscoveryUI
import SwiftUI
import WiFiAware
import MeshdropKit

/// Pairing for links over Wi-Fi Aware, which connects paired devices only: on one phone the
/// system's device picker finds the other (subscribing), on the other the system's pairing view
/// lets it be found (publishing). The pairing is the system's; once paired, the link driver
/// (`WiFiAwareLinkDriver`) finds the device and the core decides when to link.
@available(iOS 26, *)
struct WiFiAwarePairing: View {
    var body: some View {
        if let subscribable = WASubscribableService.allServices[WiFiAwareLinkDriver.serviceName],
           let publishable = WAPublishableService.allServices[WiFiAwareLinkDriver.serviceName] {
            DevicePicker(.wifiAware(.connecting(to: .userSpecifiedDevices, from: subscribable))) { _ in
                // Paired: the driver's subscription finds the device from now on.
            } label: {
                Label("Pair with a nearby device", systemImage: "plus")
            } fallback: {
                Text("Wi-Fi Aware is not available")
            }
            DevicePairingView(.wifiAware(.connecting(to: publishable, from: .userSpecifiedDevices))) {
                Label("Let a nearby device pair with this one", systemImage: "dot.radiowaves.left.and.right")
            } fallback: {
                Text("Wi-Fi Aware is not available")
            }
        }
    }
}
#endif
