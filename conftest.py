"""Test-wide settings: the suite, notebooks included, must pass with no network.

HF_HUB_OFFLINE makes any accidental hub download fail at once instead of hanging;
nbval's kernels inherit it because they start after this file is imported.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
