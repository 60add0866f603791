"""braintune: brain-tuning of speech, audio-video and text models on fMRI, and measuring what it did.

Library layers, lowest first (each imports only from the layers below it; ``tests/test_architecture.py`` enforces
the order, docs/architecture.md explains it): ``errors`` / ``registry`` / ``provenance`` -> ``data`` (layouts ->
study -> segments) -> ``backbones`` (stimuli -> hidden states) -> ``pooling`` / ``heads`` / ``losses`` ->
``evaluation`` (brain alignment) -> ``downstream`` (linear probes) / ``analysis`` (the papers' analyses) ->
``config`` -> ``models`` (the model under test) -> ``training`` (LightningModule) -> ``commands`` (train, evaluate,
inspect, export) -> ``cli``. Entry points: ``train.py``, ``evaluate.py``, the ``braintune`` console script.
"""
__version__ = "0.2.0"

from . import _moved

_moved.install()
