package org.meshdrop.kit.android

import android.content.Intent
import android.net.wifi.aware.WifiAwareManager
import android.os.Looper
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.cancel
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Before
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import org.junit.runner.RunWith
import org.meshdrop.ffi.LinkDirection
import org.meshdrop.ffi.NodeEvent
import org.meshdrop.ffi.NodeInterface
import org.meshdrop.ffi.Transport
import org.meshdrop.kit.addLink
import org.robolectric.RobolectricTestRunner
import org.robolectric.Shadows.shadowOf
import java.io.File
import java.net.InetAddress
import java.net.ServerSocket
import java.net.Socket

/**
 * Links: two nodes with no network at all (no listener, no mDNS) meet only through sockets the
 * host hands over, pumped by [org.meshdrop.kit.LinkPump]; the sockets are on 127.0.0.1 (a plain
 * socket pair, or the data path of the simulated Wi-Fi Aware, [FakeAware]).
 */
@RunWith(RobolectricTestRunner::class)
class LinkTest {
    @get:Rule
    val tmp = TemporaryFolder()
    private val devices = mutableListOf<Device>()
    private val drivers = mutableListOf<WifiAwareLinkDriver>()
    private val sockets = mutableListOf<Socket>()
    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)

    @Before
    fun nobodyAround() = FakeAware.reset()

    @After
    fun tearDown() = runBlocking {
        devices.forEach { it.close() }
        drivers.forEach { it.release() }
        sockets.forEach { it.close() }
        scope.cancel()
        FakeAware.reset()
    }

    private suspend fun isolated(name: String) = Device.isolated(tmp.root, name).also { devices += it }

    /** Two connected sockets on 127.0.0.1: what a radio's data path gives each phone. */
    private fun socketPair(): Pair<Socket, Socket> =
        ServerSocket(0, 1, InetAddress.getLoopbackAddress()).use { server ->
            val near = Socket(server.inetAddress, server.localPort)
            near to server.accept().also { sockets += listOf(near, it) }
        }

    /** A link between [dialer] and [other] over a socket pair; [ended] completes when each pump stops. */
    private suspend fun link(
        dialer: Device,
        other: Device,
        ended: List<CompletableDeferred<Unit>> = listOf(CompletableDeferred(), CompletableDeferred()),
    ): Pair<Socket, Socket> {
        val (near, far) = socketPair()
        val peers = within("both handshakes") {
            listOf(
                scope.async { addLink(dialer.md, near, LinkDirection.OUTBOUND, MEDIUM, "far-phone") { ended[0].complete(Unit) } },
                scope.async { addLink(other.md, far, LinkDirection.INBOUND, MEDIUM, null) { ended[1].complete(Unit) } },
            ).awaitAll()
        }
        assertEquals("each side authenticated the other", listOf(other.md.peerId(), dialer.md.peerId()), peers)
        return near to far
    }

    @Test
    fun aFileAndAMessageCrossALinkPumpedThroughSockets() = runBlocking<Unit> {
        val ana = isolated("Ana")
        val ben = isolated("Ben")
        assertEquals("no listener: links only", emptyList<String>(), ana.md.listenAddrs())
        ben.md.addContact(ana.md.peerId(), "Ana")
        link(ben, ana)
        val connected = ben.waitFor<NodeEvent.PeerConnected>("Ana over the link") {
            it is NodeEvent.PeerConnected && it.peerId == ana.md.peerId()
        }
        assertEquals(Transport.LINK to MEDIUM, connected.transport to connected.medium)

        val video = randomFile(tmp.root, "out/trip.mov", 6_000_000)
        val ticket = ana.md.share(listOf(video.path))
        val dest = File(ben.dir, "in")
        val transfer = ben.md.download(ticket, dest.path, null)
        val report = within("the download") { transfer.wait() }
        assertArrayEquals(video.readBytes(), File(dest, "trip.mov").readBytes())
        assertEquals(6_000_000uL, report.bytes)
        transfer.close()

        val sent = ben.md.sendMessage(ana.md.peerId(), "over the link")
        val got = ana.waitFor<NodeEvent.MessageReceived>("the message") {
            it is NodeEvent.MessageReceived && it.message.id == sent
        }
        assertEquals("over the link", got.message.text)
        assertEquals("exactly once", listOf("over the link"), ana.md.messages().filter { it.id == sent }.map { it.text })
    }

    @Test
    fun aBrokenSocketEndsTheLinkOnBothSidesAndANewOneCarriesOn() = runBlocking<Unit> {
        val ana = isolated("Ana")
        val ben = isolated("Ben")
        ben.md.addContact(ana.md.peerId(), "Ana")
        val ended = listOf(CompletableDeferred<Unit>(), CompletableDeferred())
        val (near, far) = link(ben, ana, ended)
        ben.waitFor<NodeEvent.PeerConnected>("Ana") { it is NodeEvent.PeerConnected && it.peerId == ana.md.peerId() }

        // The radio drops: both directions of one end stop (each pump then reads the end).
        far.shutdownInput()
        // Ana's pump may have read the end and closed the socket already (that is its job).
        runCatching { far.shutdownOutput() }
        ben.waitFor<NodeEvent.PeerDisconnected>("Ben hears the link's end") {
            it is NodeEvent.PeerDisconnected && it.peerId == ana.md.peerId()
        }
        ana.waitFor<NodeEvent.PeerDisconnected>("Ana hears the link's end") {
            it is NodeEvent.PeerDisconnected && it.peerId == ben.md.peerId()
        }
        within("both pumps stop") { ended.awaitAll() }
        assertTrue("the pumps closed their sockets", near.isClosed && far.isClosed)

        // A new link: the nodes talk again.
        link(ben, ana)
        val sent = ben.md.sendMessage(ana.md.peerId(), "again")
        ana.waitFor<NodeEvent.MessageReceived>("the message over the new link") {
            it is NodeEvent.MessageReceived && it.message.id == sent
        }

        // The core ends a link (its node stops): the other side's pump closes its socket.
        val ended2 = listOf(CompletableDeferred<Unit>(), CompletableDeferred())
        val (near2, _) = link(ben, ana, ended2)
        ana.close()
        devices -= ana
        within("Ben's pump stops once Ana's node is gone") { ended2[0].await() }
        assertTrue(near2.isClosed)
    }

    /**
     * A node that records what a driver reports to it; with [tellFailures] off the node never
     * hears that discovery failed, so it never asks for it again by itself.
     */
    private class Watched(private val node: NodeInterface, private val tellFailures: Boolean) : NodeInterface by node {
        val nearby = Channel<Pair<String, String?>>(Channel.UNLIMITED)
        val lost = Channel<String>(Channel.UNLIMITED)
        val failed = Channel<String>(Channel.UNLIMITED)

        override suspend fun deviceNearby(medium: String, device: String, peerId: String?) {
            nearby.send(device to peerId)
            node.deviceNearby(medium, device, peerId)
        }

        override suspend fun deviceLost(medium: String, device: String) {
            lost.send(device)
            node.deviceLost(medium, device)
        }

        override suspend fun linkDiscoveryFailed(medium: String) {
            failed.send(medium)
            if (tellFailures) node.linkDiscoveryFailed(medium)
        }
    }

    /** Runs Wi-Fi Aware for [device] as its phone would (its publisher's server socket on ::1). */
    private suspend fun aware(device: Device, tellFailures: Boolean = true): Watched {
        val watched = Watched(device.md, tellFailures)
        val driver = WifiAwareLinkDriver(app, watched, scope) { ServerSocket(0, 1, InetAddress.getByName("::1")) }
        drivers += driver
        device.md.setLinkDriver(driver, listOf(WifiAwareLinkDriver.MEDIUM))
        return watched
    }

    @Test
    fun phonesFindEachOtherOverWifiAwareAndTalkOverItsDataPath() = runBlocking<Unit> {
        val ana = isolated("Ana")
        val ben = isolated("Ben")
        ben.md.addContact(ana.md.peerId(), "Ana")
        val anaSees = aware(ana)
        val benSees = aware(ben)

        // Each subscription found the other's publication, whose info is its peer id.
        val (anaPhone, anaId) = within("Ben finds Ana") { benSees.nearby.receive() }
        assertEquals(ana.md.peerId(), anaId)
        assertEquals(ben.md.peerId(), within("Ana finds Ben") { anaSees.nearby.receive() }.second)

        // Ana is Ben's contact: his node asks for a link; the data path comes up and the link with it.
        val connected = ben.waitFor<NodeEvent.PeerConnected>("Ana over Wi-Fi Aware") {
            it is NodeEvent.PeerConnected && it.peerId == ana.md.peerId()
        }
        assertEquals(Transport.LINK to WifiAwareLinkDriver.MEDIUM, connected.transport to connected.medium)
        val messages = FakeAware.messages()
        assertEquals("Ben asked once, Ana's publisher answered: $messages", 2, messages.size)
        assertEquals("meshdrop-link-open", messages[0])
        assertTrue(messages[1], messages[1].matches(Regex("meshdrop-link-ready:[0-9]+")))
        assertEquals("one data path, both ends", 2, FakeAware.dataPaths())

        val sent = ben.md.sendMessage(ana.md.peerId(), "over wi-fi aware")
        ana.waitFor<NodeEvent.MessageReceived>("the message") { it is NodeEvent.MessageReceived && it.message.id == sent }
        assertEquals(listOf("over wi-fi aware"), ana.md.messages().filter { it.id == sent }.map { it.text })

        // Ben's node stops: its driver stops discovery (sessions closed, data path released), and
        // Ana's subscription loses Ben's phone.
        assertEquals(2, FakeAware.attached())
        assertEquals(4, FakeAware.discoveries())
        ben.close()
        devices -= ben
        assertEquals("Ben's client detached", 1, FakeAware.attached())
        assertEquals("Ben's publication and subscription closed", 2, FakeAware.discoveries())
        within("Ana loses Ben's phone") { anaSees.lost.receive() }
        assertTrue(anaPhone.isNotEmpty())

        ana.close()
        devices -= ana
        assertEquals(0, FakeAware.attached())
        assertEquals(0, FakeAware.discoveries())
        assertEquals("every data path released", 0, FakeAware.dataPaths())
    }

    @Test
    fun withoutWifiAwareTheDriverAttachesNothingAndTheNodeTriesAgainLater() = runBlocking<Unit> {
        FakeAware.setAvailable(false)
        val ana = isolated("Ana")
        val anaSees = aware(ana)
        assertEquals(WifiAwareLinkDriver.MEDIUM, within("the node is told") { anaSees.failed.receive() })
        assertEquals(0, FakeAware.attached())

        // Wi-Fi Aware comes back (the user turned Wi-Fi on): the node starts discovery again after
        // its wait (5 s), and Ana's phone finds Ben's.
        FakeAware.setAvailable(true)
        val ben = isolated("Ben")
        aware(ben)
        assertEquals(ben.md.peerId(), within("Ana finds Ben after the retry") { anaSees.nearby.receive() }.second)
        assertEquals(2, FakeAware.attached())
    }

    @Test
    fun discoveryStartsAgainAsSoonAsThePhoneSaysWifiAwareIsBack() = runBlocking<Unit> {
        FakeAware.setAvailable(false)
        val ana = isolated("Ana")
        val ben = isolated("Ben")
        // Their nodes never hear of the failure, so never retry: only the platform's word can
        // bring discovery back.
        val anaSees = aware(ana, tellFailures = false)
        aware(ben, tellFailures = false)
        assertEquals(WifiAwareLinkDriver.MEDIUM, within("Ana's discovery fails") { anaSees.failed.receive() })
        assertEquals(0, FakeAware.attached())

        // The user turns Wi-Fi back on: the phone broadcasts that Wi-Fi Aware is available.
        FakeAware.setAvailable(true)
        app.sendBroadcast(Intent(WifiAwareManager.ACTION_WIFI_AWARE_STATE_CHANGED))
        shadowOf(Looper.getMainLooper()).idle()
        assertEquals(ben.md.peerId(), within("Ana finds Ben once Aware is back") { anaSees.nearby.receive() }.second)
        assertEquals("both phones attached again", 2, FakeAware.attached())
    }

    private companion object {
        const val MEDIUM = "socket"
    }
}
