"""A GEMM's trace drawn headless, for slides: one frame as PNG or SVG, a window of cycles as an animated GIF.

numpy and Pillow only, no browser, no panel or bokeh: the dashboard's download buttons and `chipviz animate`
draw the same :class:`chipviz.chip.trace.Trace` the browser view plays. A frame shows

* a title line (given by the caller) and a caption, "cycle 12 of 54 · fold 1 of 4 · 10 of 16 PEs doing
  a MAC" (cycles are numbered from 1 on screen, as on the dashboard; the functions take the GEMM's own
  cycle numbers, from 0, as the simulator does);
* the R×C array, each PE coloured by its state (idle, MAC, preload, stall), with the axes' titles and the
  fold's tile ranges;
* the edges: a mark beside each row whose left edge an element enters, above each column entering at the
  top (a preload row, or os's moving operand), below each column whose partial sum leaves at the bottom,
  labelled with the element's index (m3, k0) when the cells are large enough;
* the legend of the states and the dashboard's sentence saying what enters and leaves each edge.

Colours come from :mod:`chipviz.palette` (override any of them with ``palette={...}``, keys as in
DEFAULT_PALETTE); words from :mod:`chipviz.i18n` in ``lang`` ("zh" needs a CJK font, see ``FONTS``).

Sizes are bounded. Cells shrink with the array (MAX_CELL_PX down to MIN_CELL_PX, the grid at most
MAX_GRID_PX a side); a bigger array is refused. A GIF holds at most MAX_GIF_FRAMES frames and
MAX_GIF_BYTES of pixels (one byte each: what the encoder holds in memory, and a bound on the file); a longer
window is refused with a message naming a window that fits (:func:`check_gif_window`, which callers can run
before simulating). The same input gives the same bytes.
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from . import checks
from . import palette as pal
from .animation_limits import DEFAULT_FPS, MAX_FPS, MAX_GIF_FRAMES
from .chip.dataflow_table import DATAFLOW_TABLE, dataflow as dataflow_row
from .chip.trace import MAC, Trace
from .i18n import LANGUAGES, t

if TYPE_CHECKING:  # for the annotations only: Pillow loads when something is drawn
    from PIL import Image, ImageDraw, ImageFont

# Pillow (PIL) and xml.sax.saxutils (which imports urllib.request, http and email) are imported by the functions
# that draw, not here: `chipviz gemm` builds a parser whose help quotes this module's limits (animation_limits.py)
# and should not pay for them.

# The frames' pixels at one byte each (palette images): what Pillow's encoder holds in memory until it writes the
# file, and a bound on the file (a few KiB a frame in practice). 600 frames of the default 8×8 array fit.
MAX_GIF_BYTES = 192 * 2**20
MIN_CELL_PX = 2
MAX_CELL_PX = 40
MAX_GRID_PX = 512  # the grid's longest side: 2 px per PE up to 256 PEs a side (ChipConfig's largest array)
MIN_WIDTH_PX = 360

# The colours, read from chipviz.palette (the one place they are defined). GRID is white: the grid lines
# between cells and the background, as in the browser.
DEFAULT_PALETTE = {
    "idle": pal.IDLE, "mac": pal.MAC, "preload": pal.PRELOAD, "stall": pal.STALL,
    "ink": pal.INK, "moving": pal.MOVING, "output": pal.OUTPUT, "background": pal.GRID, "grid": pal.GRID,
}
_STATE_KEYS = ("idle", "mac", "preload", "stall")  # in chipviz.chip.trace's order: IDLE, MAC, PRELOAD, STALL

# Fonts, tried in order: a system font with every character drawn (DejaVu Sans on Debian, where fontconfig
# depends on it; Arial elsewhere), else Pillow's bundled font, which lacks a few (× and – are drawn x and -).
# Chinese needs a CJK font: Debian's fonts-wqy-microhei is the one .ci/run installs.
FONTS = {
    "en": ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf",
           "/usr/share/fonts/dejavu/DejaVuSans.ttf", "/System/Library/Fonts/Supplemental/Arial.ttf",
           "C:/Windows/Fonts/arial.ttf"),
    "zh": ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
           "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc"),
}
_BUNDLED_LACKS = str.maketrans({"×": "x", "–": "-", "→": "->", "↓": "v"})

_PAD = 12
_TITLE_PX, _CAPTION_PX, _SMALL_PX = 15, 13, 11


class AnimationTooLarge(ValueError):
    """A request past the bounds: an array too large to draw, or a window too long for one GIF."""


# --------------------------------------------------------------------------- fonts and colours


@lru_cache(maxsize=None)
def _font_file(lang: str) -> str | None:
    """The font file drawing `lang`, or None for Pillow's bundled font (English only)."""
    path = next((path for path in FONTS.get(lang, ()) if os.path.isfile(path)), None)
    if path is None and lang != "en":
        raise ValueError(f"drawing lang={lang!r} needs a font with its characters, e.g. Debian's "
                         f"fonts-wqy-microhei (looked for {', '.join(FONTS.get(lang, ()))})")
    return path


@lru_cache(maxsize=None)
def _font(size: int, lang: str) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    path = _font_file(lang)
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


def _clean(text: str, lang: str) -> str:
    """`text` in characters the font draws."""
    return text if _font_file(lang) else text.translate(_BUNDLED_LACKS)


def _text(draw: ImageDraw.ImageDraw, xy, text: str, size: int, lang: str, fill, anchor: str = "la") -> None:
    draw.text(xy, _clean(text, lang), fill=fill, font=_font(size, lang), anchor=anchor)


def _width(text: str, size: int, lang: str) -> int:
    return int(np.ceil(_font(size, lang).getlength(_clean(text, lang))))


def _palette(palette: dict | None) -> dict[str, tuple[int, int, int]]:
    from PIL import ImageColor

    merged = dict(DEFAULT_PALETTE)
    unknown = set(palette or ()) - set(merged)
    if unknown:
        raise ValueError(f"palette keys must be among {', '.join(merged)}, got {', '.join(sorted(unknown))}")
    merged.update(palette or {})
    try:
        return {key: ImageColor.getrgb(value)[:3] for key, value in merged.items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise ValueError(f"palette colours must be colour names or #RRGGBB: {exc}") from None


def _gif_palette(rgb: dict[str, tuple[int, int, int]]) -> Image.Image:
    """One fixed palette for every frame: the colours drawn, and the blends antialiased text makes."""
    from PIL import Image

    colours = list(dict.fromkeys(rgb.values()))
    for under, over in ((rgb["background"], rgb["ink"]), (rgb["moving"], rgb["background"]),
                        (rgb["output"], rgb["background"]), (rgb["preload"], rgb["ink"])):
        for step in range(1, 8):
            f = step / 8
            colours.append(tuple(round(u + f * (o - u)) for u, o in zip(under, over)))
    colours = list(dict.fromkeys(colours))[:256]
    colours += [colours[0]] * (256 - len(colours))  # pad with a drawn colour, never an undrawn black
    image = Image.new("P", (1, 1))
    image.putpalette([c for colour in colours for c in colour])
    return image


# --------------------------------------------------------------------------- words


def _dim(letter: str, lang: str) -> str:
    return f"{letter} ({t(f'pe.dim.{letter}', lang)})"


def _caption(cycle: int, total: int, fold: int, n_folds: int, busy: int, pes: int, lang: str) -> str:
    parts = [t("pe.live_cycle", lang, i=f"{cycle + 1:,}", n=f"{total:,}")]
    if fold >= 0:
        parts.append(t("pe.live_fold", lang, i=f"{fold + 1:,}", n=f"{n_folds:,}"))
    parts.append(t("pe.busy", lang, macs=f"{busy:,}", pes=f"{pes:,}"))
    return " · ".join(parts)


def _axis_titles(roles: dict, tile, lang: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(column title, row title), each as a list of ever shorter forms: the longest that fits is drawn."""
    titles = []
    for axis, lo, hi in (("cols", 2, 3), ("rows", 0, 1)):
        letter = roles[axis]
        span = f" · {letter.lower()} {tile[lo]}–{tile[hi] - 1}" if tile is not None else ""
        titles.append((t(f"pe.axis_{axis}", lang, dim=_dim(letter, lang)) + span, f"{letter}{span}", letter))
    return titles[0], titles[1]


def _edges_sentence(dataflow: str, lang: str) -> str:
    """What enters and leaves each edge: the dashboard's sentence (chipviz/app/pe_array.js)."""
    def role(edge):
        return t(f"pe.role.{dataflow}.{edge}", lang)

    text = t("pe.edge_left", lang, what=role("left_in"))
    if DATAFLOW_TABLE[dataflow].output_stationary:
        text += t("pe.edge_top_os", lang, what=role("top_in"))
    else:
        text += t("pe.edge_top", lang, top=role("top_in"), bottom=role("bottom_out"))
    return " ".join(text.split())


def _wrap(text: str, width: int, size: int, lang: str) -> list[str]:
    """`text` in lines of at most `width` pixels, each sentence starting a line."""
    sentences = [part for part in re.split(r"(?<=[.。])\s*", text) if part]
    if len(sentences) > 1:
        return [line for sentence in sentences for line in _wrap(sentence, width, size, lang)]
    words = text.split(" ") if " " in text else list(text)  # Chinese wraps between characters
    sep = " " if " " in text else ""
    lines, line = [], ""
    for word in words:
        candidate = f"{line}{sep}{word}" if line else word
        if line and _width(candidate, size, lang) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return lines + [line] if line else lines


def _fit(forms: tuple[str, ...], room: int, size: int, lang: str) -> str:
    return next((form for form in forms if _width(form, size, lang) <= room), "")


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Layout:
    rows: int
    cols: int
    dataflow: str
    lang: str
    title: str
    cell: int
    gap: int
    labels: bool  # element indices written in the edge marks
    width: int
    height: int
    x0: int  # the grid's top-left corner
    y0: int
    left_x: int  # the left edge's marks: x and width
    left_w: int
    strip: int  # height of the top and bottom edges' marks
    top_y: int
    bottom_y: int | None  # None: nothing leaves the bottom edge (os)
    axis_x: int  # the rotated row title's left
    col_title_y: int
    caption_y: int
    legend_y: int
    legend: tuple  # ((x, label), ...) of the state swatches
    sentence: tuple  # lines of the edges' sentence
    sentence_y: int

    @property
    def grid_w(self) -> int:
        return self.cols * self.cell

    @property
    def grid_h(self) -> int:
        return self.rows * self.cell


def _cell_px(rows: int, cols: int) -> int:
    side = max(rows, cols)
    cell = min(MAX_CELL_PX, MAX_GRID_PX // side)
    if cell < MIN_CELL_PX:
        raise AnimationTooLarge(
            f"a {rows}×{cols} array is too large to draw: at {MIN_CELL_PX} px per PE its grid would be "
            f"{side * MIN_CELL_PX} px across, over the {MAX_GRID_PX} px limit; arrays up to "
            f"{MAX_GRID_PX // MIN_CELL_PX} PEs a side can be drawn")
    return cell


@lru_cache(maxsize=64)
def _layout(rows: int, cols: int, dataflow: str, total_cycles: int, n_folds: int, title: str,
            lang: str) -> _Layout:
    cell = _cell_px(rows, cols)
    gap = 1 if cell >= 6 else 0
    labels = cell >= 24
    strip = 16 if labels else max(4, min(8, cell))
    left_w = 30 if labels else strip
    flow = DATAFLOW_TABLE[dataflow]
    axis_w = _SMALL_PX + 5
    block_w = axis_w + left_w + 2 + cols * cell
    sample = _caption(10**len(f"{total_cycles}") - 2, 10**len(f"{total_cycles}") - 1, 10**len(f"{n_folds}") - 2,
                      10**len(f"{n_folds}") - 1, 10**len(f"{rows * cols}") - 1, rows * cols, lang)
    swatch = _SMALL_PX + 1
    labels_text = [t(f"pe.state.{label}", lang) for label in pal.STATE_LABELS]
    legend_w = sum(swatch + 4 + _width(text, _SMALL_PX, lang) + 14 for text in labels_text)
    width = max(MIN_WIDTH_PX, block_w + 2 * _PAD, _width(title, _TITLE_PX, lang) + 2 * _PAD,
                _width(sample, _CAPTION_PX, lang) + 2 * _PAD, legend_w + 2 * _PAD)
    y = _PAD
    caption_y = y + (_TITLE_PX + 7 if title else 0)
    y = caption_y + _CAPTION_PX + 9
    col_title_y = y
    y += _SMALL_PX + 5
    top_y = y
    y0 = top_y + strip + 2
    y = y0 + rows * cell
    bottom_y = None
    if flow.bottom_out != "-":
        bottom_y = y + 1
        y = bottom_y + strip
    legend_y = y + 12
    x = (width - block_w) // 2  # the array centred
    axis_x, left_x = x, x + axis_w
    x0 = left_x + left_w + 2
    legend, lx = [], _PAD
    for text in labels_text:
        legend.append((lx, text))
        lx += swatch + 4 + _width(text, _SMALL_PX, lang) + 14
    sentence = tuple(_wrap(_edges_sentence(dataflow, lang), width - 2 * _PAD, _SMALL_PX, lang))
    sentence_y = legend_y + swatch + 8
    height = sentence_y + len(sentence) * (_SMALL_PX + 4) + _PAD - 4
    return _Layout(rows=rows, cols=cols, dataflow=dataflow, lang=lang, title=title, cell=cell, gap=gap,
                   labels=labels, width=int(width), height=int(height), x0=x0, y0=y0, left_x=left_x,
                   left_w=left_w, strip=strip, top_y=top_y, bottom_y=bottom_y, axis_x=axis_x,
                   col_title_y=col_title_y, caption_y=caption_y, legend_y=legend_y, legend=tuple(legend),
                   sentence=sentence, sentence_y=sentence_y)


def frame_size(rows: int, cols: int, dataflow: str, *, total_cycles: int, n_folds: int = 1, title: str = "",
               lang: str = "en") -> tuple[int, int]:
    """(width, height) in pixels of a frame of this GEMM (AnimationTooLarge for an array too large)."""
    _check_common(dataflow, title, lang)
    checks.whole("rows", rows, 1)
    checks.whole("cols", cols, 1)
    checks.whole("total_cycles", total_cycles, 1)
    checks.whole("n_folds", n_folds, 1)
    layout = _layout(rows, cols, dataflow, total_cycles, n_folds, title, lang)
    return layout.width, layout.height


def _check_common(dataflow: str, title: str, lang: str) -> None:
    dataflow_row(dataflow)
    checks.one_of("lang", lang, LANGUAGES)
    if not isinstance(title, str) or "\n" in title:
        raise ValueError(f"title must be one line of text, got {title!r}")


# --------------------------------------------------------------------------- the GIF's bounds


def gif_frame_limit(rows: int, cols: int, dataflow: str, *, total_cycles: int, n_folds: int = 1,
                    title: str = "", lang: str = "en", max_frames: int = MAX_GIF_FRAMES) -> int:
    """The most frames a GIF of this GEMM may hold: MAX_GIF_FRAMES, fewer when large frames meet MAX_GIF_BYTES."""
    width, height = frame_size(rows, cols, dataflow, total_cycles=total_cycles, n_folds=n_folds, title=title,
                               lang=lang)
    return max(1, min(max_frames, MAX_GIF_FRAMES, MAX_GIF_BYTES // (width * height)))


def check_gif_window(start: int, stop: int, *, total_cycles: int, rows: int, cols: int, dataflow: str,
                     n_folds: int = 1, title: str = "", lang: str = "en", option: str = "cycles",
                     max_frames: int = MAX_GIF_FRAMES) -> None:
    """Refuse (AnimationTooLarge) a window of cycles [start, stop) too long for one GIF, naming one that fits.

    Run it before simulating: it needs only the GEMM's cycle count and the array. `option` is how the
    message names the window ("--cycles" for the command line); `max_frames` may lower the limit further
    (the command line's trace budget).
    """
    checks.whole("start", start, 0)
    checks.whole("stop", stop, start + 1)
    most = gif_frame_limit(rows, cols, dataflow, total_cycles=total_cycles, n_folds=n_folds, title=title,
                           lang=lang, max_frames=max_frames)
    n = stop - start
    if n <= most:
        return
    if (start, stop) == (0, total_cycles):
        what = f"this GEMM has {total_cycles:,} cycles"
    else:
        what = f"cycles {start}:{stop} are {n:,} frames"
    if most == MAX_GIF_FRAMES:
        limit = f"a GIF holds at most {most:,} frames"
    else:
        limit = f"a GIF of this {rows}×{cols} array holds at most {most:,} frames"
        if most < min(max_frames, MAX_GIF_FRAMES):
            width, height = frame_size(rows, cols, dataflow, total_cycles=total_cycles, n_folds=n_folds,
                                       title=title, lang=lang)
            limit += f" ({MAX_GIF_BYTES // 2**20} MiB of {width}×{height}-pixel frames)"
    message = f"{what}; {limit}: choose {option} {start}:{start + most}"
    if start + most < total_cycles:
        message += f" (or a later window such as {start + most}:{min(start + 2 * most, total_cycles)})"
    raise AnimationTooLarge(message)


# --------------------------------------------------------------------------- one frame


@dataclass(frozen=True)
class _Frame:
    """What a frame shows at one cycle, read from the trace."""

    state: np.ndarray  # (R, C) state codes
    left_in: np.ndarray
    top_in: np.ndarray
    bottom_out: np.ndarray
    caption: str
    col_title: tuple
    row_title: tuple


def _index(trace: Trace, cycle: int, name: str = "cycle") -> int:
    checks.whole(name, cycle)
    first, last = trace.start, trace.start + trace.n_cycles - 1
    if not first <= cycle <= last:
        raise ValueError(f"{name} must be a cycle of the trace, {first} to {last}, got {cycle}")
    return cycle - first


def _frame(trace: Trace, cycle: int, total: int, lang: str) -> _Frame:
    k = _index(trace, cycle)
    rows, cols = trace.state.shape[1:]
    state = np.asarray(trace.state[k])
    fold = int(trace.fold[k])
    n_folds = len(trace.tiles)
    tile = trace.tiles[fold] if 0 <= fold < n_folds else None
    col_title, row_title = _axis_titles(trace.roles, tile, lang)
    caption = _caption(cycle, total, fold, n_folds, int(np.count_nonzero(state == MAC)), rows * cols, lang)
    return _Frame(state=state, left_in=trace.left_in[k], top_in=trace.top_in[k], bottom_out=trace.bottom_out[k],
                  caption=caption, col_title=col_title, row_title=row_title)


def _prepare(trace: Trace, total_cycles: int | None, title: str, lang: str) -> tuple[_Layout, int]:
    if not isinstance(trace, Trace):
        raise ValueError(f"expected a chipviz.chip.trace.Trace, got {type(trace).__name__}")
    _check_common(trace.dataflow, title, lang)
    end = trace.start + trace.n_cycles
    total = end if total_cycles is None else checks.whole("total_cycles", total_cycles, max(end, 1))
    rows, cols = trace.state.shape[1:]
    return _layout(int(rows), int(cols), trace.dataflow, total, max(1, len(trace.tiles)), title, lang), total


def _row_title(layout: _Layout, frame: _Frame) -> tuple[str, int]:
    """The row title's longest form that fits beside the array, and the y of its middle (centred on the grid,
    moved up or down to stay beside the array and its edge marks)."""
    top = layout.top_y
    bottom = layout.bottom_y + layout.strip if layout.bottom_y is not None else layout.y0 + layout.grid_h
    title = _fit(frame.row_title, bottom - top, _SMALL_PX, layout.lang)
    half = (_width(title, _SMALL_PX, layout.lang) + 1) // 2
    centre = layout.y0 + layout.grid_h // 2
    return title, max(top + half, min(bottom - half, centre))


def _edge_marks(layout: _Layout, frame: _Frame):
    """(x, y, w, h, colour key, label, text colour key) of every mark at the edges."""
    flow = DATAFLOW_TABLE[layout.dataflow]
    s, gap = layout.cell, layout.gap
    streamed = flow.streamed.lower()
    top_letter = (flow.streamed if flow.from_top != "-" else flow.rows).lower()
    top_colour, top_ink = ("moving", "background") if flow.from_top != "-" else ("preload", "ink")
    marks = []
    for i in np.flatnonzero(frame.left_in >= 0):
        v = int(frame.left_in[i])
        marks.append((layout.left_x, layout.y0 + i * s, layout.left_w, max(2, s - gap), "moving",
                      (f"{streamed}{v}", f"{v}"), "background"))
    for j in np.flatnonzero(frame.top_in >= 0):
        v = int(frame.top_in[j])
        marks.append((layout.x0 + j * s, layout.top_y, max(2, s - gap), layout.strip, top_colour,
                      (f"{top_letter}{v}", f"{v}"), top_ink))
    if layout.bottom_y is not None:
        for j in np.flatnonzero(frame.bottom_out >= 0):
            v = int(frame.bottom_out[j])
            marks.append((layout.x0 + j * s, layout.bottom_y, max(2, s - gap), layout.strip, "output",
                          (f"{streamed}{v}", f"{v}"), "background"))
    return marks


@lru_cache(maxsize=8)
def _base(layout: _Layout, colours: tuple) -> Image.Image:
    """What every frame of a layout shares: the background, the title and the legend."""
    from PIL import Image, ImageDraw

    rgb = dict(colours)
    image = Image.new("RGB", (layout.width, layout.height), rgb["background"])
    draw = ImageDraw.Draw(image)
    if layout.title:
        _text(draw, (_PAD, _PAD), layout.title, _TITLE_PX, layout.lang, rgb["ink"])
    swatch = _SMALL_PX + 1
    for key, (x, text) in zip(_STATE_KEYS, layout.legend):
        draw.rectangle((x, layout.legend_y, x + swatch - 1, layout.legend_y + swatch - 1), fill=rgb[key])
        _text(draw, (x + swatch + 4, layout.legend_y), text, _SMALL_PX, layout.lang, rgb["ink"])
    for n, line in enumerate(layout.sentence):
        _text(draw, (_PAD, layout.sentence_y + n * (_SMALL_PX + 4)), line, _SMALL_PX, layout.lang, rgb["ink"])
    return image


def _render(layout: _Layout, frame: _Frame, rgb: dict) -> Image.Image:
    from PIL import Image, ImageDraw

    image = _base(layout, tuple(rgb.items())).copy()
    draw = ImageDraw.Draw(image)
    lang, s = layout.lang, layout.cell
    _text(draw, (_PAD, layout.caption_y), frame.caption, _CAPTION_PX, lang, rgb["ink"])
    col_title = _fit(frame.col_title, layout.width - layout.x0 - _PAD, _SMALL_PX, lang)
    _text(draw, (layout.x0, layout.col_title_y), col_title, _SMALL_PX, lang, rgb["ink"])
    # the cells: one pixel per PE, scaled up, white lines between
    lut = np.array([rgb[key] for key in _STATE_KEYS], np.uint8)
    cells = lut[frame.state.astype(np.intp) & 3]
    cells = np.repeat(np.repeat(cells, s, axis=0), s, axis=1)
    if layout.gap:
        cells[s - 1::s] = rgb["grid"]
        cells[:, s - 1::s] = rgb["grid"]
    image.paste(Image.fromarray(cells, "RGB"), (layout.x0, layout.y0))
    # the row title, turned to read upwards
    row_title, centre = _row_title(layout, frame)
    if row_title:
        mask = Image.new("L", (_width(row_title, _SMALL_PX, lang), sum(_font(_SMALL_PX, lang).getmetrics())), 0)
        _text(ImageDraw.Draw(mask), (0, 0), row_title, _SMALL_PX, lang, 255)
        mask = mask.transpose(Image.Transpose.ROTATE_90)
        image.paste(rgb["ink"], (layout.axis_x, centre - mask.height // 2), mask)
    for x, y, w, h, colour, label, ink in _edge_marks(layout, frame):
        draw.rectangle((x, y, x + w - 1, y + h - 1), fill=rgb[colour])
        if layout.labels:
            text = _fit(label, w - 3, _SMALL_PX, lang)
            if text:
                _text(draw, (x + w / 2, y + h / 2), text, _SMALL_PX, lang, rgb[ink], anchor="mm")
    return image


def frame_image(trace: Trace, cycle: int, *, total_cycles: int | None = None, title: str = "",
                palette: dict | None = None, lang: str = "en") -> Image.Image:
    """The frame of GEMM cycle `cycle` (a cycle the trace holds) as an RGB Pillow image.

    total_cycles: the GEMM's cycle count, for the caption (default: where the trace ends).
    """
    layout, total = _prepare(trace, total_cycles, title, lang)
    return _render(layout, _frame(trace, cycle, total, lang), _palette(palette))


def frame_png(trace: Trace, cycle: int, *, total_cycles: int | None = None, title: str = "",
              palette: dict | None = None, lang: str = "en") -> bytes:
    """The frame of GEMM cycle `cycle` as PNG bytes."""
    buffer = io.BytesIO()
    frame_image(trace, cycle, total_cycles=total_cycles, title=title, palette=palette, lang=lang).save(
        buffer, format="PNG")
    return buffer.getvalue()


def frame_svg(trace: Trace, cycle: int, *, total_cycles: int | None = None, title: str = "",
              palette: dict | None = None, lang: str = "en") -> str:
    """The frame of GEMM cycle `cycle` as SVG text: the PNG's layout as rectangles and text."""
    from xml.sax.saxutils import escape

    layout, total = _prepare(trace, total_cycles, title, lang)
    frame = _frame(trace, cycle, total, lang)
    rgb = _palette(palette)
    hexes = {key: "#%02x%02x%02x" % value for key, value in rgb.items()}
    s, w, h = layout.cell, layout.width, layout.height
    family = "font-family=\"DejaVu Sans, Verdana, Arial, sans-serif\""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'{family}>',
           f'<rect width="{w}" height="{h}" fill="{hexes["background"]}"/>']

    def text(x, y, value, size, colour="ink", extra=""):
        out.append(f'<text x="{x:g}" y="{y:g}" font-size="{size}" fill="{hexes[colour]}"{extra}>'
                   f'{escape(value)}</text>')

    if layout.title:
        text(_PAD, _PAD + _TITLE_PX, layout.title, _TITLE_PX)
    text(_PAD, layout.caption_y + _CAPTION_PX, frame.caption, _CAPTION_PX)
    text(layout.x0, layout.col_title_y + _SMALL_PX,
         _fit(frame.col_title, w - layout.x0 - _PAD, _SMALL_PX, layout.lang), _SMALL_PX)
    row_title, cy = _row_title(layout, frame)
    if row_title:
        cx = layout.axis_x + _SMALL_PX
        text(cx, cy, row_title, _SMALL_PX, extra=f' text-anchor="middle" transform="rotate(-90 {cx:g} {cy:g})"')
    # the cells: one rectangle per run of equal states along a row, then the grid lines over them
    out.append('<g shape-rendering="crispEdges">')
    for i, row in enumerate(frame.state.astype(np.intp) & 3):
        bounds = [0, *(np.flatnonzero(np.diff(row)) + 1).tolist(), len(row)]
        for a, b in zip(bounds[:-1], bounds[1:]):
            out.append(f'<rect x="{layout.x0 + a * s}" y="{layout.y0 + i * s}" width="{(b - a) * s}" height="{s}" '
                       f'fill="{hexes[_STATE_KEYS[row[a]]]}"/>')
    if layout.gap:
        lines = [f"M{layout.x0 + j * s - 0.5:g} {layout.y0}v{layout.grid_h}" for j in range(1, layout.cols + 1)]
        lines += [f"M{layout.x0} {layout.y0 + i * s - 0.5:g}h{layout.grid_w}" for i in range(1, layout.rows + 1)]
        out.append(f'<path d="{"".join(lines)}" stroke="{hexes["grid"]}" stroke-width="1" fill="none"/>')
    for x, y, mw, mh, colour, label, ink in _edge_marks(layout, frame):
        out.append(f'<rect x="{x}" y="{y}" width="{mw}" height="{mh}" fill="{hexes[colour]}"/>')
        if layout.labels:
            value = _fit(label, mw - 3, _SMALL_PX, layout.lang)
            if value:
                text(x + mw / 2, y + mh / 2 + 4, value, _SMALL_PX, ink, ' text-anchor="middle"')
    swatch = _SMALL_PX + 1
    for key, (x, label) in zip(_STATE_KEYS, layout.legend):
        out.append(f'<rect x="{x}" y="{layout.legend_y}" width="{swatch}" height="{swatch}" fill="{hexes[key]}"/>')
        text(x + swatch + 4, layout.legend_y + _SMALL_PX, label, _SMALL_PX)
    out.append("</g>")
    for n, line in enumerate(layout.sentence):
        text(_PAD, layout.sentence_y + n * (_SMALL_PX + 4) + _SMALL_PX, line, _SMALL_PX)
    out.append("</svg>")
    out.insert(1, f"<title>{escape(' · '.join(filter(None, (layout.title, frame.caption))))}</title>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- the GIF


def gif(trace: Trace, start: int | None = None, stop: int | None = None, *, fps: float = DEFAULT_FPS,
        total_cycles: int | None = None, title: str = "", palette: dict | None = None, lang: str = "en") -> bytes:
    """GEMM cycles [start, stop) of the trace (default: all it holds) as a looping animated GIF, a frame a cycle.

    AnimationTooLarge (a ValueError) when the window is longer than a GIF may hold, naming one that fits.
    """
    from PIL import Image

    layout, total = _prepare(trace, total_cycles, title, lang)
    start = trace.start if start is None else start
    stop = trace.start + trace.n_cycles if stop is None else stop
    _index(trace, start, "start")
    checks.whole("stop", stop, start + 1, trace.start + trace.n_cycles)
    fps = checks.number("fps", fps, 0.1, MAX_FPS, "frames per second")
    check_gif_window(start, stop, total_cycles=total, rows=layout.rows, cols=layout.cols, dataflow=layout.dataflow,
                     n_folds=max(1, len(trace.tiles)), title=title, lang=lang)
    rgb = _palette(palette)
    colours = _gif_palette(rgb)

    def frames():
        for cycle in range(start, stop):
            image = _render(layout, _frame(trace, cycle, total, lang), rgb)
            yield image.quantize(palette=colours, dither=Image.Dither.NONE)

    sequence = frames()
    first = next(sequence)
    buffer = io.BytesIO()
    # optimize=False: one global palette for every frame (Pillow still writes only each frame's changed box)
    first.save(buffer, format="GIF", save_all=True, append_images=sequence, duration=round(1000 / fps), loop=0,
               optimize=False, disposal=1)
    return buffer.getvalue()


__all__ = ["AnimationTooLarge", "FONTS", "DEFAULT_FPS", "DEFAULT_PALETTE", "MAX_CELL_PX", "MAX_FPS",
           "MAX_GIF_BYTES", "MAX_GIF_FRAMES", "MAX_GRID_PX", "MIN_CELL_PX", "check_gif_window", "frame_image",
           "frame_png", "frame_size", "frame_svg", "gif", "gif_frame_limit"]
