package org.meshdrop.app

import androidx.activity.compose.rememberLauncherForActivityResult
import androidx.activity.result.contract.ActivityResultContracts
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.AlertDialog
import androidx.compose.material3.Button
import androidx.compose.material3.LinearProgressIndicator
import androidx.compose.material3.ListItem
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Scaffold
import androidx.compose.material3.Tab
import androidx.compose.material3.TabRow
import androidx.compose.material3.Text
import androidx.compose.material3.TextButton
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableIntStateOf
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import androidx.lifecycle.compose.collectAsStateWithLifecycle
import org.meshdrop.ffi.NodeEvent
import org.meshdrop.ffi.PeerInfo
import org.meshdrop.ffi.PendingOffer
import org.meshdrop.ffi.Recipient

/** The screens: Nearby devices, Transfers, Chat, items shared in, and the incoming offer dialog. */
@Composable
fun MeshdropApp(model: NodeViewModel, onQuit: () -> Unit) {
    val state by model.state.collectAsStateWithLifecycle()
    var tab by remember { mutableIntStateOf(0) }
    Scaffold(topBar = {
        Row {
            TabRow(selectedTabIndex = tab, modifier = Modifier.weight(1f)) {
                listOf("Nearby", "Transfers", "Chat").forEachIndexed { i, title ->
                    Tab(selected = tab == i, onClick = { tab = i }, text = { Text(title) })
                }
            }
            TextButton(onClick = { model.quit(onQuit) }) { Text("Quit") }
        }
    }) { padding ->
        Column(Modifier.padding(padding).fillMaxSize()) {
            if (state.shared.isNotEmpty()) SharedBanner(state, model)
            when (tab) {
                0 -> NearbyScreen(state.peers, model)
                1 -> TransfersScreen(state.transfers, model)
                else -> ChatScreen(state, model)
            }
        }
    }
    state.offer?.let { OfferDialog(it, model) }
    state.linked?.let { ticket ->
        AlertDialog(
            onDismissRequest = model::dismiss,
            title = { Text("Download these files?") },
            text = { Text(ticket.take(48) + "…") },
            confirmButton = { Button(onClick = model::downloadLinked) { Text("Download") } },
            dismissButton = { TextButton(onClick = model::dismiss) { Text("Cancel") } },
        )
    }
    (state.error ?: state.ticket)?.let { text ->
        AlertDialog(
            onDismissRequest = model::dismiss,
            confirmButton = { TextButton(onClick = model::dismiss) { Text("OK") } },
            text = { Text(text) },
        )
    }
}

/** Items shared from another app: tap a device to offer them, or make a ticket. */
@Composable
fun SharedBanner(state: UiState, model: NodeViewModel) {
    Column(Modifier.padding(16.dp), verticalArrangement = Arrangement.spacedBy(8.dp)) {
        Text("Send ${state.shared.size} item(s) to:")
        state.peers.forEach { peer ->
            Button(onClick = { model.sendShared(peer.peerId) }) { Text(peer.name.ifEmpty { peer.peerId.takeLast(8) }) }
        }
        TextButton(onClick = model::ticketForShared) { Text("Make a ticket instead") }
    }
}

/** Devices the node knows, with their verification code; tap Send to offer files. */
@Composable
fun NearbyScreen(peers: List<PeerInfo>, model: NodeViewModel) {
    var target by remember { mutableStateOf<String?>(null) }
    val pick = rememberLauncherForActivityResult(ActivityResultContracts.OpenMultipleDocuments()) { uris ->
        val peer = target ?: return@rememberLauncherForActivityResult
        if (uris.isNotEmpty()) model.send(peer, uris)
    }
    LazyColumn {
        items(peers, key = { it.peerId }) { peer ->
            ListItem(
                headlineContent = { Text(peer.name.ifEmpty { peer.peerId.takeLast(8) }) },
                supportingContent = {
                    Text("${if (peer.connected) "connected" else "seen"} · code ${peer.verificationCode}")
                },
                trailingContent = {
                    Button(onClick = { target = peer.peerId; pick.launch(arrayOf("*/*")) }) { Text("Send") }
                },
            )
        }
    }
}

/** Downloads by ticket and the progress of each transfer, as the node last reported it. */
@Composable
fun TransfersScreen(transfers: Map<ULong, NodeEvent>, model: NodeViewModel) {
    var ticket by remember { mutableStateOf("") }
    Column(Modifier.padding(16.dp), verticalArrangement = Arrangement.spacedBy(8.dp)) {
        Row {
            OutlinedTextField(ticket, { ticket = it }, Modifier.weight(1f), label = { Text("Ticket") })
            Button(onClick = { model.download(ticket); ticket = "" }) { Text("Get") }
        }
        transfers.toSortedMap().forEach { (id, event) ->
            when (event) {
                is NodeEvent.TransferProgress -> {
                    Text("Transfer $id: ${event.done} / ${event.total} bytes")
                    LinearProgressIndicator(
                        progress = { if (event.total == 0uL) 0f else event.done.toFloat() / event.total.toFloat() },
                        modifier = Modifier.fillMaxWidth(),
                    )
                }
                is NodeEvent.TransferWaiting -> Text("Transfer $id: waiting for someone who has it")
                is NodeEvent.TransferFinished -> Text("Transfer $id: done, ${event.bytes} bytes, saved to the gallery")
                is NodeEvent.TransferFailed -> Text("Transfer $id failed: ${event.error}")
                else -> {}
            }
        }
    }
}

/** Messages in the node's order, and a field to write to the selected peer. */
@Composable
fun ChatScreen(state: UiState, model: NodeViewModel) {
    var to by remember { mutableStateOf<String?>(null) }
    var text by remember { mutableStateOf("") }
    Column(Modifier.padding(16.dp)) {
        Row {
            state.peers.forEach { peer ->
                TextButton(onClick = { to = peer.peerId }) {
                    Text((if (to == peer.peerId) "● " else "") + peer.name.ifEmpty { peer.peerId.takeLast(8) })
                }
            }
        }
        LazyColumn(Modifier.weight(1f)) {
            items(state.messages, key = { it.id }) { m ->
                val peer = (m.to as? Recipient.Peer)?.peerId
                ListItem(
                    headlineContent = { Text(m.text) },
                    supportingContent = {
                        Text(if (m.outgoing) "to ${peer?.takeLast(8) ?: "room"} · ${m.state}" else "from ${m.fromPeer.takeLast(8)}")
                    },
                )
            }
        }
        Row {
            OutlinedTextField(text, { text = it }, Modifier.weight(1f))
            Button(enabled = to != null && text.isNotBlank(), onClick = {
                to?.let { model.sendMessage(it, text) }
                text = ""
            }) { Text("Send") }
        }
    }
}

/** An incoming offer: who, the code to compare, what; accept or decline. */
@Composable
fun OfferDialog(offer: PendingOffer, model: NodeViewModel) {
    AlertDialog(
        onDismissRequest = {},
        title = { Text("${offer.name} wants to send you ${offer.files.size} file(s)") },
        text = {
            Column {
                Text("Code: ${offer.verificationCode} (check it matches on their screen)")
                offer.files.take(10).forEach { Text("${it.path} (${it.size} bytes)") }
            }
        },
        confirmButton = { Button(onClick = { model.accept(offer) }) { Text("Accept") } },
        dismissButton = { TextButton(onClick = { model.decline(offer) }) { Text("Decline") } },
    )
}
