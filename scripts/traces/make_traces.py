#!/usr/bin/env python3
"""Writes the example link traces next to this file (run it again to rebuild them).

Rate traces are in Mahimahi's format: one line per 1500-byte delivery opportunity, the
millisecond it occurs at; repeated lines are several opportunities in the same millisecond;
the trace repeats after its last timestamp. Delay traces are `<time ms> <one-way latency ms>`
lines; a final line with a time only makes the trace repeat from there.

Nothing here is measured data: the "LTE-like" trace is a seeded random walk shaped to look
like a cellular downlink (rates between 1 and 30 Mbit/s changing every 100 ms).
"""

import math
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
BITS_PER_OPPORTUNITY = 1500 * 8


def rate_trace(rate_at, length_ms):
    """Opportunities for a rate (bits/s) that may change every millisecond."""
    lines, credit = [], 0.0
    for ms in range(1, length_ms + 1):
        credit += rate_at(ms) / 1000.0 / BITS_PER_OPPORTUNITY
        while credit >= 1.0:
            lines.append(ms)
            credit -= 1.0
    # The last timestamp is the trace's length: end on it even if the rate is low there.
    if not lines or lines[-1] != length_ms:
        lines.append(length_ms)
    return lines


def write(name, lines):
    with open(os.path.join(HERE, name), "w") as f:
        f.write("".join(f"{line}\n" for line in lines))


def main():
    # 12 Mbit/s exactly: one opportunity every millisecond, for one second.
    write("const-12mbit.trace", rate_trace(lambda ms: 12e6, 1000))
    # A square wave: 2 s at 10 Mbit/s, then 2 s at 2 Mbit/s.
    write("square-10-2mbit.trace",
          rate_trace(lambda ms: 10e6 if (ms - 1) % 4000 < 2000 else 2e6, 4000))
    # LTE-like: a log-space random walk, one step per 100 ms, 20 s long.
    rng = random.Random(12)
    level, steps = math.log(8e6), []
    for _ in range(200):
        level += rng.gauss(0, 0.25)
        level = min(max(level, math.log(1e6)), math.log(30e6))
        steps.append(math.exp(level))
    write("lte-like.down", rate_trace(lambda ms: steps[(ms - 1) // 100], 20000))
    write("lte-like.up", rate_trace(lambda ms: steps[(ms - 1) // 100] / 8, 20000))
    # Latency that steps 20 → 80 → 40 ms, one step a second, repeating every 3 s.
    write("delay-steps.trace", ["0 20", "1000 80", "2000 40", "3000"])


if __name__ == "__main__":
    main()
