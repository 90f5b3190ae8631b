"""Malformed HTTP/2 requests (python3-h2 with its own checks turned off):
h2_malformed.py HOST PORT KIND, KIND one of cl_mismatch, connection_header,
te_gzip, uppercase_name. Prints `reset CODE` when the server resets the
stream or the connection, or `status CODE` when it answers."""
import socket
import sys

import h2.config
import h2.connection
import h2.events

host, port, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
config = h2.config.H2Configuration(
    client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False
)
conn = h2.connection.H2Connection(config)
sock = socket.create_connection((host, port))
sock.settimeout(5)
conn.initiate_connection()
sock.sendall(conn.data_to_send())
base = [(":method", "POST"), (":path", "/"), (":scheme", "http"), (":authority", host)]
if kind == "cl_mismatch":
    conn.send_headers(1, base + [("content-length", "10")])
    conn.send_data(1, b"abc", end_stream=True)
elif kind == "connection_header":
    conn.send_headers(1, base + [("connection", "keep-alive")], end_stream=True)
elif kind == "te_gzip":
    conn.send_headers(1, base + [("te", "gzip")], end_stream=True)
elif kind == "uppercase_name":
    conn.send_headers(1, base + [("X-Upper", "1")], end_stream=True)
else:
    raise SystemExit("unknown kind " + kind)
sock.sendall(conn.data_to_send())
try:
    while True:
        data = sock.recv(65536)
        if not data:
            print("reset closed", flush=True)
            break
        events = conn.receive_data(data)
        done = False
        for e in events:
            if isinstance(e, h2.events.ResponseReceived):
                status = dict(e.headers).get(b":status", b"?").decode()
                print("status", status, flush=True)
                done = True
            elif isinstance(e, h2.events.StreamReset):
                print("reset", int(e.error_code), flush=True)
                done = True
            elif isinstance(e, h2.events.ConnectionTerminated):
                print("reset goaway", int(e.error_code), flush=True)
                done = True
        sock.sendall(conn.data_to_send())
        if done:
            break
except socket.timeout:
    print("timeout", flush=True)
except (BrokenPipeError, ConnectionResetError):
    print("reset closed", flush=True)
