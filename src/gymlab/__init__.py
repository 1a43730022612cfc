"""gymlab: reproducible RL lab hosts and remote Gymnasium environments over VNC."""

from __future__ import annotations

__version__ = "0.1.0"
