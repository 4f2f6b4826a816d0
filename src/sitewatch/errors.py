"""Exception hierarchy.

Every error sitewatch raises on purpose derives from :class:`SitewatchError`, and each
subclass also derives from the matching builtin so callers can catch either.  The CLI
turns these into a one-line message and a non-zero exit code.
"""

from __future__ import annotations


class SitewatchError(Exception):
    """Root of all sitewatch errors."""


class AOIError(SitewatchError, ValueError):
    """An area-of-interest file is missing, unreadable or does not follow the schema."""


class ImageryError(SitewatchError, ValueError):
    """A raster is unreadable, lacks a CRS, has the wrong bands or does not cover the AOI."""


class AlignmentError(SitewatchError, ValueError):
    """Two images cannot be co-registered (no overlap, no reliable shift)."""


class OutputExistsError(SitewatchError, FileExistsError):
    """An output would overwrite an existing file and ``overwrite`` was not given."""


class TrackError(SitewatchError, ValueError):
    """A rail track line is empty, not a line, lacks an id, or lies outside the image."""


class RunError(SitewatchError, ValueError):
    """A run folder holds no sitewatch outputs, or an output in it cannot be read."""


class PlanError(SitewatchError, ValueError):
    """A batch plan file is unreadable, or an entry names an unknown site, a missing image or a bad date."""
