"""A node with its events in an asyncio queue, as a Python host uses the bindings."""

import asyncio
import tempfile
from pathlib import Path

import meshdrop_ffi as md


class Recorder(md.EventListener):
    """Hands each event (delivered on a bindings thread) to the asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()

    def on_event(self, event):
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)


class LoopbackNode:
    """A node bound to 127.0.0.1 only, mDNS off, in its own temporary data dir."""

    def __init__(self, node, recorder, tmp):
        self.node, self.recorder, self.tmp = node, recorder, tmp

    @classmethod
    async def start(cls, name: str) -> "LoopbackNode":
        tmp = tempfile.TemporaryDirectory()
        recorder = Recorder(asyncio.get_running_loop())
        config = md.NodeConfig(
            data_dir=str(Path(tmp.name) / "data"),
            device_name=name,
            bind=["127.0.0.1"],
            mdns=False,
        )
        return cls(await md.start_node(config, recorder), recorder, tmp)

    async def wait_for(self, what, pred, timeout=20.0):
        """The first event matching `pred`, within `timeout` seconds."""
        async def find():
            while True:
                event = await self.recorder.queue.get()
                if pred(event):
                    return event
        try:
            return await asyncio.wait_for(find(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {what} event within {timeout} s") from None

    async def shutdown(self):
        await self.node.shutdown()
        self.tmp.cleanup()
