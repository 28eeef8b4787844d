"""Plain data passed between the vision modules and the actions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np


class DecodedImage:
    """An input image after format checks and EXIF orientation; its pixels decode on demand.

    ``pixels`` is the full-resolution picture (H x W x 3, uint8, BGR: OpenCV order). A JPEG
    decodes it only when something first reads it (alignment, attributes); detection reads
    :meth:`scaled`, which a JPEG serves from a reduced-size decode (libjpeg's DCT scaling at
    1/2, 1/4 or 1/8: most of the decoding work skipped) resized to the exact size asked for,
    so a picture in which no face is found, or whose faces only need boxes, is never decoded
    at full size. ``width`` and ``height`` come from the header and never decode anything.
    """

    def __init__(self, pixels: np.ndarray | None = None, format: str = "", *,
                 size: tuple[int, int] | None = None,
                 decoder: Callable[[int], np.ndarray] | None = None) -> None:
        if pixels is None and (decoder is None or size is None):
            raise ValueError("DecodedImage needs pixels, or a decoder and the size")
        self.format = format  # "JPEG", "PNG" or "BMP": sniffed from the bytes, never from a name
        self._pixels = pixels
        # reduction (1, 2, 4 or 8) -> BGR pixels at ceil(size / reduction), EXIF-oriented
        self._decoder = decoder
        self.size = (int(pixels.shape[1]), int(pixels.shape[0])) if pixels is not None else size
        self._scaled: dict[tuple[int, int], np.ndarray] = {}
        self._reduced: dict[int, np.ndarray] = {}

    @property
    def pixels(self) -> np.ndarray:
        if self._pixels is None:
            self._pixels = self._decoder(1)
        return self._pixels

    @property
    def width(self) -> int:
        return int(self.size[0])

    @property
    def height(self) -> int:
        return int(self.size[1])

    def scaled(self, size: tuple[int, int]) -> np.ndarray:
        """The picture resized to ``size`` (width, height), no larger than its own: from a
        reduced decode where there is a decoder, else from the full pixels (``INTER_AREA``)."""
        if tuple(size) == tuple(self.size):
            return self.pixels
        cached = self._scaled.get(tuple(size))
        if cached is not None:
            return cached
        source = self._pixels
        if source is None:
            fits = [r for r in (8, 4, 2, 1)
                    if -(-self.size[0] // r) >= size[0] and -(-self.size[1] // r) >= size[1]]
            done = [r for r in fits if r in self._reduced]  # a finer decode already made serves
            reduction = done[0] if done else fits[0]
            if reduction == 1:
                source = self.pixels
            else:
                if reduction not in self._reduced:
                    self._reduced[reduction] = self._decoder(reduction)
                source = self._reduced[reduction]
        if source.shape[1] == size[0] and source.shape[0] == size[1]:
            out = source
        else:
            out = cv2.resize(source, tuple(size), interpolation=cv2.INTER_AREA)
        self._scaled[tuple(size)] = out
        return out


@dataclass
class Face:
    """One detected face, in the coordinates of the image it was found in."""

    box: np.ndarray  # float32 [x, y, w, h]; may extend past the image borders (negative x/y)
    score: float  # detector confidence, 0..1
    # float32 (5, 2), YuNet order: right eye, left eye, nose tip, right mouth corner,
    # left mouth corner ("right" = the subject's right, i.e. the left side of the picture).
    landmarks: np.ndarray
