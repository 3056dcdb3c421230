#!/usr/bin/env python3
"""A replicated key-value register for p2plab's Lab 5 (book/src/lab-partition.md): python3,
stdlib only, UDP port 7100.

  replica.py serve --peers IP,IP [--mode lww|quorum] [--sync SECONDS]
      One replica on its node's address (p2plab binds it there). Every value carries a
      timestamp (the writer replica's clock, then its address to break ties): the newest wins
      (last-writer-wins, LWW).
      --mode lww:    a write is applied at the replica that receives it and acknowledged at
                     once; it reaches the others by anti-entropy: every --sync seconds each
                     replica sends its whole state to every peer, which keeps the newer values.
                     Always available; replicas diverge while they cannot talk.
      --mode quorum: a write is acknowledged only once a majority (2 of 3) holds it, a read
                     asks a majority and returns the newest value; without a majority within
                     0.5 s the operation fails. Anti-entropy as in lww repairs the minority.
      Prints one JSON line per change of a value: {"t", "event": "apply", "key", "value",
      "ts", "via": "put" | "repl" | "sync"}.

Clients (exit status 0 on success, 1 when the replica did not answer or refused):
  replica.py put REPLICA KEY VALUE
  replica.py get REPLICA KEY          prints the value
  replica.py behind KEY IP,IP,IP      asks every replica for KEY (integer values) and exits
                                      with max - min over those that answered (at most 125):
                                      how many writes the most out-of-date replica misses
  replica.py converge KEY VALUE IP,IP,IP [--timeout S]
                                      polls every 50 ms until every replica holds VALUE or a
                                      newer write of KEY; exits with the time that took, from
                                      the moment this process was started (not the moment
                                      Python is ready), in tenths of a second (at most 120;
                                      125 on timeout)
The Rhai script reads these numbers with Proc.wait(). Times printed are the machine's clock.
"""

import json
import os
import select
import socket
import sys
import time

PORT = 7100
OP_TIMEOUT = 0.5  # seconds a quorum replica waits for its peers
CLIENT_TIMEOUT = 1.0  # seconds a client waits for its replica


def say(**fields):
    print(json.dumps({"t": round(time.time(), 3), **fields}), flush=True)


def newer(a, b):
    """Whether timestamp a = [clock, address] is newer than b (None is oldest)."""
    return b is None or (a[0], a[1]) > (b[0], b[1])


class Replica:
    def __init__(self, me, peers, mode, sync):
        self.me, self.peers, self.mode, self.sync = me, peers, mode, sync
        self.store = {}  # key -> [value, ts]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("0.0.0.0", PORT))  # p2plab makes this the node's address
        self.pending = {}  # request id -> operation waiting for peers
        self.next_id = 0
        self.last_clock = 0.0

    def send(self, addr, msg):
        try:
            self.sock.sendto(json.dumps(msg).encode(), addr)
        except OSError:
            pass

    def apply(self, key, value, ts, via):
        if newer(ts, self.store.get(key, [None, None])[1]):
            self.store[key] = [value, ts]
            say(event="apply", key=key, value=value, ts=ts, via=via)

    def stamp(self):
        self.last_clock = max(time.time(), self.last_clock + 1e-6)
        return [self.last_clock, self.me]

    def request(self, client, msg, entry):
        """Quorum: ask every peer, answer the client once one of them agrees."""
        self.next_id += 1
        rid = f"{self.me}/{self.next_id}"
        self.pending[rid] = {"client": client, "kind": msg["op"], "key": msg["key"],
                             "best": entry, "deadline": time.monotonic() + OP_TIMEOUT}
        for p in self.peers:
            if msg["op"] == "put":
                self.send((p, PORT), {"op": "repl", "key": msg["key"], "value": entry[0],
                                      "ts": entry[1], "rid": rid})
            else:
                self.send((p, PORT), {"op": "read", "key": msg["key"], "rid": rid})

    def handle(self, msg, addr):
        op = msg.get("op")
        if op == "put":
            entry = [msg["value"], self.stamp()]
            if self.mode == "lww":
                self.apply(msg["key"], entry[0], entry[1], "put")
                self.send(addr, {"ok": True})
            else:
                self.request(addr, msg, entry)
        elif op == "get":
            entry = self.store.get(msg["key"], [None, None])
            if self.mode == "lww":
                self.send(addr, {"ok": True, "value": entry[0]})
            else:
                self.request(addr, msg, entry)
        elif op == "repl":
            self.apply(msg["key"], msg["value"], msg["ts"], "repl")
            self.send(addr, {"op": "ack", "rid": msg["rid"]})
        elif op == "read":
            entry = self.store.get(msg["key"], [None, None])
            self.send(addr, {"op": "ack", "rid": msg["rid"], "entry": entry})
        elif op == "ack" and msg["rid"] in self.pending:
            w = self.pending.pop(msg["rid"])  # one peer and this replica: a majority of 3
            if w["kind"] == "put":
                self.apply(w["key"], w["best"][0], w["best"][1], "put")
                self.send(w["client"], {"ok": True})
            else:
                best = w["best"]
                theirs = msg.get("entry") or [None, None]
                if theirs[1] is not None and newer(theirs[1], best[1]):
                    best = theirs
                    self.apply(w["key"], best[0], best[1], "repl")  # read repair
                self.send(w["client"], {"ok": True, "value": best[0]})
        elif op == "sync":
            for key, (value, ts) in msg["state"].items():
                self.apply(key, value, ts, "sync")
        elif op == "state":
            self.send(addr, {"ok": True, "state": self.store})

    def expire(self):
        now = time.monotonic()
        for rid, w in list(self.pending.items()):
            if now > w["deadline"]:
                del self.pending[rid]
                self.send(w["client"], {"ok": False, "error": "no majority"})
                say(event="refused", op=w["kind"], key=w["key"])

    def run(self):
        say(event="start", me=self.me, peers=self.peers, mode=self.mode, sync=self.sync)
        next_sync = time.monotonic() + self.sync
        while True:
            ready, _, _ = select.select([self.sock], [], [], 0.05)
            if ready:
                data, addr = self.sock.recvfrom(65536)
                try:
                    self.handle(json.loads(data), addr)
                except (ValueError, KeyError, TypeError):
                    pass  # not one of ours
            self.expire()
            if time.monotonic() >= next_sync:
                next_sync += self.sync
                for p in self.peers:
                    self.send((p, PORT), {"op": "sync", "state": self.store})


def ask(ip, msg, timeout=CLIENT_TIMEOUT):
    """One request to a replica; its answer, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    s.sendto(json.dumps(msg).encode(), (ip, PORT))
    ready, _, _ = select.select([s], [], [], timeout)
    return json.loads(s.recv(65536)) if ready else None


def values(key, ips, timeout=0.3):
    """Every replica's entry for key, asked in parallel: {ip: [value, ts]}."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    for ip in ips:
        s.sendto(json.dumps({"op": "state"}).encode(), (ip, PORT))
    got, end = {}, time.monotonic() + timeout
    while len(got) < len(ips):
        ready, _, _ = select.select([s], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            break
        data, (ip, _) = s.recvfrom(65536)
        got[ip] = json.loads(data)["state"].get(key, [None, None])
    return got


def started_at():
    """The wall-clock time this process was started (exec'd by p2plab), from /proc."""
    with open("/proc/self/stat") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")


def main(argv):
    if argv[:1] == ["serve"]:
        o = {argv[i].lstrip("-"): argv[i + 1] for i in range(1, len(argv) - 1, 2)}
        me = os.environ.get("P2PLAB_IP", "127.0.0.1")
        peers = [p for p in o["peers"].split(",") if p and p != me]
        Replica(me, peers, o.get("mode", "lww"), float(o.get("sync", 1.0))).run()
    elif argv[:1] == ["put"] and len(argv) == 4:
        answer = ask(argv[1], {"op": "put", "key": argv[2], "value": argv[3]})
        ok = bool(answer and answer.get("ok"))
        say(event="put", replica=argv[1], key=argv[2], value=argv[3], ok=ok)
        sys.exit(0 if ok else 1)
    elif argv[:1] == ["get"] and len(argv) == 3:
        answer = ask(argv[1], {"op": "get", "key": argv[2]})
        ok = bool(answer and answer.get("ok"))
        say(event="get", replica=argv[1], key=argv[2], value=answer.get("value") if ok else None, ok=ok)
        sys.exit(0 if ok else 1)
    elif argv[:1] == ["behind"] and len(argv) == 3:
        got = values(argv[1], argv[2].split(","))
        nums = [int(v[0]) for v in got.values() if v[0] is not None]
        lag = max(nums) - min(nums) if nums else 0
        say(event="behind", key=argv[1], values={ip: v[0] for ip, v in got.items()}, behind=lag)
        sys.exit(min(lag, 125))
    elif argv[:1] == ["converge"] and len(argv) in (4, 6):
        key, target, ips = argv[1], int(argv[2]), argv[3].split(",")
        timeout = float(argv[5]) if len(argv) == 6 else 12.0
        start = started_at()
        while time.time() - start < timeout:
            got = values(key, ips, timeout=0.2)
            if len(got) == len(ips) and all(v[0] is not None and int(v[0]) >= target
                                            for v in got.values()):
                took = max(0.0, time.time() - start)
                say(event="converged", key=key, value=target, seconds=round(took, 3))
                sys.exit(min(round(took * 10), 120))
            time.sleep(0.05)
        say(event="converged", key=key, value=target, seconds=None)
        sys.exit(125)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
