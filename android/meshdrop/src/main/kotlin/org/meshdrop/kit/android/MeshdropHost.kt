package org.meshdrop.kit.android

import android.content.BroadcastReceiver
import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.net.Uri
import android.net.wifi.WifiManager
import android.net.ConnectivityManager
import android.net.Network
import android.net.NetworkCapabilities
import android.os.BatteryManager
import android.os.Build
import android.util.Log
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.SharedFlow
import kotlinx.coroutines.flow.SharingStarted
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.shareIn
import kotlinx.coroutines.launch
import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.withLock
import org.meshdrop.ffi.MeshdropException
import org.meshdrop.ffi.NodeConfig
import org.meshdrop.ffi.NodeEvent
import org.meshdrop.ffi.PendingOffer
import org.meshdrop.ffi.Recipient
import org.meshdrop.ffi.SendOutcome
import org.meshdrop.ffi.Transfer
import org.meshdrop.kit.Meshdrop
import java.io.File
import java.security.MessageDigest
import java.util.UUID

/** How the process's node runs. */
data class HostConfig(
    /** The device name others see; `null` keeps the stored one. */
    val deviceName: String? = null,
    /** Relay addresses the user entered: friends beyond the LAN reach the device through them. */
    val relays: List<String> = emptyList(),
    /** IPs to listen on; empty: every interface. */
    val bind: List<String> = emptyList(),
    /** Discover with the core's own mDNS (holding a MulticastLock) instead of Android's NSD. */
    val coreMdns: Boolean = false,
    /**
     * Links over Wi-Fi Aware ([WifiAwareLinkDriver]) to phones with no access point between
     * them; the node decides when to open one. Needs the Nearby devices permission granted.
     */
    val wifiAware: Boolean = false,
)

/**
 * The one node of the process, owned by the process (not by a screen): [getOrStart] starts it
 * or returns the running one, so a recreated or reopened Activity finds it as it was, and [quit]
 * stops it. Around the node it does the platform's part: discovery through NSD, the foreground
 * service while transfers run, offer and message notifications, received files saved to the
 * gallery. Screens show [events], [transfers] and what [node] reads, and forward taps here.
 */
class MeshdropHost private constructor(private val app: Context) {
    /** The node: peers, messages, rooms and every other call of the bindings. */
    lateinit var node: Meshdrop
        private set

    /** The node's events from the moment it started, for any number of collectors. */
    lateinit var events: SharedFlow<NodeEvent>
        private set

    private val lock = Any()
    private val watch = TransferWatch()
    private val notifications = Notifications(app)
    private val gallery = Gallery(app)
    internal val background = Background(app, notifications)
    private var sends = 0L
    private val summary = MutableStateFlow(TransferSummary())
    private var discovery: NsdDiscoveryDriver? = null
    private var links: WifiAwareLinkDriver? = null
    private val multicast = app.system<WifiManager>()
        .createMulticastLock("meshdrop-mdns")
        .apply { setReferenceCounted(false) }

    /** Tells the node each change of the power supply (a platform fact; the core decides). */
    private val power = object : BroadcastReceiver() {
        override fun onReceive(context: Context, intent: Intent) {
            try {
                node.setOnBattery(onBattery(intent))
            } catch (e: MeshdropException) {
                Log.w("meshdrop", "battery state: ${e.message}")
            }
        }
    }

    /** Tells the node whether the default network is metered (a platform fact; the core decides). */
    private val network = object : ConnectivityManager.NetworkCallback() {
        override fun onCapabilitiesChanged(network: Network, caps: NetworkCapabilities) {
            node.setMetered(!caps.hasCapability(NetworkCapabilities.NET_CAPABILITY_NOT_METERED))
        }
    }

    /** The transfers running now; the foreground service and its notification follow it. */
    val transfers: StateFlow<TransferSummary> = summary.asStateFlow()

    private suspend fun start(config: HostConfig) {
        // The battery's state now (a sticky broadcast), when the system has told it yet.
        val battery = app.registerReceiver(null, IntentFilter(Intent.ACTION_BATTERY_CHANGED))
        val nodeConfig = NodeConfig(
            dataDir = File(app.filesDir, "meshdrop").path,
            deviceName = config.deviceName,
            bind = config.bind,
            mdns = config.coreMdns,
            // A platform fact; the core decides what it means for seeding.
            onBattery = battery?.let(::onBattery) ?: !app.system<BatteryManager>().isCharging,
            relays = config.relays,
        )
        // Multicast reaches the app only under the lock, and only the core's own mDNS needs it.
        if (config.coreMdns) multicast.acquire()
        node = try {
            Meshdrop.start(nodeConfig, ::onEvent)
        } catch (e: Exception) {
            releaseMulticast()
            throw e
        }
        events = node.events.shareIn(scope, SharingStarted.Eagerly)
        // A system broadcast: it reaches a receiver that is not exported.
        val changes = IntentFilter(Intent.ACTION_BATTERY_CHANGED)
        if (Build.VERSION.SDK_INT >= 33) app.registerReceiver(power, changes, Context.RECEIVER_NOT_EXPORTED)
        else app.registerReceiver(power, changes)
        app.system<ConnectivityManager>().registerDefaultNetworkCallback(network)
        if (!config.coreMdns) discovery = NsdDiscoveryDriver(app, node, scope).also { it.start() }
        if (config.wifiAware) useWifiAware()
    }

    /**
     * Links over Wi-Fi Aware from now on ([WifiAwareLinkDriver]), as [HostConfig.wifiAware] does
     * at start: for an app that starts the node before the user granted the Nearby devices
     * permission. Later calls change nothing.
     */
    suspend fun useWifiAware() {
        val driver = synchronized(lock) {
            if (links != null) return
            WifiAwareLinkDriver(app, node, scope).also { links = it }
        }
        node.setLinkDriver(driver, listOf(WifiAwareLinkDriver.MEDIUM))
    }

    private suspend fun stop() {
        app.unregisterReceiver(power)
        app.system<ConnectivityManager>().unregisterNetworkCallback(network)
        discovery?.stop()
        node.shutdown()
        // The node stopped discovery on its way out; the callback thread goes too.
        links?.release()
        node.close()
        releaseMulticast()
    }

    private fun releaseMulticast() {
        if (multicast.isHeld) multicast.release()
    }

    /** Each event, on the bindings' thread, before [events] has it: what the platform shows. */
    private fun onEvent(event: NodeEvent) = synchronized(lock) {
        when (event) {
            // What waits for an answer is the node's to say; the notifications follow it.
            is NodeEvent.OfferReceived, is NodeEvent.OfferExpired -> showOffers()
            is NodeEvent.MessageReceived -> if (!event.message.outgoing) {
                val room = (event.message.to as? Recipient.Room)?.roomId
                val rooms = if (this::node.isInitialized && room != null) node.rooms() else emptyList()
                notifications.message(event.message, rooms.find { it.id == room }?.name)
            }
            // Offers end with the node that received them.
            NodeEvent.Stopped -> notifications.offers(emptyList())
            else -> {}
        }
        val finished = watch.onEvent(event)
        if (finished != null && event is NodeEvent.TransferFinished) save(event.transferId, finished, event.paths)
        publish()
    }

    /** Shows a notification for each offer the node says waits for an answer, and none else. */
    private fun showOffers() = synchronized(lock) {
        if (this::node.isInitialized) notifications.offers(node.pendingOffers())
    }

    /**
     * Saves a finished transfer's files ([paths], as the node reports them, under [dir]) to the
     * gallery; it counts as running until then.
     */
    private fun save(transferId: ULong, dir: File, paths: List<String>) = scope.launch(Dispatchers.IO) {
        try {
            gallery.save(dir, paths.map(::File))
        } finally {
            synchronized(lock) {
                watch.ended(transferId)
                publish()
            }
        }
    }

    private fun publish() {
        val now = watch.summary()
        background.apply(now)
        summary.value = now
    }

    /**
     * Downloads [ticket]; its verified files then go to the gallery (see [Gallery]). The same
     * ticket downloaded again resumes where it stopped. Close the returned [Transfer] when done.
     */
    fun download(ticket: String): Transfer = synchronized(lock) {
        val text = ticket.trim()
        val dest = File(app.filesDir, "incoming/" + sha256(text).take(32))
        val transfer = node.download(text, dest.path, null)
        watch.downloading(transfer.id(), dest)
        background.userStarted()
        publish()
        transfer
    }

    /**
     * Offers [items] (picked documents, or [ShareIn.items]) to the nearby device [peerId] and
     * follows the offer to its end. The core reads them where they are (no copy); they are
     * closed when it returns.
     */
    suspend fun send(peerId: String, items: List<Uri>): SendOutcome {
        val send = synchronized(lock) {
            watch.sending(++sends, peerId)
            background.userStarted()
            publish()
            sends
        }
        try {
            return ContentUriFiles(app, items).use { node.sendHostFiles(peerId, it) }
        } finally {
            synchronized(lock) {
                watch.sent(send)
                publish()
            }
        }
    }

    /**
     * Shares [items] and returns the ticket to give to others. The core reads them where they are
     * (no copy) while the process lives; after a restart the share is listed unavailable until
     * the same items are shared again.
     */
    suspend fun share(items: List<Uri>): String {
        val files = ContentUriFiles(app, items)
        try {
            return node.shareHostFiles(files)
        } catch (e: Exception) {
            files.close()
            throw e
        }
    }

    /** Accepts the offer [offerId] (all files, or the indexes in [files]); they go to the gallery. */
    fun accept(offerId: ULong, files: List<UInt>? = null) = synchronized(lock) {
        val offer = node.pendingOffers().find { it.offerId == offerId }
        val dest = File(app.filesDir, "incoming/" + UUID.randomUUID())
        try {
            node.acceptOffer(offerId, dest.path, files)
        } finally {
            showOffers()
        }
        if (offer != null) {
            val bytes = files?.sumOf { offer.files[it.toInt()].size } ?: offer.total
            watch.accepted(offer.peerId, bytes, dest)
        }
        background.userStarted()
        publish()
    }

    /** The offers that wait for an answer, as the node lists them, for a screen created after they came. */
    fun pendingOffers(): List<PendingOffer> = node.pendingOffers()

    /** Declines the offer [offerId]; nothing is written. */
    fun decline(offerId: ULong) = synchronized(lock) {
        try {
            node.declineOffer(offerId)
        } finally {
            showOffers()
        }
    }

    companion object {
        /** The scope of the process: the node lives as long as the process does. */
        val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)

        private val starting = Mutex()

        /** The running host, if any. */
        @Volatile
        var running: MeshdropHost? = null
            private set

        /**
         * The process's node: the running one, or one started with [config] in the app's
         * private files folder. Screens call it each time they are created; the offers that
         * wait for an answer get their notifications back (one swiped away, or missed).
         */
        suspend fun getOrStart(context: Context, config: HostConfig = HostConfig()): MeshdropHost =
            starting.withLock {
                (running ?: MeshdropHost(context.applicationContext).also {
                    it.start(config)
                    running = it
                }).also { it.showOffers() }
            }

        /** Whether a `ACTION_BATTERY_CHANGED` intent says the device runs on its battery. */
        private fun onBattery(battery: Intent) = battery.getIntExtra(BatteryManager.EXTRA_PLUGGED, 0) == 0

        /** Stops the node (the user quit): returns once it has fully stopped. */
        suspend fun quit(): Unit = starting.withLock {
            running?.let {
                it.stop()
                running = null
            }
        }

        private fun sha256(text: String): String =
            MessageDigest.getInstance("SHA-256").digest(text.toByteArray()).joinToString("") { "%02x".format(it) }
    }
}

/** A system service of the platform. */
internal inline fun <reified T : Any> Context.system(): T =
    checkNotNull(getSystemService(T::class.java)) { "no ${T::class.java.simpleName} on this device" }
