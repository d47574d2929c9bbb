import SwiftUI
import MeshdropKit

/// The app: three tabs (Nearby, Transfers, Chat) and the incoming offer sheet.
@main
struct MeshdropApp: App {
    @StateObject private var model = NodeModel()
    @Environment(\.scenePhase) private var scenePhase

    init() {
        MeshdropHost.shared.registerBackgroundTasks()
    }

    var body: some Scene {
        WindowGroup {
            TabView {
                NearbyView().tabItem { Label("Nearby", systemImage: "antenna.radiowaves.left.and.right") }
                TransfersView().tabItem { Label("Transfers", systemImage: "arrow.down.circle") }
                ChatView().tabItem { Label("Chat", systemImage: "bubble.left.and.bubble.right") }
            }
            .environmentObject(model)
            .sheet(item: $model.offer) { offer in OfferView(offer: offer).environmentObject(model) }
            .alert("meshdrop", isPresented: isSet($model.notice)) {
                Button("OK", role: .cancel) {}
            } message: {
                Text(model.notice ?? "")
            }
            .task { await model.start() }
        }
        .onChange(of: scenePhase) { phase in model.scenePhaseChanged(phase) }
    }
}
