"""Structures from building presence (the ``"presence"`` method).

Each date is judged on its own by :mod:`.presence`: how likely each pixel is to lie on a
building. A structure is new where the later date shows a building and the earlier date
showed none there, nor within :data:`DISPLACEMENT_M` of it (co-registration and a roof's
parallax leave a standing building a few pixels off between dates); removed the other way
round. Nothing here is scaled on the scene's typical change, so a tile where most of the
ground was built up is judged as one where little was.

1. Presence of both dates, smoothed over :data:`SMOOTH_M`.
2. ``new = p_after * (1 - p_before nearby)``, ``removed = p_before * (1 - p_after nearby)``.
3. Removals first, then new structures on what is left: pixels above
   :data:`CHANGE_PROBABILITY`, opened by :data:`OPENING_M` (paths, fences and slivers
   along a building's edge go), holes filled, at least ``settings.min_area_m2``.
4. Each object must also have changed colour: its mean change vector at least
   :data:`MIN_COLOUR_CHANGE` times the median over ground that neither date calls a new
   or vanished building. A roof the network reads differently on two dates (another sun,
   another season) has changed little.
5. A building replaced on its own ground (or built on a slab the network already took for a
   roof) shows presence on both dates: where both dates show a building and the colour
   changed by :data:`REPLACED_COLOUR_CHANGE` times that median, and the roof's own colour
   changed in hue or much in brightness (not only its lighting), the changed part is a new
   structure. A replaced building is reported once, as new.

Pure: arrays in, :class:`~sitewatch.structures.objects.StructureChanges` out.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import morphology

from ..radiometry import MIN_SAMPLE_PIXELS
from .evidence import Evidence
from .objects import ChangeObject, StructureChanges, direction_raster, label_means, measured_objects
from .presence import building_presence
from .scores import cva_magnitude
from .settings import ChangeArea, DetectSettings

# Presence is smoothed over this radius (Gaussian sigma, metres): single noisy pixels of
# one date should not make or break an object.
SMOOTH_M = 1.0
# A building counts as standing on the other date if the network saw one within this
# distance: residual misregistration and roof parallax between two dates.
DISPLACEMENT_M = 2.0
# Pixels whose change probability is above this form objects.
CHANGE_PROBABILITY = 0.4
# Opening radius: narrower than twice this is a path, a fence or a sliver along an edge.
OPENING_M = 1.5
# Pixels with both change probabilities below this are the unchanged ground that colour
# change is measured against.
UNCHANGED_PROBABILITY = 0.2
# An object's colour change, in multiples of the unchanged ground's median change vector.
MIN_COLOUR_CHANGE = 1.5
# Where both dates show a building: the colour change (same unit) that makes it a new one.
# Four medians is about the 0.1 % tail of three bands of Gaussian noise.
REPLACED_COLOUR_CHANGE = 4.0
# Presence above this on a date: a building stands there.
STANDING_PROBABILITY = 0.5
# A roof seen on both dates is a replaced one only if its mean colour turned by this hue
# angle (degrees) or its brightness changed by more than this factor. The later image is
# normalised to the earlier one first, so a roof only lit by another sun keeps its hue and
# most of its brightness; a new roof of another material (even grey on a grey slab) does not.
REPLACED_MIN_ANGLE_DEG = 8.0
REPLACED_BRIGHTNESS_RATIO = 1.3


def presence_change(
    presence_before: np.ndarray, presence_after: np.ndarray, *, pixel_size_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities that a building appeared and that one vanished, from each date's presence.

    Parameters
    ----------
    presence_before, presence_after : ndarray of shape (M, N)
        :func:`~.presence.building_presence` of the two dates on one grid.
    pixel_size_m : float
        Metres per pixel.

    Returns
    -------
    new, removed : ndarray of shape (M, N), float32, 0 to 1
    """
    sigma = SMOOTH_M / pixel_size_m
    before = ndimage.gaussian_filter(presence_before.astype(np.float32), sigma)
    after = ndimage.gaussian_filter(presence_after.astype(np.float32), sigma)
    reach = 2 * max(1, int(round(DISPLACEMENT_M / pixel_size_m))) + 1
    new = after * (1 - ndimage.maximum_filter(before, reach))
    removed = before * (1 - ndimage.maximum_filter(after, reach))
    return new.astype(np.float32), removed.astype(np.float32)


def _candidates(
    probability: np.ndarray, free: np.ndarray, pixel_size_m: float, threshold: float
) -> tuple[np.ndarray, int]:
    """Labels of the compact pieces of ``free`` pixels above ``threshold``."""
    part = free & (probability > threshold)
    radius = max(1, int(round(OPENING_M / pixel_size_m)))
    part = ndimage.binary_fill_holes(ndimage.binary_opening(part, morphology.disk(radius)))
    return ndimage.label(part, structure=np.ones((3, 3)))


def roof_recoloured(lab: np.ndarray, n: int, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Which labels 0..n changed roof colour, not only brightness (label 0 is ``False``).

    A roof standing on both dates may be lit differently (another sun, a wet roof); it is
    replaced when the hue of its mean colour turned by :data:`REPLACED_MIN_ANGLE_DEG` or its
    brightness changed by more than :data:`REPLACED_BRIGHTNESS_RATIO` either way.
    """
    mean_before = np.stack([label_means(lab, n, band) for band in before[:3]])
    mean_after = np.stack([label_means(lab, n, band) for band in after[:3]])
    norms = np.linalg.norm(mean_before, axis=0) * np.linalg.norm(mean_after, axis=0)
    cosine = (mean_before * mean_after).sum(axis=0) / np.maximum(norms, 1e-9)
    angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    ratio = mean_after.sum(axis=0) / np.maximum(mean_before.sum(axis=0), 1e-9)
    brightness_changed = np.abs(np.log(np.maximum(ratio, 1e-9))) > np.log(REPLACED_BRIGHTNESS_RATIO)
    replaced = (angle >= REPLACED_MIN_ANGLE_DEG) | brightness_changed
    replaced[0] = False
    return replaced


def _candidate_passes(
    new: np.ndarray, removed: np.ndarray, replaced: np.ndarray
) -> tuple[tuple[str, np.ndarray, float, float], ...]:
    """(direction, probability, probability threshold, colour floor) of each pass, in order."""
    return (
        ("removed", removed, CHANGE_PROBABILITY, MIN_COLOUR_CHANGE),
        ("new", new, CHANGE_PROBABILITY, MIN_COLOUR_CHANGE),
        ("new", replaced, STANDING_PROBABILITY, REPLACED_COLOUR_CHANGE),
    )


def presence_changes(
    before: np.ndarray, after: np.ndarray, evidence: Evidence, area: ChangeArea, settings: DetectSettings
) -> StructureChanges:
    """The ``"presence"`` method: steps 1-5 of the module docstring.

    ``before`` and ``after`` are on one grid, ``after`` radiometrically normalised to
    ``before`` (the colour change of step 4 reads it); bands 0-2 are red, green, blue.
    ``evidence`` is not read: presence says what a roof is.
    """
    presence_before = building_presence(
        before, pixel_size_m=area.pixel_size_m, valid=area.valid, levels=area.presence_levels(0)
    )
    presence_after = building_presence(
        after, pixel_size_m=area.pixel_size_m, valid=area.valid, levels=area.presence_levels(1)
    )
    return presence_objects(before, after, presence_before, presence_after, area, settings)


def presence_objects(
    before: np.ndarray,
    after: np.ndarray,
    presence_before: np.ndarray,
    presence_after: np.ndarray,
    area: ChangeArea,
    settings: DetectSettings,
) -> StructureChanges:
    """Steps 2-5 of the module docstring, from each date's :func:`~.presence.building_presence`."""
    valid, pixel_size_m = area.valid, area.pixel_size_m
    new, removed = presence_change(presence_before, presence_after, pixel_size_m=pixel_size_m)
    calm = valid & (new < UNCHANGED_PROBABILITY) & (removed < UNCHANGED_PROBABILITY)
    colour = cva_magnitude(before, after, valid=calm if calm.sum() >= MIN_SAMPLE_PIXELS else valid)
    sigma = SMOOTH_M / pixel_size_m
    standing_both = np.minimum(
        ndimage.gaussian_filter(presence_before, sigma), ndimage.gaussian_filter(presence_after, sigma)
    )
    replaced = np.where(colour >= REPLACED_COLOUR_CHANGE, standing_both, 0)
    objects: list[ChangeObject] = []
    taken = ~valid
    dropped = {"small": 0, "little_change": 0}
    for name, probability, threshold, colour_floor in _candidate_passes(new, removed, replaced):
        lab, n = _candidates(probability, ~taken, pixel_size_m, threshold)
        changed_enough = label_means(lab, n, colour) >= colour_floor
        if probability is replaced:
            changed_enough &= roof_recoloured(lab, n, before, after)
        changed_enough[0] = False
        dropped["little_change"] += int(n - changed_enough[1:].sum())
        lab = np.where(changed_enough[lab], lab, 0)
        found, keep = measured_objects(
            lab,
            n,
            name,
            probability,
            area=area,
            min_area_m2=settings.min_area_m2,
            min_rectangularity=0.0,
            dropped=dropped,
        )
        objects += found
        taken |= keep[lab] & (lab > 0)
    objects.sort(key=lambda o: -o.area_m2)
    stats = {
        "building_pixels": {
            "before": int((valid & (presence_before > STANDING_PROBABILITY)).sum()),
            "after": int((valid & (presence_after > STANDING_PROBABILITY)).sum()),
        },
        "objects_dropped": dropped,
    }
    score = np.where(valid, np.maximum(new, removed), 0).astype(np.float32)
    return StructureChanges(objects, score, direction_raster(objects, area), CHANGE_PROBABILITY, stats)
