"""An HTTP/2 client (prior knowledge, python3-h2) that makes a request,
waits, then makes another on the same connection: h2_hold.py HOST PORT
SECONDS. Prints both answers' bodies."""
import socket
import sys
import time

import h2.connection

from h2_client import get


host, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sock = socket.create_connection((host, port))
conn = h2.connection.H2Connection()
conn.initiate_connection()
sock.sendall(conn.data_to_send())
first = get(conn, sock, 1, host, "/")
time.sleep(wait)
second = get(conn, sock, 3, host, "/")
print(first, second, flush=True)
