"""Controls of a model under test: ``<control>:<entry>`` in any model list (``alignment.models``, ``downstream.compare``,
``checkpoint=``) -> the same model transformed (``CONTROLS``: control name -> ``(model, cfg) -> model``).

``models.load_model`` resolves the inner entry and applies the control; controls from other packages register
through the ``braintune.controls`` entry point group.
"""
from __future__ import annotations

from collections.abc import Callable

from .registry import Registry

CONTROLS: Registry[Callable] = Registry("braintune.controls", "model control", {})
