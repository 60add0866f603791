"""braintune: brain-tuning of speech, audio-video and text models on fMRI, and measuring what it did.

Pipeline (one subpackage per stage): ``data`` (layouts -> study -> segments) -> ``backbones`` (stimuli ->
hidden states) -> ``pooling`` / ``heads`` / ``losses`` -> ``training`` (LightningModule, recipe) ->
``evaluation`` (brain alignment) and ``downstream`` (linear probes). Entry points: ``train.py``, ``evaluate.py``,
``python -m braintune inspect``.
"""
__version__ = "0.1.0"
