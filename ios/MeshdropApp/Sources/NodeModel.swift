import Foundation
import PhotosUI
import SwiftUI
import MeshdropInbox
import MeshdropKit

/// An incoming offer, as the sheet shows it.
struct Offer: Identifiable {
    let id: UInt64
    /// The name the sender gives itself (a claim).
    let name: String
    /// The name the user gave the sender, when a contact.
    let contactName: String?
    let code: String
    let files: [OfferedFile]

    init(_ pending: PendingOffer) {
        id = pending.offerId
        name = pending.name
        contactName = pending.contactName
        code = pending.verificationCode
        files = pending.files
    }
}

/// What the views show, read from the node and refreshed when its events say it changed; taps go
/// to the host (MeshdropKit), which does the platform's part, or to the node. It decides nothing.
@MainActor
final class NodeModel: ObservableObject {
    @Published var peers: [PeerInfo] = []
    @Published var offer: Offer?
    @Published var transfers: [UInt64: NodeEvent] = [:]
    /// Downloads the core has not finished (running, waiting for someone who has the share, or
    /// resumed after a restart).
    @Published var unfinished: [UnfinishedDownload] = []
    @Published var messages: [Message] = []
    @Published var shared: [Inbox.Batch] = []
    @Published var tickets: [String] = []
    @Published var notice: String?
    private let host = MeshdropHost.shared
    private var node: Node?
    private var started = false

    /// Starts the node and follows its events, once.
    func start() async {
        guard !started else { return }
        started = true
        do {
            node = try await host.start().node
        } catch {
            notice = "\(error)"
            started = false
            return
        }
        // Phone to phone over peer-to-peer Wi-Fi (AWDL, and Wi-Fi Aware where the device has it):
        // the core asks the drivers for links when worth it.
        if let node {
            let links = LinkDrivers(node: node)
            call { try await node.setLinkDriver(driver: links, media: links.media) }
        }
        showPendingOffer()
        refreshUnfinished()
        await refreshPeers()
        await refreshMessages()
        for await event in host.events { await handle(event) }
    }

    func scenePhaseChanged(_ phase: ScenePhase) {
        host.scenePhaseChanged(phase)
        guard phase == .active else { return }
        shared = host.sharedItems()
        // Offers that came while the app was away (their events may have been missed).
        showPendingOffer()
        refreshUnfinished()
    }

    func send(files: [URL], to peerId: String) { report { try await self.host.send(files: files, to: peerId) } }
    func send(photos: [PhotosPickerItem], to peerId: String) { report { try await self.host.send(photos: photos, to: peerId) } }

    func send(_ batch: Inbox.Batch, to peerId: String) {
        shared.removeAll { $0 == batch }
        report { try await self.host.send(batch, to: peerId) }
    }

    func share(_ batch: Inbox.Batch) {
        shared.removeAll { $0 == batch }
        call {
            let ticket = try await self.host.share(batch)
            self.tickets.append(ticket)
        }
    }

    func accept(_ offer: Offer) {
        self.offer = nil
        call {
            try await self.host.accept(offerId: offer.id, from: offer.name)
            self.showPendingOffer()
        }
    }

    func decline(_ offer: Offer) {
        self.offer = nil
        call {
            try self.node?.declineOffer(offerId: offer.id)
            self.showPendingOffer()
        }
    }

    func download(ticket: String) { call { _ = try await self.host.download(ticket: ticket) } }
    func sendMessage(to peerId: String, text: String) { call { _ = try await self.node?.sendMessage(peerId: peerId, text: text) } }

    private func handle(_ event: NodeEvent) async {
        switch event {
        case .peerDiscovered, .peerLost, .peerConnected, .peerIdentified, .peerDisconnected:
            await refreshPeers()
        // An offer event (again after the listener lagged) or an offer's end: the sheet shows the
        // oldest offer waiting, as the node lists them.
        case .offerReceived, .offerExpired:
            showPendingOffer()
        case let .transferProgress(id, _, _, _, _, _),
             let .transferWaiting(id, _, _, _, _):
            transfers[id] = event
        case let .transferFinished(id, _, _, _),
             let .transferFailed(id, _, _, _):
            transfers[id] = event
            refreshUnfinished()
        case .messageReceived, .messageStateChanged:
            await refreshMessages()
        default:
            break
        }
    }

    /// Shows the oldest offer that waits for an answer, as the node lists them, or none. The
    /// offer shown stays when it is still the oldest: an offer told twice shows once.
    private func showPendingOffer() {
        guard let node else { return }
        guard let oldest = node.pendingOffers().first else {
            offer = nil
            return
        }
        if offer?.id != oldest.offerId { offer = Offer(oldest) }
    }

    private func refreshUnfinished() {
        if let node, let unfinished = try? node.unfinishedDownloads() { self.unfinished = unfinished }
    }

    private func refreshPeers() async {
        if let node, let peers = try? await node.peers() { self.peers = peers }
    }

    private func refreshMessages() async {
        if let node, let messages = try? await node.messages() { self.messages = messages }
    }

    /// Runs an offer and says how it ended when the receiver did not take it all.
    private func report(_ send: @escaping () async throws -> SendOutcome) {
        call {
            switch try await send() {
            case .delivered:
                break
            case let .declined(reason):
                self.notice = "Declined: \(reason)"
            case let .failed(error, _):
                self.notice = "Not delivered: \(error)"
            }
        }
    }

    private func call(_ action: @escaping () async throws -> Void) {
        Task {
            do { try await action() } catch { notice = "\(error)" }
        }
    }
}
