"""What differs per task: batch format, loss and metrics."""
from cvx.tasks.classification import Classification

TASKS = {"classification": Classification}


def create(name: str, **kwargs):
  """Builds task ``name`` (e.g. ``"classification"``) with its settings."""
  if name not in TASKS:
    raise ValueError(f"unknown task {name!r}; available: {sorted(TASKS)}")
  return TASKS[name](**kwargs)
