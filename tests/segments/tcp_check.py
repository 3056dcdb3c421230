"""A TCP transfer that checks itself: `serve IP SIZE` receives one connection and prints the
byte count and MD5 of what arrived; `send IP SIZE` sends SIZE seeded pseudo-random bytes to
IP and prints the same of what it sent."""
import hashlib
import random
import socket
import sys

PORT = 5001
mode, host, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "serve":
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, PORT))
    listener.listen(1)
    conn, _ = listener.accept()
    digest, count = hashlib.md5(), 0
    while chunk := conn.recv(1 << 20):
        digest.update(chunk)
        count += len(chunk)
else:
    data = random.Random(7).randbytes(size)
    with socket.create_connection((host, PORT)) as conn:
        conn.sendall(data)
    digest, count = hashlib.md5(data), len(data)
print(count, digest.hexdigest())
