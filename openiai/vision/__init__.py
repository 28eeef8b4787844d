"""Vision: the model zoo (``models/``, one class per model file) and the pure image code the
face pipeline (:mod:`openiai.services.faces`) composes: decoding (``image``), alignment
(``align``, ``canonical``), rotation search, landmark mapping, head pose, quality rules and the
calibrated score map (``scores``). Nothing here reads settings or keeps request state.
"""
