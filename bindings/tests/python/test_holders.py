"""Files travel like messages, through the Python bindings: a download whose only provider is
gone shows "waiting for someone who has it" and completes once a friend who fetched it connects;
room attachments are fetched by themselves within the settings the app gives."""

import asyncio
import tempfile
from pathlib import Path

import meshdrop_ffi as md
from helpers import LoopbackNode


def test_a_download_waits_for_a_holder_and_completes_once_one_connects():
    async def scenario():
        alice = await LoopbackNode.start("alice")
        bob = await LoopbackNode.start("bob")
        carol = await LoopbackNode.start("carol")
        with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as out:
            photo = Path(src) / "sunset.jpg"
            photo.write_bytes(bytes((i * 7) % 253 for i in range(700_000)))
            ticket = await alice.node.share([str(photo)])
            await bob.node.download(ticket, str(Path(out) / "bob"), None).wait()
            await alice.shutdown()

            transfer = carol.node.download(ticket, str(Path(out) / "carol"), None)
            tid = transfer.id()
            waiting = await carol.wait_for(
                "waiting for a holder",
                lambda e: e.is_transfer_waiting() and e.transfer_id == tid,
            )
            assert waiting.tried, waiting
            await carol.node.add_peer(bob.node.peer_id(), bob.node.listen_addrs())
            report = await asyncio.wait_for(transfer.wait(), 30)
            assert report.bytes == 700_000
            assert (Path(out) / "carol" / "sunset.jpg").read_bytes() == photo.read_bytes()
        await bob.shutdown()
        await carol.shutdown()

    asyncio.run(scenario())


def test_auto_fetch_settings_round_trip_and_an_oversized_attachment_is_left():
    async def scenario():
        alice = await LoopbackNode.start("alice")
        bob = await LoopbackNode.start("bob")
        settings = bob.node.auto_fetch()
        assert settings.max_message_bytes == 50_000_000
        settings.max_message_bytes = 100_000
        bob.node.set_auto_fetch(settings)
        assert bob.node.auto_fetch().max_message_bytes == 100_000
        room = await alice.node.create_room("trip")
        await bob.node.join_room(room.invite)
        await bob.node.add_peer(alice.node.peer_id(), alice.node.listen_addrs())
        with tempfile.TemporaryDirectory() as src:
            photo = Path(src) / "big.jpg"
            photo.write_bytes(bytes(300_000))
            msg = await alice.node.send_with_attachment(
                md.Recipient.ROOM(room_id=room.id), "day one", [str(photo)], False
            )
            left = await bob.wait_for(
                "attachment left alone",
                lambda e: e.is_attachment_not_fetched() and e.message_id == msg,
            )
            assert "more than the 100000" in left.reason, left.reason
        await alice.shutdown()
        await bob.shutdown()

    asyncio.run(scenario())
