"""Shared timing helpers: best-of-N wall time, so one noisy run does not decide."""
import time


def best_time(fn, repeat=7, warmup=1, budget=None):
    """Best wall time of `repeat` calls after `warmup` ones.

    budget (seconds): for kernels that may be very slow (fibers), the first warmup call is
    timed too and the repeats are cut to what fits in the budget (at least one more call).
    """
    best = float("inf")
    for i in range(warmup):
        t0 = time.perf_counter()
        fn()
        if i == 0 and budget is not None:
            best = time.perf_counter() - t0
            repeat = max(1, min(repeat, int(budget / best)))
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
