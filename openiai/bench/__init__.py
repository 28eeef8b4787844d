"""Tools and benchmarks (``openiai bench ...``, ``openiai eval``, ``openiai calibrate``) and
the server harness they share with the tests. Nothing here is imported by the server."""
