// meshdrop for Android: `meshdrop` (library: Kotlin facade over the UniFFI bindings, NSD discovery
// driver, transfer foreground service) and `app` (Jetpack Compose screens). Build the native
// library and the bindings first with ./build-rust.sh.
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
