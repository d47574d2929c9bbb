import Foundation
import CoreTransferable
import UniformTypeIdentifiers

/// Where things live. The node's data and the app's own files are in Application Support; what the
/// user receives is in Documents, which the Files app shows (Info.plist's UIFileSharingEnabled).
enum Folders {
    static var documents: URL {
        FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]
    }

    /// The node's identity key and store.
    static func data() throws -> URL { try made(support.appendingPathComponent("meshdrop", isDirectory: true)) }

    /// Share-sheet items shared by ticket, which the node serves from here.
    static func shares() throws -> URL { try made(support.appendingPathComponent("shares", isDirectory: true)) }

    /// Copies of photos and videos being offered, deleted when the offer ends.
    static var outbox: URL { support.appendingPathComponent("outbox", isDirectory: true) }

    /// Received photos and videos still to be added to Photos.
    static var mediaToAdd: URL { support.appendingPathComponent("media-to-add.json") }

    /// Makes a new folder in Documents for an offer from `sender` and returns its name,
    /// "<sender> <date> <time>". The name is the sender's claim, so it is made safe first.
    static func received(from sender: String) throws -> String {
        let stamp = DateFormatter()
        stamp.locale = Locale(identifier: "en_US_POSIX")
        stamp.dateFormat = "yyyy-MM-dd HH.mm.ss"
        let safe = sender
            .replacingOccurrences(of: "/", with: "-")
            .replacingOccurrences(of: ":", with: "-")
            .trimmingCharacters(in: CharacterSet(charactersIn: ". ").union(.controlCharacters))
        let base = "\(safe.isEmpty ? "meshdrop" : String(safe.prefix(64))) \(stamp.string(from: Date()))"
        var name = base
        var n = 1
        while FileManager.default.fileExists(atPath: documents.appendingPathComponent(name).path) {
            n += 1
            name = "\(base) \(n)"
        }
        _ = try made(documents.appendingPathComponent(name, isDirectory: true))
        return name
    }

    private static var support: URL {
        FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
    }

    private static func made(_ folder: URL) throws -> URL {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }
}

/// A photo or video from the Photos picker as a file the core can read by path: a copy in the
/// outbox, in a folder of its own so names never collide.
struct PickedFile: Transferable {
    let url: URL

    static var transferRepresentation: some TransferRepresentation {
        FileRepresentation(contentType: .movie) { picked in
            SentTransferredFile(picked.url)
        } importing: { received in
            try keep(received.file)
        }
        FileRepresentation(contentType: .image) { picked in
            SentTransferredFile(picked.url)
        } importing: { received in
            try keep(received.file)
        }
    }

    /// The picker's file is valid only while the import runs: copy it.
    private static func keep(_ file: URL) throws -> PickedFile {
        let folder = Folders.outbox.appendingPathComponent(UUID().uuidString, isDirectory: true)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let copy = folder.appendingPathComponent(file.lastPathComponent)
        try FileManager.default.copyItem(at: file, to: copy)
        return PickedFile(url: copy)
    }
}
