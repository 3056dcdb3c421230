# A dynamically linked peer for the shim (tests/binding.rs): one TCP connection, one
# unconnected and one connected datagram to the sink, tagged "TAG-unconnected" and so on.
# Usage: client.py IP TCP_PORT UDP_PORT TAG
import socket
import sys
import time

ip, tcp_port, udp_port, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
# The sink may still be starting: retry for up to 10 s.
deadline = time.monotonic() + 10
while True:
    try:
        socket.create_connection((ip, tcp_port), timeout=10).close()
        break
    except ConnectionRefusedError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
unconnected = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
unconnected.sendto(f"{tag}-unconnected".encode(), (ip, udp_port))
connected = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
connected.connect((ip, udp_port))
connected.send(f"{tag}-connected".encode())
