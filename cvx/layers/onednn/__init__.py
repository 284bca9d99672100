"""oneDNN convolutions for JAX on CPU: C++ XLA FFI handlers (``conv.cc``),
compiled at first use (``build``), behind a ``jax.custom_vjp`` (``custom_call``).
The same library holds cvx's other native CPU kernels (``separable_u8.cc``,
used by :mod:`cvx.ops._native`)."""
from cvx.layers.onednn.build import OneDnnUnavailable
from cvx.layers.onednn.custom_call import available, conv, ensure_available, supports

__all__ = ["OneDnnUnavailable", "available", "conv", "ensure_available", "supports"]
