package org.meshdrop.kit.android

import android.app.Activity
import android.os.Bundle
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotSame
import org.junit.Assert.assertNull
import org.junit.Assert.assertSame
import org.junit.Assert.assertThrows
import org.junit.Test
import org.junit.runner.RunWith
import org.meshdrop.ffi.MeshdropException
import org.meshdrop.ffi.NodeConfig
import org.meshdrop.kit.Meshdrop
import org.robolectric.Robolectric
import org.robolectric.RobolectricTestRunner
import java.io.File

/** A screen as the app's are: it asks the process for its node each time it is created. */
class ScreenActivity : Activity() {
    val host = CompletableDeferred<MeshdropHost>()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        MeshdropHost.scope.launch { host.complete(startHost()) }
    }
}

/** One node per process, whatever the screens do. */
@RunWith(RobolectricTestRunner::class)
class LifecycleTest {
    @After
    fun quit() = runBlocking<Unit> { MeshdropHost.quit() }

    @Test
    fun rotatingBackingOutAndReopeningKeepTheSameRunningNode() = runBlocking<Unit> {
        val screen = Robolectric.buildActivity(ScreenActivity::class.java).setup()
        val first = within("the first screen's node") { screen.get().host.await() }
        val peerId = first.node.peerId()

        // Rotation: the Activity is recreated.
        screen.recreate()
        assertSame(first, within("the node after rotation") { screen.get().host.await() })

        // Back, then the launcher icon: a new Activity in the same process.
        screen.pause().stop().destroy()
        val reopened = Robolectric.buildActivity(ScreenActivity::class.java).setup()
        val again = within("the node after reopening") { reopened.get().host.await() }
        assertSame(first, again)
        assertEquals(peerId, again.node.peerId())
        reopened.pause().stop().destroy()
    }

    @Test
    fun quitStopsTheNodeAndTheNextStartRunsOnTheSameData() = runBlocking<Unit> {
        val first = startHost()
        val peerId = first.node.peerId()
        // What the holder prevents: a second node on the same data dir is refused.
        val dataDir = File(app.filesDir, "meshdrop").path
        assertThrows(MeshdropException::class.java) {
            runBlocking { Meshdrop.start(NodeConfig(dataDir = dataDir, bind = LOOPBACK, mdns = false)) }
        }

        MeshdropHost.quit()
        assertNull(MeshdropHost.running)
        val second = startHost()
        assertNotSame(first, second)
        assertEquals(peerId, second.node.peerId())
    }
}
