// meshdrop for Android: `meshdrop` (library: Kotlin facade over the UniFFI bindings, the process's
// node host, NSD discovery, the transfer foreground service, notifications, gallery) and `app`
// (Jetpack Compose screens, a thin view of the library). Build the native library and the
// bindings first with ./build-rust.sh; see README.md.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "meshdrop-android"
include(":meshdrop", ":app")
