"""Shared timing helpers: best-of-N wall time, so one noisy run does not decide."""
import time


def best_time(fn, repeat=7, warmup=1):
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
