"""An HTTP/2 client (prior knowledge, python3-h2) that makes a request,
waits, then makes another on the same connection: h2_hold.py HOST PORT
SECONDS. Prints both answers' bodies."""
import socket
import sys
import time

import h2.connection
import h2.events


def get(conn, sock, stream, host, path):
    conn.send_headers(
        stream,
        [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", host)],
        end_stream=True,
    )
    sock.sendall(conn.data_to_send())
    body = b""
    while True:
        data = sock.recv(65536)
        if not data:
            raise SystemExit("the connection closed")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(len(event.data), event.stream_id)
            if isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                sock.sendall(conn.data_to_send())
                return body.decode().strip()
        sock.sendall(conn.data_to_send())


host, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sock = socket.create_connection((host, port))
conn = h2.connection.H2Connection()
conn.initiate_connection()
sock.sendall(conn.data_to_send())
first = get(conn, sock, 1, host, "/")
time.sleep(wait)
second = get(conn, sock, 3, host, "/")
print(first, second, flush=True)
