"""How the model's numerics run, in whichever process fits: one BLAS thread, fixed malloc thresholds.

One BLAS thread: threaded reductions round differently, so a fit in the build, in a kernel or in
plain papermill would otherwise differ in the last digits; and parallel fits (`--jobs`) on 2 cores
oversubscribe them. Fixed glibc malloc thresholds: glibc hands each large numpy temporary fresh
pages from mmap and returns them on free until its adaptive threshold catches up, and every page
is then faulted in and zeroed again; the joint fit took 10-11 s that way and 5 s with the
thresholds fixed at 32 MiB (glibc's ceiling) and 256 MiB kept. Set at run time with mallopt, so
it holds however the process was started; ignored where malloc is not glibc's.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from threadpoolctl import threadpool_limits

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 2**20
TRIM_THRESHOLD_BYTES = 256 * 2**20


@functools.cache
def fix_malloc_thresholds() -> bool:
    """Once per process; True if glibc accepted both settings."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
        )
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def model_numerics():
    """Run the enclosed fits with one BLAS thread and fixed malloc thresholds."""
    fix_malloc_thresholds()
    with threadpool_limits(limits=1):
        yield


def process_pool(max_workers: int, initializer=None, initargs: tuple = ()) -> ProcessPoolExecutor:
    """Worker processes started by a fork server, never forked from this process: JAX runs threads
    once it has compiled anything, and a fork copies their locks mid-use (the workers deadlocked).
    `initializer(*initargs)` runs first in each worker."""
    return ProcessPoolExecutor(
        max_workers=max_workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=initializer,
        initargs=initargs,
    )


def stop_now(pool: ProcessPoolExecutor) -> None:
    """After an error or an interruption: terminate the pool's workers and drop what is queued,
    instead of waiting for running work to finish (a worker's kernels and chains stop with it)."""
    for process in list(getattr(pool, "_processes", {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
