#!/usr/bin/env python3
"""How retry policies fare when N instances read one realm item at once behind a table that
serves `rate` reads a second (a token bucket, like bench/throttle_proxy.py): successes, GetItem
calls per success, p50 and p99 seconds. A model, not a measurement: it shows why independent
per-instance backoff cannot get under 2 calls per success at N=600 (SPEC §15) without a signal
the table does not give. lava-boot's realm read uses full jitter from 4 s doubling to 60 s.

    bench/fleet-backoff-sim.py [N ...]      (default 50 200 600)
"""
import heapq
import random
import sys


def simulate(n, policy, rate=6.0, burst=6.0, start_spread=5.0, budget=900.0, seed=1):
    rnd = random.Random(seed)
    events = [(rnd.uniform(0, start_spread), i, 0) for i in range(n)]
    heapq.heapify(events)
    tokens, last, calls, done = burst, 0.0, 0, {}
    while events:
        t, i, attempt = heapq.heappop(events)
        tokens = min(burst, tokens + (t - last) * rate)
        last = t
        calls += 1
        if tokens >= 1:
            tokens -= 1
            done[i] = t
            continue
        wait = policy(attempt, rnd)
        if t + wait <= budget:
            heapq.heappush(events, (t + wait, i, attempt + 1))
    times = sorted(done.values())
    quantile = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    return len(done), calls / max(1, len(done)), quantile(0.5), quantile(0.99)


def full_jitter(base, cap):
    return lambda attempt, rnd: rnd.uniform(0, min(cap, base * 2 ** attempt))


POLICIES = {
    "SDK standard (1 s x2, cap 20 s)": full_jitter(1, 20),
    "lava-boot (4 s x2, cap 60 s)": full_jitter(4, 60),
    "slow start (10 s x2, cap 300 s)": full_jitter(10, 300),
}

if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:]] or [50, 200, 600]
    print(f"{'N':>5}  {'policy':34} {'ok':>5} {'calls/ok':>9} {'p50 s':>7} {'p99 s':>7}")
    for n in sizes:
        for name, policy in POLICIES.items():
            ok, per, p50, p99 = simulate(n, policy)
            print(f"{n:>5}  {name:34} {ok:>5} {per:>9.2f} {p50:>7.1f} {p99:>7.1f}")
