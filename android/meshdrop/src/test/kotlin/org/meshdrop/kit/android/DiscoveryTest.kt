package org.meshdrop.kit.android

import android.net.Uri
import android.net.nsd.NsdServiceInfo
import android.net.wifi.WifiManager
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.async
import kotlinx.coroutines.cancel
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
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

/** Phones find each other through Android's NSD, and what NSD found is enough to send files. */
@RunWith(RobolectricTestRunner::class)
class DiscoveryTest {
    @get:Rule
    val tmp = TemporaryFolder()
    private val devices = mutableListOf<Device>()
    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)
    private val drivers = mutableListOf<NsdDiscoveryDriver>()

    @Before
    fun emptyNetwork() = FakeNsd.reset()

    @After
    fun tearDown() = runBlocking {
        drivers.forEach { it.stop() }
        MeshdropHost.quit()
        devices.forEach { it.close() }
        scope.cancel()
        FakeNsd.reset()
    }

    /** Runs NSD discovery for [device], as its phone would. */
    private fun discover(device: Device, sdk: Int = 35) =
        NsdDiscoveryDriver(app, device.md, scope, sdk).also { drivers += it }.start()

    private suspend fun device(name: String) = Device.start(tmp.root, name).also { devices += it }

    /** A phone on the network: advertises itself through NSD like the host does. */
    private fun advertise(device: Device) {
        val advert = device.md.advertisement()
        FakeNsd.announce(NsdServiceInfo().apply {
            serviceName = advert.instanceName
            serviceType = advert.serviceType
            port = advert.port.toInt()
            advert.txt.forEach { (key, value) -> setAttribute(key, value) }
        })
    }

    private val multicastLocks get() = shadowOf(app.getSystemService(WifiManager::class.java)).activeLockCount

    @Test
    fun aPhoneFoundThroughNsdGetsFilesSentToIt() = runBlocking<Unit> {
        val host = startHost()
        val ana = device("Ana")
        val anaName = ana.md.advertisement().instanceName
        val found = expect<NodeEvent.PeerDiscovered>(host, "Ana through NSD") {
            it is NodeEvent.PeerDiscovered && it.peerId == ana.md.peerId()
        }
        // Ana's phone advertises and browses with NSD too (API 35: ServiceInfoCallbacks).
        discover(ana)
        assertEquals("Ana", found.await().name)
        assertEquals("the host follows Ana's service", 1, FakeNsd.followers(anaName))
        assertEquals("no MulticastLock with NSD", 0, multicastLocks)

        ana.befriend(host)
        val photo = randomFile(tmp.root, "out/beach.jpg", 1_000_000)
        val sending = async { host.send(ana.md.peerId(), listOf(Uri.fromFile(photo))) }
        val offer = ana.waitFor<NodeEvent.OfferReceived>("the offer") { it is NodeEvent.OfferReceived }
        ana.md.acceptOffer(offer.offerId, ana.dir.resolve("in").path, null)
        assertEquals(SendOutcome.Delivered(1_000_000uL), sending.await())
        assertArrayEquals(photo.readBytes(), ana.dir.resolve("in/beach.jpg").readBytes())

        // Ana leaves: the host hears it and stops following her service.
        val lost = expect<NodeEvent.PeerLost>(host, "Ana gone") { it is NodeEvent.PeerLost && it.peerId == ana.md.peerId() }
        FakeNsd.lose(anaName)
        lost.await()
        assertEquals(0, FakeNsd.followers(anaName))
    }

    @Test
    fun stoppingDiscoveryUnregistersEveryCallback() = runBlocking<Unit> {
        val host = startHost()
        val others = listOf(device("Ana"), device("Ben"))
        val found = expect<NodeEvent>(host, "both") {
            it is NodeEvent.PeerDiscovered && it.peerId == others[1].md.peerId()
        }
        others.forEach(::advertise)
        found.await()
        assertEquals("one callback per phone", 2, FakeNsd.followers())
        assertEquals(setOf(host.node.advertisement().instanceName), FakeNsd.registered().keys)

        MeshdropHost.quit()
        assertEquals("no callback left", 0, FakeNsd.followers())
        assertEquals("no browser left", 0, FakeNsd.browsing())
        assertTrue("no service left", FakeNsd.registered().isEmpty())
    }

    @Test
    fun belowApi34ResolvesWaitTheirTurnAndEveryPhoneAppears() = runBlocking<Unit> {
        val me = device("me")
        val others = listOf(device("Ana"), device("Ben"), device("Caro"))
        others.forEach(::advertise)
        val peers = others.map { it.md.peerId() }.toSet()
        discover(me, sdk = 33)
        val seen = mutableSetOf<String>()
        while (seen != peers) {
            seen += me.waitFor<NodeEvent.PeerDiscovered>("every phone (seen: $seen)") { it is NodeEvent.PeerDiscovered }.peerId
        }
        assertEquals("no resolve was refused", 0, FakeNsd.refusedResolves())
        assertEquals("no callbacks below API 34", 0, FakeNsd.followers())
    }

    @Test
    fun theMulticastLockIsHeldOnlyWhileTheCoresOwnMdnsRuns() = runBlocking<Unit> {
        startHost(HostConfig(deviceName = "phone", bind = LOOPBACK, coreMdns = true))
        assertEquals(1, multicastLocks)
        assertEquals("no NSD when the core browses", 0, FakeNsd.browsing())
        MeshdropHost.quit()
        assertEquals(0, multicastLocks)
        assertFalse(MeshdropHost.running != null)
    }
}
