# The other node (tests/binding.rs): prints the source address of every TCP connection and
# UDP datagram it gets, as "tcp IP" and "udp PAYLOAD IP", until it has seen COUNT of them.
# Usage: sink.py TCP_PORT UDP_PORT COUNT
import select
import socket
import sys

tcp_port, udp_port, count = (int(a) for a in sys.argv[1:4])
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("0.0.0.0", tcp_port))
listener.listen(16)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", udp_port))
print("sink", listener.getsockname()[0], flush=True)
seen = 0
while seen < count:
    ready, _, _ = select.select([listener, udp], [], [], 30)
    if not ready:
        sys.exit("timed out")
    for s in ready:
        if s is listener:
            conn, (ip, _) = listener.accept()
            conn.close()
            print("tcp", ip, flush=True)
        else:
            data, (ip, _) = udp.recvfrom(256)
            print("udp", data.decode(), ip, flush=True)
        seen += 1
