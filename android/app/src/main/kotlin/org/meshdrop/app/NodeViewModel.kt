package org.meshdrop.app

import android.app.Application
import android.content.Context
import android.net.Uri
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import org.meshdrop.ffi.Message
import org.meshdrop.ffi.NodeEvent
import org.meshdrop.ffi.PeerInfo
import org.meshdrop.ffi.PendingOffer
import org.meshdrop.ffi.SendOutcome
import org.meshdrop.kit.android.HostConfig
import org.meshdrop.kit.android.MeshdropHost

/** What the screens show: read from the node, refreshed when its events say it changed. */
data class UiState(
    val peers: List<PeerInfo> = emptyList(),
    val offer: PendingOffer? = null,
    val transfers: Map<ULong, NodeEvent> = emptyMap(),
    val messages: List<Message> = emptyList(),
    /** Items another app shared, waiting for a device (or a ticket). */
    val shared: List<Uri> = emptyList(),
    val ticket: String? = null,
    /** A ticket a `meshdrop:` link opened, waiting for the user to download it. */
    val linked: String? = null,
    val error: String? = null,
)

/**
 * Holds the node's state for the screens and forwards taps to the process's host. It decides
 * nothing: peer lists and messages are re-read from the node, progress is the node's last event.
 * The node outlives this model (rotation, back and reopen); [quit] stops it.
 */
class NodeViewModel(app: Application) : AndroidViewModel(app) {
    private val _state = MutableStateFlow(UiState())
    /** The state the screens render. */
    val state: StateFlow<UiState> = _state
    private var host: MeshdropHost? = null
    private val started = CompletableDeferred<MeshdropHost>()

    init {
        viewModelScope.launch {
            // Relay addresses the user saved (settings): the way to friends beyond the LAN.
            val relays = app.getSharedPreferences("meshdrop", Context.MODE_PRIVATE)
                .getStringSet("relays", emptySet()).orEmpty().toList()
            val launched = runCatching { MeshdropHost.getOrStart(app, HostConfig(relays = relays)) }
            val h = launched.getOrElse { e ->
                started.completeExceptionally(e)
                _state.update { it.copy(error = e.message) }
                return@launch
            }
            host = h
            started.complete(h)
            _state.update { it.copy(offer = h.pendingOffers().firstOrNull()) }
            refreshPeers()
            refreshMessages()
            h.events.collect(::onEvent)
        }
    }

    private suspend fun onEvent(event: NodeEvent) {
        when (event) {
            is NodeEvent.PeerDiscovered, is NodeEvent.PeerLost, is NodeEvent.PeerConnected,
            is NodeEvent.PeerIdentified, is NodeEvent.PeerDisconnected -> refreshPeers()
            // The oldest offer that waits for an answer, as the node lists them.
            is NodeEvent.OfferReceived, is NodeEvent.OfferExpired ->
                _state.update { it.copy(offer = host?.pendingOffers()?.firstOrNull()) }
            is NodeEvent.TransferProgress -> transfer(event.transferId, event)
            is NodeEvent.TransferWaiting -> transfer(event.transferId, event)
            is NodeEvent.TransferFinished -> transfer(event.transferId, event)
            is NodeEvent.TransferFailed -> transfer(event.transferId, event)
            is NodeEvent.MessageReceived, is NodeEvent.MessageStateChanged -> refreshMessages()
            else -> {}
        }
    }

    private fun transfer(id: ULong, event: NodeEvent) =
        _state.update { it.copy(transfers = it.transfers + (id to event)) }

    private suspend fun refreshPeers() {
        host?.node?.let { node -> runCatching { node.peers() }.onSuccess { p -> _state.update { it.copy(peers = p) } } }
    }

    private suspend fun refreshMessages() {
        host?.node?.let { node -> runCatching { node.messages() }.onSuccess { m -> _state.update { it.copy(messages = m) } } }
    }

    private fun call(action: suspend (MeshdropHost) -> Unit) = viewModelScope.launch {
        val h = host ?: return@launch
        runCatching { action(h) }.onFailure { e -> _state.update { it.copy(error = e.message) } }
    }

    /** Links over Wi-Fi Aware once the node runs: the activity calls it once Nearby devices is allowed. */
    fun useWifiAware() = viewModelScope.launch {
        runCatching { started.await().useWifiAware() }.onFailure { e -> _state.update { it.copy(error = e.message) } }
    }

    /** Offers picked documents to a nearby peer; says how it ended when it did not arrive. */
    fun send(peerId: String, documents: List<Uri>) = call { h ->
        when (val outcome = h.send(peerId, documents)) {
            is SendOutcome.Delivered -> {}
            is SendOutcome.Declined -> _state.update { it.copy(error = "Declined: ${outcome.reason}") }
            is SendOutcome.Failed -> _state.update { it.copy(error = "Not delivered: ${outcome.error}") }
        }
    }

    /** Items shared from another app, to show until the user picks where they go. */
    fun shared(items: List<Uri>) = _state.update { it.copy(shared = items) }

    /** Offers the shared items to [peerId]. */
    fun sendShared(peerId: String) {
        val items = _state.value.shared
        _state.update { it.copy(shared = emptyList()) }
        send(peerId, items)
    }

    /** Makes a ticket of the shared items, to show and pass around. */
    fun ticketForShared() = call { h ->
        val items = _state.value.shared
        _state.update { it.copy(shared = emptyList()) }
        val ticket = h.share(items)
        _state.update { it.copy(ticket = ticket) }
    }

    /** Accepts the shown offer; the files go to the gallery. */
    fun accept(offer: PendingOffer) = call { h ->
        _state.update { it.copy(offer = null) }
        h.accept(offer.offerId)
    }

    /** Declines the shown offer. */
    fun decline(offer: PendingOffer) = call { h ->
        _state.update { it.copy(offer = null) }
        h.decline(offer.offerId)
    }

    /** Downloads a pasted ticket into the gallery; progress arrives as events. */
    fun download(ticket: String) = call { h -> h.download(ticket).close() }

    /** A ticket a link opened, to show until the user downloads or dismisses it. */
    fun linked(ticket: String) = _state.update { it.copy(linked = ticket) }

    /** Downloads the ticket a link opened. */
    fun downloadLinked() {
        val ticket = _state.value.linked ?: return
        _state.update { it.copy(linked = null) }
        download(ticket)
    }

    /** Sends a text message to a peer. */
    fun sendMessage(peerId: String, text: String) = call { h -> h.node.sendMessage(peerId, text) }

    /** Stops the node for good (the user quit), then [done]. */
    fun quit(done: () -> Unit) = viewModelScope.launch {
        host = null
        MeshdropHost.quit()
        done()
    }

    /** Clears the shown error, ticket or link. */
    fun dismiss() = _state.update { it.copy(error = null, ticket = null, linked = null) }
}
