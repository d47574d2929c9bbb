package org.meshdrop.kit.android

import android.content.Intent
import android.net.Uri
import android.os.Build

/** What another app shares with meshdrop (the gallery's share sheet, a file manager). */
object ShareIn {
    /**
     * The items an `ACTION_SEND` or `ACTION_SEND_MULTIPLE` intent shares (images, videos, any
     * file); none for any other intent. Send them with [MeshdropHost.send] or [MeshdropHost.share],
     * which read them where they are ([ContentUriFiles]), never copied.
     */
    fun items(intent: Intent): List<Uri> = when (intent.action) {
        Intent.ACTION_SEND -> listOfNotNull(
            if (Build.VERSION.SDK_INT >= 33) {
                intent.getParcelableExtra(Intent.EXTRA_STREAM, Uri::class.java)
            } else {
                @Suppress("DEPRECATION")
                intent.getParcelableExtra(Intent.EXTRA_STREAM)
            },
        )
        Intent.ACTION_SEND_MULTIPLE -> if (Build.VERSION.SDK_INT >= 33) {
            intent.getParcelableArrayListExtra(Intent.EXTRA_STREAM, Uri::class.java)
        } else {
            @Suppress("DEPRECATION")
            intent.getParcelableArrayListExtra(Intent.EXTRA_STREAM)
        }.orEmpty()
        else -> emptyList()
    }

    /**
     * The ticket a `meshdrop:` link opens (`meshdrop:meshdrop1…`, from a message, a web page or a
     * scanned QR code), or null for any other intent. [MeshdropHost.download] checks it.
     */
    fun ticket(intent: Intent): String? = intent.data
        ?.takeIf { intent.action == Intent.ACTION_VIEW && it.scheme == SCHEME }
        ?.schemeSpecificPart
        ?.takeIf { it.isNotBlank() }

    private const val SCHEME = "meshdrop"
}
