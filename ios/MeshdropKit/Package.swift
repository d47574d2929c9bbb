// swift-tools-version:5.9
// MeshdropKit: the meshdrop core for Apple platforms. `MeshdropFFI` is the UniFFI-generated Swift
// over the Rust library (ios/build-xcframework.sh builds the xcframework and copies the Swift in);
// `MeshdropKit` is the thin facade (async/await, AsyncStream of events, Bonjour discovery driver).
import PackageDescription

let package = Package(
    name: "MeshdropKit",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "MeshdropKit", targets: ["MeshdropKit"]),
    ],
    targets: [
        .binaryTarget(name: "meshdrop_ffiFFI", path: "MeshdropFFI.xcframework"),
        .target(name: "MeshdropFFI", dependencies: ["meshdrop_ffiFFI"], path: "Sources/MeshdropFFI"),
        .target(name: "MeshdropKit", dependencies: ["MeshdropFFI"], path: "Sources/MeshdropKit"),
    ]
)
