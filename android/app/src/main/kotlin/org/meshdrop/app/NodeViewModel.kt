package org.meshdrop.app

import android.app.Application
import android.content.Context
import android.net.Uri
import android.provider.OpenableColumns
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.meshdrop.ffi.Message
import org.meshdrop.ffi.NodeEvent
import org.meshdrop.ffi.PeerInfo
import org.meshdrop.kit.android.MeshdropHost
import org.meshdrop.kit.android.TransferService
import java.io.File

/** What the screens show: read from the node, refreshed when its events say it changed. */
data class UiState(
    val peers: List<PeerInfo> = emptyList(),
    val offer: NodeEvent.OfferReceived? = null,
    val transfers: Map<ULong, NodeEvent> = emptyMap(),
    val messages: List<Message> = emptyList(),
    val error: String? = null,
)

/**
 * Holds the node's state for the screens and forwards taps to the node. It decides nothing:
 * peer lists and messages are re-read from the node, progress is the node's last event.
 */
class NodeViewModel(app: Application) : AndroidViewModel(app) {
    private val _state = MutableStateFlow(UiState())
    /** The state the screens render. */
    val state: StateFlow<UiState> = _state
    private var host: MeshdropHost? = null

    init {
        viewModelScope.launch {
            // Relay addresses the user saved (settings): the way to friends beyond the LAN.
            val relays = app.getSharedPreferences("meshdrop", android.content.Context.MODE_PRIVATE)
                .getStringSet("relays", emptySet()).orEmpty().toList()
            val started = runCatching { MeshdropHost.start(app, deviceName = null, relays = relays) }
            val h = started.getOrElse { e -> _state.update { it.copy(error = e.message) }; return@launch }
            host = h
            TransferService.host = h
            refreshPeers()
            refreshMessages()
            h.events.collect(::onEvent)
        }
    }

    private suspend fun onEvent(event: NodeEvent) {
        when (event) {
            is NodeEvent.PeerDiscovered, is NodeEvent.PeerLost, is NodeEvent.PeerConnected,
            is NodeEvent.PeerIdentified, is NodeEvent.PeerDisconnected -> refreshPeers()
            is NodeEvent.OfferReceived -> _state.update { it.copy(offer = event) }
            is NodeEvent.TransferProgress -> transfer(event.transferId, event)
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

    private fun call(action: suspend () -> Unit) = viewModelScope.launch {
        runCatching { action() }.onFailure { e -> _state.update { it.copy(error = e.message) } }
    }

    /** Sends picked documents to a nearby peer (copied to the cache first: the core shares paths). */
    fun send(peerId: String, documents: List<Uri>) = call {
        val app = getApplication<Application>()
        val paths = withContext(Dispatchers.IO) { documents.map { copyToCache(app, it) } }
        host?.node?.sendFiles(peerId, paths)
    }

    /** Accepts the shown offer into the app's downloads folder. */
    fun accept(offer: NodeEvent.OfferReceived) = call {
        _state.update { it.copy(offer = null) }
        val dest = getApplication<Application>().getExternalFilesDir(null)?.path ?: return@call
        host?.node?.acceptOffer(offer.offerId, dest, null)
    }

    /** Declines the shown offer. */
    fun decline(offer: NodeEvent.OfferReceived) = call {
        _state.update { it.copy(offer = null) }
        host?.node?.declineOffer(offer.offerId)
    }

    /** Downloads a pasted ticket, with the progress notification of the foreground service. */
    fun download(ticket: String) = call {
        val dest = getApplication<Application>().getExternalFilesDir(null)?.path ?: return@call
        val transfer = host?.node?.download(ticket.trim(), dest, null) ?: return@call
        TransferService.start(getApplication(), transfer.id())
    }

    /** Sends a text message to a peer. */
    fun sendMessage(peerId: String, text: String) = call { host?.node?.sendMessage(peerId, text) }

    /** Clears the shown error. */
    fun dismissError() = _state.update { it.copy(error = null) }
}

/** Copies a picked document into the app's cache and returns its path. */
private fun copyToCache(context: Context, uri: Uri): String {
    val name = context.contentResolver.query(uri, arrayOf(OpenableColumns.DISPLAY_NAME), null, null, null)
        ?.use { c -> if (c.moveToFirst()) c.getString(0) else null } ?: "file"
    val dir = File(context.cacheDir, "outgoing/${System.nanoTime()}").apply { mkdirs() }
    val file = File(dir, File(name).name)
    context.contentResolver.openInputStream(uri)?.use { input -> file.outputStream().use { input.copyTo(it) } }
    return file.path
}
