"""Where the course chart's text labels go, so that no two of them overlap (issue 23).

Plotly does not move annotations out of each other's way, so the chart places them itself: each
label is a box of an estimated pixel size beside its anchor (a day on the x axis, a height in
pixels); for one view (an x range and the plot's width) the labels are taken by priority, then by
day, and each goes into the lowest lane (a fixed vertical step) where its box meets no box placed
before; a label with no free lane is hidden for that view (its marker and hover stay). Placement is
computed for the narrowest plot the page draws (a 390 px phone): on a wider plot the same days are
further apart and the lanes the same, so nothing that is apart at 390 px can meet.

Pure and deterministic: the same labels and view give the same placement.
"""

from __future__ import annotations

from dataclasses import dataclass

NARROW_PLOT_PX = 260  # the plot area of a 390 px phone (page padding and the y-axis margin off)
CHAR_PX = 0.62  # an average Latin glyph's width, in font sizes
WIDE_CHAR_PX = 1.05  # a CJK glyph's width, in font sizes
PAD_PX = 6  # the annotation's padding and border, both sides together
LINE_PX = 1.25  # a line of text's height, in font sizes


@dataclass(frozen=True)
class Label:
    key: str  # unique among the labels placed together
    text: str
    x: float  # the anchor's day on the x axis
    y_px: float = 0.0  # the anchor's height in pixels from a common baseline (up is positive)
    side: str = "right"  # the box's side of the anchor: "right" or "left"
    dx_px: float = 4.0  # the gap between the anchor and the box
    dy_px: float = 0.0  # the bottom of lane 0 above the anchor
    lane_px: float = 15.0  # one lane's height
    lanes: int = 3  # how many lanes the label may use
    font_px: float = 10.0
    priority: int = 1  # lower first


@dataclass(frozen=True)
class Box:
    left: float
    bottom: float
    right: float
    top: float

    def meets(self, other: Box) -> bool:
        return (
            self.left < other.right
            and other.left < self.right
            and self.bottom < other.top
            and other.bottom < self.top
        )


@dataclass(frozen=True)
class Placed:
    label: Label
    lane: int | None  # None: hidden in this view (outside it, or no free lane)
    box: Box | None
    side: str = ""  # the side it went to: its own, or the other where its own leaves the plot


def _lines(text: str) -> list[str]:
    return text.split("<br>")


def text_width_px(text: str, font_px: float) -> float:
    glyphs = max(
        sum(WIDE_CHAR_PX if ord(c) >= 0x2E80 else CHAR_PX for c in line) for line in _lines(text)
    )
    return glyphs * font_px + PAD_PX


def box_for(
    label: Label, lane: int, x0: float, x1: float, width_px: float, side: str | None = None
) -> Box:
    at = (label.x - x0) / (x1 - x0) * width_px
    w = text_width_px(label.text, label.font_px)
    left = at + label.dx_px if (side or label.side) == "right" else at - label.dx_px - w
    bottom = label.y_px + label.dy_px + lane * label.lane_px
    return Box(left, bottom, left + w, bottom + text_height_px(label.text, label.font_px))


def text_height_px(text: str, font_px: float) -> float:
    return len(_lines(text)) * font_px * LINE_PX + 2


def place(
    labels: list[Label], x_range: tuple[float, float], width_px: float = NARROW_PLOT_PX
) -> dict[str, Placed]:
    """Each label's lane in the view ``x_range`` (days) of a plot ``width_px`` wide."""
    x0, x1 = x_range
    if x1 <= x0:
        raise ValueError("the view's range must be increasing")
    boxes: list[Box] = []
    placed = {}
    for label in sorted(labels, key=lambda lb: (lb.priority, lb.x, lb.key)):
        found = None
        if x0 <= label.x <= x1:
            found = _free_place(label, boxes, x0, x1, width_px)
        if found is None:
            placed[label.key] = Placed(label, None, None)
        else:
            boxes.append(found[1])
            placed[label.key] = Placed(label, *found)
    return placed


def _free_place(label: Label, boxes: list[Box], x0, x1, width_px):
    """(lane, box, side) of the lowest free lane, on the label's side, or on the other side when
    its own would leave the plot (a label cut by the plot's edge is not read); None if none."""
    other = "left" if label.side == "right" else "right"
    for side in (label.side, other):
        inside = [
            (lane, box_for(label, lane, x0, x1, width_px, side)) for lane in range(label.lanes)
        ]
        inside = [(lane, b) for lane, b in inside if b.left >= 0 and b.right <= width_px]
        for lane, box in inside:
            if not any(box.meets(b) for b in boxes):
                return lane, box, side
    return None
