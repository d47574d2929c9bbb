package org.meshdrop.kit.android

import android.app.Notification
import android.app.NotificationManager
import android.app.Service
import android.content.Context
import android.content.Intent
import android.content.pm.ServiceInfo
import android.net.wifi.WifiManager
import android.os.Build
import android.os.IBinder
import android.os.PowerManager
import android.util.Log

/**
 * Keeps the process in the foreground (type `dataSync`) while any transfer runs: downloads,
 * sends and accepted offers, with one notification summing them up. The host starts it; it stops
 * itself after the last transfer, and on the platform's `dataSync` time limit ([onTimeout]):
 * the node goes on as long as the process lives and resumes unfinished downloads at its next start.
 */
class TransferService : Service() {
    private var background: Background? = null

    override fun onBind(intent: Intent?): IBinder? = null

    override fun onStartCommand(intent: Intent?, flags: Int, startId: Int): Int {
        val background = MeshdropHost.running?.background
        this.background = background
        if (background != null) {
            background.attach(this)
        } else {
            // Started for a host that has quit since: the platform still wants startForeground.
            enterForeground(Notifications(this).transfers(TransferSummary()))
            finish()
        }
        return START_NOT_STICKY
    }

    /** Android 15+: this service used up its `dataSync` time for the day. */
    override fun onTimeout(startId: Int, fgsType: Int) {
        background?.timedOut(this) ?: finish()
    }

    override fun onDestroy() {
        background?.detach(this)
        super.onDestroy()
    }

    internal fun enterForeground(notification: Notification) =
        startForeground(NOTIFICATION, notification, ServiceInfo.FOREGROUND_SERVICE_TYPE_DATA_SYNC)

    internal fun show(notification: Notification) =
        system<NotificationManager>().notify(NOTIFICATION, notification)

    internal fun finish() {
        stopForeground(STOP_FOREGROUND_REMOVE)
        stopSelf()
    }

    private companion object {
        const val NOTIFICATION = 1
    }
}

/**
 * What the phone does for the running transfers ([apply] gets each new summary): the foreground
 * service with its notification while any runs, a partial wake lock and a Wi-Fi lock only while
 * bytes move. After the `dataSync` time limit, or when the platform refuses a foreground start
 * (the app is in the background), it waits for the user's next transfer or for all to end.
 */
internal class Background(private val context: Context, private val notifications: Notifications) {
    private val wakeLock = context.system<PowerManager>()
        .newWakeLock(PowerManager.PARTIAL_WAKE_LOCK, "meshdrop:transfer")
        .apply { setReferenceCounted(false) }
    private val wifiLock = context.system<WifiManager>()
        .createWifiLock(
            // From API 34 the high-performance mode does nothing; low latency is what is left.
            if (Build.VERSION.SDK_INT >= 34) WifiManager.WIFI_MODE_FULL_LOW_LATENCY else @Suppress("DEPRECATION") WifiManager.WIFI_MODE_FULL_HIGH_PERF,
            "meshdrop:transfer",
        )
        .apply { setReferenceCounted(false) }
    private var summary = TransferSummary()
    private var service: TransferService? = null
    private var requested = false
    private var blocked = false

    /** The transfers now. */
    @Synchronized
    fun apply(now: TransferSummary) {
        if (now == summary) return
        summary = now
        if (now.idle) blocked = false
        hold(now.moving && !blocked)
        val running = service
        when {
            now.idle -> running?.let(::stop)
            running != null -> running.show(notifications.transfers(now))
            !requested && !blocked -> request()
        }
    }

    /** The user started a transfer: the platform lets a foreground service start again. */
    @Synchronized
    fun userStarted() {
        blocked = false
        if (!summary.idle && service == null && !requested) request()
        hold(summary.moving)
    }

    /** The service started: it goes to the foreground, and stops at once when nothing runs. */
    @Synchronized
    fun attach(started: TransferService) {
        requested = false
        started.enterForeground(notifications.transfers(summary))
        if (summary.idle || blocked) {
            started.finish()
        } else {
            service = started
        }
    }

    /** The platform's time limit: stop now, hold nothing, until the user's next transfer. */
    @Synchronized
    fun timedOut(timed: TransferService) {
        blocked = true
        hold(false)
        stop(timed)
    }

    /** The service is gone. */
    @Synchronized
    fun detach(gone: TransferService) {
        if (service === gone) service = null
    }

    private fun stop(running: TransferService) {
        if (service === running) service = null
        running.finish()
    }

    private fun request() {
        requested = try {
            context.startForegroundService(Intent(context, TransferService::class.java))
            true
        } catch (e: IllegalStateException) {
            // ForegroundServiceStartNotAllowedException: the app is in the background.
            Log.w("meshdrop", "no foreground service for the transfers now: ${e.message}")
            blocked = true
            false
        }
    }

    private fun hold(on: Boolean) {
        if (on) {
            // A bound, so a lost release cannot keep the phone awake for long; a transfer that
            // still moves then takes the lock again with its next progress.
            if (!wakeLock.isHeld) wakeLock.acquire(WAKE_LOCK_MS)
            if (!wifiLock.isHeld) wifiLock.acquire()
        } else {
            if (wakeLock.isHeld) wakeLock.release()
            if (wifiLock.isHeld) wifiLock.release()
        }
    }

    private companion object {
        const val WAKE_LOCK_MS = 10 * 60 * 1000L
    }
}
