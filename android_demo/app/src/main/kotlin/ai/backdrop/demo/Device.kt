// What the phone is, as plain values for android_demo/core (DeviceDescription.of names and tiers it).
package ai.backdrop.demo

import ai.backdrop.core.DeviceDescription
import ai.backdrop.core.DeviceInfo
import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.os.BatteryManager
import android.os.Build
import java.io.File
import java.io.IOException

fun runtimeVersions(): Map<String, String> = mapOf(
    "executorch-android" to BuildConfig.EXECUTORCH_VERSION,
    "onnxruntime-android" to BuildConfig.ONNXRUNTIME_VERSION,
)

fun deviceInfo(context: Context): DeviceInfo {
    val cpuinfo = try {
        File("/proc/cpuinfo").readText()
    } catch (e: IOException) {
        ""
    }
    val fingerprint = Build.FINGERPRINT ?: ""
    val hardware = Build.HARDWARE ?: ""
    return DeviceInfo(
        manufacturer = Build.MANUFACTURER ?: "",
        model = Build.MODEL ?: "",
        socManufacturer = if (Build.VERSION.SDK_INT >= 31) Build.SOC_MANUFACTURER else "",
        socModel = if (Build.VERSION.SDK_INT >= 31) Build.SOC_MODEL else "",
        board = Build.BOARD ?: "",
        hardware = hardware,
        abis = Build.SUPPORTED_ABIS.toList(),
        sdkInt = Build.VERSION.SDK_INT,
        release = Build.VERSION.RELEASE ?: "",
        fingerprint = fingerprint,
        kernel = System.getProperty("os.version") ?: "",
        cpuinfo = cpuinfo,
        cores = Runtime.getRuntime().availableProcessors(),
        emulated = DeviceDescription.looksLikeEmulator(fingerprint, hardware, Build.PRODUCT ?: ""),
        runtimeVersions = runtimeVersions(),
        appVersion = BuildConfig.VERSION_NAME,
    )
}

/** The gate's reading: the battery's temperature (the one thermal figure every app may read). */
fun batteryReadings(context: Context): Map<String, Double> {
    val status = context.registerReceiver(null, IntentFilter(Intent.ACTION_BATTERY_CHANGED))
    val tenths = status?.getIntExtra(BatteryManager.EXTRA_TEMPERATURE, Int.MIN_VALUE) ?: Int.MIN_VALUE
    return if (tenths == Int.MIN_VALUE) emptyMap() else mapOf("temp_c:battery" to tenths / 10.0)
}
