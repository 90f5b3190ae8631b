"""Sends one gratuitous ARP from INTERFACE for ADDRESS with the interface's
own MAC, as a host does when its MAC changes: garp.py INTERFACE ADDRESS."""
import socket
import sys

interface, address = sys.argv[1], sys.argv[2]
with open(f"/sys/class/net/{interface}/address") as f:
    mac = bytes.fromhex(f.read().strip().replace(":", ""))
ip = socket.inet_aton(address)
broadcast = b"\xff" * 6
arp = (
    b"\x00\x01"  # Ethernet
    + b"\x08\x00"  # IPv4
    + b"\x06\x04"  # address lengths
    + b"\x00\x01"  # request
    + mac + ip  # sender
    + b"\x00" * 6 + ip  # target: the same address
)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((interface, 0))
s.send(broadcast + mac + b"\x08\x06" + arp)
print("sent", flush=True)
