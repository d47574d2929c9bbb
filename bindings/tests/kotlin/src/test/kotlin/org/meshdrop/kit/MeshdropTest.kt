package org.meshdrop.kit

import java.nio.file.Files
import java.nio.file.Path
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import org.meshdrop.ffi.FailureKind
import org.meshdrop.ffi.MeshdropException
import org.meshdrop.ffi.MessageState
import org.meshdrop.ffi.NodeConfig
import org.meshdrop.ffi.NodeEvent
import org.meshdrop.ffi.SendOutcome
import org.meshdrop.ffi.TransferStatus

/** The facade over the generated Kotlin, as an app uses it: two nodes on 127.0.0.1. */
class MeshdropTest {
    @TempDir
    lateinit var tmp: Path

    /** A node bound to 127.0.0.1 only, its events collected into [events]. */
    private class LoopbackNode(val md: Meshdrop, scope: CoroutineScope) {
        val events = Channel<NodeEvent>(Channel.UNLIMITED)
        val collecting = scope.launch(Dispatchers.Default) {
            md.events.collect { events.send(it) }
            events.close()
        }

        suspend fun waitFor(what: String, pred: (NodeEvent) -> Boolean): NodeEvent =
            withTimeout(20_000) {
                var found: NodeEvent? = null
                while (found == null) {
                    val e = events.receiveCatching().getOrNull()
                        ?: throw AssertionError("events ended while waiting for $what")
                    if (pred(e)) found = e
                }
                found
            }

        /** Shuts down; the event flow then completes with Stopped as its last event. */
        suspend fun shutdown() {
            md.shutdown()
            withTimeout(10_000) { collecting.join() }
            val rest = generateSequence { events.tryReceive().getOrNull() }.toList()
            assertEquals(NodeEvent.Stopped, rest.last())
            md.close()
        }
    }

    private suspend fun CoroutineScope.start(name: String): LoopbackNode {
        val config = NodeConfig(
            dataDir = tmp.resolve("$name-data").toString(),
            deviceName = name,
            bind = listOf("127.0.0.1"),
            mdns = false,
        )
        return LoopbackNode(Meshdrop.start(config), this)
    }

    private fun writeFolder(root: Path): Map<String, ByteArray> {
        val files = mapOf(
            "album/a.bin" to ByteArray(3_000_000) { (it % 251).toByte() },
            "album/notes/b.txt" to "hello from kotlin\n".toByteArray(),
        )
        for ((rel, bytes) in files) {
            val path = root.resolve(rel)
            Files.createDirectories(path.parent)
            Files.write(path, bytes)
        }
        return files
    }

    @Test
    fun sharedFolderDownloadsWithProgressAndEqualBytes() = runBlocking {
        val alice = start("alice")
        val bob = start("bob")
        val src = Files.createDirectories(tmp.resolve("src"))
        val dest = Files.createDirectories(tmp.resolve("dest"))
        val files = writeFolder(src)

        val ticket = alice.md.share(listOf(src.resolve("album").toString()))
        val transfer = bob.md.download(ticket, dest.toString(), null)
        val statuses = withTimeout(20_000) { transfer.statuses().toList() }
        val finished = statuses.last() as TransferStatus.Finished
        val wanted = files.keys.map { dest.resolve(it).toString() }
        assertEquals(3_000_018uL, finished.bytes)
        assertEquals(wanted, finished.paths)
        val running = statuses.filterIsInstance<TransferStatus.Running>()
        assertTrue(running.zipWithNext().all { (a, b) -> a.done <= b.done }, "$running")
        val report = transfer.wait()
        assertEquals(3_000_018uL, report.bytes)
        assertEquals(wanted, report.paths)
        for ((rel, bytes) in files) assertArrayEquals(bytes, Files.readAllBytes(dest.resolve(rel)), rel)

        val id = transfer.id()
        val last = bob.waitFor("final progress") {
            it is NodeEvent.TransferProgress && it.transferId == id && it.done == it.total
        }
        println("last progress: $last")
        val event = bob.waitFor("finished") { it is NodeEvent.TransferFinished && it.transferId == id }
        assertEquals(wanted, (event as NodeEvent.TransferFinished).paths)
        transfer.close()
        alice.shutdown()
        bob.shutdown()
    }

    @Test
    fun anOfferIsAcceptedAndDelivered() = runBlocking {
        val alice = start("alice")
        val bob = start("bob")
        alice.md.addPeer(bob.md.peerId(), bob.md.listenAddrs())
        // Bob compared codes with Alice: only contacts may offer files.
        bob.md.addContact(alice.md.peerId(), "Alice")
        val src = Files.createDirectories(tmp.resolve("src"))
        val dest = Files.createDirectories(tmp.resolve("dest"))
        val files = writeFolder(src)

        val sending = async { alice.md.sendFiles(bob.md.peerId(), listOf(src.resolve("album").toString())) }
        val offer = bob.waitFor("offer") { it is NodeEvent.OfferReceived } as NodeEvent.OfferReceived
        assertEquals("alice", offer.name)
        assertEquals(files.keys.sorted(), offer.files.map { it.path }.sorted())
        assertEquals(listOf(offer.offerId), bob.md.pendingOffers().map { it.offerId }, "what a screen opened now shows")
        bob.md.acceptOffer(offer.offerId, dest.toString(), null)
        assertEquals(emptyList<ULong>(), bob.md.pendingOffers().map { it.offerId })
        assertEquals(SendOutcome.Delivered(3_000_018uL), sending.await())
        for ((rel, bytes) in files) assertArrayEquals(bytes, Files.readAllBytes(dest.resolve(rel)), rel)
        alice.shutdown()
        bob.shutdown()
    }

    @Test
    fun aMessageIsReceivedAndDelivered() = runBlocking {
        val alice = start("alice")
        val bob = start("bob")
        alice.md.addPeer(bob.md.peerId(), bob.md.listenAddrs())
        val sent = alice.md.sendMessage(bob.md.peerId(), "hi bob")
        val got = bob.waitFor("message") { it is NodeEvent.MessageReceived } as NodeEvent.MessageReceived
        assertEquals(sent to "hi bob", got.message.id to got.message.text)
        alice.waitFor("delivered") {
            it is NodeEvent.MessageStateChanged && it.messageId == sent && it.state == MessageState.DELIVERED
        }
        assertEquals(listOf("hi bob"), bob.md.messages().filter { it.id == sent }.map { it.text })
        alice.shutdown()
        bob.shutdown()
    }

    @Test
    fun errorsCarryFieldsACallerCanActOn() = runBlocking {
        val bob = start("bob")
        assertThrows<MeshdropException.InvalidTicket> { bob.md.download("meshdrop-nonsense", tmp.toString(), null) }
        val missing = assertThrows<MeshdropException.NotFound> { bob.md.declineOffer(42uL) }
        assertTrue(missing.what.contains("42"), missing.what)
        var invalid: MeshdropException? = null
        try {
            bob.md.addPeer("not-a-peer", emptyList())
        } catch (e: MeshdropException.InvalidInput) {
            invalid = e
        }
        assertTrue(invalid != null, "a bad peer id is InvalidInput")
        bob.shutdown()
    }

    @Test
    fun aCancelledDownloadsFlowEndsFailedAsCancelled() = runBlocking {
        val alice = start("alice")
        val bob = start("bob")
        val src = Files.createDirectories(tmp.resolve("src"))
        val dest = Files.createDirectories(tmp.resolve("dest"))
        Files.write(src.resolve("big.bin"), ByteArray(8_000_000))
        val transfer = bob.md.download(alice.md.share(listOf(src.resolve("big.bin").toString())), dest.toString(), null)
        transfer.pause()
        transfer.cancel(false)
        val last = withTimeout(20_000) { transfer.statuses().toList() }.last()
        assertEquals(TransferStatus.Failed("cancelled", FailureKind.CANCELLED), last)
        val id = transfer.id()
        val failed = bob.waitFor("failed") { it is NodeEvent.TransferFailed && it.transferId == id }
        assertEquals(FailureKind.CANCELLED, (failed as NodeEvent.TransferFailed).kind)
        transfer.close()
        alice.shutdown()
        bob.shutdown()
    }
}
