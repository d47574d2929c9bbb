import UIKit
import UniformTypeIdentifiers
import MeshdropInbox

/// The Share extension: copies what the user shares (photos, videos, files) into the app group's
/// inbox as one batch, then closes. meshdrop offers the batch to a device or shares it by ticket
/// when it is next opened; an extension cannot run the node.
final class ShareViewController: UIViewController {
    override func viewDidLoad() {
        super.viewDidLoad()
        let label = UILabel()
        label.text = "Adding to meshdrop…"
        label.translatesAutoresizingMaskIntoConstraints = false
        view.backgroundColor = .systemBackground
        view.addSubview(label)
        NSLayoutConstraint.activate([
            label.centerXAnchor.constraint(equalTo: view.centerXAnchor),
            label.centerYAnchor.constraint(equalTo: view.centerYAnchor),
        ])
        Task { await receive() }
    }

    private func receive() async {
        let items = extensionContext?.inputItems.compactMap { $0 as? NSExtensionItem } ?? []
        do {
            guard let inbox = Inbox() else { throw CocoaError(.featureUnsupported) }
            let batch = try inbox.newBatch()
            for provider in items.flatMap({ $0.attachments ?? [] }) {
                try await copy(provider, into: batch, of: inbox)
            }
            try inbox.commit(batch)
            extensionContext?.completeRequest(returningItems: nil)
        } catch {
            extensionContext?.cancelRequest(withError: error)
        }
    }

    /// Copies one shared item's file into the batch (the system's file lasts only for the callback).
    private func copy(_ provider: NSItemProvider, into batch: URL, of inbox: Inbox) async throws {
        let types = provider.registeredContentTypes
        guard let type = types.first(where: { $0.conforms(to: .data) }) ?? types.first else { return }
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, Error>) in
            _ = provider.loadFileRepresentation(for: type, openInPlace: false) { url, _, error in
                do {
                    guard let url else { throw error ?? CocoaError(.fileReadUnknown) }
                    try inbox.add(url, to: batch)
                    done.resume()
                } catch {
                    done.resume(throwing: error)
                }
            }
        }
    }
}
