"""cvx.memory against glibc itself: page faults of a jitted call's 32 MiB output."""
import os
import subprocess
import sys
import textwrap

import numpy as np

# Runs a jitted function with a fresh 32 × 512 × 512 float32 output (32 MiB,
# 8,192 pages of 4 KiB) 16 times and prints each call's minor page faults.
_PROGRAM = textwrap.dedent("""
    import resource, sys
    import jax, jax.numpy as jnp
    from cvx import memory
    if sys.argv[1] == "retain":
      assert memory.retain_freed_memory()
    to_float = jax.jit(lambda v: v.astype(jnp.float32) * 2)
    images = jnp.ones((32, 512, 512), jnp.uint8)
    for _ in range(16):
      before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
      jax.block_until_ready(to_float(images))
      print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")
_PAGES = 32 * 512 * 512 * 4 // 4096


def _steady_faults_per_call(mode: str) -> float:
  """Median page faults of the last 8 calls (the first few calls fill each XLA
  thread's malloc arena)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=1")
  result = subprocess.run([sys.executable, "-c", _PROGRAM, mode], capture_output=True, text=True,
                          check=True, env=env)
  return float(np.median([int(line) for line in result.stdout.split()[-8:]]))


def test_default_malloc_pages_in_a_big_output_on_every_call():
  assert _steady_faults_per_call("default") >= _PAGES


def test_retained_memory_serves_the_output_without_page_faults():
  assert _steady_faults_per_call("retain") < _PAGES // 8
