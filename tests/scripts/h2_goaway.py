"""An HTTP/2 client (prior knowledge, python3-h2) that makes a request,
prints `ready`, then waits up to SECONDS for the server's GOAWAY; once it
came, makes a request on a new connection. h2_goaway.py HOST PORT SECONDS.
Prints `goaway ERROR_CODE FIRST SECOND` (the two answers' bodies)."""
import socket
import sys
import time

import h2.connection

from h2_client import get


def connect(host, port):
    sock = socket.create_connection((host, port))
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return conn, sock


def goaway(sock, seconds):
    """The error code of the first GOAWAY frame, read off the socket (h2's
    state machine would refuse the PING the server sends after it)."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    buf = b""
    while time.monotonic() < deadline:
        data = sock.recv(65536)
        if not data:
            raise SystemExit("closed without a GOAWAY")
        buf += data
        while len(buf) >= 9:
            length = int.from_bytes(buf[0:3], "big")
            if len(buf) < 9 + length:
                break
            kind, payload = buf[3], buf[9 : 9 + length]
            buf = buf[9 + length :]
            if kind == 7:
                return int.from_bytes(payload[4:8], "big")
    raise SystemExit("no GOAWAY in time")


host, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
conn, sock = connect(host, port)
first = get(conn, sock, 1, host, "/")
print("ready", flush=True)
code = goaway(sock, wait)
conn2, sock2 = connect(host, port)
second = get(conn2, sock2, 1, host, "/")
print("goaway", int(code), first, second, flush=True)
