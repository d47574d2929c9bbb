import SwiftUI

/// The app: three tabs (Nearby, Transfers, Chat) and the incoming offer sheet.
@main
struct MeshdropApp: App {
    @StateObject private var model = NodeModel()

    var body: some Scene {
        WindowGroup {
            TabView {
                NearbyView().tabItem { Label("Nearby", systemImage: "antenna.radiowaves.left.and.right") }
                TransfersView().tabItem { Label("Transfers", systemImage: "arrow.down.circle") }
                ChatView().tabItem { Label("Chat", systemImage: "bubble.left.and.bubble.right") }
            }
            .environmentObject(model)
            .sheet(item: $model.offer) { offer in OfferView(offer: offer) .environmentObject(model) }
            .alert("meshdrop", isPresented: .constant(model.error != nil)) {
                Button("OK") { model.error = nil }
            } message: {
                Text(model.error ?? "")
            }
            .task { await model.start() }
        }
    }
}
