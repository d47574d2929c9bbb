package org.meshdrop.app

import android.Manifest
import android.os.Build
import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.result.contract.ActivityResultContracts
import androidx.activity.viewModels
import androidx.compose.material3.MaterialTheme

/** Asks for the local-network and notification permissions, then shows the screens. */
class MainActivity : ComponentActivity() {
    private val model: NodeViewModel by viewModels()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val permissions = buildList {
            if (Build.VERSION.SDK_INT >= 33) {
                add(Manifest.permission.NEARBY_WIFI_DEVICES)
                add(Manifest.permission.POST_NOTIFICATIONS)
            } else {
                add(Manifest.permission.ACCESS_FINE_LOCATION)
            }
        }
        registerForActivityResult(ActivityResultContracts.RequestMultiplePermissions()) {}
            .launch(permissions.toTypedArray())
        setContent { MaterialTheme { MeshdropApp(model) } }
    }
}
