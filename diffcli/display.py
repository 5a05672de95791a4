"""How diffcli's objects display themselves in Jupyter and IPython (`_repr_html_`, `_repr_svg_`,
`_repr_latex_`, `_repr_markdown_`).

The objects live in the lower layers (Program, the interpreters' and commands' results), and what
draws them lives in the renderers, which those layers may not import. So the objects inherit
`Displayed`, whose methods look the drawing up here, and the top of the package (notebook.py,
imported by `import diffcli`) registers it: a lower layer names the need, the top layer fills it.
"""

from __future__ import annotations

from typing import Callable

# (class name, method) -> a function of the object: e.g. ("Program", "svg") -> its graph as SVG
_DRAWINGS: dict[tuple[str, str], Callable] = {}


def register(kind: str, method: str, draw: Callable) -> None:
    _DRAWINGS[kind, method] = draw


def draw(thing, method: str, *args, **options):
    """The `method` drawing of `thing` (by its class, or a base class), or None if it has none."""
    for cls in type(thing).__mro__:
        found = _DRAWINGS.get((cls.__name__, method))
        if found is not None:
            return found(thing, *args, **options)
    return None


class Displayed:
    """A mixin: rich displays, each None (not offered) where the object has no such drawing."""

    def _repr_html_(self):
        return draw(self, "html")

    def _repr_svg_(self):
        return draw(self, "svg")

    def _repr_latex_(self):
        return draw(self, "latex")

    def _repr_markdown_(self):
        return draw(self, "markdown")
