import Foundation
import UIKit
import MeshdropFFI
import MeshdropKit

/// An incoming offer, as the sheet shows it.
struct Offer: Identifiable {
    let id: UInt64
    let name: String
    let code: String
    let files: [OfferedFile]
}

/// What the views show, read from the node and refreshed when its events say it changed; taps are
/// forwarded to the node. It decides nothing.
@MainActor
final class NodeModel: ObservableObject {
    @Published var peers: [PeerInfo] = []
    @Published var offer: Offer?
    @Published var transfers: [UInt64: NodeEvent] = [:]
    @Published var messages: [Message] = []
    @Published var error: String?
    private var meshdrop: Meshdrop?
    private var discovery: BonjourDiscoveryDriver?

    func start() async {
        do {
            let dir = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
                .appendingPathComponent("meshdrop")
            // Bonjour (NWBrowser/NWListener) does discovery for the node on iOS.
            // A platform fact; the core decides what it means for seeding.
            UIDevice.current.isBatteryMonitoringEnabled = true
            let onBattery = UIDevice.current.batteryState == .unplugged
            // Relay addresses the user entered in the settings: friends beyond the LAN reach the
            // device through them.
            let relays = UserDefaults.standard.stringArray(forKey: "relays") ?? []
            let config = NodeConfig(
                dataDir: dir.path, deviceName: nil, bind: [], mdns: false, onBattery: onBattery,
                relays: relays)
            let md = try await Meshdrop.start(config: config)
            meshdrop = md
            let driver = BonjourDiscoveryDriver(node: md.node)
            try driver.start()
            discovery = driver
            await refreshPeers()
            await refreshMessages()
            for await event in md.events { await handle(event) }
        } catch {
            self.error = "\(error)"
        }
    }

    private func handle(_ event: NodeEvent) async {
        switch event {
        case .peerDiscovered, .peerLost, .peerConnected, .peerIdentified, .peerDisconnected:
            await refreshPeers()
        case let .offerReceived(offerId, _, name, code, _, files):
            offer = Offer(id: offerId, name: name, code: code, files: files)
        case let .transferProgress(id, _, _, _, _, _),
             let .transferFinished(id, _, _),
             let .transferFailed(id, _, _):
            transfers[id] = event
        case .messageReceived, .messageStateChanged:
            await refreshMessages()
        default:
            break
        }
    }

    private func refreshPeers() async {
        if let node = meshdrop?.node, let peers = try? await node.peers() { self.peers = peers }
    }

    private func refreshMessages() async {
        if let node = meshdrop?.node, let messages = try? await node.messages() { self.messages = messages }
    }

    private func call(_ action: @escaping (Node) async throws -> Void) {
        guard let node = meshdrop?.node else { return }
        Task {
            do { try await action(node) } catch { self.error = "\(error)" }
        }
    }

    private var downloads: String {
        FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0].path
    }

    func send(to peerId: String, files: [URL]) { call { _ = try await $0.sendFiles(peerId: peerId, paths: files.map(\.path)) } }
    func accept(_ offer: Offer) { self.offer = nil; let dest = downloads; call { try $0.acceptOffer(offerId: offer.id, dest: dest, files: nil) } }
    func decline(_ offer: Offer) { self.offer = nil; call { try $0.declineOffer(offerId: offer.id) } }
    func download(ticket: String) { let dest = downloads; call { _ = try $0.download(ticket: ticket.trimmingCharacters(in: .whitespacesAndNewlines), dest: dest, files: nil) } }
    func sendMessage(to peerId: String, text: String) { call { _ = try await $0.sendMessage(peerId: peerId, text: text) } }
}
