package org.meshdrop.kit.android

import android.app.Notification
import android.app.NotificationManager
import android.os.Bundle
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.filter
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertSame
import org.junit.Assert.assertTrue
import org.junit.Before
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import org.junit.runner.RunWith
import org.meshdrop.ffi.NodeEvent
import org.meshdrop.ffi.SendOutcome
import org.robolectric.RobolectricTestRunner
import org.robolectric.Shadows.shadowOf

/** Offers and messages reach the user outside the app, and the offer's buttons reach the node. */
@RunWith(RobolectricTestRunner::class)
class NotificationsTest {
    @get:Rule
    val tmp = TemporaryFolder()
    private lateinit var media: FakeMediaStore
    private val devices = mutableListOf<Device>()
    private val notifications get() = shadowOf(app.getSystemService(NotificationManager::class.java))

    @Before
    fun setUp() {
        media = FakeMediaStore.install()
    }

    @After
    fun tearDown() = runBlocking {
        MeshdropHost.quit()
        devices.forEach { it.close() }
    }

    private suspend fun device(name: String) = Device.start(tmp.root, name).also { devices += it }

    private fun offerNotification(): Notification =
        notifications.allNotifications.single { it.channelId == "offers" }

    /** Taps the notification's button [title], as the system delivers it. */
    private fun tap(notification: Notification, title: String) {
        val action = notification.actions.single { it.title == title }
        val intent = shadowOf(action.actionIntent).savedIntent
        assertEquals(OfferActionReceiver::class.java.name, intent.component?.className)
        OfferActionReceiver().onReceive(app, intent)
    }

    @Test
    fun anOfferShowsWhoAndWhatAndAcceptGetsTheFilesIntoTheGallery() = runBlocking<Unit> {
        val host = startHost()
        val ana = device("Ana")
        ana.meet(host)
        val photos = listOf(
            randomFile(ana.dir, "Day1/beach.jpg", 1_200_000),
            randomFile(ana.dir, "Day1/dunes.jpg", 800_000),
        )
        val offered = expect<NodeEvent.OfferReceived>(host, "the offer") { it is NodeEvent.OfferReceived }
        val sending = async { ana.md.sendFiles(host.node.peerId(), listOf(ana.dir.resolve("Day1").path)) }
        val offer = offered.await()

        val shown = offerNotification()
        assertEquals("Ana wants to send you 2 files", shown.extras.getCharSequence(Notification.EXTRA_TITLE).toString())
        val text = shown.extras.getCharSequence(Notification.EXTRA_TEXT).toString()
        assertTrue(text, text.startsWith("2.0 MB · Not verified"))
        assertTrue(text, text.contains(offer.verificationCode))

        assertEquals("a screen opened now shows it", listOf(offer.offerId), host.pendingOffers().map { it.offerId })

        tap(shown, "Accept")
        assertEquals(emptyList<ULong>(), host.pendingOffers().map { it.offerId })
        assertEquals(SendOutcome.Delivered(2_000_000uL), sending.await())
        assertTrue("the offer's notification is gone", notifications.allNotifications.none { it.channelId == "offers" })
        within("saved to the gallery") { host.transfers.first { it.idle } }
        for (photo in photos) {
            val saved = media.at("Pictures/meshdrop/Day1/${photo.name}")
            assertTrue(saved.published)
            assertArrayEquals(photo.readBytes(), saved.file.readBytes())
        }
    }

    @Test
    fun declineReachesTheSenderAndNothingIsWritten() = runBlocking<Unit> {
        val host = startHost()
        val ana = device("Ana")
        ana.meet(host)
        val photo = randomFile(ana.dir, "beach.jpg", 500_000)
        val offered = expect<NodeEvent.OfferReceived>(host, "the offer") { it is NodeEvent.OfferReceived }
        val sending = async { ana.md.sendFiles(host.node.peerId(), listOf(photo.path)) }
        offered.await()

        tap(offerNotification(), "Decline")
        assertTrue(sending.await() is SendOutcome.Declined)
        assertTrue(notifications.allNotifications.none { it.channelId == "offers" })
        assertTrue(media.items.isEmpty())
        assertTrue(app.filesDir.resolve("incoming").listFiles().isNullOrEmpty())
    }

    @Test
    fun anOfferSwipedAwayComesBackWhenTheAppAsksForItsNodeAgain() = runBlocking<Unit> {
        val host = startHost()
        val ana = device("Ana")
        ana.meet(host)
        val photo = randomFile(ana.dir, "beach.jpg", 300_000)
        val offered = expect<NodeEvent.OfferReceived>(host, "the offer") { it is NodeEvent.OfferReceived }
        val sending = async { ana.md.sendFiles(host.node.peerId(), listOf(photo.path)) }
        val offer = offered.await()

        // The user swipes the notification away; the offer still waits in the node.
        app.getSystemService(NotificationManager::class.java)!!.cancelAll()
        assertTrue(notifications.allNotifications.none { it.channelId == "offers" })
        assertSame(host, startHost())
        val back = offerNotification()
        assertEquals("Ana wants to send you a file", back.extras.getCharSequence(Notification.EXTRA_TITLE).toString())
        assertEquals(listOf(offer.offerId), host.pendingOffers().map { it.offerId })

        tap(back, "Decline")
        assertTrue(sending.await() is SendOutcome.Declined)
        assertTrue(notifications.allNotifications.none { it.channelId == "offers" })
        assertSame(host, startHost())
        assertTrue("an answered offer does not come back", notifications.allNotifications.none { it.channelId == "offers" })
    }

    @Test
    fun messagesAreGroupedPerConversation() = runBlocking<Unit> {
        val host = startHost()
        val ana = device("Ana")
        val ben = device("Ben")
        ana.meet(host)
        ben.meet(host)
        val me = host.node.peerId()
        val received = async(start = CoroutineStart.UNDISPATCHED) {
            within("three messages") { host.events.filter { it is NodeEvent.MessageReceived }.take(3).toList() }
        }
        ana.md.sendMessage(me, "are you at the camp?")
        ben.md.sendMessage(me, "got the photos")
        ana.md.sendMessage(me, "on my way")
        received.await()

        val byAuthor = conversations()
        assertEquals(listOf("are you at the camp?", "on my way"), byAuthor["Ana"])
        assertEquals(listOf("got the photos"), byAuthor["Ben"])
    }

    /** The messaging notifications: each conversation's author and texts, in order. */
    private fun conversations(): Map<String, List<String>> =
        notifications.allNotifications.filter { it.channelId == "messages" }.associate { n ->
            @Suppress("DEPRECATION")
            val messages = n.extras.getParcelableArray(Notification.EXTRA_MESSAGES)!!.map { it as Bundle }
            val authors = messages.map { it.getParcelable("sender_person", android.app.Person::class.java)!!.name.toString() }.distinct()
            authors.single() to messages.map { it.getCharSequence("text").toString() }
        }
}
