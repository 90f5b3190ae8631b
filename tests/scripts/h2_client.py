"""What the HTTP/2 test clients share (python3-h2, prior knowledge)."""
import h2.events


def get(conn, sock, stream, host, path):
    """GET `path` on `stream` of `conn` over `sock`; the answer's body."""
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
