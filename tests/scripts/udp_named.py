"""A UDP server that answers each datagram with NAME=<datagram>, from one
process (socat's fork per datagram lost an answer now and then on a loaded
machine): udp_named.py ADDRESS PORT NAME."""
import socket
import sys

address, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
family = socket.AF_INET6 if ":" in address else socket.AF_INET
sock = socket.socket(family, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind((address, port))
print("listening", flush=True)
while True:
    data, peer = sock.recvfrom(65535)
    sock.sendto(name + b"=" + data.strip(), peer)
