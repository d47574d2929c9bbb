package org.meshdrop.app

import android.Manifest
import android.content.Intent
import android.content.pm.PackageManager
import android.os.Build
import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.viewModels
import androidx.compose.material3.MaterialTheme
import org.meshdrop.kit.android.ShareIn

/**
 * Asks for the notification and Nearby devices permissions (the platform's
 * `requestPermissions`), starts links over Wi-Fi Aware once Nearby devices is granted, and shows
 * the screens.
 */
class MainActivity : ComponentActivity() {
    private val model: NodeViewModel by viewModels()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        if (savedInstanceState == null && Build.VERSION.SDK_INT >= 33) {
            val missing = arrayOf(Manifest.permission.NEARBY_WIFI_DEVICES, Manifest.permission.POST_NOTIFICATIONS)
                .filter { checkSelfPermission(it) != PackageManager.PERMISSION_GRANTED }
            if (missing.isNotEmpty()) requestPermissions(missing.toTypedArray(), REQUEST_PERMISSIONS)
        }
        if (savedInstanceState == null) received(intent)
        setContent { MaterialTheme { MeshdropApp(model, onQuit = ::finish) } }
    }

    /** Back on screen: the user may have allowed Nearby devices in the system settings meanwhile. */
    override fun onResume() {
        super.onResume()
        if (nearbyAllowed()) model.useWifiAware()
    }

    // ComponentActivity marks the platform's callback deprecated in favour of its result API.
    @Suppress("OVERRIDE_DEPRECATION")
    override fun onRequestPermissionsResult(requestCode: Int, permissions: Array<String>, grantResults: IntArray) {
        super.onRequestPermissionsResult(requestCode, permissions, grantResults)
        if (requestCode == REQUEST_PERMISSIONS && nearbyAllowed()) model.useWifiAware()
    }

    override fun onNewIntent(intent: Intent) {
        super.onNewIntent(intent)
        received(intent)
    }

    /**
     * Whether links over Wi-Fi Aware may start: the phone has Wi-Fi Aware and the user allowed
     * Nearby devices (Android 13+; below, Wi-Fi Aware needs the location permission, which the
     * app does not ask for).
     */
    private fun nearbyAllowed() = Build.VERSION.SDK_INT >= 33 &&
        packageManager.hasSystemFeature(PackageManager.FEATURE_WIFI_AWARE) &&
        checkSelfPermission(Manifest.permission.NEARBY_WIFI_DEVICES) == PackageManager.PERMISSION_GRANTED

    /** Items shared from another app, or a ticket link, wait on screen for the user's choice. */
    private fun received(intent: Intent) {
        ShareIn.items(intent).takeIf { it.isNotEmpty() }?.let(model::shared)
        ShareIn.ticket(intent)?.let(model::linked)
    }

    private companion object {
        const val REQUEST_PERMISSIONS = 1
    }
}
