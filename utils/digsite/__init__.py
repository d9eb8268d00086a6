"""Dig Site: the shared package behind the mechanistic-interpretability course.

The notebooks import from here; nothing here imports from the notebooks.
"""

__version__ = "0.1.0"
