package org.meshdrop.kit.android

import android.content.Context
import android.os.BatteryManager
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.flow.SharedFlow
import kotlinx.coroutines.flow.SharingStarted
import kotlinx.coroutines.flow.shareIn
import org.meshdrop.ffi.NodeConfig
import org.meshdrop.ffi.NodeEvent
import org.meshdrop.kit.Meshdrop
import java.io.File

/**
 * The one node of the process, its events shared with every screen and the transfer service,
 * and the NSD driver that does discovery for it. Wiring only: no state, no decisions.
 */
class MeshdropHost private constructor(
    /** The node (facade over the generated bindings). */
    val node: Meshdrop,
    /** Its events, from the moment the host started, for any number of collectors. */
    val events: SharedFlow<NodeEvent>,
    private val discovery: NsdDiscoveryDriver,
) {
    /** Stops discovery and the node; returns when the node has fully stopped. */
    suspend fun shutdown() {
        discovery.stop()
        node.shutdown()
        node.close()
    }

    companion object {
        /** Scope of the process: the node lives as long as the app process does. */
        val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)

        /**
         * Starts the node in the app's private files folder, with NSD doing discovery; [relays]
         * are the relay addresses the user entered (friends beyond the LAN reach the device
         * through them).
         */
        suspend fun start(
            context: Context,
            deviceName: String?,
            relays: List<String> = emptyList(),
        ): MeshdropHost {
            val config = NodeConfig(
                dataDir = File(context.filesDir, "meshdrop").path,
                deviceName = deviceName,
                bind = emptyList(),
                // Android's NSD browses and advertises for the node (the core's own mDNS socket
                // would compete with the system's).
                mdns = false,
                // A platform fact; the core decides what it means for seeding.
                onBattery = context.getSystemService(BatteryManager::class.java)?.isCharging == false,
                relays = relays,
            )
            val node = Meshdrop.start(config)
            val events = node.events.shareIn(scope, SharingStarted.Eagerly, replay = 0)
            val discovery = NsdDiscoveryDriver(context.applicationContext, node, scope)
            discovery.start()
            return MeshdropHost(node, events, discovery)
        }
    }
}
