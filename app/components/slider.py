"""A slider whose thumb is named by a visible label (Radix's slider parts, Radix Themes' look)."""

from __future__ import annotations

from collections.abc import Sequence

import reflex as rx
from reflex_base.event import EventHandler, passthrough_event_spec
from reflex_components_radix.primitives.slider import SliderComponent

SLIDER_VALUE = (passthrough_event_spec(list[float]), passthrough_event_spec(list[int]))


# Radix's own slider parts, styled by Radix Themes' classes: `rx.slider` renders its thumb
# itself and gives it no accessible name (the root's label does not reach it), so a screen
# reader announced every editor slider as just "slider".
class _SliderRoot(SliderComponent):
    tag = "Root"
    alias = "RadixSliderRoot"
    value: rx.Var[Sequence[float | int]]
    min: rx.Var[float | int]
    max: rx.Var[float | int]
    on_value_change: EventHandler[SLIDER_VALUE]
    on_value_commit: EventHandler[SLIDER_VALUE]


class _SliderTrack(SliderComponent):
    tag = "Track"
    alias = "RadixSliderTrack"


class _SliderRange(SliderComponent):
    tag = "Range"
    alias = "RadixSliderRange"


class _SliderThumb(SliderComponent):
    tag = "Thumb"
    alias = "RadixSliderThumb"


def labelled_slider(label_id: str, value: rx.Var, **props: object) -> rx.Component:
    """One thumb named by the element `label_id`, looking like `rx.slider` (size 2, surface)."""
    return _SliderRoot.create(
        _SliderTrack.create(
            _SliderRange.create(class_name="rt-SliderRange"), class_name="rt-SliderTrack"
        ),
        _SliderThumb.create(class_name="rt-SliderThumb", aria_labelledby=label_id),
        value=[value],
        class_name="rt-SliderRoot rt-r-size-2 rt-variant-surface",
        width="100%",
        **props,
    )
