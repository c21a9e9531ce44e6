"""The local channel between the editor and a flow's process: length-prefixed pickle frames
over a socket pair, read and written with asyncio streams on both ends.

Pickle is safe here: both ends are the same user's processes, started by the editor, and the
flow's process runs the flow's code anyway. A frame is 4 bytes of big-endian length, then the
pickled object.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import Any

HEADER = struct.Struct(">I")
#: Reader buffer: one frame may be larger (``readexactly`` reads on), this is what is kept ahead.
LIMIT = 4 * 1024 * 1024


def pack(obj: Any) -> bytes:
    """``obj`` as one frame."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next frame's object; :class:`asyncio.IncompleteReadError` at the end of the stream."""
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    return pickle.loads(await reader.readexactly(size))


async def open_stream(sock: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Asyncio streams over one end of the socket pair."""
    return await asyncio.open_unix_connection(sock=sock, limit=LIMIT)
