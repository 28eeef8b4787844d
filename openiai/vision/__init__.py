"""The face engine: image input, detection, alignment, recognition, quality, pose, landmarks."""
