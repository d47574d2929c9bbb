package org.meshdrop.kit.android

import org.meshdrop.ffi.NodeEvent
import java.io.File

/**
 * The transfers running now, summed up for the foreground service and its notification.
 *
 * @property receiving downloads and accepted offers still running (saving to the gallery included).
 * @property sending offers this device made that have not ended.
 * @property moving whether bytes move now (a transfer reported data and has not ended).
 * @property done bytes done over all of them.
 * @property total bytes over all of them (0 while unknown).
 */
data class TransferSummary(
    val receiving: Int = 0,
    val sending: Int = 0,
    val moving: Boolean = false,
    val done: ULong = 0uL,
    val total: ULong = 0uL,
) {
    /** Nothing runs: the phone may sleep. */
    val idle: Boolean get() = receiving == 0 && sending == 0
}

/**
 * Folds the node's events and the host's own calls (downloads, sends, accepted offers) into what
 * runs now. It only keeps track; the node decides what runs. Not thread-safe: the host calls it
 * under its lock.
 *
 * Today `accept_offer` returns no transfer id, so the download of an accepted offer is recognised
 * when a transfer this host did not start reports the accepted selection's size (the oldest such
 * offer first). A transfer nobody here started (one the node resumed at its start) is followed too.
 */
internal class TransferWatch {
    private class Receiving(val dest: File?) {
        var done = 0uL
        var total = 0uL
        var moving = false
    }

    private class Accepted(val peerId: String, val bytes: ULong, val dest: File)

    private class Sending(val peerId: String) {
        var content: String? = null
        var done = 0uL
        var total = 0uL
        var moving = false
    }

    private val receiving = LinkedHashMap<ULong, Receiving>()
    private val accepted = ArrayDeque<Accepted>()
    private val sending = LinkedHashMap<Long, Sending>()

    /** A download the host started into [dest]. */
    fun downloading(transferId: ULong, dest: File) {
        receiving.getOrPut(transferId) { Receiving(dest) }
    }

    /** The user accepted an offer from [peerId] ([bytes] selected) into [dest]. */
    fun accepted(peerId: String, bytes: ULong, dest: File) {
        accepted.addLast(Accepted(peerId, bytes, dest))
    }

    /** The host started offering files to [peerId]; [send] numbers this send. */
    fun sending(send: Long, peerId: String) {
        sending[send] = Sending(peerId)
    }

    /** The send numbered [send] ended, whatever its outcome. */
    fun sent(send: Long) {
        sending.remove(send)
    }

    /** Whatever ran for [transferId] is over (its files are in the gallery, or it failed). */
    fun ended(transferId: ULong) {
        receiving.remove(transferId)
    }

    /**
     * Applies a node event. Returns the folder of a transfer that just finished into a folder
     * of this host's: its verified files wait there to be saved (then call [ended]).
     */
    fun onEvent(event: NodeEvent): File? {
        when (event) {
            is NodeEvent.TransferProgress -> receiving(event.transferId, event.total).apply {
                done = event.done
                total = event.total
                moving = true
            }
            is NodeEvent.TransferFinished -> {
                val transfer = receiving(event.transferId, event.bytes)
                if (transfer.dest != null) {
                    transfer.done = event.bytes
                    transfer.total = event.bytes
                    return transfer.dest
                }
                receiving.remove(event.transferId)
            }
            // No one who has it is in reach: no bytes move, so no locks; it goes on by itself.
            is NodeEvent.TransferWaiting -> receiving(event.transferId, event.total).moving = false
            is NodeEvent.TransferFailed ->
                if (receiving.remove(event.transferId) == null) accepted.removeFirstOrNull()
            is NodeEvent.OfferAccepted -> sending.values.firstOrNull { it.peerId == event.peerId && it.content == null }
                ?.apply {
                    content = event.content
                    moving = true
                }
            is NodeEvent.SendProgress -> sending.values
                .firstOrNull { it.peerId == event.peerId && it.content == event.content }
                ?.apply {
                    done = event.done
                    total = event.total
                }
            // An accepted offer whose sender went away before its download started never starts.
            is NodeEvent.PeerDisconnected -> accepted.removeAll { it.peerId == event.peerId }
            NodeEvent.Stopped -> {
                receiving.clear()
                accepted.clear()
                sending.clear()
            }
            else -> {}
        }
        return null
    }

    /** What runs now. */
    fun summary(): TransferSummary {
        val moving = receiving.values.any { it.moving } || sending.values.any { it.moving }
        return TransferSummary(
            receiving = receiving.size + accepted.size,
            sending = sending.size,
            moving = moving,
            done = receiving.values.sumOf { it.done } + sending.values.sumOf { it.done },
            total = receiving.values.sumOf { it.total } + sending.values.sumOf { it.total } +
                accepted.sumOf { it.bytes },
        )
    }

    /** The transfer [transferId], claiming an accepted offer of [bytes] when it is new. */
    private fun receiving(transferId: ULong, bytes: ULong): Receiving = receiving.getOrPut(transferId) {
        val offer = accepted.firstOrNull { it.bytes == bytes }
        if (offer != null) accepted.remove(offer)
        Receiving(offer?.dest)
    }
}
