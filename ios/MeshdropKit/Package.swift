// swift-tools-version:5.9
// MeshdropKit: the meshdrop core for iOS, built by ../build-xcframework.sh.
// - meshdrop_ffiFFI: the Rust library and its C header, as an xcframework (iOS device and simulator
//   slices). One name for the binary target, the xcframework and the modulemap's module: uniffi.toml's
//   ffi_module_name (scripts/check-swift.sh checks the three agree).
// - MeshdropFFI: the Swift that UniFFI generates over it (uniffi.toml's module_name).
// - MeshdropKit: the thin layer an app uses (the node, Bonjour, background time, Photos).
// - MeshdropInbox: the folder the Share extension hands items over in (no Rust in it).
import PackageDescription

let package = Package(
    name: "MeshdropKit",
    platforms: [.iOS(.v16)],
    products: [
        .library(name: "MeshdropKit", targets: ["MeshdropKit"]),
        .library(name: "MeshdropInbox", targets: ["MeshdropInbox"]),
    ],
    targets: [
        .binaryTarget(name: "meshdrop_ffiFFI", path: "meshdrop_ffiFFI.xcframework"),
        .target(
            name: "MeshdropFFI",
            dependencies: ["meshdrop_ffiFFI"],
            path: "Sources/MeshdropFFI",
            exclude: ["README.md"],
            // What `cargo rustc -- --print native-static-libs` lists for the iOS targets besides
            // libSystem (build-xcframework.sh fails when it lists one that is missing here).
            linkerSettings: [
                .linkedFramework("SystemConfiguration"), // if-watch and hickory under libp2p (rust-libp2p#6161)
                .linkedFramework("CoreFoundation"), // core-foundation-sys, for the same
                .linkedLibrary("iconv"), // the libc crate on Apple targets
            ]
        ),
        .target(name: "MeshdropInbox", path: "Sources/MeshdropInbox"),
        .target(
            name: "MeshdropKit",
            dependencies: ["MeshdropFFI", "MeshdropInbox"],
            path: "Sources/MeshdropKit"
        ),
    ]
)
