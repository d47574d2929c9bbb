"""Files the host opens on demand, as a Python host implements HostFiles: shared without a copy."""

import asyncio
import os
import tempfile
from pathlib import Path

import meshdrop_ffi as md
from helpers import LoopbackNode


class OpenedFiles(md.HostFiles):
    """Files read by descriptor at an offset, as an app reads the content URIs it was given."""

    def __init__(self, named: dict):
        self.names = list(named)
        self.fds = [os.open(path, os.O_RDONLY) for path in named.values()]

    def count(self):
        return len(self.fds)

    def name(self, file):
        return self.names[file]

    def size(self, file):
        return os.fstat(self.fds[file]).st_size

    def read(self, file, offset, length):
        try:
            return os.pread(self.fds[file], length, offset)
        except OSError as e:
            raise md.HostFileError.Unreadable(reason=str(e))

    def close(self):
        for fd in self.fds:
            os.close(fd)


def test_the_hosts_files_download_with_equal_bytes():
    async def scenario():
        alice = await LoopbackNode.start("alice")
        bob = await LoopbackNode.start("bob")
        with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as dest:
            video = bytes(i * 7 % 253 for i in range(2_000_000))
            (Path(src) / "4711").write_bytes(video)
            (Path(src) / "4712").write_bytes(b"a note")
            files = OpenedFiles({"sunset.mp4": Path(src) / "4711", "note.txt": Path(src) / "4712"})
            ticket = await alice.node.share_host_files(files)
            report = await bob.node.download(ticket, dest, None).wait()
            assert report.bytes == 2_000_006
            assert (Path(dest) / "sunset.mp4").read_bytes() == video
            assert (Path(dest) / "note.txt").read_bytes() == b"a note"
            [share] = alice.node.shares()
            assert share.available and share.name == "note.txt, sunset.mp4"
            await alice.shutdown()
            files.close()
        await bob.shutdown()

    asyncio.run(scenario())
