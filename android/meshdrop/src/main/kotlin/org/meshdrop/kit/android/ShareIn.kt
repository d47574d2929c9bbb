package org.meshdrop.kit.android

import android.content.ContentResolver
import android.content.Context
import android.content.Intent
import android.net.Uri
import android.os.Build
import android.provider.OpenableColumns
import java.io.File

/** What another app shares with meshdrop (the gallery's share sheet, a file manager). */
object ShareIn {
    /**
     * The items an `ACTION_SEND` or `ACTION_SEND_MULTIPLE` intent shares (images, videos, any
     * file); none for any other intent. Send them with [MeshdropHost.send] or [MeshdropHost.share].
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

/**
 * Paths the core can read for picked or shared items. The core shares files by path today, so a
 * `content:` item is copied into [folder] under its display name; a `file:` item is used as it is.
 * The caller removes [folder] when the copies are no longer served.
 */
internal fun stage(context: Context, items: List<Uri>, folder: File): List<String> = items.map { item ->
    if (item.scheme == ContentResolver.SCHEME_FILE) return@map item.path!!
    folder.mkdirs()
    val copy = unique(folder, displayName(context, item))
    val input = context.contentResolver.openInputStream(item) ?: error("cannot read $item")
    input.use { copy.outputStream().use { out -> it.copyTo(out, 1 shl 20) } }
    copy.path
}

private fun displayName(context: Context, item: Uri): String {
    val named = context.contentResolver.query(item, arrayOf(OpenableColumns.DISPLAY_NAME), null, null, null)
        ?.use { if (it.moveToFirst()) it.getString(0) else null }
    return File(named ?: item.lastPathSegment ?: "file").name.ifEmpty { "file" }
}

/** [name] in [folder], or `name (2).ext`, `name (3).ext`, ... when taken. */
private fun unique(folder: File, name: String): File {
    val base = name.substringBeforeLast('.')
    val ext = name.substring(base.length)
    return generateSequence(1) { it + 1 }
        .map { n -> File(folder, if (n == 1) name else "$base ($n)$ext") }
        .first { !it.exists() }
}
