// The library module. Maven builds and tests the same sources (pom.xml beside this file) against
// the same Android API on machines without the Android SDK; keep the two in step.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

// bindings/generate.sh's output (kotlin/ and lib/), outside any build folder so `clean` keeps it:
// <repo>/target/bindings by default (android/build-rust.sh writes it), or -Pmeshdrop.bindings=DIR.
val bindings = file(providers.gradleProperty("meshdrop.bindings").getOrElse("$rootDir/../target/bindings"))

android {
    namespace = "org.meshdrop.kit"
    compileSdk = 35
    defaultConfig {
        minSdk = 29
    }
    sourceSets["main"].java.srcDirs(
        // The facade: plain Kotlin, also compiled and tested on the JVM by bindings/tests/kotlin.
        "src/facade/kotlin",
        // The generated bindings.
        bindings.resolve("kotlin"),
    )
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    testOptions.unitTests.all {
        // The Robolectric tests load the host-built core, as the Maven build does.
        it.systemProperty("jna.library.path", bindings.resolve("lib").path)
        it.jvmArgs("--add-opens", "java.base/java.io=ALL-UNNAMED")
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    api("net.java.dev.jna:jna:5.19.1@aar")
    api("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.11.0")
    testImplementation("net.java.dev.jna:jna:5.19.1")
    testImplementation("junit:junit:4.13.2")
    testImplementation("org.robolectric:robolectric:4.16")
}
