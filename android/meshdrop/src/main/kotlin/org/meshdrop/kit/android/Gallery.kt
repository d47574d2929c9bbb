package org.meshdrop.kit.android

import android.content.ContentValues
import android.content.Context
import android.net.Uri
import android.os.Environment
import android.provider.MediaStore
import android.util.Log
import android.webkit.MimeTypeMap
import java.io.File
import java.io.IOException

/**
 * Puts received files where the user finds them and an uninstall leaves them: images in
 * `Pictures/meshdrop`, videos in `Movies/meshdrop`, everything else in `Download/meshdrop`
 * (sub-folders of the share kept), through `MediaStore`, so the gallery shows them.
 */
internal class Gallery(private val context: Context) {
    /**
     * Moves [files] (a download's, verified by the node, under [dir]) into the shared collections,
     * their folders under [dir] kept, and removes [dir] once empty; a file that cannot be saved
     * stays in [dir].
     */
    fun save(dir: File, files: List<File>) {
        // The node reports canonical paths.
        val root = dir.canonicalFile
        files.forEach { file ->
            val folder = file.parentFile!!.relativeTo(root).invariantSeparatorsPath
            if (save(file, folder) != null) file.delete()
        }
        if (dir.walkTopDown().none { it.isFile }) dir.deleteRecursively()
    }

    private fun save(file: File, folder: String): Uri? {
        val mime = MimeTypeMap.getSingleton().getMimeTypeFromExtension(file.extension.lowercase())
            ?: "application/octet-stream"
        val volume = MediaStore.VOLUME_EXTERNAL_PRIMARY
        val (collection, root) = when {
            mime.startsWith("image/") -> MediaStore.Images.Media.getContentUri(volume) to Environment.DIRECTORY_PICTURES
            mime.startsWith("video/") -> MediaStore.Video.Media.getContentUri(volume) to Environment.DIRECTORY_MOVIES
            else -> MediaStore.Downloads.getContentUri(volume) to Environment.DIRECTORY_DOWNLOADS
        }
        val values = ContentValues().apply {
            put(MediaStore.MediaColumns.DISPLAY_NAME, file.name)
            put(MediaStore.MediaColumns.MIME_TYPE, mime)
            put(MediaStore.MediaColumns.RELATIVE_PATH, listOf(root, "meshdrop", folder).filter(String::isNotEmpty).joinToString("/"))
            put(MediaStore.MediaColumns.IS_PENDING, 1)
        }
        val resolver = context.contentResolver
        val item = resolver.insert(collection, values) ?: return null
        return try {
            val out = resolver.openOutputStream(item) ?: throw IOException("cannot write $item")
            out.use { file.inputStream().use { input -> input.copyTo(it, COPY_BUFFER) } }
            resolver.update(item, ContentValues().apply { put(MediaStore.MediaColumns.IS_PENDING, 0) }, null, null)
            item
        } catch (e: Exception) {
            // Storage full, the collection refusing the item: the file stays where it is.
            Log.w("meshdrop", "saving ${file.name}: ${e.message}")
            resolver.delete(item, null, null)
            null
        }
    }

    private companion object {
        const val COPY_BUFFER = 1 shl 20
    }
}
