import Foundation
import Photos
import UniformTypeIdentifiers
import os

/// Received photos and videos go to the Photos library once they are verified. The core renames a
/// file into place only when all of it verified, so a file that exists is verified. Accepting an
/// offer notes the photos and videos it will write (`expect`); `collect()` saves those that have
/// arrived, at start and after every finished transfer, so downloads the core resumed after a
/// restart are saved too. The list is kept in a file (paths relative to Documents, whose absolute
/// path changes across app updates). Photos asks the user once for add-only access.
@MainActor
final class ReceivedMedia {
    private struct Expected: Codable {
        /// The offer's folder, relative to Documents.
        var folder: String
        /// Photos and videos still to arrive, relative to `folder`.
        var files: [String]
    }

    private let list: URL
    private let documents: URL
    private let log = Logger(subsystem: "org.meshdrop", category: "photos")
    private var expected: [Expected] = []
    private var collecting = false
    private var again = false

    init(list: URL, documents: URL) {
        self.list = list
        self.documents = documents
        if let data = try? Data(contentsOf: list) {
            do {
                expected = try JSONDecoder().decode([Expected].self, from: data)
            } catch {
                log.error("cannot read \(list.path, privacy: .public): \(String(describing: error), privacy: .public)")
            }
        }
    }

    /// Notes the photos and videos among `files` (paths in an offer accepted into the folder
    /// `folder` of Documents).
    func expect(folder: String, files: [String]) {
        let media = files.filter { Self.kind(of: $0) != nil }
        guard !media.isEmpty else { return }
        expected.append(Expected(folder: folder, files: media))
        store()
    }

    /// Saves every expected file that has arrived; a call while it runs makes it run once more.
    func collect() async {
        guard !collecting else {
            again = true
            return
        }
        collecting = true
        defer { collecting = false }
        repeat {
            again = false
            await saveArrived()
        } while again
    }

    private func saveArrived() async {
        var arrived: [(URL, PHAssetResourceType)] = []
        for i in expected.indices {
            let folder = documents.appendingPathComponent(expected[i].folder, isDirectory: true)
            expected[i].files.removeAll { file in
                let url = folder.appendingPathComponent(file)
                guard let kind = Self.kind(of: file), FileManager.default.fileExists(atPath: url.path) else {
                    return false
                }
                arrived.append((url, kind))
                return true
            }
        }
        expected.removeAll { $0.files.isEmpty }
        store()
        guard !arrived.isEmpty else { return }
        guard await PHPhotoLibrary.requestAuthorization(for: .addOnly) == .authorized else {
            log.info("no Photos access: \(arrived.count) received photos and videos stay in Files only")
            return
        }
        for (url, kind) in arrived {
            do {
                try await Self.add(url, as: kind)
            } catch {
                log.error("cannot add \(url.lastPathComponent, privacy: .public) to Photos: \(String(describing: error), privacy: .public)")
            }
        }
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

    private func store() {
        do {
            try JSONEncoder().encode(expected).write(to: list, options: .atomic)
        } catch {
            log.error("cannot write \(list.path, privacy: .public): \(String(describing: error), privacy: .public)")
        }
    }
}
