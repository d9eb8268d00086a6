"""Dig Site: the shared package behind the mechanistic-interpretability course.

The notebooks import from here; nothing here imports from the notebooks.
"""

__version__ = "0.1.0"

# The model API is imported lazily so that `import digsite` stays light (no transformers).
_LAZY = {
    "load_model": "models",
    "wrap": "models",
    "HookedModel": "hooks",
    "ActivationCache": "cache",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'digsite' has no attribute {name!r}")
