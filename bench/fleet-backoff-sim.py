#!/usr/bin/env python3
"""How retry policies fare when N instances read one realm item at once behind a table that
serves `rate` reads a second (a token bucket, like bench/throttle_proxy.py): successes, GetItem
calls per success, p50 and p99 seconds. A model, not a measurement: it shows why independent
per-instance backoff cannot get under 2 calls per success at N=600 (SPEC §15) without a signal
the table does not give. lava-boot's realm read (LavaAWS.AdaptiveRateLimiter, fleet shape):
after the first throttle one read per 8 s, each further throttle divides the rate by 3, never
below one per 45 s; each wait is 0.25..1 of the current interval.

Why under 2 is out of reach: all N first reads land within the boot spread (5 s here), when a
6/s table with a burst of 6 admits at most 36. So N - 36 calls fail before any retry (1.94 per
success at N=600), leaving fewer than 36 failed retries for the other 564 instances together:
each would have to place its one retry in the table's 6/s schedule, which needs N, and an
instance knows nothing of N. Spreading every retry over ~100 s (what N=600 needs) makes N=50
wait as long, far above the AWS CLI's p99 there.

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


def adaptive_rate(first, cut, longest, floor):
    """A client-side rate cut on every throttle: the wait is floor..1 of the current interval."""
    return lambda attempt, rnd: rnd.uniform(floor, 1) * min(longest, first * cut ** attempt)


POLICIES = {
    "SDK standard (1 s x2, cap 20 s)": full_jitter(1, 20),
    "earlier lava-boot (4 s x2, cap 60 s)": full_jitter(4, 60),
    "slow start (10 s x2, cap 300 s)": full_jitter(10, 300),
    "lava-boot adaptive (8 s /3, 45 s)": adaptive_rate(8, 3, 45, 0.25),
}

if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:]] or [50, 200, 600]
    print(f"{'N':>5}  {'policy':38} {'ok':>5} {'calls/ok':>9} {'p50 s':>7} {'p99 s':>7}")
    for n in sizes:
        for name, policy in POLICIES.items():
            ok, per, p50, p99 = simulate(n, policy)
            print(f"{n:>5}  {name:38} {ok:>5} {per:>9.2f} {p50:>7.1f} {p99:>7.1f}")
