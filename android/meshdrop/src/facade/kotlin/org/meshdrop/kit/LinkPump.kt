package org.meshdrop.kit

import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.runBlocking
import org.meshdrop.ffi.LinkDirection
import org.meshdrop.ffi.LinkStream
import org.meshdrop.ffi.MeshdropException
import org.meshdrop.ffi.NodeInterface
import java.io.Closeable
import java.io.IOException
import java.io.InputStream
import java.io.OutputStream
import java.net.Socket
import java.util.concurrent.atomic.AtomicInteger
import kotlin.concurrent.thread

/**
 * Moves one link's bytes between a socket and the core's [LinkStream], and decides nothing: a
 * reader thread hands what [input] reads to [LinkStream.receive]; a writer thread writes what
 * [LinkStream.nextOutgoing] returns to [output]. The socket's end (end of stream, a read or write
 * error) is [LinkStream.end], so the core hears the link ended; the core's end (`nextOutgoing`
 * returns `null`) closes the socket. Works with any stream pair: a `java.net.Socket` (Wi-Fi
 * Aware, TCP), a `BluetoothSocket`, a pipe. Plain Kotlin (no Android API).
 */
class LinkPump private constructor(
    private val stream: LinkStream,
    private val input: InputStream,
    private val output: OutputStream,
    private val socket: Closeable,
    private val onEnd: () -> Unit,
) {
    private val running = AtomicInteger(2)
    private val ended = CompletableDeferred<Unit>()

    /** Returns once both directions ended, the socket is closed and `onEnd` ran. */
    suspend fun join() = ended.await()

    /** Whether both directions ended. */
    val isEnded: Boolean get() = ended.isCompleted

    /** Ends the link from the host's side (the socket is closed; the core hears the end). */
    fun close() = closeQuietly()

    private fun inbound() = runBlocking {
        val buffer = ByteArray(CHUNK)
        while (true) {
            val n = try {
                input.read(buffer)
            } catch (_: IOException) {
                -1
            }
            if (n < 0) {
                stream.end()
                break
            }
            if (n == 0) continue
            try {
                stream.receive(buffer.copyOf(n))
            } catch (_: MeshdropException) {
                // The core closed the link; the writer sees it too and closes the socket.
                break
            }
        }
    }

    private fun outbound() = runBlocking {
        while (true) {
            val chunk = stream.nextOutgoing() ?: break
            try {
                output.write(chunk)
                output.flush()
            } catch (_: IOException) {
                stream.end()
                break
            }
        }
        // The core ended the link (or the socket broke): unblock the reader.
        closeQuietly()
    }

    private fun directionEnded() {
        if (running.decrementAndGet() > 0) return
        closeQuietly()
        try {
            onEnd()
        } finally {
            ended.complete(Unit)
        }
    }

    private fun closeQuietly() {
        try {
            socket.close()
        } catch (_: IOException) {
        }
    }

    private fun run(): LinkPump {
        thread(name = "meshdrop-link-in", isDaemon = true) {
            try {
                inbound()
            } finally {
                directionEnded()
            }
        }
        thread(name = "meshdrop-link-out", isDaemon = true) {
            try {
                outbound()
            } finally {
                directionEnded()
            }
        }
        return this
    }

    companion object {
        /** Bytes read from the socket at once (the core's chunks are at most 64 KiB too). */
        const val CHUNK = 64 * 1024

        /**
         * Pumps [stream]'s bytes through [input] and [output] until either side ends; [socket]
         * (what owns the two streams) is closed then, and [onEnd] runs once both directions
         * stopped (release the radio's network there).
         */
        fun start(
            stream: LinkStream,
            input: InputStream,
            output: OutputStream,
            socket: Closeable,
            onEnd: () -> Unit = {},
        ): LinkPump = LinkPump(stream, input, output, socket, onEnd).run()

        /** Pumps [stream]'s bytes through a connected [socket]. */
        fun start(stream: LinkStream, socket: Socket, onEnd: () -> Unit = {}): LinkPump =
            start(stream, socket.getInputStream(), socket.getOutputStream(), socket, onEnd)
    }
}

/**
 * Hands a connected [socket] to [node] as a link: pumps it through a new [LinkStream] and returns
 * the peer once the handshake authenticated it. [direction] is [LinkDirection.OUTBOUND] on the
 * device that opened the link. A link that fails (the handshake, a stopped node) closes the
 * socket and rethrows; [onEnd] runs once the link's pump stopped, in every case.
 */
suspend fun addLink(
    node: NodeInterface,
    socket: Socket,
    direction: LinkDirection,
    medium: String,
    device: String?,
    onEnd: () -> Unit = {},
): String {
    val stream = LinkStream()
    val pump = try {
        LinkPump.start(stream, socket, onEnd)
    } catch (e: IOException) {
        socket.close()
        stream.destroy()
        onEnd()
        throw e
    }
    try {
        return node.addLink(stream, direction, medium, device)
    } catch (e: Exception) {
        pump.close()
        throw e
    }
}
