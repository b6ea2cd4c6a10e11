// The android_demo app (not built on backdrop's CI: no Android SDK there; see ../README.md).
// This folder is both the Gradle root and the application module (make android-demo writes the
// assets into src/main/assets/backdrop/); `core` is android_demo/core's Kotlin sources as a
// plain Kotlin/JVM library module.
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

rootProject.name = "backdrop-android-demo"
include(":core")
