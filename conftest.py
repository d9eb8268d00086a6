"""Test-wide settings: the suite, notebooks included, must pass with no network.

HF_HUB_OFFLINE makes any accidental hub download fail at once instead of hanging;
DIGSITE_STRICT_CLAIMS makes a quoted number that drifted fail. nbval's kernels inherit both
because they start after this file is imported.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Every number the prose quotes must hold when the solution notebooks run (digsite.claims).
os.environ.setdefault("DIGSITE_STRICT_CLAIMS", "1")
