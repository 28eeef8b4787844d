"""One class per model file (see :mod:`.zoo` for how to add one).

=========== ================ ==========================================================
name        class            call
=========== ================ ==========================================================
yunet       :class:`YuNet`   ``detect(pixels, min_face_size, max_faces)`` -> faces
sface       :class:`SFace`   ``align(pixels, face)`` -> crop; ``embed(crops)`` -> features
dlib68      :class:`Dlib68`  ``get(pixels, face)`` -> (68, 2) landmarks
minifasnet  MiniFASNet       ``features(pixels, faces, flips)`` -> liveness features per view
=========== ================ ==========================================================
"""

from .dlib68 import Dlib68
from .files import ModelFile, ModelIntegrityError
from .sface import SFace
from .yunet import DEFAULT_SCORE_THRESHOLD, YuNet
from .zoo import MODEL_CLASSES, ModelZoo

__all__ = ["Dlib68", "ModelFile", "ModelIntegrityError", "SFace", "YuNet",
           "DEFAULT_SCORE_THRESHOLD", "MODEL_CLASSES", "ModelZoo"]
