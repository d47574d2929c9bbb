import Foundation

/// Files handed to meshdrop through the share sheet, waiting in the app group's container until the
/// app offers them to a device or shares them by ticket. The Share extension writes one batch per
/// use of the share sheet; a batch appears only once it is complete.
public struct Inbox: Sendable {
    /// The app group of the app and its Share extension (both entitlements files name it).
    public static let appGroup = "group.org.meshdrop.app"

    /// One use of the share sheet: its files, in one folder.
    public struct Batch: Identifiable, Hashable, Sendable {
        public let id: String
        public let folder: URL
        public let files: [URL]
    }

    private let root: URL
    private var incoming: URL { root.appendingPathComponent(".incoming", isDirectory: true) }

    /// The app group's inbox; nil when this process is not in the app group (its entitlements).
    public init?() {
        let files = FileManager.default
        guard let container = files.containerURL(forSecurityApplicationGroupIdentifier: Self.appGroup) else {
            return nil
        }
        root = container.appendingPathComponent("Inbox", isDirectory: true)
    }

    /// A new batch folder, not visible to `batches()` until `commit(_:)`.
    public func newBatch() throws -> URL {
        let folder = incoming.appendingPathComponent(UUID().uuidString, isDirectory: true)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    /// Copies `file` into the batch `folder`, keeping its name unless another file has it.
    public func add(_ file: URL, to folder: URL) throws {
        let name = file.lastPathComponent
        var target = folder.appendingPathComponent(name)
        var n = 1
        while FileManager.default.fileExists(atPath: target.path) {
            n += 1
            target = folder.appendingPathComponent("\(n) \(name)")
        }
        try FileManager.default.copyItem(at: file, to: target)
    }

    /// Makes the batch `folder` visible to the app.
    public func commit(_ folder: URL) throws {
        try FileManager.default.moveItem(at: folder, to: root.appendingPathComponent(folder.lastPathComponent))
    }

    /// The complete batches, oldest first.
    public func batches() -> [Batch] {
        let files = FileManager.default
        let folders = (try? files.contentsOfDirectory(
            at: root, includingPropertiesForKeys: [.creationDateKey], options: .skipsHiddenFiles)) ?? []
        return folders
            .map { folder in
                let contents = (try? files.contentsOfDirectory(
                    at: folder, includingPropertiesForKeys: nil, options: .skipsHiddenFiles)) ?? []
                return Batch(id: folder.lastPathComponent, folder: folder, files: contents)
            }
            .sorted { created($0.folder) < created($1.folder) }
    }

    /// Deletes a batch.
    public func remove(_ batch: Batch) throws {
        try FileManager.default.removeItem(at: batch.folder)
    }

    private func created(_ url: URL) -> Date {
        (try? url.resourceValues(forKeys: [.creationDateKey]).creationDate) ?? .distantPast
    }
}
