package org.meshdrop.kit.android

import android.content.Intent
import android.net.ConnectivityManager
import android.net.NetworkCapabilities
import android.os.BatteryManager
import android.os.Looper
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.RobolectricTestRunner
import org.robolectric.Shadows.shadowOf
import org.robolectric.shadows.ShadowNetwork
import org.robolectric.shadows.ShadowNetworkCapabilities

/**
 * The node hears when the phone is unplugged and plugged in again, and seeds less on battery; and
 * whether the network is metered (room attachments then wait for the user).
 */
@RunWith(RobolectricTestRunner::class)
class PowerTest {
    @After
    fun quit() = runBlocking<Unit> { MeshdropHost.quit() }

    /** The system's battery broadcast: [plugged] is `0` on battery. */
    private fun battery(plugged: Int) {
        @Suppress("DEPRECATION")
        app.sendStickyBroadcast(Intent(Intent.ACTION_BATTERY_CHANGED).putExtra(BatteryManager.EXTRA_PLUGGED, plugged))
        shadowOf(Looper.getMainLooper()).idle()
    }

    @Test
    fun unpluggingAndPluggingInReachTheNode() = runBlocking<Unit> {
        battery(BatteryManager.BATTERY_PLUGGED_AC)
        val host = startHost()
        val plugged = host.node.uploadLimits()

        battery(0)
        val onBattery = host.node.uploadLimits()
        assertNotEquals("the core's battery limits apply", plugged, onBattery)
        assertTrue("$onBattery", onBattery.uploadSlots <= plugged.uploadSlots)

        battery(BatteryManager.BATTERY_PLUGGED_USB)
        assertEquals(plugged, host.node.uploadLimits())
    }

    @Test
    fun aMeteredNetworkReachesTheNode() = runBlocking<Unit> {
        val host = startHost()
        val connectivity = shadowOf(app.getSystemService(ConnectivityManager::class.java))
        val callbacks = connectivity.networkCallbacks.toList()
        assertEquals("one callback for the default network", 1, callbacks.size)
        val network = ShadowNetwork.newInstance(7)
        val mobile = ShadowNetworkCapabilities.newInstance()
        callbacks.single().onCapabilitiesChanged(network, mobile)
        assertTrue("mobile data is metered", host.node.isMetered())
        val wifi = ShadowNetworkCapabilities.newInstance()
        shadowOf(wifi).addCapability(NetworkCapabilities.NET_CAPABILITY_NOT_METERED)
        callbacks.single().onCapabilitiesChanged(network, wifi)
        assertFalse("home Wi-Fi is not", host.node.isMetered())
        MeshdropHost.quit()
        assertTrue("the callback goes with the node", connectivity.networkCallbacks.isEmpty())
    }

    @Test
    fun aPhoneStartedOnBatteryStartsWithTheBatteryLimits() = runBlocking<Unit> {
        battery(0)
        val onBattery = startHost().node.uploadLimits()
        MeshdropHost.quit()
        battery(BatteryManager.BATTERY_PLUGGED_AC)
        assertNotEquals(onBattery, startHost().node.uploadLimits())
    }
}
