import PhotosUI
import SwiftUI
import UniformTypeIdentifiers
import MeshdropInbox
import MeshdropKit

/// Devices the node knows, with their verification code; Files and Photos offer files to one.
/// Items shared to meshdrop from other apps wait on top until sent or shared by ticket.
struct NearbyView: View {
    @EnvironmentObject var model: NodeModel
    @State private var filesFor: String?
    @State private var photosFor: String?
    @State private var choosingPhotos = false
    @State private var photos: [PhotosPickerItem] = []

    var body: some View {
        NavigationStack {
            List {
                if !model.shared.isEmpty {
                    Section("From the share sheet") {
                        ForEach(model.shared) { batch in SharedItemsRow(batch: batch) }
                    }
                }
                Section("Nearby") {
                    ForEach(model.peers, id: \.peerId) { peer in
                        HStack {
                            VStack(alignment: .leading) {
                                Text(displayName(peer))
                                Text("\(peer.connected ? "connected" : "seen") · code \(peer.verificationCode)")
                                    .font(.caption).foregroundStyle(.secondary)
                            }
                            Spacer()
                            Button("Files") { filesFor = peer.peerId }
                            Button("Photos") {
                                photosFor = peer.peerId
                                choosingPhotos = true
                            }
                        }
                        .buttonStyle(.borderless)
                    }
                }
                #if canImport(WiFiAware) && canImport(DeviceDiscoveryUI)
                if #available(iOS 26, *), WiFiAwareLinkDriver.isAvailable {
                    Section("Wi-Fi Aware") { WiFiAwarePairing() }
                }
                #endif
            }
            .navigationTitle("Nearby")
            .fileImporter(isPresented: isSet($filesFor), allowedContentTypes: [.item], allowsMultipleSelection: true) { result in
                if let peer = filesFor, case .success(let urls) = result { model.send(files: urls, to: peer) }
                filesFor = nil
            }
            .photosPicker(isPresented: $choosingPhotos, selection: $photos, matching: .any(of: [.images, .videos]),
                          preferredItemEncoding: .current)
            .onChange(of: photos) { items in
                guard let peer = photosFor, !items.isEmpty else { return }
                model.send(photos: items, to: peer)
                photos = []
            }
        }
    }
}

/// One use of the share sheet: offer its files to a device, or share them by ticket.
struct SharedItemsRow: View {
    @EnvironmentObject var model: NodeModel
    let batch: Inbox.Batch

    var body: some View {
        Menu("\(batch.files.count) file(s)") {
            ForEach(model.peers, id: \.peerId) { peer in
                Button("Send to \(displayName(peer))") { model.send(batch, to: peer.peerId) }
            }
            Button("Share by ticket") { model.share(batch) }
        }
    }
}

/// Downloads by ticket, tickets of what this device shares, and each transfer's progress as the
/// node last reported it.
struct TransfersView: View {
    @EnvironmentObject var model: NodeModel
    @State private var ticket = ""

    var body: some View {
        NavigationStack {
            List {
                HStack {
                    TextField("Ticket", text: $ticket)
                    Button("Get") {
                        model.download(ticket: ticket)
                        ticket = ""
                    }
                }
                ForEach(model.tickets, id: \.self) { shared in
                    ShareLink(item: shared) { Text(shared).lineLimit(1).truncationMode(.middle) }
                }
                if !model.unfinished.isEmpty {
                    Section("To finish") {
                        ForEach(model.unfinished, id: \.self) { download in
                            Text("\(download.content.prefix(12))… into \((download.dest as NSString).lastPathComponent)")
                        }
                    }
                }
                ForEach(model.transfers.keys.sorted(), id: \.self) { id in
                    switch model.transfers[id] {
                    case let .transferProgress(_, _, done, total, _, _):
                        ProgressView("Transfer \(id)", value: Double(done), total: Double(max(total, 1)))
                    case .transferWaiting:
                        Text("Transfer \(id): waiting for someone who has it")
                    case let .transferFinished(_, _, bytes, _):
                        Text("Transfer \(id): done, \(bytes) bytes")
                    case let .transferFailed(_, _, error, _):
                        Text("Transfer \(id) failed: \(error)")
                    default:
                        EmptyView()
                    }
                }
            }
            .navigationTitle("Transfers")
        }
    }
}

/// Messages in the node's order, and a field to write to the selected peer.
struct ChatView: View {
    @EnvironmentObject var model: NodeModel
    @State private var to: String?
    @State private var text = ""

    var body: some View {
        NavigationStack {
            VStack {
                Picker("To", selection: $to) {
                    ForEach(model.peers, id: \.peerId) { peer in
                        Text(displayName(peer)).tag(Optional(peer.peerId))
                    }
                }
                List(model.messages, id: \.id) { m in
                    VStack(alignment: .leading) {
                        Text(m.text)
                        Text(m.outgoing ? "sent · \(String(describing: m.state))" : "from \(m.fromPeer.suffix(8))")
                            .font(.caption).foregroundStyle(.secondary)
                    }
                }
                HStack {
                    TextField("Message", text: $text)
                    Button("Send") {
                        if let to { model.sendMessage(to: to, text: text) }
                        text = ""
                    }
                    .disabled(to == nil || text.isEmpty)
                }
                .padding()
            }
            .navigationTitle("Chat")
        }
    }
}

/// An incoming offer: who, the code to compare, what; accept or decline.
struct OfferView: View {
    @EnvironmentObject var model: NodeModel
    let offer: Offer

    var body: some View {
        VStack(spacing: 12) {
            Text("\(offer.contactName ?? "\(offer.name)? (not a contact)") wants to send you \(offer.files.count) file(s)").font(.headline)
            Text("Code: \(offer.code) (check it matches on their screen)")
            List(offer.files.prefix(10), id: \.path) { f in Text("\(f.path) (\(f.size) bytes)") }
            HStack {
                Button("Decline") { model.decline(offer) }
                Button("Accept") { model.accept(offer) }.buttonStyle(.borderedProminent)
            }
        }
        .padding()
    }
}

/// A peer's name, or the end of its id while its name is unknown.
func displayName(_ peer: PeerInfo) -> String {
    peer.name.isEmpty ? String(peer.peerId.suffix(8)) : peer.name
}

/// True while `value` is set; setting it to false clears `value` (a sheet's `isPresented`).
func isSet<T>(_ value: Binding<T?>) -> Binding<Bool> {
    Binding(get: { value.wrappedValue != nil }, set: { if !$0 { value.wrappedValue = nil } })
}
