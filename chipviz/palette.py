"""Colours shared by every view (the app's and the headless drawings of chipviz.animation), chosen to stay
distinguishable with colour-blindness.

Headless and import-free, at the bottom of the layers, so that chipviz.app, chipviz.animation and the
command line all read the one palette (chipviz/app/palette.py re-exports it).

The hues are the Okabe–Ito palette (Okabe & Ito, "Color Universal Design", 2008), which keeps
its eight colours apart for deuteranopes, protanopes and tritanopes; idle PEs are a light
neutral grey so that "nothing happens" reads as absence of colour. Every state is also told
apart by lightness, so the array stays readable printed in grey.
"""
from __future__ import annotations

# The Okabe–Ito palette, by its usual names.
BLACK = "#000000"
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
BLUISH_GREEN = "#009E73"
YELLOW = "#F0E442"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
REDDISH_PURPLE = "#CC79A7"
OKABE_ITO = (BLACK, ORANGE, SKY_BLUE, BLUISH_GREEN, YELLOW, BLUE, VERMILLION, REDDISH_PURPLE)

# What a processing element does in a cycle (indices follow chipviz.chip.trace: IDLE, MAC, PRELOAD, STALL).
IDLE = "#E4E4E4"
MAC = ORANGE
PRELOAD = SKY_BLUE
STALL = REDDISH_PURPLE
STATE_COLORS = (IDLE, MAC, PRELOAD, STALL)
STATE_LABELS = ("idle", "MAC", "preload", "stall")  # English; the views show i18n "pe.state.<label>"

# Direction of a training pass, for captions, curves and badges.
FORWARD = BLUE
BACKWARD = VERMILLION
UPDATE = BLUISH_GREEN
DIRECTION_COLORS = {"forward": FORWARD, "backward": BACKWARD, "update": UPDATE}  # chipviz.nn.phases directions

# Ink for values drawn over PE cells and for outlines.
INK = "#1A1A1A"
MOVING = BLUISH_GREEN  # the moving operand's markers at the array's edges
OUTPUT = BLUE  # results leaving the array
STATIONARY = BLUE  # the operand that stays in the PEs (corner marks)
HIGHLIGHT = BLACK
SELECTED = BLUE
GRID = "#FFFFFF"

__all__ = [
    "BLACK", "ORANGE", "SKY_BLUE", "BLUISH_GREEN", "YELLOW", "BLUE", "VERMILLION", "REDDISH_PURPLE", "OKABE_ITO",
    "IDLE", "MAC", "PRELOAD", "STALL", "STATE_COLORS", "STATE_LABELS", "FORWARD", "BACKWARD", "INK", "MOVING",
    "OUTPUT", "STATIONARY", "HIGHLIGHT", "SELECTED", "GRID",
]
