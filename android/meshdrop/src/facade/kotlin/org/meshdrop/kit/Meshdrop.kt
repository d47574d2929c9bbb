package org.meshdrop.kit

import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.receiveAsFlow
import org.meshdrop.ffi.EventListener
import org.meshdrop.ffi.Node
import org.meshdrop.ffi.NodeConfig
import org.meshdrop.ffi.NodeEvent
import org.meshdrop.ffi.NodeInterface
import org.meshdrop.ffi.startNode

/**
 * A meshdrop node for an app: every call of the generated [Node] (suspend functions for the
 * async ones: peers, share, sendFiles, shutdown, ...) plus the node's events as a [Flow].
 *
 * It holds no state and decides nothing: screens show what [events] and [peers] say, and taps
 * call the node. Plain Kotlin (no Android API), so the JVM tests compile and run it as is.
 */
class Meshdrop private constructor(
    private val node: Node,
    private val channel: Channel<NodeEvent>,
) : NodeInterface by node, AutoCloseable {

    /**
     * Every event since the node started, in order; it completes after [NodeEvent.Stopped].
     * Collect it once (a ViewModel does) and share from there: each event goes to one collector.
     */
    val events: Flow<NodeEvent> = channel.receiveAsFlow()

    /** Frees the native node; call [shutdown] first. */
    override fun close() = node.close()

    companion object {
        /**
         * Starts a node; its events from the start on go to [events]. [tap] sees each event
         * first, on the bindings' event thread, before [events] does: a host that must act on an
         * event before anyone observes it (a notification, a foreground service) does it there,
         * quickly, and never calls [shutdown] from it.
         */
        suspend fun start(config: NodeConfig, tap: (NodeEvent) -> Unit = {}): Meshdrop {
            val channel = Channel<NodeEvent>(Channel.UNLIMITED)
            val listener = object : EventListener {
                override fun onEvent(event: NodeEvent) {
                    tap(event)
                    channel.trySend(event)
                    if (event is NodeEvent.Stopped) channel.close()
                }
            }
            return Meshdrop(startNode(config, listener), channel)
        }
    }
}
