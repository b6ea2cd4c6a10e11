// android_demo/core as a Gradle module: the same sources backdrop's CI compiles with kotlinc 1.3
// and tests on the JVM (android_demo/core/build.sh); no Android dependency, only Gson.
plugins {
    id("org.jetbrains.kotlin.jvm")
}

kotlin {
    jvmToolchain(17)
    sourceSets.getByName("main").kotlin.srcDir(rootProject.file("../core/src/main/kotlin"))
    // The JUnit tests (../core/src/test/kotlin) read an export's goldens; they run in
    // android_demo/core/build.sh (make android-core-test), not here.
}

dependencies {
    // Gson is in the core's public API (the results document is a JsonObject).
    api("com.google.code.gson:gson:2.10.1")
}
