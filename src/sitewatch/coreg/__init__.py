"""Co-registration: find how far one image's content is displaced from another's.

Pure functions on arrays.  :func:`estimate_shift` measures two images held whole
(:mod:`.estimate` describes the method); a scene too large to hold is measured from chips
read where its windows fall, with the same method (:mod:`.chips`).
"""

from .chips import Chip, chip_rects, coarse_shift, estimate_shift_from_chips
from .estimate import CoregSettings, ShiftResult, WindowShift, estimate_shift, gradient_field, window_size

__all__ = [
    "Chip",
    "CoregSettings",
    "ShiftResult",
    "WindowShift",
    "chip_rects",
    "coarse_shift",
    "estimate_shift",
    "estimate_shift_from_chips",
    "gradient_field",
    "window_size",
]
