#!/usr/bin/env python3
"""A small gossip protocol for p2plab's Lab 4 (book/src/lab-gossip.md): python3, stdlib only.

Every node runs `gossip.py node BOOTSTRAP_IP`: a UDP socket on port 7000 of its own address
(p2plab binds it there; $P2PLAB_IP names it), a partial view of the membership, and the rumours
it holds. Each round (--period seconds) it does two things:

  * a *shuffle* with one random member of its view: both send a sample of their view, and a
    member that does not answer within two rounds is dropped from the view (failure detection).
    With --mode pushpull the shuffle also carries the ids of the rumours each side holds, and
    each side sends the other the rumours it lacks (anti-entropy);
  * a *push* of each rumour it received less than --rounds rounds ago to --fanout random
    members of its view (rumour mongering: "infect, push for a while, then stop").

It prints one JSON line per event on standard output, for instance
  {"t": 1764762093.51, "event": "got", "rumour": "r1", "hops": 3, "from": "10.0.0.7", "via": "push"}
(t is the machine's clock in seconds: every node of a lab shares it).

Two helpers for the scenario, run on an observer node:
  gossip.py inject IP RUMOUR          tells node IP that it has just heard RUMOUR (hops 0)
  gossip.py count RUMOUR IP [IP...]   asks each node whether it holds RUMOUR; prints the
                                      holders and exits with their number (at most 125),
                                      which is how the Rhai script learns it (Proc.wait()).
"""

import json
import os
import random
import select
import socket
import sys
import time

PORT = 7000
VIEW_SIZE = 8  # members kept in a node's partial view
SAMPLE = 4  # members sent in one shuffle


def say(**fields):
    print(json.dumps({"t": round(time.time(), 3), **fields}), flush=True)


def opts(argv):
    """--name value pairs into a dict."""
    out = {}
    for i in range(0, len(argv) - 1, 2):
        out[argv[i].lstrip("-")] = argv[i + 1]
    return out


class Node:
    def __init__(self, me, bootstrap, mode, fanout, rounds, period):
        self.me, self.mode, self.fanout, self.rounds, self.period = me, mode, fanout, rounds, period
        self.view = set() if bootstrap == me else {bootstrap}
        self.bootstrap = bootstrap
        self.rumours = {}  # id -> round it was received in
        self.hops = {}  # id -> hops it had travelled when it arrived
        self.round = 0
        self.waiting = {}  # member -> round its shuffle reply is due by
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("0.0.0.0", PORT))  # p2plab makes this the node's address

    def send(self, ip, msg):
        try:
            self.sock.sendto(json.dumps(msg).encode(), (ip, PORT))
        except OSError:
            pass  # an unreachable peer is a lost datagram, as on the Internet

    def sample(self):
        members = list(self.view) + [self.me]
        return random.sample(members, min(SAMPLE, len(members)))

    def learn(self, members):
        for m in members:
            if m != self.me:
                self.view.add(m)
        while len(self.view) > VIEW_SIZE:
            # Forget a random member other than the bootstrap, which stays a way back in.
            victims = [m for m in self.view if m != self.bootstrap] or list(self.view)
            self.view.discard(random.choice(victims))

    def got(self, rumour, hops, sender, via):
        if rumour in self.rumours:
            return
        self.rumours[rumour] = self.round
        self.hops[rumour] = hops
        say(event="got", rumour=rumour, hops=hops, via=via, **{"from": sender})

    def shuffle_msg(self, kind):
        msg = {"type": kind, "view": self.sample()}
        if self.mode == "pushpull":
            msg["have"] = sorted(self.rumours)
        return msg

    def tick(self):
        self.round += 1
        for m, due in list(self.waiting.items()):
            if self.round > due:
                del self.waiting[m]
                if m in self.view and m != self.bootstrap:
                    self.view.discard(m)
                    say(event="suspect", member=m)
        if self.view:
            peer = random.choice(sorted(self.view))
            self.waiting.setdefault(peer, self.round + 2)
            self.send(peer, self.shuffle_msg("shuffle"))
        for rumour, since in self.rumours.items():
            if self.round - since <= self.rounds:
                members = sorted(self.view)
                for peer in random.sample(members, min(self.fanout, len(members))):
                    self.send(peer, {"type": "rumour", "id": rumour, "hops": self.hops[rumour] + 1})

    def answer_have(self, sender, have):
        """Anti-entropy: send the rumours the other side lacks."""
        for rumour in sorted(set(self.rumours) - set(have)):
            self.send(sender, {"type": "pull", "id": rumour, "hops": self.hops[rumour] + 1})

    def handle(self, msg, sender):
        kind = msg.get("type")
        if kind in ("shuffle", "shuffle_reply"):
            self.learn(msg.get("view", []) + [sender])
            if kind == "shuffle":
                self.send(sender, self.shuffle_msg("shuffle_reply"))
            else:
                self.waiting.pop(sender, None)
            if self.mode == "pushpull" and "have" in msg:
                self.answer_have(sender, msg["have"])
        elif kind in ("rumour", "pull"):
            self.learn([sender])
            self.got(msg["id"], msg["hops"], sender, "push" if kind == "rumour" else "pull")
        elif kind == "inject":
            self.got(msg["id"], 0, sender, "inject")
        elif kind == "ask":
            self.send_to(sender, msg["reply_port"], {"has": msg["id"] in self.rumours})

    def send_to(self, ip, port, msg):
        try:
            self.sock.sendto(json.dumps(msg).encode(), (ip, port))
        except OSError:
            pass

    def run(self):
        say(event="start", me=self.me, mode=self.mode, fanout=self.fanout, rounds=self.rounds)
        next_tick = time.monotonic() + random.uniform(0, self.period)
        while True:
            wait = max(0.0, next_tick - time.monotonic())
            ready, _, _ = select.select([self.sock], [], [], wait)
            if ready:
                data, (sender, _) = self.sock.recvfrom(65536)
                try:
                    self.handle(json.loads(data), sender)
                except (ValueError, KeyError, TypeError):
                    pass  # not one of ours
            if time.monotonic() >= next_tick:
                self.tick()
                next_tick += self.period


def inject(ip, rumour):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(json.dumps({"type": "inject", "id": rumour}).encode(), (ip, PORT))
    say(event="inject", rumour=rumour, to=ip)


def count(rumour, ips, timeout=0.4):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    port = s.getsockname()[1]
    for ip in ips:
        s.sendto(json.dumps({"type": "ask", "id": rumour, "reply_port": port}).encode(), (ip, PORT))
    holders, answered, end = [], set(), time.monotonic() + timeout
    while len(answered) < len(ips):
        ready, _, _ = select.select([s], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            break
        data, (sender, _) = s.recvfrom(65536)
        answered.add(sender)
        if json.loads(data).get("has"):
            holders.append(sender)
    say(event="count", rumour=rumour, asked=len(ips), answered=len(answered), holders=len(holders))
    return min(len(holders), 125)


def main(argv):
    if len(argv) >= 2 and argv[0] == "node":
        o = opts(argv[2:])
        me = os.environ.get("P2PLAB_IP", "127.0.0.1")
        Node(me, argv[1], o.get("mode", "pushpull"), int(o.get("fanout", 2)),
             int(o.get("rounds", 4)), float(o.get("period", 0.5))).run()
    elif len(argv) == 3 and argv[0] == "inject":
        inject(argv[1], argv[2])
    elif len(argv) >= 2 and argv[0] == "count":
        sys.exit(count(argv[1], argv[2:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
