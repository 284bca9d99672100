"""Transparent huge pages for glibc's malloc, by restarting a script under them.

XLA:CPU allocates each call's temporaries, and every result over glibc's
32 MiB mmap threshold, with a fresh ``mmap`` that the kernel then pages in
4 KiB at a time: a ResNet-18 train step at batch 128 takes ~228,000 page
faults (0.4 s of system time) on every step. With glibc ≥ 2.35's tunable
``glibc.malloc.hugetlb=1`` malloc advises ``MADV_HUGEPAGE`` on such blocks,
and the same step takes ~1,000 faults (benchmarks/RESULTS.md). glibc reads
tunables once, at process start, so the only way in is to start the process
with them: ``restart_with_huge_pages()`` re-executes the running command with
the tunable added to ``GLIBC_TUNABLES``.

It does so only where it changes something: on glibc ≥ 2.35, where the
kernel's transparent huge pages are in ``madvise`` mode (in ``always`` mode
every large mapping already gets them; in ``never`` none can). Set
``CVX_HUGE_PAGES=0`` to keep the process as started.
"""
import os
import sys
from collections.abc import Mapping

TUNABLE = "glibc.malloc.hugetlb"
THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"
MIN_GLIBC = (2, 35)  # the first glibc with glibc.malloc.hugetlb


def glibc_version() -> tuple[int, int] | None:
  """(major, minor) of the C library when it is glibc, else None."""
  try:
    name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
  except (AttributeError, ValueError, OSError):  # no confstr, another libc
    return None
  major, minor = version.split(".")[:2]
  return (int(major), int(minor)) if name == "glibc" else None


def thp_mode(path: str = THP_SETTING) -> str | None:
  """The kernel's transparent huge page mode ('always', 'madvise', 'never'),
  or None where the kernel has no such setting."""
  try:
    with open(path) as f:
      setting = f.read()
  except OSError:
    return None
  chosen = [word[1:-1] for word in setting.split() if word.startswith("[")]
  return chosen[0] if chosen else None


def needs_restart(environ: Mapping[str, str]) -> bool:
  """Whether restarting with ``glibc.malloc.hugetlb=1`` would give this
  process huge pages it does not have now."""
  version = glibc_version()
  return (environ.get("CVX_HUGE_PAGES", "1") != "0"
          and TUNABLE not in environ.get("GLIBC_TUNABLES", "")
          and version is not None and version >= MIN_GLIBC
          and thp_mode() == "madvise")


def with_tunable(environ: Mapping[str, str]) -> dict[str, str]:
  """A copy of ``environ`` whose GLIBC_TUNABLES also sets the tunable."""
  env = dict(environ)
  tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t]
  env["GLIBC_TUNABLES"] = ":".join(tunables + [f"{TUNABLE}=1"])
  return env


def restart_with_huge_pages() -> None:
  """Re-executes this process's command line with huge pages, when that
  changes something (see the module docstring); returns otherwise.

  Call it first thing in a script's ``__main__`` block, before heavy imports:
  the process is replaced, so nothing done before the call survives.
  """
  if not needs_restart(os.environ):
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, sys.orig_argv, with_tunable(os.environ))
