"""The generated Python bindings over the host-built library: two nodes on 127.0.0.1."""

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import meshdrop_ffi as md
from helpers import LoopbackNode


async def all_statuses(transfer) -> list:
    """Every status `next_status` gives, to the end of the download."""
    statuses = []
    while (status := await transfer.next_status()) is not None:
        statuses.append(status)
    return statuses


def write_folder(root: Path) -> dict:
    files = {
        "album/a.bin": bytes(i % 251 for i in range(3_000_000)),
        "album/notes/b.txt": b"hello from python\n",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_version_is_the_cores():
    assert md.version().count(".") == 2


def test_shared_folder_downloads_with_progress_and_equal_bytes():
    async def scenario():
        alice = await LoopbackNode.start("alice")
        bob = await LoopbackNode.start("bob")
        with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as dest:
            files = write_folder(Path(src))
            ticket = await alice.node.share([str(Path(src) / "album")])
            transfer = bob.node.download(ticket, dest, None)
            statuses = await asyncio.wait_for(all_statuses(transfer), 20)
            assert statuses[-1].is_finished(), statuses
            assert statuses[-1].bytes == 3_000_018
            wanted = [str(Path(dest) / rel) for rel in files]
            assert statuses[-1].paths == wanted
            running = [s for s in statuses if s.is_running()]
            assert all(a.done <= b.done for a, b in zip(running, running[1:])), running
            report = await transfer.wait()
            assert report.bytes == 3_000_018
            assert report.paths == wanted
            for rel, data in files.items():
                assert (Path(dest) / rel).read_bytes() == data, rel

            tid = transfer.id()
            last = await bob.wait_for(
                "final progress",
                lambda e: e.is_transfer_progress() and e.transfer_id == tid and e.done == e.total,
            )
            print("last progress:", last)
            finished = await bob.wait_for(
                "finished", lambda e: e.is_transfer_finished() and e.transfer_id == tid
            )
            assert finished.paths == wanted
        await alice.shutdown()
        await bob.shutdown()

    asyncio.run(scenario())


def test_an_offer_is_accepted_and_delivered():
    async def scenario():
        alice = await LoopbackNode.start("alice")
        bob = await LoopbackNode.start("bob")
        await alice.node.add_peer(bob.node.peer_id(), bob.node.listen_addrs())
        # Bob compared codes with Alice: only contacts may offer files.
        bob.node.add_contact(alice.node.peer_id(), "Alice")
        with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as dest:
            files = write_folder(Path(src))
            sending = asyncio.ensure_future(
                alice.node.send_files(bob.node.peer_id(), [str(Path(src) / "album")])
            )
            offer = await bob.wait_for("offer", lambda e: e.is_offer_received())
            assert offer.name == "alice"
            assert sorted(f.path for f in offer.files) == sorted(files)
            # What a screen opened now (or a listener that fell behind) shows.
            [pending] = bob.node.pending_offers()
            assert (pending.offer_id, pending.peer_id) == (offer.offer_id, alice.node.peer_id())
            assert pending.files == offer.files and pending.expires_in_secs > 0
            bob.node.accept_offer(offer.offer_id, dest, None)
            assert bob.node.pending_offers() == []
            outcome = await sending
            assert outcome == md.SendOutcome.DELIVERED(bytes=3_000_018)
            for rel, data in files.items():
                assert (Path(dest) / rel).read_bytes() == data, rel
        await alice.shutdown()
        await bob.shutdown()

    asyncio.run(scenario())


def test_a_message_is_received_once_and_delivered():
    async def scenario():
        alice = await LoopbackNode.start("alice")
        bob = await LoopbackNode.start("bob")
        await alice.node.add_peer(bob.node.peer_id(), bob.node.listen_addrs())
        sent = await alice.node.send_message(bob.node.peer_id(), "hi bob")
        got = await bob.wait_for("message", lambda e: e.is_message_received())
        assert (got.message.id, got.message.text) == (sent, "hi bob")
        assert got.message.from_peer == alice.node.peer_id()
        await alice.wait_for(
            "delivered",
            lambda e: e.is_message_state_changed()
            and e.message_id == sent
            and e.state == md.MessageState.DELIVERED,
        )
        history = await bob.node.messages()
        assert [m.text for m in history if m.id == sent] == ["hi bob"]
        await alice.shutdown()
        await bob.shutdown()

    asyncio.run(scenario())


def test_errors_carry_fields_a_caller_can_act_on():
    async def scenario():
        bob = await LoopbackNode.start("bob")
        with pytest.raises(md.MeshdropError.InvalidTicket) as bad:
            bob.node.download("meshdrop-nonsense", "/tmp", None)
        assert "ticket" in str(bad.value)
        with pytest.raises(md.MeshdropError.NotFound) as missing:
            bob.node.decline_offer(42)
        assert "42" in missing.value.what
        with pytest.raises(md.MeshdropError.InvalidInput):
            await bob.node.add_peer("not-a-peer", [])
        await bob.shutdown()

    asyncio.run(scenario())


def test_a_cancelled_download_ends_with_the_kind_cancelled():
    async def scenario():
        alice = await LoopbackNode.start("alice")
        bob = await LoopbackNode.start("bob")
        with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as dest:
            (Path(src) / "big.bin").write_bytes(bytes(8_000_000))
            ticket = await alice.node.share([str(Path(src) / "big.bin")])
            transfer = bob.node.download(ticket, dest, None)
            transfer.pause()
            transfer.cancel(False)
            statuses = await asyncio.wait_for(all_statuses(transfer), 20)
            assert statuses[-1] == md.TransferStatus.FAILED(
                error="cancelled", kind=md.FailureKind.CANCELLED
            )
            tid = transfer.id()
            failed = await bob.wait_for(
                "failed", lambda e: e.is_transfer_failed() and e.transfer_id == tid
            )
            assert failed.kind == md.FailureKind.CANCELLED
            assert not (Path(dest) / "big.bin").exists()
        await alice.shutdown()
        await bob.shutdown()

    asyncio.run(scenario())


def test_an_offer_accepted_where_no_folder_can_be_fails_with_its_kind_on_both_sides():
    async def scenario():
        alice = await LoopbackNode.start("alice")
        bob = await LoopbackNode.start("bob")
        await alice.node.add_peer(bob.node.peer_id(), bob.node.listen_addrs())
        bob.node.add_contact(alice.node.peer_id(), "Alice")
        with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as tmp:
            write_folder(Path(src))
            # The destination is a file: no folder can be made there.
            dest = Path(tmp) / "taken"
            dest.write_bytes(b"not a folder")
            sending = asyncio.ensure_future(
                alice.node.send_files(bob.node.peer_id(), [str(Path(src) / "album")])
            )
            offer = await bob.wait_for("offer", lambda e: e.is_offer_received())
            bob.node.accept_offer(offer.offer_id, str(dest), None)
            failed = await bob.wait_for("failed", lambda e: e.is_transfer_failed())
            assert failed.kind == md.FailureKind.DESTINATION, failed
            outcome = await asyncio.wait_for(sending, 20)
            assert outcome.is_failed(), outcome
            assert outcome.kind == md.FailureKind.DESTINATION
            assert outcome.error == failed.error
            assert dest.read_bytes() == b"not a folder"
        await alice.shutdown()
        await bob.shutdown()

    asyncio.run(scenario())


def test_a_dial_to_a_closed_port_fails_as_refused():
    async def scenario():
        bob = await LoopbackNode.start("bob")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        addr = f"/ip4/127.0.0.1/tcp/{port}"
        with pytest.raises(md.MeshdropError.PeerUnreachable):
            await bob.node.connect(addr)
        failed = await bob.wait_for("dial failed", lambda e: e.is_dial_failed())
        assert failed.kind == md.FailureKind.REFUSED, failed
        assert str(port) in failed.error
        await bob.shutdown()

    asyncio.run(scenario())


def test_the_battery_state_changes_what_the_node_uploads():
    async def scenario():
        bob = await LoopbackNode.start("bob")
        charging = bob.node.upload_limits()
        bob.node.set_on_battery(True)
        on_battery = bob.node.upload_limits()
        assert on_battery != charging
        assert on_battery.upload_slots <= charging.upload_slots
        bob.node.set_on_battery(False)
        assert bob.node.upload_limits() == charging
        await bob.shutdown()

    asyncio.run(scenario())


EXIT_SCRIPT = """
import asyncio, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import meshdrop_ffi as md
from helpers import LoopbackNode

async def main():
    alice = await LoopbackNode.start("alice")
    bob = await LoopbackNode.start("bob")
    src = tempfile.mkdtemp()
    (Path(src) / "big.bin").write_bytes(bytes(20_000_000))
    ticket = await alice.node.share([src])
    transfer = bob.node.download(ticket, tempfile.mkdtemp(), None)
    waiting = asyncio.ensure_future(transfer.wait())
    await asyncio.sleep(0)
    await bob.shutdown()
    await alice.shutdown()
    try:
        await waiting
        print("finished before shutdown")
    except md.MeshdropError.Cancelled:
        print("cancelled by shutdown")

asyncio.run(main())
print("exiting")
"""


def test_the_process_exits_cleanly_after_shutdown_with_a_transfer_in_flight():
    here = Path(__file__).parent
    bindings = str(Path(md.__file__).parent)
    env = dict(os.environ, PYTHONPATH=f"{here}{os.pathsep}{bindings}")
    run = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, bindings],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    print(run.stdout, run.stderr)
    assert run.returncode == 0, run.stderr
    assert "FATAL" not in run.stderr
    assert run.stdout.strip().endswith("exiting")
