"""The headless Chromium the browser tests drive: found on PATH, started with nothing that calls out.

The flags turn off what a browser fetches on its own (updates, sync, QUIC probes), so a request
the tests see comes from the page under test.
"""

import shutil

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

OFFLINE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch_chromium(playwright):
    """A headless Chromium from `sync_playwright()`'s handle, with the offline flags."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=OFFLINE_ARGS)
