package org.meshdrop.kit.android

import android.net.Network
import android.net.nsd.NsdManager
import android.net.nsd.NsdServiceInfo
import org.robolectric.annotation.Implementation
import org.robolectric.annotation.Implements
import org.robolectric.annotation.Resetter
import java.net.InetAddress
import java.util.concurrent.Executor
import java.util.concurrent.Executors

/**
 * `NsdManager` on a pretend local network inside the test process: every service registered by
 * any `NsdManager` is found by every browser of its type and resolves to 127.0.0.1 (where the
 * test's nodes listen). Like Android below API 34, it resolves one service at a time and fails
 * the others with `FAILURE_ALREADY_ACTIVE`; resolves complete on a thread of their own, as NSD's
 * do. `ServiceInfoCallback`s (API 34+) get the resolved service, and `onServiceLost` with [lose].
 */
@Implements(NsdManager::class)
class FakeNsd {
    @Implementation
    protected fun registerService(info: NsdServiceInfo, protocol: Int, listener: NsdManager.RegistrationListener) =
        registerService(info, protocol, Runnable::run, listener)

    @Implementation
    protected fun registerService(
        info: NsdServiceInfo,
        protocol: Int,
        executor: Executor,
        listener: NsdManager.RegistrationListener,
    ) {
        synchronized(Companion) { registrations[listener] = info }
        executor.execute { listener.onServiceRegistered(info) }
        announce(info)
    }

    @Implementation
    protected fun unregisterService(listener: NsdManager.RegistrationListener) {
        val info = synchronized(Companion) { registrations.remove(listener) } ?: error("not registered")
        listener.onServiceUnregistered(info)
        lose(info.serviceName)
    }

    @Implementation
    protected fun discoverServices(type: String, protocol: Int, listener: NsdManager.DiscoveryListener) =
        discoverServices(type, protocol, null, Runnable::run, listener)

    @Implementation
    protected fun discoverServices(
        type: String,
        protocol: Int,
        network: Network?,
        executor: Executor,
        listener: NsdManager.DiscoveryListener,
    ) {
        val present = synchronized(Companion) {
            browsers[listener] = type
            services.values.filter { it.serviceType == type }
        }
        executor.execute { listener.onDiscoveryStarted(type) }
        present.forEach { listener.onServiceFound(it) }
    }

    @Implementation
    protected fun stopServiceDiscovery(listener: NsdManager.DiscoveryListener) {
        val type = synchronized(Companion) { browsers.remove(listener) } ?: error("not browsing")
        listener.onDiscoveryStopped(type)
    }

    @Implementation
    protected fun resolveService(info: NsdServiceInfo, listener: NsdManager.ResolveListener) {
        val busy = synchronized(Companion) { resolving.also { resolving = true } }
        if (busy) {
            synchronized(Companion) { alreadyActive++ }
            listener.onResolveFailed(info, NsdManager.FAILURE_ALREADY_ACTIVE)
            return
        }
        resolver.execute {
            val found = synchronized(Companion) {
                resolving = false
                services[info.serviceName]?.let(::resolved)
            }
            if (found != null) listener.onServiceResolved(found) else listener.onResolveFailed(info, NsdManager.FAILURE_INTERNAL_ERROR)
        }
    }

    @Implementation
    protected fun registerServiceInfoCallback(
        info: NsdServiceInfo,
        executor: Executor,
        callback: NsdManager.ServiceInfoCallback,
    ) {
        val found = synchronized(Companion) {
            following[callback] = info.serviceName
            services[info.serviceName]?.let(::resolved)
        }
        if (found != null) executor.execute { callback.onServiceUpdated(found) }
    }

    @Implementation
    protected fun unregisterServiceInfoCallback(callback: NsdManager.ServiceInfoCallback) {
        synchronized(Companion) { following.remove(callback) } ?: error("not registered")
        callback.onServiceInfoCallbackUnregistered()
    }

    companion object {
        private val services = LinkedHashMap<String, NsdServiceInfo>()
        private val registrations = HashMap<NsdManager.RegistrationListener, NsdServiceInfo>()
        private val browsers = LinkedHashMap<NsdManager.DiscoveryListener, String>()
        private val following = HashMap<NsdManager.ServiceInfoCallback, String>()
        private var resolving = false
        private var alreadyActive = 0
        private val resolver = Executors.newSingleThreadExecutor { Thread(it, "fake-nsd").apply { isDaemon = true } }

        /** A service appears on the network: every browser of its type finds it. */
        fun announce(info: NsdServiceInfo) {
            val browsing = synchronized(this) {
                services[info.serviceName] = info
                browsers.filterValues { it == info.serviceType }.keys.toList()
            }
            browsing.forEach { it.onServiceFound(NsdServiceInfo().apply { serviceName = info.serviceName; serviceType = info.serviceType }) }
        }

        /** The service [name] leaves the network: browsers and the callbacks following it hear it. */
        fun lose(name: String) {
            val (info, browsing, callbacks) = synchronized(this) {
                Triple(
                    services.remove(name),
                    browsers.keys.toList(),
                    following.filterValues { it == name }.keys.toList(),
                )
            }
            if (info == null) return
            browsing.forEach { it.onServiceLost(info) }
            callbacks.forEach { it.onServiceLost() }
        }

        /** Services registered now (by the nodes under test), by instance name. */
        fun registered(): Map<String, NsdServiceInfo> = synchronized(this) { registrations.values.associateBy { it.serviceName } }

        /** How many `ServiceInfoCallback`s are registered now, for the service [name] or for any. */
        fun followers(name: String? = null): Int = synchronized(this) { following.values.count { name == null || it == name } }

        /** Browsers running now. */
        fun browsing(): Int = synchronized(this) { browsers.size }

        /** Resolves refused because another one ran (what a driver that does not queue gets). */
        fun refusedResolves(): Int = synchronized(this) { alreadyActive }

        /** The service as a resolve reports it: its record, at 127.0.0.1. */
        private fun resolved(info: NsdServiceInfo) = NsdServiceInfo().apply {
            serviceName = info.serviceName
            serviceType = info.serviceType
            port = info.port
            info.attributes.forEach { (key, value) -> setAttribute(key, value?.toString(Charsets.UTF_8)) }
            val loopback = InetAddress.getByName("127.0.0.1")
            @Suppress("DEPRECATION")
            host = loopback
            hostAddresses = listOf(loopback)
        }

        /** Between tests: an empty network. */
        @JvmStatic
        @Resetter
        fun reset() = synchronized(this) {
            services.clear()
            registrations.clear()
            browsers.clear()
            following.clear()
            resolving = false
            alreadyActive = 0
        }
    }
}
