package org.meshdrop.kit.android

import android.content.BroadcastReceiver
import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.net.ConnectivityManager
import android.net.Network
import android.net.NetworkCapabilities
import android.net.NetworkRequest
import android.net.wifi.aware.AttachCallback
import android.net.wifi.aware.DiscoverySession
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
import android.os.Build
import android.os.Handler
import android.os.HandlerThread
import android.util.Log
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.launch
import org.meshdrop.ffi.LinkDirection
import org.meshdrop.ffi.LinkDriver
import org.meshdrop.ffi.NodeInterface
import org.meshdrop.kit.addLink
import java.net.ServerSocket
import java.net.Socket
import java.util.concurrent.atomic.AtomicBoolean
import kotlin.concurrent.thread

/**
 * The node's links over Wi-Fi Aware (NAN, API 26+; this library needs 29): phones near each other
 * with no access point between them. Give it to the node with
 * `node.setLinkDriver(driver, listOf(WifiAwareLinkDriver.MEDIUM))`; the node then starts and
 * stops discovery and asks for links, and this driver only does what it is asked:
 *
 * - discovery attaches to Wi-Fi Aware and both publishes and subscribes the service
 *   [SERVICE]; the service-specific info is this node's peer id (UTF-8), so each discovered
 *   device goes to `deviceNearby(MEDIUM, <peer handle id>, <peer id>)` (and `deviceLost` from
 *   API 31);
 * - `openLink(device)` (this phone subscribed and found the device) sends [OPEN] to the
 *   device's publisher; the publisher opens a `ServerSocket`, requests a Wi-Fi Aware network as
 *   responder with the port in its specifier, and answers [READY] with the port; the subscriber
 *   then requests the network as initiator and connects to the peer's IPv6 address and port
 *   from `WifiAwareNetworkInfo`. Each end hands its socket to the node ([addLink]: outbound on
 *   the subscriber, inbound on the publisher), and the network is released when the link ends.
 *
 * When Wi-Fi Aware goes away (Wi-Fi turned off, a hotspot started) discovery stops and the node
 * is told (it asks again after a wait); when the platform says it is back
 * (`ACTION_WIFI_AWARE_STATE_CHANGED`) discovery the node asked for starts again at once.
 *
 * The data path is secured with a fixed passphrase only because the platform carries the port
 * only over a secured path: the link's Noise handshake authenticates the peer, as on the LAN.
 * Needs `NEARBY_WIFI_DEVICES` (API 33+) or `ACCESS_FINE_LOCATION` (below), `ACCESS_WIFI_STATE`
 * and `CHANGE_WIFI_STATE`. Reports reach the node one after the other, in [scope].
 */
class WifiAwareLinkDriver internal constructor(
    private val context: Context,
    private val node: NodeInterface,
    private val scope: CoroutineScope,
    private val listen: () -> ServerSocket,
) : LinkDriver {
    /** A driver for [node] (whose peer id it advertises); its calls to the node run in [scope]. */
    constructor(context: Context, node: NodeInterface, scope: CoroutineScope) :
        this(context, node, scope, { ServerSocket(0) })

    private val aware: WifiAwareManager? = context.getSystemService(WifiAwareManager::class.java)
    private val connectivity = context.system<ConnectivityManager>()
    private val peerId = node.peerId()
    private val callbacks = HandlerThread("meshdrop-wifi-aware").apply { start() }
    private val handler = Handler(callbacks.looper)
    private val reports = Channel<suspend () -> Unit>(Channel.UNLIMITED)

    /** The node asked for discovery (and has not stopped it): it starts again when Aware is back. */
    private var wanted = false
    private var discovering = false
    private var session: WifiAwareSession? = null
    private var publishing: PublishDiscoverySession? = null
    private var subscribing: SubscribeDiscoverySession? = null
    private var messages = 0

    /** Devices the subscription found, by the id given to the node. */
    private val found = HashMap<String, PeerHandle>()

    /** Links being set up or up: what each holds (its network request, its server socket). */
    private val links = HashSet<Opening>()

    /** Wi-Fi Aware came or went (a broadcast only registered receivers get, on [handler]). */
    private val availability = object : BroadcastReceiver() {
        override fun onReceive(context: Context, intent: Intent) {
            val available = aware?.isAvailable == true
            val (restart, drop) = synchronized(this@WifiAwareLinkDriver) {
                (available && wanted && !discovering) to (!available && discovering)
            }
            if (restart) startDiscovery(MEDIUM)
            if (drop) discoveryFailed()
        }
    }

    init {
        scope.launch { for (report in reports) report() }
        val changes = IntentFilter(WifiAwareManager.ACTION_WIFI_AWARE_STATE_CHANGED)
        if (Build.VERSION.SDK_INT >= 33) {
            context.registerReceiver(availability, changes, null, handler, Context.RECEIVER_NOT_EXPORTED)
        } else {
            context.registerReceiver(availability, changes, null, handler)
        }
    }

    override fun startDiscovery(medium: String) {
        if (medium != MEDIUM) return
        val aware = aware
        synchronized(this) {
            wanted = true
            if (discovering) return
            discovering = true
        }
        if (aware == null || !aware.isAvailable) {
            Log.w(TAG, "Wi-Fi Aware is not available: no links over it")
            discoveryFailed()
            return
        }
        aware.attach(object : AttachCallback() {
            override fun onAttached(session: WifiAwareSession) = attached(session)
            override fun onAttachFailed() {
                Log.w(TAG, "Wi-Fi Aware attach failed")
                discoveryFailed()
            }
            override fun onAwareSessionTerminated() {
                Log.w(TAG, "Wi-Fi Aware session ended")
                discoveryFailed()
            }
        }, handler)
    }

    /** Discovery stopped without being asked (Aware off, attach or a session failed): everything
     * is dropped and the node told; it calls [startDiscovery] again after a wait. */
    private fun discoveryFailed() {
        drop()
        report("discovery failed") { node.linkDiscoveryFailed(MEDIUM) }
    }

    override fun stopDiscovery(medium: String) {
        if (medium != MEDIUM) return
        synchronized(this) { wanted = false }
        drop()
    }

    /** Closes the sessions and releases every link's network; what the node wants stays. */
    private fun drop() {
        val open = synchronized(this) {
            discovering = false
            publishing?.close()
            subscribing?.close()
            session?.close()
            publishing = null
            subscribing = null
            session = null
            found.clear()
            links.toList().also { links.clear() }
        }
        open.forEach(Opening::release)
    }

    override fun openLink(medium: String, device: String) {
        if (medium != MEDIUM) return
        synchronized(this) {
            val peer = found[device]
            val subscription = subscribing
            if (peer == null || subscription == null) {
                Log.w(TAG, "no Wi-Fi Aware device $device to open a link to")
                return
            }
            subscription.sendMessage(peer, ++messages, OPEN)
        }
    }

    /** Stops everything (as `stopDiscovery`) and ends the callback thread; the driver is done. */
    fun release() {
        stopDiscovery(MEDIUM)
        context.unregisterReceiver(availability)
        reports.close()
        callbacks.quitSafely()
    }

    @Synchronized
    private fun attached(session: WifiAwareSession) {
        if (!discovering) {
            session.close()
            return
        }
        this.session = session
        val info = peerId.toByteArray(Charsets.UTF_8)
        session.publish(
            PublishConfig.Builder().setServiceName(SERVICE).setServiceSpecificInfo(info).build(),
            object : DiscoverySessionCallback() {
                override fun onPublishStarted(session: PublishDiscoverySession) = started(session)
                override fun onMessageReceived(peer: PeerHandle, message: ByteArray) = published(peer, message)
                override fun onSessionConfigFailed() {
                    Log.w(TAG, "Wi-Fi Aware publish failed")
                    discoveryFailed()
                }
            },
            handler,
        )
        session.subscribe(
            SubscribeConfig.Builder().setServiceName(SERVICE).setServiceSpecificInfo(info).build(),
            object : DiscoverySessionCallback() {
                override fun onSubscribeStarted(session: SubscribeDiscoverySession) = started(session)
                override fun onServiceDiscovered(peer: PeerHandle, info: ByteArray?, filter: List<ByteArray>?) =
                    discovered(peer, info)
                override fun onServiceLost(peer: PeerHandle, reason: Int) = lost(peer)
                override fun onMessageReceived(peer: PeerHandle, message: ByteArray) = subscribed(peer, message)
                override fun onSessionConfigFailed() {
                    Log.w(TAG, "Wi-Fi Aware subscribe failed")
                    discoveryFailed()
                }
            },
            handler,
        )
    }

    @Synchronized
    private fun started(session: DiscoverySession) {
        if (!discovering || this.session == null) {
            session.close()
            return
        }
        when (session) {
            is PublishDiscoverySession -> publishing = session
            is SubscribeDiscoverySession -> subscribing = session
        }
    }

    @Synchronized
    private fun discovered(peer: PeerHandle, info: ByteArray?) {
        if (!discovering) return
        val device = deviceId(peer)
        found[device] = peer
        val id = info?.takeIf { it.isNotEmpty() }?.toString(Charsets.UTF_8)
        report("device nearby") { node.deviceNearby(MEDIUM, device, id) }
    }

    @Synchronized
    private fun lost(peer: PeerHandle) {
        val device = deviceId(peer)
        if (found.remove(device) == null) return
        report("device lost") { node.deviceLost(MEDIUM, device) }
    }

    /** The publisher hears [OPEN]: it listens, requests the network as responder, answers [READY]. */
    @Synchronized
    private fun published(peer: PeerHandle, message: ByteArray) {
        val publication = publishing ?: return
        if (!message.contentEquals(OPEN)) return
        val server = try {
            listen()
        } catch (e: Exception) {
            Log.w(TAG, "no server socket for a Wi-Fi Aware link: ${e.message}")
            return
        }
        val specifier = WifiAwareNetworkSpecifier.Builder(publication, peer)
            .setPskPassphrase(PASSPHRASE)
            .setPort(server.localPort)
            .build()
        val opening = Opening(server = server)
        links += opening
        opening.request(specifier) { _, _ -> }
        thread(name = "meshdrop-wifi-aware-accept", isDaemon = true) { accept(opening, server) }
        publication.sendMessage(peer, ++messages, READY + server.localPort.toString().toByteArray())
    }

    /** The subscriber hears [READY]: it requests the network as initiator and connects. */
    @Synchronized
    private fun subscribed(peer: PeerHandle, message: ByteArray) {
        val subscription = subscribing ?: return
        if (message.size <= READY.size || !message.copyOf(READY.size).contentEquals(READY)) return
        val port = message.copyOfRange(READY.size, message.size).toString(Charsets.UTF_8).toIntOrNull() ?: return
        val device = deviceId(peer)
        val specifier = WifiAwareNetworkSpecifier.Builder(subscription, peer)
            .setPskPassphrase(PASSPHRASE)
            .build()
        val opening = Opening(server = null)
        links += opening
        opening.request(specifier) { network, info ->
            val address = info.peerIpv6Addr ?: return@request opening.release()
            val to = if (info.port > 0) info.port else port
            thread(name = "meshdrop-wifi-aware-connect", isDaemon = true) {
                val socket = try {
                    network.socketFactory.createSocket(address, to)
                } catch (e: Exception) {
                    Log.w(TAG, "Wi-Fi Aware connect failed: ${e.message}")
                    opening.release()
                    return@thread
                }
                hand(opening, socket, LinkDirection.OUTBOUND, device)
            }
        }
    }

    private fun accept(opening: Opening, server: ServerSocket) {
        val socket = try {
            server.soTimeout = ACCEPT_TIMEOUT_MS
            server.accept()
        } catch (e: Exception) {
            Log.w(TAG, "no Wi-Fi Aware link came: ${e.message}")
            opening.release()
            return
        } finally {
            runCatching { server.close() }
        }
        hand(opening, socket, LinkDirection.INBOUND, null)
    }

    /** Hands [socket] to the node; the network goes when the link ends. */
    private fun hand(opening: Opening, socket: Socket, direction: LinkDirection, device: String?) {
        scope.launch {
            runCatching { addLink(node, socket, direction, MEDIUM, device, onEnd = opening::release) }
                .onFailure { Log.w(TAG, "Wi-Fi Aware link not added: ${it.message}") }
        }
    }

    private fun report(what: String, call: suspend () -> Unit) {
        reports.trySend { runCatching { call() }.onFailure { Log.w(TAG, "$what: ${it.message}") } }
    }

    /** One link's Wi-Fi Aware network and server socket, released once. */
    private inner class Opening(private val server: ServerSocket?) {
        private val released = AtomicBoolean(false)
        private var callback: ConnectivityManager.NetworkCallback? = null

        /** Requests the data path; [ready] gets the network with the peer's address. */
        fun request(specifier: android.net.NetworkSpecifier, ready: (Network, WifiAwareNetworkInfo) -> Unit) {
            val request = NetworkRequest.Builder()
                .addTransportType(NetworkCapabilities.TRANSPORT_WIFI_AWARE)
                .setNetworkSpecifier(specifier)
                .build()
            val once = AtomicBoolean(false)
            val callback = object : ConnectivityManager.NetworkCallback() {
                override fun onCapabilitiesChanged(network: Network, capabilities: NetworkCapabilities) {
                    val info = capabilities.transportInfo as? WifiAwareNetworkInfo ?: return
                    if (once.compareAndSet(false, true)) ready(network, info)
                }
                override fun onUnavailable() = release()
            }
            this.callback = callback
            connectivity.requestNetwork(request, callback)
        }

        fun release() {
            if (!released.compareAndSet(false, true)) return
            synchronized(this@WifiAwareLinkDriver) { links.remove(this) }
            runCatching { server?.close() }
            callback?.let { runCatching { connectivity.unregisterNetworkCallback(it) } }
        }
    }

    companion object {
        /** The medium's name for the node. */
        const val MEDIUM = "wifi-aware"

        /** The Wi-Fi Aware service every meshdrop phone publishes and subscribes. */
        const val SERVICE = "meshdrop"

        /** Subscriber to publisher: open a link. */
        internal val OPEN = "meshdrop-link-open".toByteArray()

        /** Publisher to subscriber: listening, the port follows. */
        internal val READY = "meshdrop-link-ready:".toByteArray()

        /** The data path's passphrase: not a secret (Noise authenticates the link). */
        private const val PASSPHRASE = "meshdrop-link-v1"

        private const val ACCEPT_TIMEOUT_MS = 30_000
        private const val TAG = "meshdrop"

        /** The node's name for a device the subscription found. */
        internal fun deviceId(peer: PeerHandle) = peer.hashCode().toString()
    }
}
