"""cvx's LeNet-5 as a PyTorch module with the same weights (the reference side
of the pytorch-grad-cam parity tests)."""
import numpy as np
import torch
from torch import nn


def lenet5(params) -> nn.Sequential:
  """A torch LeNet-5 computing what ``cvx.models.create("lenet5")`` computes
  with ``params``, on NCHW inputs. ReLUs are modules (pytorch-grad-cam hooks
  and swaps them): index 1 is ``stage1``, index 4 is ``stage2``/``last_conv``."""
  model = nn.Sequential(
      nn.Conv2d(params["conv1"]["kernel"].shape[2], 6, 5, padding=2), nn.ReLU(),
      nn.MaxPool2d(2),
      nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
      nn.Flatten(),
      nn.Linear(400, 120), nn.ReLU(),
      nn.Linear(120, 84), nn.ReLU(),
      nn.Linear(84, params["head"]["kernel"].shape[1]))
  convs = [m for m in model if isinstance(m, nn.Conv2d)]
  linears = [m for m in model if isinstance(m, nn.Linear)]
  with torch.no_grad():
    for module, name in zip(convs, ["conv1", "conv2"]):
      kernel = np.asarray(params[name]["kernel"]).transpose(3, 2, 0, 1)  # HWIO → OIHW
      module.weight.copy_(torch.tensor(kernel))
      module.bias.copy_(torch.tensor(np.asarray(params[name]["bias"])))
    for module, name in zip(linears, ["fc1", "fc2", "head"]):
      kernel = np.asarray(params[name]["kernel"])
      if name == "fc1":  # cvx flattens 5×5×16 (NHWC), torch 16×5×5 (NCHW).
        kernel = kernel.reshape(5, 5, 16, -1).transpose(2, 0, 1, 3).reshape(400, -1)
      module.weight.copy_(torch.tensor(kernel.T))
      module.bias.copy_(torch.tensor(np.asarray(params[name]["bias"])))
  return model.eval()


def nchw(images) -> torch.Tensor:
  """N×H×W×C array → N×C×H×W float32 tensor."""
  return torch.tensor(np.asarray(images, np.float32).transpose(0, 3, 1, 2))
