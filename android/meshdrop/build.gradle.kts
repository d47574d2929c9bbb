plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.meshdrop.kit"
    compileSdk = 35
    defaultConfig {
        minSdk = 26
    }
    sourceSets["main"].java.srcDirs(
        // The facade: plain Kotlin, also compiled and tested on the JVM by bindings/tests/kotlin.
        "src/facade/kotlin",
        // The generated bindings (./build-rust.sh).
        "build/generated/uniffi",
    )
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    api("net.java.dev.jna:jna:5.19.1@aar")
    api("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.11.0")
    implementation("androidx.core:core-ktx:1.15.0")
}
