"""What the tree says about one parameter when it is clicked.
"""

from __future__ import annotations

from html import escape

from multiopt_lab._src.palette import group_colour
from multiopt_lab._src.render.numbers import grouped, shape_text
from multiopt_lab._src.render.params import ParamInfo
from multiopt_lab._src.text_fit import DEFAULT_WIDTH, check_width, wrap

__all__ = ["details_fields", "details_text", "details_html", "DETAILS_CSS"]

#: Compact rows wherever the table lands. Doubled classes outrank JupyterLab's
#: rendered-HTML table styles, and the line height resets the 28 px an
#: ``ipywidgets.HTML`` gives its content.
DETAILS_CSS = (
    "table.mol-details-table.mol-details-table{border-collapse:collapse;margin:2px 0;line-height:1.35;"
    "font-family:var(--jp-code-font-family,monospace);font-size:12px}"
    "table.mol-details-table.mol-details-table th,table.mol-details-table.mol-details-table td"
    "{padding:1px 1.5ch 1px 1ch;line-height:1.35;text-align:left;vertical-align:top;border:none;"
    "background:none;white-space:normal}"
    "table.mol-details-table.mol-details-table th{font-weight:600;white-space:nowrap;"
    "color:var(--jp-content-font-color2,inherit)}"
    "table.mol-details-table.mol-details-table.mol-details-table tr{background:none}"
)


def details_fields(info: ParamInfo, optimizer: str = "") -> list[tuple[str, str]]:
    """``(name, value)`` pairs describing one parameter.

    Args:
        info (ParamInfo): The parameter.
        optimizer (str, optional): Its group's optimizer, described. Default: ``""`` (left out).
    """
    fields = [
        ("path", info.path),
        ("shape", shape_text(info.shape)),
        ("dtype", info.dtype),
        ("size", grouped(info.size)),
        ("group", info.label),
    ]
    if optimizer:
        fields.append(("optimizer", optimizer))
    if info.modules:
        fields.append(("module", info.modules[-1]))
        if len(info.modules) > 1:
            fields.append(("inside", " > ".join(info.modules[:-1])))
    fields.append(("matched rule", info.rule))
    fields.append(("also matched", ", ".join(info.also_matched) or "no other rule"))
    for finding in info.findings:  # the finding's own words: its title and its fix
        text = finding.title
        if finding.kind == "near_miss" and info.like:
            text += f": looks like {info.like}, which {info.nearly} took"
        fields.append((finding.severity, f"{text}; fix: {finding.hint}" if finding.hint else text))
    return fields


def details_text(info: ParamInfo, optimizer: str = "", width: int | None = DEFAULT_WIDTH) -> str:
    """The details as aligned ``name  value`` lines, a long value continued
    under itself (broken between words) so that no line is wider than ``width``.
    """
    width = check_width(width)
    fields = details_fields(info, optimizer)
    names = max(len(name) for name, _ in fields)
    lines = []
    for name, value in fields:
        lines += wrap(value, width, f"{name.ljust(names)}  ", " " * (names + 2))
    return "\n".join(lines)


def details_html(info: ParamInfo, optimizer: str = "") -> str:
    """The details as a small table (``mol-details-table``) coloured by group, with its stylesheet.
    """
    rows = "".join(
        f'<tr data-field="{escape(name)}"><th>{escape(name)}</th><td>{escape(value)}</td></tr>'
        for name, value in details_fields(info, optimizer)
    )
    return (
        f"<style>{DETAILS_CSS}</style>"
        f'<table class="mol-details-table" data-path="{escape(info.path)}" data-group="{escape(info.label)}"'
        f' style="--mol-c:{group_colour(info.group)};border-left:4px solid {group_colour(info.group)}">'
        f"{rows}</table>"
    )
