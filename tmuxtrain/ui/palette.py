"""Colours for Rich text the widgets build themselves (table cells, bars, the plot).

Textual resolves `$success` and friends only in CSS and Content markup; DataTable cells and
hand-drawn bars are Rich `Text`, so they take concrete colours from the current theme here.
The `text-*` variables are the ones Textual tunes for contrast on the theme's background, so
the same code reads well in light and dark themes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rich.style import Style
from textual.color import Color


def _solid(variables: Mapping[str, str], name: str, fallback: str, background: Color) -> str:
    """A variable as an opaque hex colour: Rich has no alpha, so blend over the background."""
    raw = variables.get(name, fallback)
    try:
        color = Color.parse(raw)
    except Exception:  # "auto 60%" and other CSS-only forms
        color = Color.parse(fallback)
    if color.a < 1:
        color = background.blend(color.with_alpha(1.0), color.a)
    return color.hex


@dataclass(frozen=True)
class Palette:
    """Styles for one theme; rebuilt (with every cell that uses it) when the theme changes."""

    fg: Style
    muted: Style
    ok: Style
    warn: Style
    err: Style
    primary: Style
    accent: Style
    bar_jobs: Style  # VRAM held by tmuxtrain jobs
    bar_other: Style  # VRAM held by processes outside tmuxtrain
    bar_free: Style
    dark: bool

    @classmethod
    def from_variables(cls, v: Mapping[str, str], dark: bool = True) -> Palette:
        background = Color.parse(v.get("background", "#121212" if dark else "#E0E0E0"))
        foreground = Color.parse(v.get("foreground", "#E0E0E0" if dark else "#1F1F1F"))
        muted = background.blend(foreground, 0.55).hex
        free = background.blend(foreground, 0.25).hex

        def c(name: str, fallback: str) -> str:
            return _solid(v, name, fallback, background)

        return cls(
            fg=Style(color=foreground.hex),
            muted=Style(color=muted),
            ok=Style(color=c("text-success", "#4EBF71")),
            warn=Style(color=c("text-warning", "#FEA62B")),
            err=Style(color=c("text-error", "#B93C5B")),
            primary=Style(color=c("text-primary", "#0178D4")),
            accent=Style(color=c("text-accent", "#FEA62B")),
            bar_jobs=Style(color=c("primary", "#0178D4")),
            bar_other=Style(color=c("warning", "#FEA62B")),
            bar_free=Style(color=free),
            dark=dark,
        )

    @classmethod
    def default(cls) -> Palette:
        """The textual-dark colours, for code that renders before a theme is known."""
        return cls.from_variables({}, dark=True)
