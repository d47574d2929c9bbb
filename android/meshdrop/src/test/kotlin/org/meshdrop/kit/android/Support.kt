package org.meshdrop.kit.android

import android.content.ContentProvider
import android.content.ContentUris
import android.content.ContentValues
import android.database.Cursor
import android.database.MatrixCursor
import android.net.Uri
import android.os.ParcelFileDescriptor
import android.provider.MediaStore
import android.provider.OpenableColumns
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Deferred
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.withTimeout
import org.junit.Assert.assertEquals
import org.meshdrop.ffi.NodeConfig
import org.meshdrop.ffi.NodeEvent
import org.meshdrop.kit.Meshdrop
import org.robolectric.Robolectric
import org.robolectric.RuntimeEnvironment
import java.io.File
import java.util.concurrent.ConcurrentHashMap
import kotlin.random.Random

/** How long a test waits for what a user would see before it fails. */
const val WAIT_MS = 20_000L

/** The app's context in the test. */
val app get() = RuntimeEnvironment.getApplication()

/** The host as the app starts it, listening on 127.0.0.1 only (NSD does discovery). */
suspend fun startHost(config: HostConfig = HostConfig(deviceName = "phone", bind = LOOPBACK)) =
    MeshdropHost.getOrStart(app, config)

/** Listen and discover on loopback only: nothing leaves the machine. */
val LOOPBACK = listOf("127.0.0.1")

/** Waits for [what] at most [WAIT_MS]. */
suspend fun <T> within(what: String, block: suspend () -> T): T = try {
    withTimeout(WAIT_MS) { block() }
} catch (e: kotlinx.coroutines.TimeoutCancellationException) {
    throw AssertionError("timed out waiting for $what", e)
}

/** Starts waiting for the host's first event matching [pred] now, before what causes it. */
fun <E : NodeEvent> CoroutineScope.expect(host: MeshdropHost, what: String, pred: (NodeEvent) -> Boolean): Deferred<E> =
    async(start = CoroutineStart.UNDISPATCHED) {
        @Suppress("UNCHECKED_CAST")
        within(what) { host.events.first(pred) as E }
    }

/** Another device: a node of its own (no host, no Android), on 127.0.0.1. */
class Device private constructor(val md: Meshdrop, val dir: File) {
    private val events = Channel<NodeEvent>(Channel.UNLIMITED)
    private val collecting = CoroutineScope(Dispatchers.Default).launch {
        md.events.collect { events.send(it) }
        events.close()
    }

    /** Waits for this device's next event matching [pred]. */
    suspend fun <E : NodeEvent> waitFor(what: String, pred: (NodeEvent) -> Boolean): E = within(what) {
        var found: NodeEvent? = null
        while (found == null) {
            val event = events.receiveCatching().getOrNull() ?: throw AssertionError("events ended before $what")
            if (pred(event)) found = event
        }
        @Suppress("UNCHECKED_CAST")
        found as E
    }

    /**
     * Meets the host as friends do: each adds the other as a contact (after comparing the
     * verification code), then this device connects to it.
     */
    suspend fun meet(host: MeshdropHost) {
        befriend(host)
        md.addPeer(host.node.peerId(), host.node.listenAddrs())
    }

    /** Each adds the other as a contact (offers between strangers are declined at once). */
    fun befriend(host: MeshdropHost) {
        md.addContact(host.node.peerId(), host.node.name())
        host.node.addContact(md.peerId(), md.name())
    }

    /** Stops the node and frees it. */
    suspend fun close() {
        md.shutdown()
        collecting.join()
        md.close()
    }

    companion object {
        /** Starts a device named [name] with its files under [root]. */
        suspend fun start(root: File, name: String): Device {
            val dir = File(root, name).apply { mkdirs() }
            val config = NodeConfig(dataDir = File(dir, "data").path, deviceName = name, bind = LOOPBACK, mdns = false)
            return Device(Meshdrop.start(config), dir)
        }

        /** Starts a device named [name] with no network at all (no listener, no mDNS): links only. */
        suspend fun isolated(root: File, name: String): Device {
            val dir = File(root, name).apply { mkdirs() }
            val config = NodeConfig(dataDir = File(dir, "data").path, deviceName = name, listen = false, mdns = false)
            return Device(Meshdrop.start(config), dir)
        }
    }
}

/** A file of [size] random bytes at [path] under [root]. */
fun randomFile(root: File, path: String, size: Int): File =
    File(root, path).apply {
        parentFile!!.mkdirs()
        writeBytes(Random.nextBytes(size))
    }

/**
 * The shared collections (`content://media/...`), as much of `MediaStore` as the gallery needs:
 * rows with their columns and the bytes written to them.
 */
class FakeMediaStore : ContentProvider() {
    /** A saved item: its collection (`images`, `video`, `downloads`), columns and bytes. */
    class Item(val collection: String, val values: ContentValues, val file: File) {
        /** `RELATIVE_PATH/DISPLAY_NAME`. */
        val path get() = "${values.getAsString(MediaStore.MediaColumns.RELATIVE_PATH)}/${values.getAsString(MediaStore.MediaColumns.DISPLAY_NAME)}"

        /** Whether the gallery shows it (no longer pending). */
        val published get() = values.getAsInteger(MediaStore.MediaColumns.IS_PENDING) == 0
    }

    /** Every item, by id. */
    val items = ConcurrentHashMap<Long, Item>()
    private var next = 0L

    override fun onCreate() = true

    @Synchronized
    override fun insert(uri: Uri, values: ContentValues?): Uri {
        val id = ++next
        val collection = uri.pathSegments[1]
        items[id] = Item(collection, ContentValues(values), File(context!!.cacheDir, "media-$id"))
        return ContentUris.withAppendedId(uri, id)
    }

    override fun update(uri: Uri, values: ContentValues?, selection: String?, args: Array<out String>?): Int {
        val item = items[ContentUris.parseId(uri)] ?: return 0
        item.values.putAll(values)
        return 1
    }

    override fun delete(uri: Uri, selection: String?, args: Array<out String>?) =
        if (items.remove(ContentUris.parseId(uri)) != null) 1 else 0

    override fun openFile(uri: Uri, mode: String): ParcelFileDescriptor =
        ParcelFileDescriptor.open(items.getValue(ContentUris.parseId(uri)).file, ParcelFileDescriptor.parseMode(mode))

    override fun query(uri: Uri, p: Array<out String>?, s: String?, a: Array<out String>?, o: String?): Cursor? = null

    override fun getType(uri: Uri): String? = null

    /** The item saved at `RELATIVE_PATH/DISPLAY_NAME` [path]. */
    fun at(path: String): Item = items.values.singleOrNull { it.path == path }
        ?: throw AssertionError("nothing saved at $path; saved: ${items.values.map { it.path }}")

    companion object {
        /** Installs the collections for this test. */
        fun install(): FakeMediaStore = Robolectric.setupContentProvider(FakeMediaStore::class.java, MediaStore.AUTHORITY)
    }
}

/** Another app's files, shared as `content:` URIs with display names (the gallery, a file manager). */
class OtherAppFiles : ContentProvider() {
    private val files = ConcurrentHashMap<String, File>()
    private val names = ConcurrentHashMap<String, String>()

    override fun onCreate() = true

    /** Shares [file] as `content://AUTHORITY/<n>` named [name]. */
    fun share(file: File, name: String): Uri {
        val key = "${files.size + 1}"
        files[key] = file
        names[key] = name
        return Uri.parse("content://$AUTHORITY/$key")
    }

    override fun query(uri: Uri, p: Array<out String>?, s: String?, a: Array<out String>?, o: String?): Cursor {
        val key = uri.lastPathSegment!!
        return MatrixCursor(arrayOf(OpenableColumns.DISPLAY_NAME, OpenableColumns.SIZE)).apply {
            addRow(arrayOf<Any>(names.getValue(key), files.getValue(key).length()))
        }
    }

    override fun openFile(uri: Uri, mode: String): ParcelFileDescriptor {
        assertEquals("r", mode)
        return ParcelFileDescriptor.open(files.getValue(uri.lastPathSegment!!), ParcelFileDescriptor.MODE_READ_ONLY)
    }

    override fun getType(uri: Uri): String? = null
    override fun insert(uri: Uri, values: ContentValues?): Uri? = null
    override fun update(uri: Uri, values: ContentValues?, s: String?, a: Array<out String>?) = 0
    override fun delete(uri: Uri, s: String?, a: Array<out String>?) = 0

    companion object {
        private const val AUTHORITY = "org.meshdrop.test.otherapp"

        /** Installs the other app's provider for this test. */
        fun install(): OtherAppFiles = Robolectric.setupContentProvider(OtherAppFiles::class.java, AUTHORITY)
    }
}
