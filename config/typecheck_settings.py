"""What mypy's Django plugin loads: Tandem's one set of settings, as a development run loads them.

The plugin imports the settings to learn the apps and models; it never serves a request. Settings fail closed
(DEBUG off unless set, and then SECRET_KEY required), so a bare `mypy` would stop there: this sets DEBUG for it,
unless the environment chose.
"""

from __future__ import annotations

import os

os.environ.setdefault("DEBUG", "true")

from config.settings import *  # noqa: E402, F403
