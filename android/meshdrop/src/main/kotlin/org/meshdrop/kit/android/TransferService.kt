package org.meshdrop.kit.android

import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.app.Service
import android.content.Context
import android.content.Intent
import android.content.pm.ServiceInfo
import android.os.Build
import android.os.IBinder
import androidx.core.app.NotificationCompat
import androidx.core.app.ServiceCompat
import kotlinx.coroutines.Job
import kotlinx.coroutines.flow.takeWhile
import kotlinx.coroutines.launch
import org.meshdrop.ffi.NodeEvent

/**
 * Keeps the process in the foreground while a download runs (phones kill background transfers)
 * and shows its progress, as the node reports it, in a notification. Start it with [start]
 * after `download`; it stops itself on the transfer's finished or failed event.
 */
class TransferService : Service() {
    private var watching: Job? = null

    override fun onBind(intent: Intent?): IBinder? = null

    override fun onStartCommand(intent: Intent?, flags: Int, startId: Int): Int {
        val transferId = intent?.getLongExtra(EXTRA_TRANSFER, -1L)?.toULong()
        val events = host?.events
        if (transferId == null || events == null) {
            stopSelf(startId)
            return START_NOT_STICKY
        }
        channel()
        ServiceCompat.startForeground(
            this, NOTIFICATION, notification(0uL, 0uL),
            if (Build.VERSION.SDK_INT >= 29) ServiceInfo.FOREGROUND_SERVICE_TYPE_DATA_SYNC else 0,
        )
        watching?.cancel()
        watching = MeshdropHost.scope.launch {
            events.takeWhile { event ->
                when (event) {
                    is NodeEvent.TransferProgress -> {
                        if (event.transferId == transferId) notify(notification(event.done, event.total))
                        true
                    }
                    is NodeEvent.TransferFinished -> event.transferId != transferId
                    is NodeEvent.TransferFailed -> event.transferId != transferId
                    is NodeEvent.Stopped -> false
                    else -> true
                }
            }.collect {}
            stopSelf(startId)
        }
        return START_NOT_STICKY
    }

    override fun onDestroy() {
        watching?.cancel()
        super.onDestroy()
    }

    private fun notification(done: ULong, total: ULong): Notification {
        val percent = if (total == 0uL) 0 else (done * 100uL / total).toInt()
        return NotificationCompat.Builder(this, CHANNEL)
            .setSmallIcon(android.R.drawable.stat_sys_download)
            .setContentTitle("Receiving files")
            .setOngoing(true)
            .setOnlyAlertOnce(true)
            .setProgress(100, percent, total == 0uL)
            .build()
    }

    private fun notify(notification: Notification) =
        getSystemService(NotificationManager::class.java).notify(NOTIFICATION, notification)

    private fun channel() = getSystemService(NotificationManager::class.java).createNotificationChannel(
        NotificationChannel(CHANNEL, "Transfers", NotificationManager.IMPORTANCE_LOW),
    )

    companion object {
        private const val CHANNEL = "transfers"
        private const val NOTIFICATION = 1
        private const val EXTRA_TRANSFER = "transfer"

        /** The host whose events the service follows (set by the app once it started). */
        @Volatile
        var host: MeshdropHost? = null

        /** Shows the progress of `transferId` in the foreground until it ends. */
        fun start(context: Context, transferId: ULong) {
            val intent = Intent(context, TransferService::class.java)
                .putExtra(EXTRA_TRANSFER, transferId.toLong())
            context.startForegroundService(intent)
        }
    }
}
