"""How XLA's partitioner splits the oneDNN custom calls over a device mesh.

A custom call is opaque to XLA: inside a batch-sharded ``jit`` it would gather
the whole batch onto every device. Each conv pass is therefore wrapped in
``custom_partitioning``: forward and input gradient run on each device's
batch shard (their result keeps the shard), the kernel gradient sums each
shard's contribution with a ``psum`` over the batch's mesh axes. Every other
dimension is replicated.
"""
from collections.abc import Callable

from jax import custom_batching, lax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec

# Factors: x n×h×w×c, kernel i×j×k×o, y n×p×q×o.
FORWARD_RULE = "n h w c, i j k o -> n p q o"
INPUT_GRAD_RULE = "n p q o, i j k o -> n h w c"
KERNEL_GRAD_RULE = "n h w c, n p q o -> i j k o"


def _batch_axes(sharding):
  """The mesh axes that shard axis 0 (None: not sharded)."""
  spec = getattr(sharding, "spec", ())
  return spec[0] if len(spec) else None


def _all_but_batch(rule: str) -> tuple[str, ...]:
  """The rule's factors other than the batch ``n``, in order of appearance."""
  factors = rule.replace(",", " ").replace("->", " ").split()
  return tuple(f for f in dict.fromkeys(factors) if f != "n")


def _sharding(mesh, *spec) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(*spec))


def _per_element_under_vmap(wrapped):
  """``custom_partitioning`` has no batching rule: under vmap, loop."""
  def call(a, b, *static):
    return custom_batching.sequential_vmap(lambda a, b: wrapped(a, b, *static))(a, b)
  return call


def along_batch(fn: Callable, rule: str, static_argnums: tuple[int, ...]):
  """``fn(a, b, *static)`` whose result's axis 0 is ``a``'s batch, run per shard."""
  wrapped = custom_partitioning(fn, static_argnums=static_argnums)

  def infer(*args):
    *_, mesh, arg_shapes, _ = args
    return _sharding(mesh, _batch_axes(arg_shapes[0].sharding))

  def partition(*args):
    *static, mesh, arg_shapes, _ = args
    batch = _sharding(mesh, _batch_axes(arg_shapes[0].sharding))
    return mesh, lambda a, b: fn(a, b, *static), batch, (batch, _sharding(mesh))

  wrapped.def_partition(partition, infer_sharding_from_operands=infer, sharding_rule=rule,
                        need_replication_factors=_all_but_batch(rule))
  return _per_element_under_vmap(wrapped)


def summed_over_batch(fn: Callable, rule: str, static_argnums: tuple[int, ...]):
  """``fn(a, b, *static)``, a sum over the batch (axis 0) of both operands:
  each shard's partial result, summed over the devices (replicated result)."""
  wrapped = custom_partitioning(fn, static_argnums=static_argnums)

  def infer(*args):
    *_, mesh, _, _ = args
    return _sharding(mesh)

  def partition(*args):
    *static, mesh, arg_shapes, _ = args
    axes = _batch_axes(arg_shapes[0].sharding)

    def per_shard(a, b):
      partial = fn(a, b, *static)
      return partial if axes is None else lax.psum(partial, axes)

    batch = _sharding(mesh, axes)
    return mesh, per_shard, _sharding(mesh), (batch, batch)

  wrapped.def_partition(partition, infer_sharding_from_operands=infer, sharding_rule=rule,
                        reduction_factors=("n",), need_replication_factors=_all_but_batch(rule))
  return _per_element_under_vmap(wrapped)

