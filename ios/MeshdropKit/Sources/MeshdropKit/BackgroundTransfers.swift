import BackgroundTasks
import Foundation
import UIKit
import os
import MeshdropFFI

/// Background time for transfers. While one moves (a download reporting progress, an offer being
/// sent) the app holds a UIKit background task, so leaving the screen does not stall it at once.
/// When iOS takes that time back, or the app leaves the screen with transfers running or downloads
/// the core lists as unfinished (`unfinishedDownloads()`: running, waiting for someone who has the
/// share, interrupted), a BGProcessingTask is scheduled: iOS launches the app later, starting the
/// node is enough for the core to resume every unfinished download, and the task ends once the
/// core lists none, or none moved for a while (then it is scheduled again).
@MainActor
final class BackgroundTransfers {
    /// The BGProcessingTask; Info.plist's BGTaskSchedulerPermittedIdentifiers lists it.
    static let resumeTask = "org.meshdrop.app.resume-transfers"
    private let log = Logger(subsystem: "org.meshdrop", category: "background")
    /// How long the resume task waits for a download to move before it leaves the rest for later.
    private static let patience = Duration.seconds(30)
    private var active: Set<String> = []
    private var task: UIBackgroundTaskIdentifier = .invalid
    /// The node, once started: it says which downloads are unfinished.
    private var node: Node?

    /// The node started: from now on its unfinished downloads count as work left.
    func started(_ node: Node) {
        self.node = node
    }

    /// Follows the node's transfer events.
    func observe(_ event: NodeEvent) {
        switch event {
        case let .transferProgress(id, _, _, _, _, _):
            begin("transfer \(id)")
        // Waiting for someone who has it holds no background time: the resume task goes on later.
        case let .transferWaiting(id, _, _, _, _), let .transferFinished(id, _, _, _),
             let .transferFailed(id, _, _, _):
            end("transfer \(id)")
        default:
            break
        }
    }

    /// Runs `work` (an offer being sent, which reports no transfer events here) with background time.
    func during<T>(_ work: () async throws -> T) async rethrows -> T {
        let key = UUID().uuidString
        begin(key)
        defer { end(key) }
        return try await work()
    }

    /// The app left the screen: with transfers running or downloads unfinished, ask to be launched
    /// again to finish them.
    func enteredBackground() {
        if !active.isEmpty || !unfinished().isEmpty { schedule() }
    }

    /// Registers the BGProcessingTask's handler, which calls `start` (starting the node); call it
    /// during launch.
    func register(start: @escaping @MainActor () async throws -> Void) {
        let registered = BGTaskScheduler.shared.register(forTaskWithIdentifier: Self.resumeTask, using: .main) { task in
            Task { @MainActor in await self.run(task, start: start) }
        }
        if !registered {
            log.error("\(Self.resumeTask, privacy: .public) is not in BGTaskSchedulerPermittedIdentifiers")
        }
    }

    private func run(_ task: BGTask, start: @escaping @MainActor () async throws -> Void) async {
        let work = Task { @MainActor in
            try await start()
            return try await self.untilDone()
        }
        task.expirationHandler = { work.cancel() }
        do {
            let left = try await work.value
            if left > 0 {
                log.info("\(left) downloads wait for someone who has them: trying again later")
                schedule()
            }
            task.setTaskCompleted(success: true)
        } catch {
            log.error("resuming transfers stopped: \(String(describing: error), privacy: .public)")
            schedule()
            task.setTaskCompleted(success: false)
        }
    }

    /// Returns how many downloads are left unfinished once the core lists none, or once none
    /// moved for `patience` (those wait for someone who has their share); every download that
    /// moves keeps it going.
    private func untilDone() async throws -> Int {
        let step = Duration.seconds(5)
        var still = Duration.zero
        while true {
            let left = unfinished().count
            if left == 0 { return 0 }
            still = active.isEmpty ? still + step : .zero
            if still > Self.patience { return left }
            try await Task.sleep(for: step)
        }
    }

    /// The downloads the core lists as unfinished (none before the node started).
    private func unfinished() -> [UnfinishedDownload] {
        guard let node else { return [] }
        do {
            return try node.unfinishedDownloads()
        } catch {
            log.error("cannot list unfinished downloads: \(String(describing: error), privacy: .public)")
            return []
        }
    }

    /// Asks iOS to launch the app in the background later, with a network, to resume transfers.
    private func schedule() {
        let request = BGProcessingTaskRequest(identifier: Self.resumeTask)
        request.requiresNetworkConnectivity = true
        do {
            try BGTaskScheduler.shared.submit(request)
        } catch {
            log.error("cannot schedule resuming transfers: \(String(describing: error), privacy: .public)")
        }
    }

    private func begin(_ key: String) {
        active.insert(key)
        guard task == .invalid else { return }
        task = UIApplication.shared.beginBackgroundTask(withName: "meshdrop transfers") { [weak self] in
            self?.expired()
        }
    }

    private func end(_ key: String) {
        active.remove(key)
        if active.isEmpty { endTask() }
    }

    /// iOS takes the background time back: give it, and ask to be launched later to resume.
    private func expired() {
        schedule()
        endTask()
    }

    private func endTask() {
        guard task != .invalid else { return }
        UIApplication.shared.endBackgroundTask(task)
        task = .invalid
    }
}
