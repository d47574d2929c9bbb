import Foundation
import PhotosUI
import SwiftUI
import UIKit
import os
import MeshdropFFI
import MeshdropInbox

/// The app's one node and what the platform does around it: Bonjour discovery, network changes,
/// background time for transfers, received photos and videos into the Photos library, items from
/// the Share extension, where files go. The app shows what `events` and the node say and forwards
/// taps here; decisions are the core's or, for the platform's part, this type's.
@MainActor
public final class MeshdropHost {
    /// The one host of the process.
    public static let shared = MeshdropHost()

    /// Every event of the node, in order, for the app's one view model (iterate it once).
    public let events: AsyncStream<NodeEvent>
    private let sink: AsyncStream<NodeEvent>.Continuation
    private let log = Logger(subsystem: "org.meshdrop", category: "host")
    private let background = BackgroundTransfers()
    private let network = NetworkMonitor()
    private let media = ReceivedMedia(list: Folders.mediaToAdd, documents: Folders.documents)
    private var starting: Task<Meshdrop, Error>?
    private var meshdrop: Meshdrop?
    private var discovery: BonjourDiscoveryDriver?

    private init() {
        let (stream, continuation) = AsyncStream.makeStream(of: NodeEvent.self)
        events = stream
        sink = continuation
    }

    /// Registers the background task that resumes transfers; call it at launch (the App's init).
    public func registerBackgroundTasks() {
        background.register { [weak self] in
            _ = try await self?.start()
        }
    }

    /// Starts the node once per process; later calls return the same one (or try again after a
    /// failure). Starting is all it takes for the core to resume unfinished downloads.
    public func start() async throws -> Meshdrop {
        if let starting { return try await starting.value }
        let task = Task { try await launch() }
        starting = task
        do {
            return try await task.value
        } catch {
            starting = nil
            throw error
        }
    }

    /// Forward the scene's phase: back on screen, reconnect; leaving it, keep transfers going.
    public func scenePhaseChanged(_ phase: ScenePhase) {
        switch phase {
        case .active:
            reconnect()
        case .background:
            background.enteredBackground()
        default:
            break
        }
    }

    /// Downloads a ticket's share into Documents; its photos and videos go to the Photos library
    /// once verified.
    public func download(ticket: String) async throws -> Transfer {
        let node = try await start().node
        let trimmed = ticket.trimmingCharacters(in: .whitespacesAndNewlines)
        return try node.download(ticket: trimmed, dest: Folders.documents.path, files: nil)
    }

    /// Accepts an offer, all of it, into a new folder of Documents named after the sender; its
    /// photos and videos go to the Photos library once verified.
    public func accept(offerId: UInt64, from name: String) async throws {
        let node = try await start().node
        let folder = try Folders.received(from: name)
        let dest = Folders.documents.appendingPathComponent(folder, isDirectory: true)
        do {
            try node.acceptOffer(offerId: offerId, dest: dest.path, files: nil)
        } catch {
            try? FileManager.default.removeItem(at: dest)
            throw error
        }
    }

    /// Offers files picked in the Files app to a device. They are read where they are, under
    /// security-scoped access for as long as the offer runs.
    public func send(files: [URL], to peerId: String) async throws -> SendOutcome {
        let granted = files.filter { $0.startAccessingSecurityScopedResource() }
        defer { granted.forEach { $0.stopAccessingSecurityScopedResource() } }
        return try await offer(files, to: peerId)
    }

    /// Offers photos and videos picked in the Photos picker: copied out of the library (the core
    /// reads files by path), the copies deleted when the offer ends.
    public func send(photos: [PhotosPickerItem], to peerId: String) async throws -> SendOutcome {
        var picked: [URL] = []
        defer { picked.forEach { try? FileManager.default.removeItem(at: $0.deletingLastPathComponent()) } }
        for item in photos {
            if let file = try await item.loadTransferable(type: PickedFile.self) {
                picked.append(file.url)
            }
        }
        return try await offer(picked, to: peerId)
    }

    /// What the Share extension received, oldest first.
    public func sharedItems() -> [Inbox.Batch] {
        Inbox()?.batches() ?? []
    }

    /// Offers share-sheet items to a device, then deletes them (they are copies).
    public func send(_ batch: Inbox.Batch, to peerId: String) async throws -> SendOutcome {
        defer { try? Inbox()?.remove(batch) }
        return try await offer(batch.files, to: peerId)
    }

    /// Shares share-sheet items by ticket: they move to the app's own storage, where the node
    /// serves them from. Returns the ticket.
    public func share(_ batch: Inbox.Batch) async throws -> String {
        let node = try await start().node
        let folder = try Folders.shares().appendingPathComponent(batch.id, isDirectory: true)
        try FileManager.default.moveItem(at: batch.folder, to: folder)
        return try await node.share(paths: batch.files.map { folder.appendingPathComponent($0.lastPathComponent).path })
    }

    /// Offers files to a device, with background time until the offer ends.
    private func offer(_ files: [URL], to peerId: String) async throws -> SendOutcome {
        let node = try await start().node
        return try await background.during {
            try await node.sendFiles(peerId: peerId, paths: files.map(\.path))
        }
    }

    private func launch() async throws -> Meshdrop {
        UIDevice.current.isBatteryMonitoringEnabled = true
        let dataDir = try Folders.data().path
        let config = NodeConfig(
            dataDir: dataDir,
            deviceName: nil,
            bind: [],
            // iOS owns multicast: Bonjour browses and advertises for the node.
            mdns: false,
            // A platform fact; the core decides what it means for seeding.
            onBattery: UIDevice.current.batteryState == .unplugged,
            // Relays the user entered: friends beyond the LAN reach the device through them.
            relays: UserDefaults.standard.stringArray(forKey: "relays") ?? [])
        let meshdrop = try await Meshdrop.start(config: config)
        let discovery = BonjourDiscoveryDriver(node: meshdrop.node)
        discovery.start()
        self.meshdrop = meshdrop
        self.discovery = discovery
        background.started(meshdrop.node)
        network.start(
            metered: { [weak self] costly in self?.meshdrop?.node.setMetered(metered: costly) },
            changed: { [weak self] in self?.reconnect() }
        )
        NotificationCenter.default.addObserver(
            forName: UIDevice.batteryStateDidChangeNotification, object: nil, queue: .main
        ) { [weak self] _ in
            MainActor.assumeIsolated { self?.batteryChanged() }
        }
        Task { await forward(meshdrop.events) }
        Task { await media.collect() }
        return meshdrop
    }

    /// Passes every event on to the app, after the platform's part has seen it.
    private func forward(_ stream: AsyncStream<NodeEvent>) async {
        for await event in stream {
            background.observe(event)
            if case let .transferFinished(_, _, _, paths) = event {
                Task { await media.finished(paths: paths) }
            }
            sink.yield(event)
        }
        sink.finish()
    }

    /// Tells the core whether the device runs on battery now; it decides what that means.
    private func batteryChanged() {
        do {
            try meshdrop?.node.setOnBattery(onBattery: UIDevice.current.batteryState == .unplugged)
        } catch {
            log.error("battery state: \(String(describing: error), privacy: .public)")
        }
    }

    /// After a suspension or a network change connections may be dead and addresses new: browse
    /// afresh (fresh Bonjour results reach the core) and tell the core, which dials every known
    /// peer that is not connected.
    private func reconnect() {
        guard let meshdrop else { return }
        discovery?.rebrowse()
        Task { [log] in
            do {
                try await meshdrop.node.networkChanged()
            } catch {
                log.error("cannot tell the node the network changed: \(String(describing: error), privacy: .public)")
            }
        }
    }
}
