package org.meshdrop.kit.android

import android.content.BroadcastReceiver
import android.content.Context
import android.content.Intent
import android.util.Log
import org.meshdrop.ffi.MeshdropException

/** The Accept and Decline buttons of an offer notification: forwards the tap to the host. */
class OfferActionReceiver : BroadcastReceiver() {
    override fun onReceive(context: Context, intent: Intent) {
        val offerId = intent.getLongExtra(EXTRA_OFFER, -1L).takeIf { it >= 0 }?.toULong() ?: return
        // No host: the node that received the offer is gone, and the offer with it.
        val host = MeshdropHost.running ?: return Notifications(context).answered(offerId)
        try {
            when (intent.action) {
                ACCEPT -> host.accept(offerId)
                DECLINE -> host.decline(offerId)
            }
        } catch (e: MeshdropException) {
            // Typically NotFound: the sender gave up waiting. The notification is gone already.
            Log.w("meshdrop", "answering offer $offerId: ${e.message}")
        }
    }

    internal companion object {
        const val ACCEPT = "org.meshdrop.kit.action.ACCEPT_OFFER"
        const val DECLINE = "org.meshdrop.kit.action.DECLINE_OFFER"
        const val EXTRA_OFFER = "org.meshdrop.kit.extra.OFFER"
    }
}
