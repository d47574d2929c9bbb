package org.meshdrop.kit.android

import android.content.ContentResolver
import android.content.Context
import android.net.Uri
import android.os.ParcelFileDescriptor
import android.provider.OpenableColumns
import org.meshdrop.ffi.HostFileException
import org.meshdrop.ffi.HostFiles
import java.io.File
import java.io.FileInputStream
import java.io.IOException
import java.nio.ByteBuffer
import java.nio.channels.FileChannel

/**
 * Picked or shared items ([ShareIn.items], a document picker's `content:` URIs, `file:` URIs) as
 * files the core reads on demand: it hashes and serves them through here, so nothing is copied.
 * Each item is opened once (`openFileDescriptor(uri, "r")`) and read at offsets from any thread;
 * [close] closes what is open. Names are the items' display names (the core makes repeated ones
 * distinct and refuses any that is not a single name).
 */
class ContentUriFiles(context: Context, private val items: List<Uri>) : HostFiles, AutoCloseable {
    private val resolver: ContentResolver = context.contentResolver
    private val open = arrayOfNulls<Opened>(items.size)

    private class Opened(val descriptor: ParcelFileDescriptor?, val channel: FileChannel)

    override fun count(): UInt = items.size.toUInt()

    override fun name(file: UInt): String = reading(file) {
        val item = items[file.toInt()]
        val named = if (item.scheme == ContentResolver.SCHEME_FILE) {
            null
        } else {
            resolver.query(item, arrayOf(OpenableColumns.DISPLAY_NAME), null, null, null)
                ?.use { if (it.moveToFirst()) it.getString(0) else null }
        }
        File(named ?: item.lastPathSegment ?: "file").name.ifEmpty { "file" }
    }

    override fun size(file: UInt): ULong = reading(file) { opened(file).channel.size().toULong() }

    override fun read(file: UInt, offset: ULong, len: UInt): ByteArray = reading(file) {
        val channel = opened(file).channel
        val buffer = ByteBuffer.allocate(len.toInt())
        while (buffer.hasRemaining()) {
            if (channel.read(buffer, offset.toLong() + buffer.position()) < 0) break
        }
        if (buffer.position() == buffer.capacity()) buffer.array() else buffer.array().copyOf(buffer.position())
    }

    /** Closes every item open now (a later read, for a share still served, opens it again). */
    override fun close() = synchronized(open) {
        for (k in open.indices) {
            open[k]?.let { it.channel.close(); it.descriptor?.close() }
            open[k] = null
        }
    }

    private fun opened(file: UInt): Opened = synchronized(open) {
        val k = file.toInt()
        open[k] ?: run {
            val item = items[k]
            if (item.scheme == ContentResolver.SCHEME_FILE) {
                Opened(null, FileInputStream(File(item.path!!)).channel)
            } else {
                val descriptor = resolver.openFileDescriptor(item, "r") ?: throw IOException("cannot open $item")
                Opened(descriptor, FileInputStream(descriptor.fileDescriptor).channel)
            }
        }.also { open[k] = it }
    }

    private fun <T> reading(file: UInt, read: () -> T): T = try {
        read()
    } catch (e: Exception) {
        throw HostFileException.Unreadable("${items.getOrNull(file.toInt())}: ${e.message ?: e}")
    }
}
