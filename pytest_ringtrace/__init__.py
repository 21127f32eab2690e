"""pytest-ringtrace: a flight recorder for tests.

``pytest --ringtrace`` records what the code under test does (all its
threads) into per-thread ring buffers; when a test fails, a snapshot of the
rings is attached to its report and written beside it. The recording kit
itself is the :mod:`instrument` package; this package is the pytest plugin
(:mod:`pytest_ringtrace.plugin`) and the ``ringtrace`` command.
"""
