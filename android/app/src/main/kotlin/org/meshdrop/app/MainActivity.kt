package org.meshdrop.app

import android.Manifest
import android.content.Intent
import android.os.Build
import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.result.contract.ActivityResultContracts
import androidx.activity.viewModels
import androidx.compose.material3.MaterialTheme
import org.meshdrop.kit.android.ShareIn

/** Asks for the notification and nearby-devices permissions, then shows the screens. */
class MainActivity : ComponentActivity() {
    private val model: NodeViewModel by viewModels()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        if (Build.VERSION.SDK_INT >= 33) {
            registerForActivityResult(ActivityResultContracts.RequestMultiplePermissions()) {}
                .launch(arrayOf(Manifest.permission.NEARBY_WIFI_DEVICES, Manifest.permission.POST_NOTIFICATIONS))
        }
        if (savedInstanceState == null) received(intent)
        setContent { MaterialTheme { MeshdropApp(model, onQuit = ::finish) } }
    }

    override fun onNewIntent(intent: Intent) {
        super.onNewIntent(intent)
        received(intent)
    }

    /** Items shared from another app, or a ticket link, wait on screen for the user's choice. */
    private fun received(intent: Intent) {
        ShareIn.items(intent).takeIf { it.isNotEmpty() }?.let(model::shared)
        ShareIn.ticket(intent)?.let(model::linked)
    }
}
