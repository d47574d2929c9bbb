package org.meshdrop.kit.android

import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.app.PendingIntent
import android.app.Person
import android.content.Context
import android.content.Intent
import android.text.format.Formatter
import org.meshdrop.ffi.Message
import org.meshdrop.ffi.PendingOffer
import org.meshdrop.ffi.Recipient

/**
 * What meshdrop shows outside the app: the transfers summary of the foreground service, incoming
 * offers with Accept / Decline, and incoming messages, one notification per conversation.
 * Every text comes from what the node reported. Not thread-safe: the host calls it under its lock.
 */
internal class Notifications(private val context: Context) {
    private val manager = context.system<NotificationManager>()

    /** The offers with a notification up. */
    private val shownOffers = HashSet<ULong>()

    /** The last messages of each conversation with a notification up, by [conversation] key. */
    private val conversations = HashMap<String, ArrayDeque<Message>>()

    init {
        manager.createNotificationChannels(
            listOf(
                NotificationChannel(TRANSFERS, "Transfers", NotificationManager.IMPORTANCE_LOW),
                NotificationChannel(OFFERS, "Incoming files", NotificationManager.IMPORTANCE_HIGH),
                NotificationChannel(MESSAGES, "Messages", NotificationManager.IMPORTANCE_HIGH),
            ),
        )
    }

    /** The foreground service's one notification: every running transfer, summed up. */
    fun transfers(summary: TransferSummary): Notification {
        val what = listOfNotNull(
            summary.receiving.takeIf { it > 0 }?.let { "receiving $it" },
            summary.sending.takeIf { it > 0 }?.let { "sending $it" },
        ).joinToString(", ").replaceFirstChar(Char::uppercaseChar)
        val known = summary.total > 0uL
        val percent = if (known) (summary.done * 100uL / summary.total).toInt() else 0
        return Notification.Builder(context, TRANSFERS)
            .setSmallIcon(if (summary.receiving > 0) android.R.drawable.stat_sys_download else android.R.drawable.stat_sys_upload)
            .setContentTitle(what.ifEmpty { "Transfers" })
            .setContentText(if (known) "${size(summary.done)} of ${size(summary.total)}" else "Waiting for the other device")
            .setProgress(100, percent, !known)
            .setOngoing(true)
            .setOnlyAlertOnce(true)
            .setOpen()
            .build()
    }

    /**
     * Shows exactly the offers [pending] (what the node says waits for an answer): each one up
     * (again, if the user swiped it away), and those answered or expired gone.
     */
    fun offers(pending: List<PendingOffer>) {
        val waiting = pending.map { it.offerId }.toSet()
        (shownOffers - waiting).forEach(::answered)
        pending.forEach(::offer)
    }

    /** An incoming offer: who, whether verified, how many files and bytes; Accept and Decline. */
    private fun offer(offer: PendingOffer) {
        val sender = offer.name.ifEmpty { offer.peerId.takeLast(8) }
        val count = offer.files.size
        val files = if (count == 1) "a file" else "$count files"
        // The node has no verified contacts yet: every sender is unverified, shown with the code
        // both screens display.
        val trust = "Not verified: check code ${offer.verificationCode} matches their screen"
        val notification = Notification.Builder(context, OFFERS)
            .setSmallIcon(android.R.drawable.stat_sys_download)
            .setContentTitle("$sender wants to send you $files")
            .setContentText("${size(offer.total)} · $trust")
            .setStyle(Notification.BigTextStyle().bigText(
                (listOf("${size(offer.total)} · $trust") + offer.files.take(5).map { it.path }).joinToString("\n"),
            ))
            .setCategory(Notification.CATEGORY_SOCIAL)
            .setOnlyAlertOnce(true)
            .addAction(Notification.Action.Builder(null, "Accept", answer(OfferActionReceiver.ACCEPT, offer.offerId)).build())
            .addAction(Notification.Action.Builder(null, "Decline", answer(OfferActionReceiver.DECLINE, offer.offerId)).build())
            .setOpen()
            .build()
        manager.notify(OFFER_TAG, offer.offerId.toInt(), notification)
        shownOffers += offer.offerId
    }

    /** The offer's notification goes (its node is gone, and the offer with it). */
    fun answered(offerId: ULong) {
        manager.cancel(OFFER_TAG, offerId.toInt())
        shownOffers -= offerId
    }

    /**
     * An incoming message, shown in the notification of its conversation (the author for a
     * direct message, the room for a room message, titled [roomName]) with the last few before it.
     */
    fun message(message: Message, roomName: String?) {
        val key = conversation(message)
        val history = conversations.getOrPut(key) { ArrayDeque() }
        history.addLast(message)
        while (history.size > KEPT_MESSAGES) history.removeFirst()
        val style = Notification.MessagingStyle(Person.Builder().setName("You").build())
        if (message.to is Recipient.Room) {
            style.conversationTitle = roomName
            style.isGroupConversation = true
        }
        history.forEach { m ->
            val author = Person.Builder().setName(m.fromName ?: m.fromPeer.takeLast(8)).setKey(m.fromPeer).build()
            style.addMessage(Notification.MessagingStyle.Message(m.text, m.timeMs.toLong(), author))
        }
        val notification = Notification.Builder(context, MESSAGES)
            .setSmallIcon(android.R.drawable.stat_notify_chat)
            .setStyle(style)
            .setGroup(MESSAGES_GROUP)
            .setCategory(Notification.CATEGORY_MESSAGE)
            .setAutoCancel(true)
            .setOpen()
            .build()
        manager.notify(CONVERSATION_TAG, key.hashCode(), notification)
    }

    private fun conversation(message: Message) = when (val to = message.to) {
        is Recipient.Room -> "room:${to.roomId}"
        is Recipient.Peer -> "peer:${message.fromPeer}"
    }

    private fun answer(action: String, offerId: ULong): PendingIntent {
        val intent = Intent(context, OfferActionReceiver::class.java)
            .setAction(action)
            .putExtra(OfferActionReceiver.EXTRA_OFFER, offerId.toLong())
        val request = offerId.toInt() * 2 + if (action == OfferActionReceiver.ACCEPT) 0 else 1
        return PendingIntent.getBroadcast(context, request, intent, PendingIntent.FLAG_IMMUTABLE or PendingIntent.FLAG_UPDATE_CURRENT)
    }

    /** A tap opens the app (when it has a launcher activity). */
    private fun Notification.Builder.setOpen(): Notification.Builder {
        val launch = context.packageManager.getLaunchIntentForPackage(context.packageName) ?: return this
        return setContentIntent(PendingIntent.getActivity(context, 0, launch, PendingIntent.FLAG_IMMUTABLE))
    }

    private fun size(bytes: ULong) = Formatter.formatShortFileSize(context, bytes.toLong())

    private companion object {
        const val TRANSFERS = "transfers"
        const val OFFERS = "offers"
        const val MESSAGES = "messages"
        const val MESSAGES_GROUP = "org.meshdrop.messages"
        const val OFFER_TAG = "offer"
        const val CONVERSATION_TAG = "conversation"
        const val KEPT_MESSAGES = 10
    }
}
