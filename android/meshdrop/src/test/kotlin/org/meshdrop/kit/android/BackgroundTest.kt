package org.meshdrop.kit.android

import android.app.Notification
import android.app.NotificationManager
import android.content.pm.ServiceInfo
import android.net.Uri
import android.net.wifi.WifiManager
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Before
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import org.junit.runner.RunWith
import org.meshdrop.ffi.NodeEvent
import org.meshdrop.ffi.SendOutcome
import org.robolectric.Robolectric
import org.robolectric.RobolectricTestRunner
import org.robolectric.Shadows.shadowOf
import org.robolectric.android.controller.ServiceController
import org.robolectric.shadows.ShadowPowerManager
import java.util.Collections

/**
 * The phone keeps working while a transfer runs, of every kind: a foreground service with one
 * summary notification, wake and Wi-Fi locks only while bytes move, stopped after the last one.
 */
@RunWith(RobolectricTestRunner::class)
class BackgroundTest {
    @get:Rule
    val tmp = TemporaryFolder()
    private lateinit var media: FakeMediaStore
    private val devices = mutableListOf<Device>()
    private val recorders = mutableListOf<Job>()

    /** What the phone showed and held when the host published a summary. */
    private data class Moment(val summary: TransferSummary, val locks: Boolean, val shown: String?)

    @Before
    fun setUp() {
        media = FakeMediaStore.install()
    }

    @After
    fun tearDown() = runBlocking {
        recorders.forEach { it.cancel() }
        MeshdropHost.quit()
        devices.forEach { it.close() }
    }

    private suspend fun device(name: String) = Device.start(tmp.root, name).also { devices += it }

    /** Every summary the host publishes, with what the phone did for it. */
    private fun record(host: MeshdropHost): List<Moment> {
        val log = Collections.synchronizedList(mutableListOf<Moment>())
        // Unconfined: the collector runs as each summary is published, after its effects.
        recorders += CoroutineScope(Dispatchers.Unconfined).launch {
            host.transfers.collect { log += Moment(it, locksHeld(), shownTitle()) }
        }
        return log
    }

    private fun locksHeld(): Boolean {
        val wake = ShadowPowerManager.getLatestWakeLock()?.isHeld == true
        val wifi = shadowOf(app.getSystemService(WifiManager::class.java)).activeLockCount > 0
        assertEquals("the wake and Wi-Fi locks go together", wake, wifi)
        return wake
    }

    private fun shownTitle(): String? = shadowOf(app.getSystemService(NotificationManager::class.java))
        .allNotifications.firstOrNull { it.channelId == "transfers" }
        ?.extras?.getCharSequence(Notification.EXTRA_TITLE)?.toString()

    /** The locks were held exactly while bytes moved, and bytes did move. */
    private fun assertLocksFollowedTheBytes(log: List<Moment>) {
        val seen = log.toList()
        assertTrue("bytes moved: $seen", seen.any { it.summary.moving })
        seen.forEach { assertEquals("locks held while ${it.summary}", it.summary.moving, it.locks) }
    }

    /** Plays the system: starts the service the host asked for. */
    private fun startedService(): ServiceController<TransferService> {
        val intent = shadowOf(app).nextStartedService
        assertNotNull("the host started the transfer service", intent)
        assertEquals(TransferService::class.java.name, intent.component?.className)
        return Robolectric.buildService(TransferService::class.java, intent).create().startCommand(0, 1)
    }

    private fun assertInForeground(service: TransferService, title: String) {
        val shadow = shadowOf(service)
        assertEquals(ServiceInfo.FOREGROUND_SERVICE_TYPE_DATA_SYNC, service.foregroundServiceType)
        assertEquals(title, shadow.lastForegroundNotification.extras.getCharSequence(Notification.EXTRA_TITLE).toString())
        assertFalse(shadow.isStoppedBySelf)
    }

    private fun assertStopped(service: TransferService) {
        assertTrue("the service stopped itself", shadowOf(service).isStoppedBySelf)
        assertTrue(shadowOf(service).isForegroundStopped)
        assertFalse(locksHeld())
    }

    @Test
    fun aSendRunsInTheForegroundUntilDelivered() = runBlocking<Unit> {
        val host = startHost()
        val friend = device("friend")
        friend.meet(host)
        val photo = randomFile(tmp.root, "out/beach.jpg", 2_000_000)
        val log = record(host)

        val sending = async { host.send(friend.md.peerId(), listOf(Uri.fromFile(photo))) }
        val offer = friend.waitFor<NodeEvent.OfferReceived>("the offer") { it is NodeEvent.OfferReceived }
        // The friend has not answered: the service runs, but nothing moves, so no locks.
        val service = startedService()
        assertInForeground(service.get(), "Sending 1")
        assertFalse(locksHeld())

        friend.md.acceptOffer(offer.offerId, friend.dir.resolve("in").path, null)
        assertEquals(SendOutcome.Delivered(2_000_000uL), sending.await())
        assertArrayEquals(photo.readBytes(), friend.dir.resolve("in/beach.jpg").readBytes())
        within("no transfer left") { host.transfers.first { it.idle } }
        assertStopped(service.get())
        assertLocksFollowedTheBytes(log)
        service.destroy()
    }

    @Test
    fun aDownloadRunsInTheForegroundAndEndsInTheGallery() = runBlocking<Unit> {
        val host = startHost()
        val friend = device("friend")
        val video = randomFile(friend.dir, "trip/day1.mp4", 3_000_000)
        val ticket = friend.md.share(listOf(video.path))
        val log = record(host)

        val transfer = host.download(ticket)
        val service = startedService()
        within("no transfer left") { host.transfers.first { it.idle } }
        assertStopped(service.get())
        assertLocksFollowedTheBytes(log)
        assertTrue("it was shown as received: $log", log.any { it.summary.receiving == 1 })
        val saved = media.at("Movies/meshdrop/day1.mp4")
        assertTrue(saved.published)
        assertArrayEquals(video.readBytes(), saved.file.readBytes())
        transfer.close()
        service.destroy()
    }

    @Test
    fun anAcceptedOfferRunsInTheForegroundAndEndsInTheGallery() = runBlocking<Unit> {
        val host = startHost()
        val friend = device("friend")
        friend.meet(host)
        val notes = randomFile(friend.dir, "notes.txt", 1_500_000)
        val log = record(host)
        val offered = expect<NodeEvent.OfferReceived>(host, "the offer") { it is NodeEvent.OfferReceived }

        val sending = async { friend.md.sendFiles(host.node.peerId(), listOf(notes.path)) }
        host.accept(offered.await().offerId)
        val service = startedService()
        assertEquals(SendOutcome.Delivered(1_500_000uL), sending.await())
        within("no transfer left") { host.transfers.first { it.idle } }
        assertStopped(service.get())
        assertLocksFollowedTheBytes(log)
        assertArrayEquals(notes.readBytes(), media.at("Download/meshdrop/notes.txt").file.readBytes())
        service.destroy()
    }

    @Test
    fun oneNotificationSumsUpASendAndAnAcceptedOffer() = runBlocking<Unit> {
        val host = startHost()
        val friend = device("friend")
        friend.meet(host)
        val photo = randomFile(tmp.root, "out/beach.jpg", 1_000_000)
        val log = record(host)

        // A send the friend leaves unanswered keeps one transfer running throughout.
        val sending = async { host.send(friend.md.peerId(), listOf(Uri.fromFile(photo))) }
        val pending = friend.waitFor<NodeEvent.OfferReceived>("the offer") { it is NodeEvent.OfferReceived }
        val service = startedService()
        val offered = expect<NodeEvent.OfferReceived>(host, "the friend's offer") { it is NodeEvent.OfferReceived }
        val incoming = async { friend.md.sendFiles(host.node.peerId(), listOf(photo.path)) }
        host.accept(offered.await().offerId)
        assertEquals(SendOutcome.Delivered(1_000_000uL), incoming.await())
        within("the receive saved") { host.transfers.first { it.receiving == 0 } }
        assertTrue(
            "one notification showed both: $log",
            log.any { it.summary.receiving == 1 && it.summary.sending == 1 && it.shown == "Receiving 1, sending 1" },
        )
        assertNull("one service for all", shadowOf(app).peekNextStartedService())
        assertInForeground(service.get(), "Sending 1")

        friend.md.declineOffer(pending.offerId)
        assertTrue(sending.await() is SendOutcome.Declined)
        within("no transfer left") { host.transfers.first { it.idle } }
        assertStopped(service.get())
        service.destroy()
    }

    @Test
    fun theDailyTimeLimitStopsTheServiceAndTheLocksUntilTheNextTransfer() = runBlocking<Unit> {
        val host = startHost()
        val friend = device("friend")
        friend.meet(host)
        val photo = randomFile(tmp.root, "out/beach.jpg", 1_000_000)
        val log = record(host)

        val sending = async { host.send(friend.md.peerId(), listOf(Uri.fromFile(photo))) }
        val offer = friend.waitFor<NodeEvent.OfferReceived>("the offer") { it is NodeEvent.OfferReceived }
        val service = startedService()
        service.get().onTimeout(1, ServiceInfo.FOREGROUND_SERVICE_TYPE_DATA_SYNC)
        assertStopped(service.get())

        // The transfer goes on while the process lives, without the service or the locks.
        friend.md.acceptOffer(offer.offerId, friend.dir.resolve("in").path, null)
        assertEquals(SendOutcome.Delivered(1_000_000uL), sending.await())
        within("no transfer left") { host.transfers.first { it.idle } }
        assertTrue(log.any { it.summary.moving })
        assertTrue("no lock after the time limit: $log", log.none { it.locks })
        assertNull("no new service after the time limit", shadowOf(app).peekNextStartedService())

        // The next transfer runs in the foreground again.
        val next = async { host.send(friend.md.peerId(), listOf(Uri.fromFile(photo))) }
        friend.waitFor<NodeEvent.OfferReceived>("the second offer") { it is NodeEvent.OfferReceived }
        val again = startedService()
        assertInForeground(again.get(), "Sending 1")
        next.cancel()
        service.destroy()
        again.destroy()
    }
}
