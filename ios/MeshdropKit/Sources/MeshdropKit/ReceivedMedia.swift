import Foundation
import Photos
import UniformTypeIdentifiers
import os

/// Received photos and videos go to the Photos library once they are verified. The core renames a
/// file into place only when all of it verified and reports where each file of a finished download
/// is (`.transferFinished`), for a ticket download and an accepted offer alike. The photos and
/// videos among them are noted in a file first (paths relative to Documents, whose absolute path
/// changes across app updates), then added, so a save cut short when the app ended is done at the
/// next start (`collect()`). Photos asks the user once for add-only access; the files stay in
/// Documents either way (the node serves them to others, the Files app shows them).
@MainActor
final class ReceivedMedia {
    private let list: URL
    private let documents: URL
    private let log = Logger(subsystem: "org.meshdrop", category: "photos")
    /// Verified photos and videos still to add, relative to Documents.
    private var pending: [String] = []
    private var collecting = false
    private var again = false

    init(list: URL, documents: URL) {
        self.list = list
        self.documents = documents
        if let data = try? Data(contentsOf: list) {
            do {
                pending = try JSONDecoder().decode([String].self, from: data)
            } catch {
                log.error("cannot read \(list.path, privacy: .public): \(String(describing: error), privacy: .public)")
            }
        }
    }

    /// A download finished: notes the photos and videos among its `paths` (as the core reports
    /// them) and adds them to the library.
    func finished(paths: [String]) async {
        let media = paths.compactMap(inDocuments).filter { Self.kind(of: $0) != nil && !pending.contains($0) }
        guard !media.isEmpty else { return }
        pending.append(contentsOf: media)
        store()
        await collect()
    }

    /// Adds every noted photo and video; a call while it runs makes it run once more.
    func collect() async {
        guard !collecting else {
            again = true
            return
        }
        collecting = true
        defer { collecting = false }
        repeat {
            again = false
            await addPending()
        } while again
    }

    private func addPending() async {
        let batch = pending
        guard !batch.isEmpty else { return }
        guard await PHPhotoLibrary.requestAuthorization(for: .addOnly) == .authorized else {
            log.info("no Photos access: \(batch.count) received photos and videos stay in Files only")
            forget(batch)
            return
        }
        for file in batch {
            let url = documents.appendingPathComponent(file)
            if let kind = Self.kind(of: file), FileManager.default.fileExists(atPath: url.path) {
                do {
                    try await Self.add(url, as: kind)
                } catch {
                    log.error("cannot add \(url.lastPathComponent, privacy: .public) to Photos: \(String(describing: error), privacy: .public)")
                }
            }
            forget([file])
        }
    }

    /// `path` relative to Documents, or nil when it is elsewhere. The core may report the
    /// container's path with its symbolic links resolved (/private/var/...).
    private func inDocuments(_ path: String) -> String? {
        let root = documents.resolvingSymlinksInPath().path + "/"
        let file = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        guard file.hasPrefix(root) else {
            log.info("\(path, privacy: .public) is not in Documents: not added to Photos")
            return nil
        }
        return String(file.dropFirst(root.count))
    }

    /// Adds a copy of the file to the library (the file stays: the node serves it to others).
    private nonisolated static func add(_ url: URL, as kind: PHAssetResourceType) async throws {
        try await PHPhotoLibrary.shared().performChanges {
            PHAssetCreationRequest.forAsset().addResource(with: kind, fileURL: url, options: nil)
        }
    }

    private static func kind(of file: String) -> PHAssetResourceType? {
        guard let type = UTType(filenameExtension: (file as NSString).pathExtension) else { return nil }
        if type.conforms(to: .image) { return .photo }
        if type.conforms(to: .movie) { return .video }
        return nil
    }

    private func forget(_ files: [String]) {
        pending.removeAll { files.contains($0) }
        store()
    }

    private func store() {
        do {
            try JSONEncoder().encode(pending).write(to: list, options: .atomic)
        } catch {
            log.error("cannot write \(list.path, privacy: .public): \(String(describing: error), privacy: .public)")
        }
    }
}
