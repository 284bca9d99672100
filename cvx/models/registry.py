"""One registry for every architecture: create by name, list what exists.

A registered factory takes ``num_classes`` plus architecture keywords and
returns a ``flax.linen.Module`` whose ``__call__(x, train)`` returns
``(logits, features)``: ``features`` is a dict of named intermediate arrays
(stage outputs, last conv map, pre-logits) for explainability and transfer.
"""
import difflib
from typing import Callable

import flax.linen as nn

_FACTORIES: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
  """Decorator: registers a module class or factory under ``name``."""

  def wrap(factory):
    if name in _FACTORIES:
      raise ValueError(f"model {name!r} is registered twice")
    _FACTORIES[name] = factory
    return factory

  return wrap


def list_models() -> list[str]:
  """Names accepted by :func:`create`, sorted."""
  return sorted(_FACTORIES)


def create(name: str, num_classes: int, **kwargs) -> nn.Module:
  """Builds the registered model ``name`` with a head of ``num_classes``."""
  if name not in _FACTORIES:
    close = difflib.get_close_matches(name, _FACTORIES, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown model {name!r}.{hint} Available: {', '.join(list_models())}")
  if not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
  try:
    return _FACTORIES[name](num_classes=num_classes, **kwargs)
  except TypeError as e:
    raise TypeError(f"model {name!r}: {e}") from None
