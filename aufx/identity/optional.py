"""Import an optional torch package (facenet-pytorch, lpips) and, when that fails, say what is actually missing."""
from __future__ import annotations

import importlib
from importlib.util import find_spec


def import_or_explain(module: str, package: str):
    """The imported module, or ImportError naming the missing piece: the package itself, torchvision (which both
    facenet-pytorch and lpips import), or the error raised inside an installed package."""
    try:
        return importlib.import_module(module)
    except Exception as exc:  # ImportError, or an incompatible torchvision failing inside the package
        found = f"{type(exc).__name__}: {exc}"
    if find_spec(module) is None:
        why = f"not installed (pip install {package})"
        if find_spec("torchvision") is None:
            why += "; it also needs torchvision, which is not installed either"
    elif find_spec("torchvision") is None:
        why = "installed, but it needs torchvision, which is not installed"
    else:
        why = "installed, as is torchvision, but importing it failed"
    raise ImportError(f"{package} is not importable: {why} ({found})") from None
