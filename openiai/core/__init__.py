"""The leaf of the package: what every layer may use and that imports nothing of openiai.

* :mod:`.errors` - the documented error codes as exceptions (the whole server's error path);
* :mod:`.settings` - the one reader of the environment;
* :mod:`.features` - feature vectors: normalise, fuse, encode;
* :mod:`.changes` - the vocabulary of the vector index's change log;
* :mod:`.versions` - FaceModelVersion facts (recognizer, dimensions, limits) in one registry;
* :mod:`.timing` - per-request stage timers;
* :mod:`.clock` - the one clock of stored timestamps.
"""
