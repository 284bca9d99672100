"""Process-wide malloc setting for programs that free and reallocate big buffers.

XLA:CPU allocates every output and temporary buffer with ``malloc``. glibc
serves a block above its mmap threshold (at most 32 MiB, raised dynamically up
to there) with a fresh ``mmap`` and unmaps it on ``free``, so a jitted call
whose output is, say, a 32 × 512 × 512 float32 batch faults in all 8,192 of
its 4 KiB pages again on every call. Here that page-in costs about 13 ms per
32 MiB: on ``sobel`` over such a batch it is 0.43 of its 0.50 ms per image
(``benchmarks/ops_vs_opencv.py``, ``benchmarks/RESULTS.md``).
"""
import ctypes
import ctypes.util

# mallopt parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1


def retain_freed_memory() -> bool:
  """Makes glibc keep freed memory for reuse instead of returning it to the OS.

  Sets ``mallopt(M_MMAP_MAX, 0)`` (blocks come from the heap, not from their
  own mmap) and ``mallopt(M_TRIM_THRESHOLD, INT_MAX)`` (the heap is never
  trimmed), for every thread, from the next allocation on. The same as
  starting Python with
  ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647``.
  The cost: the process's resident memory stays at its peak. Blocks larger
  than a thread arena's heap (64 MiB) are still mmapped by glibc.

  Returns:
    True if both settings took effect; False where the C library is not
    glibc (musl, macOS, Windows), which is left unchanged.
  """
  libc_name = ctypes.util.find_library("c")
  if libc_name is None:
    return False
  libc = ctypes.CDLL(libc_name)
  if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
    return False
  return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(
      libc.mallopt(_M_TRIM_THRESHOLD, _INT_MAX))
