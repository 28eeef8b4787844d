"""Per-face RetCode values, as the docs define them (CreateFace and the four searches, both
API versions), and how a per-image failure maps onto them.
"""

from __future__ import annotations

OK = 0
NO_FACE = -1101  # no face detected
DECODE_FAILED = -1102  # image decoding failed
BAD_SIZE = -1109  # image too large or too small (2018-03-01 doc)
QUALITY = -1601  # "the image does not meet the quality requirements; Candidates is empty"
# CreateFace: "similarity not above FaceMatchThreshold"; search Results (not
# ResultsReturnsByGroup): "the face similarity is not higher than FaceMatchThreshold".
BELOW_THRESHOLD = -1604
SERVICE_ERROR = -1000  # "Other non-zero values: algorithm service exception"

FOR_ERROR_CODE = {
    "InvalidParameterValue.NoFaceInPhoto": NO_FACE,
    "FailedOperation.ImageDecodeFailed": DECODE_FAILED,
    # No separate code for an image that could not be fetched: it could not be decoded.
    "FailedOperation.ImageDownloadError": DECODE_FAILED,
    "InvalidParameterValue.UrlIllegal": DECODE_FAILED,
    "InvalidParameterValue.ImageEmpty": DECODE_FAILED,
    "FailedOperation.ImageSizeExceed": BAD_SIZE,
    "FailedOperation.ImageResolutionExceed": BAD_SIZE,
    "FailedOperation.ImageResolutionTooSmall": BAD_SIZE,
    "FailedOperation.FaceQualityNotQualified": QUALITY,
}


def for_error(code: str) -> int:
    """The RetCode of an image that failed with API error ``code``."""
    return FOR_ERROR_CODE.get(code, SERVICE_ERROR)
