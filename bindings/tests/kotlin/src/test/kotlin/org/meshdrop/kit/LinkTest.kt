package org.meshdrop.kit

import java.net.InetAddress
import java.net.ServerSocket
import java.net.Socket
import java.nio.file.Files
import java.nio.file.Path
import java.util.Collections
import kotlin.random.Random
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.cancel
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import org.meshdrop.ffi.LinkDirection
import org.meshdrop.ffi.LinkDriver
import org.meshdrop.ffi.NodeConfig
import org.meshdrop.ffi.NodeEvent
import org.meshdrop.ffi.NodeInterface
import org.meshdrop.ffi.Transport

/**
 * Links through the Kotlin bindings, as bindings/tests/python/test_links.py: a host's link driver
 * over socket pairs on 127.0.0.1 (pumped by [LinkPump]) joins two nodes that have no listener at
 * all; a file and a message cross the link, and a link broken mid-transfer is reported and the
 * download resumes over the next one.
 */
class LinkTest {
    @TempDir
    lateinit var tmp: Path

    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)

    /** A node with no listen address and mDNS off: links are its only way to anyone. */
    private class Isolated(val md: Meshdrop, scope: CoroutineScope) {
        val events = Channel<NodeEvent>(Channel.UNLIMITED)
        private val collecting = scope.launch {
            md.events.collect { events.send(it) }
            events.close()
        }

        suspend fun waitFor(what: String, pred: (NodeEvent) -> Boolean): NodeEvent = within(what) {
            var found: NodeEvent? = null
            while (found == null) {
                val e = events.receiveCatching().getOrNull() ?: throw AssertionError("events ended before $what")
                if (pred(e)) found = e
            }
            found
        }

        suspend fun shutdown() {
            md.shutdown()
            within("the events' end") { collecting.join() }
            md.close()
        }
    }

    private suspend fun isolated(name: String): Isolated {
        val config = NodeConfig(dataDir = tmp.resolve("$name-data").toString(), deviceName = name, listen = false, mdns = false)
        return Isolated(Meshdrop.start(config), scope)
    }

    /** "Opening a link" makes a socket pair on 127.0.0.1 and hands one end to each node, the asking one dialling. */
    private class SocketPairDriver(val scope: CoroutineScope, val here: NodeInterface, val there: NodeInterface) : LinkDriver {
        val asked: MutableList<String> = Collections.synchronizedList(mutableListOf())
        val links = Channel<List<String>>(Channel.UNLIMITED)
        val sockets: MutableList<Socket> = Collections.synchronizedList(mutableListOf())

        override fun startDiscovery(medium: String) {
            asked += "start $medium"
        }

        override fun stopDiscovery(medium: String) {
            asked += "stop $medium"
        }

        override fun openLink(medium: String, device: String) {
            // Called on a core thread: return at once, the work happens in the host's scope.
            asked += "open $device"
            scope.launch { open(device) }
        }

        suspend fun open(device: String) {
            val (near, far) = ServerSocket(0, 1, InetAddress.getLoopbackAddress()).use { server ->
                val near = Socket(server.inetAddress, server.localPort)
                near to server.accept()
            }
            sockets += listOf(near, far)
            val peers = listOf(
                scope.async { addLink(here, near, LinkDirection.OUTBOUND, MEDIUM, device) },
                scope.async { addLink(there, far, LinkDirection.INBOUND, MEDIUM, null) },
            ).awaitAll()
            links.send(peers)
        }

        /** The radio drops: every socket ends at once (each pump then closes its own). */
        fun breakLinks() = synchronized(sockets) {
            // A pump that read the end closes its socket at once: what is closed is broken already.
            sockets.forEach {
                runCatching { it.shutdownInput() }
                runCatching { it.shutdownOutput() }
            }
            sockets.clear()
        }
    }

    @Test
    fun aFileAndAMessageCrossALinkThatBreaksAndIsOpenedAgain() = runBlocking<Unit> {
        val alice = isolated("alice")
        val bob = isolated("bob")
        assertEquals(emptyList<String>(), alice.md.listenAddrs())
        val driver = SocketPairDriver(scope, bob.md, alice.md)
        bob.md.setLinkDriver(driver, listOf(MEDIUM))
        bob.md.addContact(alice.md.peerId(), "Alice")

        // The driver sees alice's device with her peer id: a contact, so the node asks for a link.
        bob.md.deviceNearby(MEDIUM, "alice-phone", alice.md.peerId())
        val peers = within("the link") { driver.links.receive() }
        assertEquals(listOf(alice.md.peerId(), bob.md.peerId()), peers, "each side authenticated the other")
        val connected = bob.waitFor("connected") { it is NodeEvent.PeerConnected && it.peerId == alice.md.peerId() }
        connected as NodeEvent.PeerConnected
        assertEquals(Transport.LINK to MEDIUM, connected.transport to connected.medium)
        assertEquals(listOf("start $MEDIUM", "open alice-phone"), driver.asked.toList())

        val data = Random.nextBytes(12 * 1024 * 1024)
        val video = tmp.resolve("src/trip.mov").also { Files.createDirectories(it.parent) }
        Files.write(video, data)
        val dest = tmp.resolve("dest")
        val ticket = alice.md.share(listOf(video.toString()))
        val transfer = bob.md.download(ticket, dest.toString(), null)
        val id = transfer.id()
        bob.waitFor("progress past 4 MiB") {
            it is NodeEvent.TransferProgress && it.transferId == id && it.done >= 4uL * 1024uL * 1024uL && it.done < it.total
        }
        driver.breakLinks()
        bob.waitFor("the link's end") { it is NodeEvent.PeerDisconnected && it.peerId == alice.md.peerId() }
        // The radio is back: the host opens a new link, and the download carries on.
        driver.open("alice-phone")
        within("the new link") { driver.links.receive() }
        val report = within("the download") { transfer.wait() }
        assertArrayEquals(data, Files.readAllBytes(dest.resolve("trip.mov")))
        assertEquals(data.size.toULong(), report.bytes)
        transfer.close()

        val sent = bob.md.sendMessage(alice.md.peerId(), "over the link")
        val got = alice.waitFor("message") { it is NodeEvent.MessageReceived && it.message.id == sent }
        assertEquals("over the link", (got as NodeEvent.MessageReceived).message.text)
        assertEquals(listOf("over the link"), alice.md.messages().filter { it.id == sent }.map { it.text }, "exactly once")

        bob.shutdown()
        assertEquals("stop $MEDIUM", driver.asked.last())
        alice.shutdown()
        scope.cancel()
    }

    private companion object {
        const val MEDIUM = "socketpair"

        suspend fun <T> within(what: String, block: suspend () -> T): T = try {
            withTimeout(60_000) { block() }
        } catch (e: kotlinx.coroutines.TimeoutCancellationException) {
            throw AssertionError("no $what within 60 s", e)
        }
    }
}
