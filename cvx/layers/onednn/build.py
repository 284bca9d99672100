"""Compiles ``conv.cc`` (the oneDNN conv FFI handlers) and the kernels it
calls (``depthwise.cc``, ``narrow_input.cc``, ``single_channel.cc``) and
``separable_u8.cc`` once per machine.

The shared library is built with the C++ compiler ``$CXX`` (default ``c++``)
against the XLA FFI headers shipped in jaxlib and the oneDNN CPU build of the
``onednn-devel-cpu-gomp`` / ``onednn-cpu-gomp`` wheels, the way PyTorch's
``cpp_extension.load`` or Triton build their kernels: at first use, cached
under ``$CVX_CACHE_DIR`` (default ``~/.cache/cvx``) by a hash of the source,
the versions and the paths, and written atomically (a temporary file renamed
into place), so concurrent processes never load a half-written library.
"""
import ctypes
import functools
import hashlib
import importlib.metadata
import os
import pathlib
import shlex
import subprocess
import tempfile

import jax
import jaxlib

_HERE = pathlib.Path(__file__).parent
SOURCES = (_HERE / "conv.cc", _HERE / "depthwise.cc", _HERE / "narrow_input.cc",
           _HERE / "separable_u8.cc", _HERE / "single_channel.cc")
HEADERS = (_HERE / "depthwise.h", _HERE / "narrow_input.h", _HERE / "single_channel.h",
           _HERE / "vectors.h")
HEADERS_DIST = "onednn-devel-cpu-gomp"
LIBRARY_DIST = "onednn-cpu-gomp"
_LIBRARY_NAME = "libdnnl.so.3"


class OneDnnUnavailable(RuntimeError):
  """oneDNN or a C++ compiler is missing, or the build failed."""


def cache_dir() -> pathlib.Path:
  default = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "cvx"
  return pathlib.Path(os.environ.get("CVX_CACHE_DIR", default))


def _installed_file(dist: str, suffix: str) -> pathlib.Path:
  """The file of an installed distribution whose path ends with ``suffix``."""
  try:
    distribution = importlib.metadata.distribution(dist)
  except importlib.metadata.PackageNotFoundError:
    raise OneDnnUnavailable(
        f"the {dist!r} package is not installed (cvx installs it on Linux x86-64: "
        f"pip install {dist}); set CVX_CPU_CONV=matmul to use the matmul lowering") from None
  for path in distribution.files or ():
    if str(path).endswith(suffix):
      return pathlib.Path(distribution.locate_file(path)).resolve()
  raise OneDnnUnavailable(f"{dist!r} has no file ending in {suffix!r}")


def onednn_paths() -> tuple[pathlib.Path, pathlib.Path]:
  """(include directory, libdnnl.so.3) of the installed oneDNN wheels."""
  header = _installed_file(HEADERS_DIST, "oneapi/dnnl/dnnl.hpp")
  return header.parents[2], _installed_file(LIBRARY_DIST, _LIBRARY_NAME)


def _compile_command(output: pathlib.Path) -> list[str]:
  include, library = onednn_paths()
  return [*shlex.split(os.environ.get("CXX", "c++")), "-O3", "-std=c++17", "-fopenmp",
          "-shared", "-fPIC",
          "-isystem", str(include), "-isystem", jax.ffi.include_dir(), *map(str, SOURCES),
          "-o", str(output), str(library), f"-Wl,-rpath,{library.parent}"]


def library_path() -> pathlib.Path:
  """Where the library for this source, jaxlib and oneDNN lives in the cache."""
  key = hashlib.sha256()
  for source in SOURCES + HEADERS:
    key.update(source.read_bytes())
  key.update(" ".join(_compile_command(pathlib.Path("out"))).encode())
  key.update(jaxlib.__version__.encode())
  key.update(importlib.metadata.version(LIBRARY_DIST).encode())
  return cache_dir() / f"onednn_conv-{key.hexdigest()[:16]}.so"


def build() -> pathlib.Path:
  """The compiled library's path; compiles it first if the cache lacks it."""
  target = library_path()
  if target.exists():
    return target
  try:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
      partial = pathlib.Path(scratch) / target.name
      _compile(partial)
      os.replace(partial, target)
  except OSError as error:
    raise OneDnnUnavailable(
        f"cannot write the build cache {target.parent} ({error}); set $CVX_CACHE_DIR") from None
  return target


def _compile(output: pathlib.Path) -> None:
  command = _compile_command(output)
  try:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
  except FileNotFoundError:
    raise OneDnnUnavailable(
        f"no C++ compiler {command[0]!r} (set $CXX, or CVX_CPU_CONV=matmul)") from None
  if result.returncode != 0:
    sources = ", ".join(source.name for source in SOURCES)
    raise OneDnnUnavailable(
        f"compiling {sources} failed ({shlex.join(command)}):\n{result.stderr[-4000:]}")


@functools.cache
def load() -> ctypes.CDLL:
  """The library, built if needed and loaded once per process."""
  return ctypes.CDLL(str(build()))
