import Foundation
import Network
import os

/// Watches the device's network path (Wi-Fi joined or left, a hotspot, cellular) and calls
/// `changed` on the main actor for every path that differs from the one before (the first path,
/// seen at start, is not a change); `metered` hears whether each path is expensive or
/// constrained (cellular, a personal hotspot, Low Data Mode): a platform fact the core decides on.
final class NetworkMonitor: @unchecked Sendable {
    private let monitor = NWPathMonitor()
    private let queue = DispatchQueue(label: "meshdrop.network")
    private let log = Logger(subsystem: "org.meshdrop", category: "network")
    private var last: NWPath?

    func start(metered: @escaping @MainActor (Bool) -> Void, changed: @escaping @MainActor () -> Void) {
        monitor.pathUpdateHandler = { [weak self] path in
            guard let self else { return }
            let costly = path.isExpensive || path.isConstrained
            Task { @MainActor in metered(costly) }
            let previous = last
            last = path
            guard let previous, previous != path else { return }
            log.info("network path changed: \(String(describing: path), privacy: .public)")
            Task { @MainActor in changed() }
        }
        monitor.start(queue: queue)
    }
}
