package org.meshdrop.kit.android

import android.content.Context
import android.net.nsd.NsdManager
import android.net.nsd.NsdServiceInfo
import android.net.wifi.WifiManager
import android.os.Build
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.launch
import org.meshdrop.kit.Meshdrop
import java.util.concurrent.Executors

/**
 * Discovery through Android NSD: advertises what the node says ([Meshdrop.advertisement]) and
 * reports every resolved or lost `_meshdrop._udp` service to the node, which decides the rest
 * (its own advert, bad records, dialling). Holds a [WifiManager.MulticastLock] while running.
 */
class NsdDiscoveryDriver(
    private val context: Context,
    private val node: Meshdrop,
    private val scope: CoroutineScope,
) {
    private val nsd = context.getSystemService(Context.NSD_SERVICE) as NsdManager
    private val wifi = context.getSystemService(Context.WIFI_SERVICE) as WifiManager
    private val lock = wifi.createMulticastLock("meshdrop-discovery").apply { setReferenceCounted(false) }
    private val executor = Executors.newSingleThreadExecutor()
    private var registration: NsdManager.RegistrationListener? = null
    private var browsing: NsdManager.DiscoveryListener? = null

    /** Acquires the multicast lock, registers the service and browses. */
    fun start() {
        lock.acquire()
        val advert = node.advertisement()
        val info = NsdServiceInfo().apply {
            serviceName = advert.instanceName
            serviceType = advert.serviceType
            port = advert.port.toInt()
            advert.txt.forEach { (key, value) -> setAttribute(key, value) }
        }
        registration = object : NsdManager.RegistrationListener {
            override fun onServiceRegistered(info: NsdServiceInfo) {}
            override fun onRegistrationFailed(info: NsdServiceInfo, error: Int) {}
            override fun onServiceUnregistered(info: NsdServiceInfo) {}
            override fun onUnregistrationFailed(info: NsdServiceInfo, error: Int) {}
        }.also { nsd.registerService(info, NsdManager.PROTOCOL_DNS_SD, it) }
        browsing = object : NsdManager.DiscoveryListener {
            override fun onServiceFound(service: NsdServiceInfo) = resolve(service)
            override fun onServiceLost(service: NsdServiceInfo) {
                scope.launch { runCatching { node.peerGone(service.serviceName) } }
            }
            override fun onDiscoveryStarted(serviceType: String) {}
            override fun onDiscoveryStopped(serviceType: String) {}
            override fun onStartDiscoveryFailed(serviceType: String, error: Int) {}
            override fun onStopDiscoveryFailed(serviceType: String, error: Int) {}
        }.also { nsd.discoverServices(advert.serviceType, NsdManager.PROTOCOL_DNS_SD, it) }
    }

    /** Stops browsing and advertising and releases the multicast lock. */
    fun stop() {
        browsing?.let { runCatching { nsd.stopServiceDiscovery(it) } }
        registration?.let { runCatching { nsd.unregisterService(it) } }
        browsing = null
        registration = null
        if (lock.isHeld) lock.release()
    }

    private fun resolve(service: NsdServiceInfo) {
        if (Build.VERSION.SDK_INT >= 34) {
            nsd.registerServiceInfoCallback(service, executor, object : NsdManager.ServiceInfoCallback {
                override fun onServiceUpdated(info: NsdServiceInfo) = report(info, info.hostAddresses.mapNotNull { it.hostAddress })
                override fun onServiceLost() {}
                override fun onServiceInfoCallbackRegistrationFailed(error: Int) {}
                override fun onServiceInfoCallbackUnregistered() {}
            })
        } else {
            @Suppress("DEPRECATION")
            nsd.resolveService(service, object : NsdManager.ResolveListener {
                override fun onServiceResolved(info: NsdServiceInfo) = report(info, listOfNotNull(info.host?.hostAddress))
                override fun onResolveFailed(info: NsdServiceInfo, error: Int) {}
            })
        }
    }

    /** Hands a resolved record to the node; it ignores its own advert and rejects bad ones. */
    private fun report(info: NsdServiceInfo, ips: List<String>) {
        val txt = info.attributes.mapValues { (_, value) -> value?.toString(Charsets.UTF_8) ?: "" }
        scope.launch { runCatching { node.peerResolved(txt, ips.map { it.substringBefore('%') }) } }
    }
}
