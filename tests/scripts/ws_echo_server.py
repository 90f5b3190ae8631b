"""A WebSocket echo server (python3-websockets): ws_echo_server.py HOST PORT."""
import asyncio
import sys

import websockets


async def echo(ws, path=None):
    async for message in ws:
        await ws.send(message)


async def main():
    async with websockets.serve(echo, sys.argv[1], int(sys.argv[2])):
        print("listening", flush=True)
        await asyncio.Future()


asyncio.run(main())
