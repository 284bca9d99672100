"""cvx.huge_pages: the restart under glibc.malloc.hugetlb, in real processes."""
import os
import subprocess
import sys

import pytest

from cvx import huge_pages

# Restarts (maybe), then pages in a 64 MiB block from glibc's malloc (not
# numpy, which advises huge pages itself) and reports the tunables it runs
# under, its resident huge pages in kB and its arguments.
CHILD = """
import sys
from cvx import huge_pages
huge_pages.restart_with_huge_pages()
import ctypes, os
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
block = libc.malloc(64 << 20)
ctypes.memset(block, 1, 64 << 20)
rollup = open("/proc/self/smaps_rollup").read().split("\\n")
huge = [int(l.split()[1]) for l in rollup if l.startswith("AnonHugePages:")][0]
print(os.environ.get("GLIBC_TUNABLES", ""), huge, sys.argv[1:], sep="|")
"""
CAN_ADVISE = (huge_pages.glibc_version() or (0, 0)) >= huge_pages.MIN_GLIBC


def run_child(extra_args=(), **env) -> tuple[str, int, str]:
  environ = {k: v for k, v in os.environ.items()
             if k not in ("GLIBC_TUNABLES", "CVX_HUGE_PAGES")}
  out = subprocess.run([sys.executable, "-c", CHILD, *extra_args], env={**environ, **env},
                       capture_output=True, text=True, check=True).stdout
  tunables, huge_kb, argv = out.strip().split("|")
  return tunables, int(huge_kb), argv


def test_restart_gives_huge_pages_where_the_kernel_advises_them():
  tunables, huge_kb, argv = run_child(["--flag=1"])
  if huge_pages.thp_mode() == "madvise" and CAN_ADVISE:
    assert tunables == "glibc.malloc.hugetlb=1"
    # At least one 2 MiB page (all 32 where memory is not fragmented).
    assert huge_kb >= 2 << 10, "the 64 MiB block should sit on 2 MiB pages"
  else:
    assert tunables == ""
  assert argv == "['--flag=1']", "the restarted process must see the same arguments once"


def test_opt_out_keeps_the_process_and_its_4k_pages():
  tunables, huge_kb, _ = run_child(CVX_HUGE_PAGES="0")
  assert tunables == ""
  if huge_pages.thp_mode() == "madvise":
    assert huge_kb == 0, "without the tunable nothing advises huge pages"


def test_existing_tunables_are_kept():
  tunables, _, _ = run_child(GLIBC_TUNABLES="glibc.malloc.arena_max=2")
  if huge_pages.thp_mode() == "madvise" and CAN_ADVISE:
    assert tunables == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
  else:
    assert tunables == "glibc.malloc.arena_max=2"


def test_no_restart_when_already_set():
  env = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}  # the user's explicit choice
  assert not huge_pages.needs_restart(env)
  assert huge_pages.with_tunable({})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"


@pytest.mark.parametrize("setting, mode", [
    ("always [madvise] never\n", "madvise"),
    ("[always] madvise never\n", "always"),
    ("always madvise [never]\n", "never"),
])
def test_thp_mode_reads_the_kernel_setting(tmp_path, setting, mode):
  path = tmp_path / "enabled"
  path.write_text(setting)
  assert huge_pages.thp_mode(str(path)) == mode
  assert huge_pages.thp_mode(str(tmp_path / "missing")) is None
