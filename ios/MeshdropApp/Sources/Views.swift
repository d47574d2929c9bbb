import SwiftUI
import MeshdropFFI

/// Devices the node knows, with their verification code; Send offers files.
struct NearbyView: View {
    @EnvironmentObject var model: NodeModel
    @State private var target: String?

    var body: some View {
        NavigationStack {
            List(model.peers, id: \.peerId) { peer in
                HStack {
                    VStack(alignment: .leading) {
                        Text(peer.name.isEmpty ? String(peer.peerId.suffix(8)) : peer.name)
                        Text("\(peer.connected ? "connected" : "seen") · code \(peer.verificationCode)")
                            .font(.caption).foregroundStyle(.secondary)
                    }
                    Spacer()
                    Button("Send") { target = peer.peerId }
                }
            }
            .navigationTitle("Nearby")
            .fileImporter(isPresented: .constant(target != nil), allowedContentTypes: [.item], allowsMultipleSelection: true) { result in
                if let peer = target, case .success(let urls) = result { model.send(to: peer, files: urls) }
                target = nil
            }
        }
    }
}

/// Downloads by ticket, and each transfer's progress as the node last reported it.
struct TransfersView: View {
    @EnvironmentObject var model: NodeModel
    @State private var ticket = ""

    var body: some View {
        NavigationStack {
            List {
                HStack {
                    TextField("Ticket", text: $ticket)
                    Button("Get") { model.download(ticket: ticket); ticket = "" }
                }
                ForEach(model.transfers.keys.sorted(), id: \.self) { id in
                    switch model.transfers[id] {
                    case let .transferProgress(_, _, done, total, _, _):
                        ProgressView("Transfer \(id)", value: Double(done), total: Double(max(total, 1)))
                    case let .transferFinished(_, _, bytes):
                        Text("Transfer \(id): done, \(bytes) bytes")
                    case let .transferFailed(_, _, error):
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
                        Text(peer.name.isEmpty ? String(peer.peerId.suffix(8)) : peer.name).tag(Optional(peer.peerId))
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
            Text("\(offer.name) wants to send you \(offer.files.count) file(s)").font(.headline)
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
