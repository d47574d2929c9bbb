"""Links through the bindings: a Python host's link driver over socket pairs joins two nodes
that have no IP listener at all; a file and a message cross the link, and a link that breaks
mid-transfer is reported and the download resumes over the next one."""

import asyncio
import os
import socket
import tempfile
from pathlib import Path

import meshdrop_ffi as md
from helpers import Recorder

MEDIUM = "socketpair"
CHUNK = 256 * 1024


async def isolated(name: str):
    """A node with no listen address and mDNS off: links are its only way to anyone."""
    tmp = tempfile.TemporaryDirectory()
    recorder = Recorder(asyncio.get_running_loop())
    config = md.NodeConfig(
        data_dir=str(Path(tmp.name) / "data"),
        device_name=name,
        listen=False,
        mdns=False,
    )
    node = await md.start_node(config, recorder)
    return node, recorder, tmp


async def pump(stream: md.LinkStream, sock: socket.socket):
    """Moves one link's bytes between its socket and the core until either side ends."""
    loop = asyncio.get_running_loop()

    async def inbound():
        while True:
            try:
                data = await loop.sock_recv(sock, CHUNK)
            except OSError:
                data = b""
            if not data:
                await stream.end()
                return
            try:
                await stream.receive(data)
            except md.MeshdropError.LinkClosed:
                return

    async def outbound():
        while True:
            chunk = await stream.next_outgoing()
            if chunk is None:
                return
            try:
                await loop.sock_sendall(sock, chunk)
            except OSError:
                await stream.end()
                return

    await asyncio.gather(inbound(), outbound())
    sock.close()


class SocketPairDriver(md.LinkDriver):
    """The host's link driver: "opening a link" to the other node makes a socket pair and hands
    one end to each node, the asking node dialling."""

    def __init__(self, loop, here, there):
        self.loop, self.here, self.there = loop, here, there
        self.asked = []
        self.sockets = []
        self.links = asyncio.Queue()

    def start_discovery(self, medium):
        self.asked.append(f"start {medium}")

    def stop_discovery(self, medium):
        self.asked.append(f"stop {medium}")

    def open_link(self, medium, device):
        # Called on a core thread: the work happens on the host's loop.
        self.asked.append(f"open {device}")
        self.loop.call_soon_threadsafe(lambda: self.loop.create_task(self.open(device)))

    async def open(self, device):
        near, far = socket.socketpair()
        for s in (near, far):
            s.setblocking(False)
        self.sockets += [near, far]
        streams = md.LinkStream(), md.LinkStream()
        for stream, sock in zip(streams, (near, far)):
            self.loop.create_task(pump(stream, sock))
        peers = await asyncio.gather(
            self.here.add_link(streams[0], md.LinkDirection.OUTBOUND, MEDIUM, device),
            self.there.add_link(streams[1], md.LinkDirection.INBOUND, MEDIUM, None),
        )
        await self.links.put(peers)

    def break_links(self):
        """The radio drops: every socket ends at once (each pump then closes its own)."""
        for s in self.sockets:
            s.shutdown(socket.SHUT_RDWR)
        self.sockets.clear()


async def wait_for(recorder, what, pred, timeout=30.0):
    async def find():
        while True:
            event = await recorder.queue.get()
            if pred(event):
                return event

    try:
        return await asyncio.wait_for(find(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"no {what} event within {timeout} s") from None


def test_a_file_and_a_message_cross_a_link_that_breaks_and_is_opened_again():
    async def scenario():
        loop = asyncio.get_running_loop()
        alice, alice_events, alice_tmp = await isolated("alice")
        bob, bob_events, bob_tmp = await isolated("bob")
        assert alice.listen_addrs() == []
        driver = SocketPairDriver(loop, bob, alice)
        await bob.set_link_driver(driver, [MEDIUM])
        bob.add_contact(alice.peer_id(), "Alice")

        # The driver sees alice's device (the medium carried her peer id): a contact, so the
        # node asks for a link.
        await bob.device_nearby(MEDIUM, "alice-phone", alice.peer_id())
        peers = await asyncio.wait_for(driver.links.get(), 30)
        assert peers == [alice.peer_id(), bob.peer_id()], "each side authenticated the other"
        connected = await wait_for(
            bob_events,
            "connected",
            lambda e: e.is_peer_connected() and e.peer_id == alice.peer_id(),
        )
        assert (connected.transport, connected.medium) == (md.Transport.LINK, MEDIUM)
        assert driver.asked == [f"start {MEDIUM}", "open alice-phone"]
        info = [p for p in await bob.peers() if p.peer_id == alice.peer_id()][0]
        assert (info.transport, info.medium) == (md.Transport.LINK, MEDIUM)

        with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as dest:
            video = Path(src) / "trip.mov"
            data = os.urandom(20 * 1024 * 1024)
            video.write_bytes(data)
            ticket = await alice.share([str(video)])
            transfer = bob.download(ticket, dest, None)
            tid = transfer.id()
            await wait_for(
                bob_events,
                "progress past 4 MiB",
                lambda e: e.is_transfer_progress()
                and e.transfer_id == tid
                and 4 * 1024 * 1024 <= e.done < e.total,
            )
            driver.break_links()
            await wait_for(
                bob_events,
                "the link's end",
                lambda e: e.is_peer_disconnected() and e.peer_id == alice.peer_id(),
            )
            # The radio is back: the host opens a new link, and the download carries on.
            await driver.open("alice-phone")
            await asyncio.wait_for(driver.links.get(), 30)
            report = await asyncio.wait_for(transfer.wait(), 120)
            assert (Path(dest) / "trip.mov").read_bytes() == data
            assert report.bytes == len(data)

        sent = await bob.send_message(alice.peer_id(), "over the link")
        got = await wait_for(
            alice_events,
            "message",
            lambda e: e.is_message_received() and e.message.id == sent,
        )
        assert got.message.text == "over the link"
        history = await alice.messages()
        assert [m.text for m in history if m.id == sent] == ["over the link"], "exactly once"

        await bob.shutdown()
        assert driver.asked[-1] == f"stop {MEDIUM}"
        await alice.shutdown()
        alice_tmp.cleanup()
        bob_tmp.cleanup()

    asyncio.run(scenario())


def test_failed_discovery_starts_again_and_the_own_advertisement_is_ignored():
    async def scenario():
        loop = asyncio.get_running_loop()
        bob, _, bob_tmp = await isolated("bob")
        started = asyncio.Queue()

        class Driver(SocketPairDriver):
            def start_discovery(self, medium):
                super().start_discovery(medium)
                loop.call_soon_threadsafe(started.put_nowait, medium)

        driver = Driver(loop, bob, None)
        await bob.set_link_driver(driver, [MEDIUM])
        assert await asyncio.wait_for(started.get(), 5) == MEDIUM

        # The radio hears this device's own advertisement: nothing to link to.
        await bob.device_nearby(MEDIUM, "myself", bob.peer_id())
        # The platform stopped discovery (an idle timeout): the node starts it again after 5 s.
        await bob.link_discovery_failed(MEDIUM)
        assert await asyncio.wait_for(started.get(), 15) == MEDIUM
        assert driver.asked == [f"start {MEDIUM}", f"start {MEDIUM}"], "no link to itself"

        await bob.shutdown()
        bob_tmp.cleanup()

    asyncio.run(scenario())
