"""The upper face: what CompareMaskFace compares when a face wears a mask.

A mask hides everything from the nose tip down (CompareMaskFace's docs: "the mask may cover up
to the nose tip"). Comparing a masked face with an unmasked one on the whole face compares the
mask with a mouth; instead both faces are compared on the same region: the recognizer's aligned
crop with every row from :data:`ROW` down painted one flat colour (:data:`FILL`), on both sides
of the comparison, so neither the mask nor the other face's mouth counts. The recognizer is
unchanged (SFace); its scores on such crops follow another impostor distribution, so they map
to the 0..100 Score through their own measured table (``mask_calibration.json``).

ROW and FILL were chosen on LFW pairsDevTrain (a tuning split, not the reported pairs.txt) by
``openiai eval maskcompare --pairs pairsDevTrain.txt --pilot --limit 200`` (200 genuine pairs,
first face masked; TAR at FAR 1e-3 / 1e-4 over 450 k impostor pairs):

====================  ===========  ===========  ===============
rows painted          masked-clean masked-masked clean-clean
====================  ===========  ===========  ===============
none (whole face)     93.5 / 84.0  86.0 / 73.0  99.5 / 97.5
64.. black            89.5 / 78.5  84.0 / 70.0  95.5 / 89.0
72.. black            91.0 / 80.5  88.5 / 72.5  96.5 / 93.0
72.. grey 128         90.5 / 78.5  83.5 / 69.0  95.5 / 93.5
80.. black            92.0 / 86.0  89.5 / 76.5  98.0 / 95.5
====================  ===========  ===========  ===============

Row 80 is the best upper-face variant; against the whole face it is level on masked-vs-clean
pairs (within the noise of 200 pairs) and better when both faces wear a mask, where the
whole face compares two masks; on unmasked pairs the whole face is better, so it is kept
for them (:mod:`openiai.services.mask_compare`).
"""

from __future__ import annotations

import numpy as np

# In SFace's 112x112 template the eyes sit at y = 51.6 and the nose tip at 71.7.
ROW = 80  # 8 px below the nose tip: keeps the tip, where a mask's top edge sits
FILL = 0  # black, as the border alignment already paints outside the photo


def occlude_lower(crop: np.ndarray, row: int = ROW, fill: int = FILL) -> np.ndarray:
    """A copy of an aligned (112, 112, 3) crop with rows ``row``.. painted ``fill``."""
    out = np.array(crop, copy=True)
    out[int(row):] = fill
    return out
