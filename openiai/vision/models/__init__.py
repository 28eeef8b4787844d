"""One class per model file (see :mod:`.zoo` for how to add one).

=========== ====================== =========================================================
name        class                  call
=========== ====================== =========================================================
yunet       :class:`YuNet`         ``detect(pixels, min_face_size, max_faces)`` -> faces
sface       :class:`SFace`         ``align(pixels, face)`` -> crop; ``embed(crops)`` -> features
                                   (``SFaceInt8`` with ``OPENIAI_INFERENCE=int8``)
sface_app.. ``SFaceAppearance``    ``align(pixels, face)`` -> 96 px crop; ``appearance(crops)``
face_mesh   :class:`FaceMesh`      ``get(pixels, face)`` -> (468, 3) mesh points
iris        :class:`IrisLandmarks` ``get(pixels, mesh)`` -> per eye: contour (71, 2), iris (5, 2)
age         ``AgeNet``             ``probabilities(chips)`` -> (n, 81) over 0..80 years
gender      ``GenderNet``          ``p_male(chips)`` -> (n,)
expression  ``Expression``         ``probabilities(pixels, face)`` -> (7,)
mask        ``MaskDetector``       ``p_mask(pixels, face)`` -> p(mask) (training/evaluation only)
minifasnet  ``MiniFASNet``         ``features(pixels, faces, flips)`` -> liveness features per view
dlib_resnet ``DlibResNet``         ``align(pixels, face)`` -> 150 px chip; ``embed(chips)`` -> features
=========== ====================== =========================================================
"""

from .face_mesh import FaceMesh
from .files import ModelFile, ModelIntegrityError
from .iris import IrisLandmarks
from .sface import SFace
from .yunet import DEFAULT_SCORE_THRESHOLD, YuNet
from .zoo import MODEL_CLASSES, ModelZoo

__all__ = ["FaceMesh", "IrisLandmarks", "ModelFile", "ModelIntegrityError", "SFace", "YuNet",
           "DEFAULT_SCORE_THRESHOLD", "MODEL_CLASSES", "ModelZoo"]
