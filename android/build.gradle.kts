// Versions shared with the Maven build of the library (meshdrop/pom.xml): the same Kotlin
// compiler, the same Android API (compileSdk 35 = android-all 15), the same libraries.
plugins {
    id("com.android.application") version "8.7.3" apply false
    id("com.android.library") version "8.7.3" apply false
    id("org.jetbrains.kotlin.android") version "2.4.21" apply false
    id("org.jetbrains.kotlin.plugin.compose") version "2.4.21" apply false
}
