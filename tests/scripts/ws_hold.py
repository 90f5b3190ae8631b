"""A WebSocket client that echoes `one`, waits, then echoes `two` on the
same connection: ws_hold.py URL SECONDS. Prints both answers."""
import asyncio
import sys

import websockets


async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        await ws.send("one")
        first = await ws.recv()
        await asyncio.sleep(float(sys.argv[2]))
        await ws.send("two")
        second = await ws.recv()
        print(first, second, flush=True)


asyncio.run(main())
