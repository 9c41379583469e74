"""How a service process runs the model on a CPU: settings that change its speed, never its answers.

Measured on a 2-core machine with the default model: malloc and channels-last take the model's CPU time per image,
in a thread as the batching worker runs it, from about 36 ms to 17-19 ms (batches of 16), and the service's from 48
to 32 ms (``scripts/bench_server.py``, which measures the in-process pipeline with and without them too); a shorter
GIL switch interval adds about 6 % to the service's images per second.
"""
from __future__ import annotations

import ctypes
import gc
import logging
import platform
import sys

log = logging.getLogger(__name__)

# mallopt(3) parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
KEEP_FREE_BYTES = 1 << 30  # free heap memory kept for reuse before any is given back to the kernel


def keep_freed_memory() -> bool:
    """glibc only, and to be called before the process starts its threads: keep the memory the model frees for the
    next batch instead of handing it back to the kernel.

    By default every forward pass allocates its activations (tens of MB a batch) with fresh mmap()s, or in a
    thread's own arena whose heaps are unmapped once free, and frees them the same way: the next batch faults
    every page in again, zeroed by the kernel (half the model thread's CPU time on a 2-core machine, as system
    time). One arena (the main one, which grows with brk), no mmap for large blocks, and a high trim threshold keep
    the pages: the resident size stays near the largest batch's (a few hundred MB more than the model), and no
    page faults after the first batches. Returns whether the settings were applied."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(mallopt(param, value) == 1 for param, value in (
        (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, KEEP_FREE_BYTES)))
    if not ok:
        log.warning("could not tune malloc for the model (mallopt refused); running with its defaults")
    return ok


GIL_SWITCH_SECONDS = 0.001  # Python's default is 0.005


def hand_the_gil_back_sooner() -> None:
    """Shorten the interval after which a thread holding the GIL must hand it to a thread waiting for it.

    The model thread releases the GIL inside every torch operation and needs it back between them, dozens of times
    per beam-search step; when a request thread (HTTP, JSON, fetching) has taken it meanwhile, the model waits up to
    the interval each time. At 1 ms instead of 5 the service served 6 % more images per second under 16 clients on
    2 cores (25.1 against 23.7 img/s, side by side in one ``scripts/bench_server.py --variant`` run)."""
    sys.setswitchinterval(GIL_SWITCH_SECONDS)


def channels_last_on_cpu(captioner) -> bool:
    """Run the encoder's convolutions channels-last on a CPU. The request threads prepare each image, and the batch
    the model stacks from them is contiguous NCHW, which the default weights convolve about a third slower than
    the channels-last batch the in-process path makes from PIL images (25 vs 17 ms of CPU per image, measured with
    scripts/bench_server.py's images). With channels-last weights every convolution takes the fast layout whatever
    its input's; the features agree to 1e-4 (a rounded probability may move in its last digit). Returns whether
    it was applied."""
    import torch

    encoder = getattr(getattr(captioner, "model", None), "encoder", None)
    if not isinstance(encoder, torch.nn.Module) or torch.device(captioner.device).type != "cpu":
        return False
    encoder.to(memory_format=torch.channels_last)
    return True


def freeze_loaded_objects() -> None:
    """Once the model and the libraries are loaded: move every object alive now out of the garbage collector's
    reach, so that its full collections walk only what requests allocate since.

    Those objects (torch's modules and tensors, numpy, Flask, PIL: a few hundred thousand) never become garbage,
    but each full collection walked them all. Under 16 clients one ran every 6-8 s in each process and took
    100-160 ms in the worker (no request thread ran meanwhile) and about 100 ms in the model process (the batch
    stopped); frozen, they take about 1 ms (traced with ``gc.callbacks`` while ``scripts/bench_server.py``'s load
    ran)."""
    gc.collect()
    gc.freeze()
