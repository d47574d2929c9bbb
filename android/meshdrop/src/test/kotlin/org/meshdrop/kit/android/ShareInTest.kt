package org.meshdrop.kit.android

import android.content.Intent
import android.net.Uri
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Before
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import org.junit.runner.RunWith
import org.meshdrop.ffi.NodeEvent
import org.meshdrop.ffi.SendOutcome
import org.robolectric.RobolectricTestRunner
import java.io.File

/** Photos shared from the gallery's share sheet go to a friend, and friends' files come into the gallery. */
@RunWith(RobolectricTestRunner::class)
class ShareInTest {
    @get:Rule
    val tmp = TemporaryFolder()
    private lateinit var gallery: OtherAppFiles
    private lateinit var media: FakeMediaStore
    private val devices = mutableListOf<Device>()

    @Before
    fun setUp() {
        gallery = OtherAppFiles.install()
        media = FakeMediaStore.install()
    }

    @After
    fun tearDown() = runBlocking {
        MeshdropHost.quit()
        devices.forEach { it.close() }
    }

    private suspend fun device(name: String) = Device.start(tmp.root, name).also { devices += it }

    @Test
    fun photosSharedFromTheGalleryBecomeAnOfferToTheChosenDevice() = runBlocking<Unit> {
        val host = startHost()
        val ana = device("Ana")
        ana.meet(host)
        val beach = randomFile(tmp.root, "gallery/1001", 1_500_000)
        val dunes = randomFile(tmp.root, "gallery/1002", 700_000)
        val sameName = randomFile(tmp.root, "gallery/1003", 300_000)
        val share = Intent(Intent.ACTION_SEND_MULTIPLE).setType("image/*").putParcelableArrayListExtra(
            Intent.EXTRA_STREAM,
            arrayListOf(gallery.share(beach, "beach.jpg"), gallery.share(dunes, "dunes.jpg"), gallery.share(sameName, "beach.jpg")),
        )

        val sending = async { host.send(ana.md.peerId(), ShareIn.items(share)) }
        val offer = ana.waitFor<NodeEvent.OfferReceived>("the offer") { it is NodeEvent.OfferReceived }
        assertEquals(listOf("beach (2).jpg", "beach.jpg", "dunes.jpg"), offer.files.map { it.path }.sorted())
        ana.md.acceptOffer(offer.offerId, ana.dir.resolve("in").path, null)
        assertEquals(SendOutcome.Delivered(2_500_000uL), sending.await())
        assertArrayEquals(beach.readBytes(), ana.dir.resolve("in/beach.jpg").readBytes())
        assertArrayEquals(dunes.readBytes(), ana.dir.resolve("in/dunes.jpg").readBytes())
        assertArrayEquals(sameName.readBytes(), ana.dir.resolve("in/beach (2).jpg").readBytes())
        assertEquals("no copy made for the core", emptyList<File>(), copiesOf(beach, dunes, sameName))
    }

    @Test
    fun aVideoSharedAloneBecomesATicketThatAFriendDownloads() = runBlocking<Unit> {
        val host = startHost()
        val ana = device("Ana")
        val video = randomFile(tmp.root, "gallery/2001", 2_000_000)
        val share = Intent(Intent.ACTION_SEND).setType("video/mp4")
            .putExtra(Intent.EXTRA_STREAM, gallery.share(video, "sunset.mp4"))

        val ticket = host.share(ShareIn.items(share))
        val got = ana.md.download(ticket, ana.dir.resolve("in").path, null)
        assertEquals(2_000_000uL, got.wait().bytes)
        assertArrayEquals(video.readBytes(), ana.dir.resolve("in/sunset.mp4").readBytes())
        assertEquals("no copy made for the core", emptyList<File>(), copiesOf(video))
        assertTrue("listed as served", host.node.shares().single().available)
        got.close()
    }

    @Test
    fun aFileItemIsSharedFromWhereItIs() = runBlocking<Unit> {
        val host = startHost()
        val ana = device("Ana")
        val notes = randomFile(tmp.root, "Documents/notes.pdf", 400_000)

        val ticket = host.share(listOf(Uri.fromFile(notes)))
        val got = ana.md.download(ticket, ana.dir.resolve("in").path, null)
        assertEquals(400_000uL, got.wait().bytes)
        assertArrayEquals(notes.readBytes(), ana.dir.resolve("in/notes.pdf").readBytes())
        assertEquals("no copy made for the core", emptyList<File>(), copiesOf(notes))
        got.close()
    }

    /** Files in the app's own folders with the bytes of any of [files]. */
    private fun copiesOf(vararg files: File): List<File> = listOf(app.cacheDir, app.filesDir)
        .flatMap { it.walk().filter { f -> f.isFile }.toList() }
        .filter { f -> files.any { it.length() == f.length() && it.readBytes().contentEquals(f.readBytes()) } }

    @Test
    fun receivedImagesVideosAndOtherFilesLandInTheirCollections() = runBlocking<Unit> {
        val host = startHost()
        val ana = device("Ana")
        val trip = ana.dir.resolve("Trip")
        val files = mapOf(
            "Pictures/meshdrop/Trip/beach.jpg" to randomFile(trip, "beach.jpg", 900_000),
            "Pictures/meshdrop/Trip/Day2/dunes.jpg" to randomFile(trip, "Day2/dunes.jpg", 400_000),
            "Movies/meshdrop/Trip/sunset.mp4" to randomFile(trip, "sunset.mp4", 1_100_000),
            "Download/meshdrop/Trip/route.txt" to randomFile(trip, "route.txt", 20_000),
        )
        val transfer = host.download(ana.md.share(listOf(trip.path)))
        within("saved to the gallery") { host.transfers.first { it.idle } }
        assertEquals(files.keys, media.items.values.map { it.path }.toSet())
        for ((path, file) in files) {
            val saved = media.at(path)
            assertTrue("$path published", saved.published)
            assertArrayEquals(path, file.readBytes(), saved.file.readBytes())
        }
        assertTrue("nothing left in the app's private folder", app.filesDir.resolve("incoming").listFiles().isNullOrEmpty())
        transfer.close()
    }

    @Test
    fun aMeshdropLinkOpensItsTicketAndDownloadsIt() = runBlocking<Unit> {
        val host = startHost()
        val ana = device("Ana")
        val photo = randomFile(ana.dir, "beach.jpg", 600_000)
        val link = Intent(Intent.ACTION_VIEW, Uri.parse("meshdrop:" + ana.md.share(listOf(photo.path))))
        assertTrue("a link shares no items", ShareIn.items(link).isEmpty())

        val transfer = host.download(ShareIn.ticket(link)!!)
        within("saved to the gallery") { host.transfers.first { it.idle } }
        assertArrayEquals(photo.readBytes(), media.at("Pictures/meshdrop/beach.jpg").file.readBytes())
        transfer.close()
    }

    @Test
    fun otherIntentsCarryNoTicket() {
        assertEquals(null, ShareIn.ticket(Intent(Intent.ACTION_VIEW, Uri.parse("https://example.org/x"))))
        assertEquals(null, ShareIn.ticket(Intent(Intent.ACTION_SEND).putExtra(Intent.EXTRA_TEXT, "meshdrop:x")))
    }
}
