"""A TLS client that sends its ClientHello one byte per TCP segment.

Usage: tls_dribble.py HOST PORT SERVER_NAME CA_FILE DELAY_MS

The handshake runs over memory BIOs so the first flight can be cut up:
each byte goes in its own segment (TCP_NODELAY) DELAY_MS apart; the rest
of the handshake is sent as it comes. The certificate is verified against
CA_FILE for SERVER_NAME, and its subject's common name is printed. Bounded
by a 20 s socket timeout.
"""

import socket
import ssl
import sys
import time


def main():
    host, port, name, ca, delay = sys.argv[1:6]
    ctx = ssl.create_default_context(cafile=ca)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    sock = socket.create_connection((host, int(port)), timeout=20)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    first = True
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            data = outgoing.read()
            if first and data:
                for b in data:
                    sock.send(bytes([b]))
                    time.sleep(int(delay) / 1000)
                first = False
                print(f"hello of {len(data)} bytes sent a byte at a time", file=sys.stderr)
            elif data:
                sock.sendall(data)
            chunk = sock.recv(65536)
            if not chunk:
                sys.exit("the server closed during the handshake")
            incoming.write(chunk)
    data = outgoing.read()
    if data:
        sock.sendall(data)
    subject = dict(x[0] for x in tls.getpeercert()["subject"])
    print(f"CN={subject['commonName']}")


if __name__ == "__main__":
    main()
