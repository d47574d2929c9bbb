package org.meshdrop.kit.android

import android.annotation.TargetApi
import android.content.Context
import android.net.nsd.NsdManager
import android.net.nsd.NsdServiceInfo
import android.os.Build
import android.util.Log
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.launch
import org.meshdrop.ffi.NodeInterface
import java.util.concurrent.Executor

/**
 * Discovery through Android NSD: advertises what the node says ([NodeInterface.advertisement])
 * and reports every resolved or lost `_meshdrop._udp` service to the node, which decides the
 * rest (its own advert, bad records, dialling).
 *
 * Below API 34 NSD resolves one service at a time (the others fail with
 * `FAILURE_ALREADY_ACTIVE`), so services wait in a queue; from API 34 each service gets a
 * `ServiceInfoCallback` that follows its address changes and is unregistered when the service is
 * lost or discovery stops. No MulticastLock: the system's mDNS daemon does the multicast.
 * Reports reach the node one after the other, in the order NSD gave them.
 */
class NsdDiscoveryDriver internal constructor(
    context: Context,
    private val node: NodeInterface,
    private val scope: CoroutineScope,
    private val sdk: Int,
) {
    /** A driver for [node]; its reports to the node run in [scope]. */
    constructor(context: Context, node: NodeInterface, scope: CoroutineScope) :
        this(context, node, scope, Build.VERSION.SDK_INT)

    private val nsd = context.system<NsdManager>()
    private val direct = Executor(Runnable::run)
    private val reports = Channel<suspend () -> Unit>(Channel.UNLIMITED)
    private var started = false
    private var running = false
    private var own: String? = null
    private var registration: NsdManager.RegistrationListener? = null
    private var browsing: NsdManager.DiscoveryListener? = null

    /** Below API 34: the service being resolved (and whether it was lost meanwhile), those waiting. */
    private var resolving: String? = null
    private var resolvingLost = false
    private val waiting = ArrayDeque<NsdServiceInfo>()

    /** From API 34: the callback following each found service, by instance name. */
    private val following = HashMap<String, NsdManager.ServiceInfoCallback>()

    /** Registers the node's service and browses for the others. */
    @Synchronized
    fun start() {
        check(!started) { "a driver starts once" }
        started = true
        running = true
        scope.launch { for (report in reports) report() }
        val advert = node.advertisement()
        own = advert.instanceName
        val info = NsdServiceInfo().apply {
            serviceName = advert.instanceName
            serviceType = advert.serviceType
            port = advert.port.toInt()
            advert.txt.forEach { (key, value) -> setAttribute(key, value) }
        }
        registration = object : NsdManager.RegistrationListener {
            override fun onServiceRegistered(info: NsdServiceInfo) {}
            override fun onRegistrationFailed(info: NsdServiceInfo, error: Int) = warn("register", error)
            override fun onServiceUnregistered(info: NsdServiceInfo) {}
            override fun onUnregistrationFailed(info: NsdServiceInfo, error: Int) = warn("unregister", error)
        }.also { nsd.registerService(info, NsdManager.PROTOCOL_DNS_SD, it) }
        browsing = object : NsdManager.DiscoveryListener {
            override fun onServiceFound(service: NsdServiceInfo) = found(service)
            override fun onServiceLost(service: NsdServiceInfo) = lost(service.serviceName)
            override fun onDiscoveryStarted(serviceType: String) {}
            override fun onDiscoveryStopped(serviceType: String) {}
            override fun onStartDiscoveryFailed(serviceType: String, error: Int) = warn("browse", error)
            override fun onStopDiscoveryFailed(serviceType: String, error: Int) = warn("stop browsing", error)
        }.also { nsd.discoverServices(advert.serviceType, NsdManager.PROTOCOL_DNS_SD, it) }
    }

    /** Stops browsing and advertising; every service callback is unregistered. */
    @Synchronized
    fun stop() {
        if (!running) return
        running = false
        browsing?.let(nsd::stopServiceDiscovery)
        registration?.let(nsd::unregisterService)
        browsing = null
        registration = null
        following.values.forEach(::unfollow)
        following.clear()
        waiting.clear()
        reports.close()
    }

    @Synchronized
    private fun found(service: NsdServiceInfo) {
        val name = service.serviceName
        // Browsing finds this node's own service too: nothing to resolve.
        if (!running || name == own) return
        if (sdk >= 34) {
            if (name !in following) follow(service)
        } else {
            if (name == resolving || waiting.any { it.serviceName == name }) return
            waiting.addLast(service)
            resolveNext()
        }
    }

    @Synchronized
    private fun lost(name: String) {
        following.remove(name)?.let(::unfollow)
        waiting.removeAll { it.serviceName == name }
        if (name == resolving) resolvingLost = true
        reports.trySend { runCatching { node.peerGone(name) }.onFailure { warn("peer gone", it) } }
    }

    /** Below API 34: starts the next resolve once none runs. */
    private fun resolveNext() {
        if (resolving != null) return
        val service = waiting.removeFirstOrNull() ?: return
        resolving = service.serviceName
        resolvingLost = false
        @Suppress("DEPRECATION")
        nsd.resolveService(service, object : NsdManager.ResolveListener {
            override fun onServiceResolved(info: NsdServiceInfo) =
                resolved(info, listOfNotNull(info.host?.hostAddress))

            override fun onResolveFailed(info: NsdServiceInfo, error: Int) {
                warn("resolve ${info.serviceName}", error)
                resolved(null, emptyList())
            }
        })
    }

    @Synchronized
    private fun resolved(info: NsdServiceInfo?, ips: List<String>) {
        resolving = null
        if (info != null && !resolvingLost) report(info, ips)
        if (running) resolveNext()
    }

    /** From API 34: reports each update of [service] until it is lost. */
    @TargetApi(34)
    private fun follow(service: NsdServiceInfo) {
        val name = service.serviceName
        val callback = object : NsdManager.ServiceInfoCallback {
            override fun onServiceUpdated(info: NsdServiceInfo) = synchronized(this@NsdDiscoveryDriver) {
                report(info, info.hostAddresses.mapNotNull { it.hostAddress })
            }
            override fun onServiceLost() = lost(name)
            override fun onServiceInfoCallbackRegistrationFailed(error: Int) {
                warn("follow $name", error)
                synchronized(this@NsdDiscoveryDriver) { following.remove(name) }
            }
            override fun onServiceInfoCallbackUnregistered() {}
        }
        following[name] = callback
        nsd.registerServiceInfoCallback(service, direct, callback)
    }

    @TargetApi(34)
    private fun unfollow(callback: NsdManager.ServiceInfoCallback) = nsd.unregisterServiceInfoCallback(callback)

    /** Hands a resolved record to the node; it ignores its own advert and rejects bad ones. */
    private fun report(info: NsdServiceInfo, ips: List<String>) {
        if (!running) return
        val txt = info.attributes.mapValues { (_, value) -> value?.toString(Charsets.UTF_8) ?: "" }
        val addrs = ips.map { it.substringBefore('%') }
        reports.trySend { runCatching { node.peerResolved(txt, addrs) }.onFailure { warn("peer resolved", it) } }
    }

    private fun warn(what: String, error: Int) {
        Log.w(TAG, "NSD $what failed: error $error")
    }

    private fun warn(what: String, error: Throwable) {
        Log.w(TAG, "$what: ${error.message}")
    }

    private companion object {
        const val TAG = "meshdrop"
    }
}
