"""Synthetic imagery with known truth, laid out at each site's real location.

:func:`build_scene` lays out a site's scenario; :func:`render` paints one date of it.
Writing files is :func:`sitewatch.pipeline.synthesize`'s job.
"""

from .render import render
from .scenarios import SCENARIOS, build_scene
from .scene import Acquisition, Scene, Structure

__all__ = ["Acquisition", "Scene", "Structure", "SCENARIOS", "build_scene", "render"]
