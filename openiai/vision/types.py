"""Plain data passed between the vision modules and the actions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DecodedImage:
    """An input image after format checks, EXIF orientation and decoding."""

    pixels: np.ndarray  # H x W x 3, uint8, BGR (OpenCV order)
    format: str  # "JPEG", "PNG" or "BMP": sniffed from the bytes, never from a name

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


@dataclass
class Face:
    """One detected face, in the coordinates of the image it was found in."""

    box: np.ndarray  # float32 [x, y, w, h]; may extend past the image borders (negative x/y)
    score: float  # detector confidence, 0..1
    # float32 (5, 2), YuNet order: right eye, left eye, nose tip, right mouth corner,
    # left mouth corner ("right" = the subject's right, i.e. the left side of the picture).
    landmarks: np.ndarray
