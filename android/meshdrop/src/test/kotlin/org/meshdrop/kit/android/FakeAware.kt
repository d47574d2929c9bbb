package org.meshdrop.kit.android

import android.net.ConnectivityManager
import android.net.NetworkCapabilities
import android.net.NetworkRequest
import android.net.wifi.aware.AttachCallback
import android.net.wifi.aware.DiscoverySessionCallback
import android.net.wifi.aware.PeerHandle
import android.net.wifi.aware.PublishConfig
import android.net.wifi.aware.PublishDiscoverySession
import android.net.wifi.aware.SubscribeConfig
import android.net.wifi.aware.SubscribeDiscoverySession
import android.net.wifi.aware.WifiAwareManager
import android.net.wifi.aware.WifiAwareNetworkInfo
import android.net.wifi.aware.WifiAwareNetworkSpecifier
import android.net.wifi.aware.WifiAwareSession
import android.os.Binder
import android.os.Handler
import android.os.Looper
import org.robolectric.annotation.Implementation
import org.robolectric.annotation.Implements
import org.robolectric.annotation.RealObject
import org.robolectric.annotation.Resetter
import org.robolectric.shadow.api.Shadow
import org.robolectric.shadows.ShadowConnectivityManager
import org.robolectric.shadows.ShadowNetwork
import org.robolectric.shadows.ShadowNetworkCapabilities
import java.net.Inet6Address
import java.net.InetAddress
import java.util.concurrent.Executors

/**
 * Wi-Fi Aware in the test process: every `WifiAwareManager` attaches to one pretend neighbourhood
 * where each subscription discovers every other client's publication of its service (with its
 * service-specific info), messages go from a discovery session to the peer handle's session, a
 * closed publication is lost by the subscribers that found it, and a data path comes up once
 * both its initiator and its responder requested it ([FakeAwareNetworks]): each gets a network
 * whose `WifiAwareNetworkInfo` names the peer at ::1 (the port is the responder's). Callbacks
 * run on the handlers the app gave, as on a phone.
 */
@Implements(WifiAwareManager::class)
class FakeAware {
    @RealObject
    private lateinit var manager: WifiAwareManager

    @Implementation
    protected fun isAvailable() = synchronized(Companion) { available }

    @Implementation
    protected fun attach(callback: AttachCallback, handler: Handler?) {
        val (client, session) = synchronized(Companion) {
            val id = ++ids
            clients += id
            id to WifiAwareSession(manager, Binder(), id)
        }
        on(handler?.looper) { callback.onAttached(session) }
    }

    @Implementation
    protected fun disconnect(clientId: Int, binder: Binder) {
        val ended = synchronized(Companion) {
            clients -= clientId
            discoveries.values.filter { it.client == clientId }.map { it.id }
        }
        ended.forEach { terminateSession(clientId, it) }
    }

    @Implementation
    protected fun publish(clientId: Int, looper: Looper, config: PublishConfig, callback: DiscoverySessionCallback) {
        val id = synchronized(Companion) { ++ids }
        val session = PublishDiscoverySession(manager, clientId, id)
        add(Discovery(id, clientId, true, config.mServiceName.decodeToString(), config.mServiceSpecificInfo, callback, looper))
        on(looper) { callback.onPublishStarted(session) }
        match()
    }

    @Implementation
    protected fun subscribe(clientId: Int, looper: Looper, config: SubscribeConfig, callback: DiscoverySessionCallback) {
        val id = synchronized(Companion) { ++ids }
        val session = SubscribeDiscoverySession(manager, clientId, id)
        add(Discovery(id, clientId, false, config.mServiceName.decodeToString(), config.mServiceSpecificInfo, callback, looper))
        on(looper) { callback.onSubscribeStarted(session) }
        match()
    }

    @Implementation
    protected fun terminateSession(clientId: Int, sessionId: Int) {
        val (gone, losing) = synchronized(Companion) {
            val gone = discoveries.remove(sessionId) ?: return
            gone to discoveries.values.filter { told.remove(it.id to gone.id) }
        }
        losing.forEach {
            on(it.looper) { it.callback.onServiceLost(PeerHandle(gone.id), WifiAwareManager.WIFI_AWARE_DISCOVERY_LOST_REASON_PEER_NOT_VISIBLE) }
        }
    }

    @Implementation
    protected fun sendMessage(clientId: Int, sessionId: Int, peer: PeerHandle, message: ByteArray, messageId: Int, retryCount: Int) {
        val (from, to) = synchronized(Companion) {
            sent += message.decodeToString()
            discoveries[sessionId] to discoveries[peer.peerId]
        }
        from ?: return
        if (to == null) {
            on(from.looper) { from.callback.onMessageSendFailed(messageId) }
            return
        }
        on(to.looper) { to.callback.onMessageReceived(PeerHandle(from.id), message) }
        on(from.looper) { from.callback.onMessageSendSucceeded(messageId) }
    }

    /** A publication or subscription. */
    private class Discovery(
        val id: Int,
        val client: Int,
        val publish: Boolean,
        val service: String,
        val info: ByteArray,
        val callback: DiscoverySessionCallback,
        val looper: Looper,
    )

    companion object {
        private var available = true
        private var ids = 0
        private val clients = HashSet<Int>()
        private val discoveries = LinkedHashMap<Int, Discovery>()

        /** (subscription, publication) pairs the subscription discovered. */
        private val told = HashSet<Pair<Int, Int>>()

        /** Data paths requested and not released: the callback and what it asked for. */
        private val requests = LinkedHashMap<ConnectivityManager.NetworkCallback, WifiAwareNetworkSpecifier>()
        private val sent = ArrayList<String>()
        private var networks = 100
        private val connectivity = Executors.newCachedThreadPool { Thread(it, "fake-connectivity").apply { isDaemon = true } }

        private fun on(looper: Looper?, block: () -> Unit) {
            Handler(looper ?: Looper.getMainLooper()).post(block)
        }

        private fun add(discovery: Discovery) = synchronized(this) { discoveries[discovery.id] = discovery }

        /** Every subscription discovers every other client's publication of its service, once. */
        private fun match() {
            val news = synchronized(this) {
                val all = discoveries.values
                all.filter { !it.publish }.flatMap { sub ->
                    all.filter { it.publish && it.client != sub.client && it.service == sub.service && told.add(sub.id to it.id) }
                        .map { sub to it }
                }
            }
            for ((sub, pub) in news) {
                on(sub.looper) { sub.callback.onServiceDiscovered(PeerHandle(pub.id), pub.info, emptyList()) }
            }
        }

        /** A data path request ([FakeAwareNetworks]): both ends up once both asked. */
        internal fun request(specifier: WifiAwareNetworkSpecifier, callback: ConnectivityManager.NetworkCallback) {
            val pair = synchronized(this) {
                requests[callback] = specifier
                requests.entries.firstOrNull { (_, other) ->
                    other.role != specifier.role && other.sessionId == specifier.peerId && other.peerId == specifier.sessionId
                }?.let { (other, otherSpec) -> Triple(other, otherSpec, ++networks) }
            } ?: return
            val (other, otherSpec, netId) = pair
            val responderPort = if (specifier.role == RESPONDER) specifier.port else otherSpec.port
            up(callback, netId, if (specifier.role == RESPONDER) 0 else responderPort)
            up(other, netId, if (otherSpec.role == RESPONDER) 0 else responderPort)
        }

        private fun up(callback: ConnectivityManager.NetworkCallback, netId: Int, port: Int) {
            val network = ShadowNetwork.newInstance(netId)
            val loopback = InetAddress.getByName("::1") as Inet6Address
            val caps = ShadowNetworkCapabilities.newInstance()
            val shadow = Shadow.extract<ShadowNetworkCapabilities>(caps)
            shadow.addTransportType(NetworkCapabilities.TRANSPORT_WIFI_AWARE)
            shadow.setTransportInfo(WifiAwareNetworkInfo(loopback, port, if (port > 0) TCP else -1, emptyList()))
            connectivity.execute {
                callback.onAvailable(network)
                callback.onCapabilitiesChanged(network, caps)
            }
        }

        internal fun released(callback: ConnectivityManager.NetworkCallback) = synchronized(this) { requests.remove(callback) }

        private const val RESPONDER = 1
        private const val TCP = 6

        /** Wi-Fi Aware is (not) available on the phones from now. */
        fun setAvailable(yes: Boolean) = synchronized(this) { available = yes }

        /** Clients attached now. */
        fun attached(): Int = synchronized(this) { clients.size }

        /** Publications and subscriptions running now. */
        fun discoveries(): Int = synchronized(this) { discoveries.size }

        /** Data path requests not released. */
        fun dataPaths(): Int = synchronized(this) { requests.size }

        /** Every message sent so far, as text. */
        fun messages(): List<String> = synchronized(this) { sent.toList() }

        /** Between tests: nobody around. */
        @JvmStatic
        @Resetter
        fun reset() = synchronized(this) {
            available = true
            clients.clear()
            discoveries.clear()
            told.clear()
            requests.clear()
            sent.clear()
        }
    }
}

/** `ConnectivityManager` as Robolectric has it, plus Wi-Fi Aware data paths from [FakeAware]. */
@Implements(ConnectivityManager::class)
class FakeAwareNetworks : ShadowConnectivityManager() {
    @Implementation
    override fun requestNetwork(request: NetworkRequest, callback: ConnectivityManager.NetworkCallback) {
        super.requestNetwork(request, callback)
        val specifier = request.networkSpecifier as? WifiAwareNetworkSpecifier ?: return
        FakeAware.request(specifier, callback)
    }

    @Implementation
    override fun unregisterNetworkCallback(callback: ConnectivityManager.NetworkCallback) {
        FakeAware.released(callback)
        super.unregisterNetworkCallback(callback)
    }

    companion object {
        @JvmStatic
        @Resetter
        fun resetNetworks() = ShadowConnectivityManager.reset()
    }
}
