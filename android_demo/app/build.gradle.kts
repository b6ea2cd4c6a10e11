// The demo app (ai.backdrop.demo): CameraX front camera -> android_demo/core -> ExecuTorch or
// ONNX Runtime -> blur / replacement, and a benchmark mode for `backdrop results import`.
// Not built on backdrop's CI (no Android SDK or Maven repository there): the versions below are
// pinned by hand; ../README.md says what was and was not checked.
plugins {
    id("com.android.application") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.0.21"
    id("org.jetbrains.kotlin.jvm") version "2.0.21" apply false
}

// The runtimes the artifacts were exported for (pyproject.toml pins executorch==1.5.1 and
// onnxruntime==1.32.0; dist/<target>/manifest.json "tools" records them). A .pte needs a runtime
// that reads its flatbuffer version: keep executorch-android at the exporting executorch.
val executorchVersion = "1.5.1"
val onnxruntimeVersion = "1.32.0"
val cameraxVersion = "1.4.1"

android {
    namespace = "ai.backdrop.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "ai.backdrop.demo"
        minSdk = 26  // java.time in the core's results writer
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        ndk {
            abiFilters += listOf("arm64-v8a", "x86_64")
        }
        buildConfigField("String", "EXECUTORCH_VERSION", "\"$executorchVersion\"")
        buildConfigField("String", "ONNXRUNTIME_VERSION", "\"$onnxruntimeVersion\"")
    }

    buildFeatures {
        buildConfig = true
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    androidResources {
        // copied byte for byte to files/ and checked against the manifest's sha256
        noCompress += listOf("pte", "onnx", "ort", "npz")
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    implementation(project(":core"))
    implementation("androidx.activity:activity-ktx:1.9.3")
    implementation("androidx.camera:camera-core:$cameraxVersion")
    implementation("androidx.camera:camera-camera2:$cameraxVersion")
    implementation("androidx.camera:camera-lifecycle:$cameraxVersion")
    implementation("androidx.camera:camera-view:$cameraxVersion")
    implementation("org.pytorch:executorch-android:$executorchVersion")
    implementation("com.microsoft.onnxruntime:onnxruntime-android:$onnxruntimeVersion")
}
