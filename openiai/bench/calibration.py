"""``openiai eval calibration``: the shipped CompareFace 3.0 score table measured on LFW and on
CelebA-HQ's held-out identities (:func:`openiai.bench.similarity.main_calibration`)."""

from __future__ import annotations

import sys

from .similarity import main_calibration as main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
