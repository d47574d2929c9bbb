import Foundation
import Network
import os

/// Watches the device's network path (Wi-Fi joined or left, a hotspot, cellular) and calls
/// `changed` on the main actor for every path that differs from the one before; the first path,
/// seen at start, is not a change.
final class NetworkMonitor: @unchecked Sendable {
    private let monitor = NWPathMonitor()
    private let queue = DispatchQueue(label: "meshdrop.network")
    private let log = Logger(subsystem: "org.meshdrop", category: "network")
    private var last: NWPath?

    func start(changed: @escaping @MainActor () -> Void) {
        monitor.pathUpdateHandler = { [weak self] path in
            guard let self else { return }
            let previous = last
            last = path
            guard let previous, previous != path else { return }
            log.info("network path changed: \(String(describing: path), privacy: .public)")
            Task { @MainActor in changed() }
        }
        monitor.start(queue: queue)
    }
}
