"""SCALE-Sim topology CSV files: a network's layers as GEMMs.

Two forms are read, told apart by their header line (case, spaces and underscores ignored):

- GEMM form, header `Layer name, M, N, K,` then one row `name,M,N,K,` per layer. Note the
  order N before K, and the trailing comma (optional here). If the header names M, N and K
  in another order, the header's order is used.
- Convolution form, header `Layer name, IFMAP Height, IFMAP Width, Filter Height,
  Filter Width, Channels, Num Filter, Strides,` and rows `name,IH,IW,FH,FW,C,NF,S,`. As in
  SCALE-Sim 3.0.0, a row has one stride (used along the height and the width) and an optional
  ninth value is its N:M sparsity ratio (recorded, not modelled: the dense layer is simulated,
  as SCALE-Sim does with sparsity support off), not a width stride. A layer whose name
  contains `DP` is depth-wise: SCALE-Sim splits it into one layer per channel, named
  `<name>Channel_<i>`, each with one channel and all the filters; so does ChipViz.
  Each layer becomes its im2col GEMM (chipviz.chip.conv, the same lowering trained conv
  layers use) with SCALE-Sim 3.0.0's output size, which lets the last window overhang the
  ifmap (its missing taps count as zeros):
      OH = ⌈(IH − FH)/S⌉ + 1,  OW = ⌈(IW − FW)/S⌉ + 1
      M = OH·OW (output pixels),  K = FH·FW·C (window size),  N = Num Filter.
  `CONVENTION` says so in words, for reports.

Blank lines and lines starting with `#` are skipped. Every problem raises TopologyError
(a ValueError) naming the file, the line and what is wrong.
"""
from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass

from .conv import CONVENTION_TEXT, ConvGeometry, Im2colOperand

__all__ = ["CONVENTION", "ConvGeometry", "Layer", "TopologyError", "parse_topology", "read_topology"]

_INTEGER = re.compile(r"[+-]?[0-9]+")
_SPARSITY = re.compile(r"[0-9]+\s*:\s*[0-9]+")

GEMM_HEADER = "Layer name, M, N, K,"
CONV_HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
               "Strides,")
_CONV_COLUMNS = ("ifmap height", "ifmap width", "filter height", "filter width", "channels", "num filter",
                 "strides")
CONVENTION = CONVENTION_TEXT["scalesim"]  # the output size of a convolution row, in words
DEPTHWISE_MARK = "DP"  # SCALE-Sim 3.0.0 splits a layer whose name contains this into one layer per channel


class TopologyError(ValueError):
    """A topology file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Layer:
    """One layer as a GEMM C = A·B with A: M×K and B: K×N; `line` is where it was read."""

    name: str
    m: int
    k: int
    n: int
    line: int
    conv: ConvGeometry | None = None  # a convolution row's shapes (padding "scalesim")
    sparsity: str | None = None  # a convolution row's N:M sparsity ratio, as written (not modelled)

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n

    @property
    def a_layout(self) -> Im2colOperand | None:
        """A convolution row's A is its unrolled ifmap: DRAM holds each pixel once."""
        return None if self.conv is None else Im2colOperand(self.conv)


def read_topology(path) -> list[Layer]:
    """Read a SCALE-Sim topology CSV file (either form); raise TopologyError or OSError."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise TopologyError(f"{name}: not a text CSV file (byte {exc.start}: {exc.reason})") from None
    except IsADirectoryError:
        raise TopologyError(f"{name}: is a directory, not a topology CSV file") from None
    return parse_topology(text, name)


def parse_topology(text: str, source: str = "<topology>") -> list[Layer]:
    """Parse the text of a topology CSV; `source` names it in error messages."""
    reader = csv.reader(io.StringIO(text))
    rows = []
    try:
        for cells in reader:
            cells = _clean(cells)
            if cells and not cells[0].startswith("#"):
                rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise TopologyError(f"{source}:{reader.line_num}: not valid CSV ({exc})") from None
    if not rows:
        raise TopologyError(f"{source}: the file is empty (no header line); expected a header, either "
                            f"{GEMM_HEADER!r} (GEMM form) or {CONV_HEADER!r} (convolution form), "
                            f"then one line per layer")
    header_line, header = rows[0]
    form, columns = _detect(header, source, header_line)
    layers = [layer for number, cells in rows[1:] for layer in _layer(form, columns, cells, source, number)]
    if not layers:
        raise TopologyError(f"{source}:{header_line}: a header but no layers after it")
    return layers


def _clean(cells: list[str]) -> list[str]:
    """Strip spaces and drop the empty cells a trailing comma leaves; an all-blank line becomes []."""
    cells = [c.strip() for c in cells]
    while cells and not cells[-1]:
        cells.pop()
    return cells


def _normal(cell: str) -> str:
    return " ".join(cell.lower().replace("_", " ").split())


def _detect(header: list[str], source: str, line: int) -> tuple[str, list[str]]:
    """('gemm' or 'conv', the value columns in file order) from the header line."""
    names = [_normal(c) for c in header]
    where = f"{source}:{line}"
    if len(names) >= 2 and names[1].replace(" ", "") == "ifmapheight":
        expected = list(_CONV_COLUMNS)
        got = [n.replace(" ", "") for n in names[1:len(expected) + 1]]
        # the stride column is spelt several ways (Strides, Stride, Stride height, ...)
        for i, (want, have) in enumerate(zip(expected, got)):
            ok = have.startswith("stride") if want.startswith("stride") else have == want.replace(" ", "")
            if not ok:
                raise TopologyError(f"{where}: convolution header column {i + 2} is {header[i + 1]!r}, expected "
                                    f"{want!r}; the header must be {CONV_HEADER!r}")
        if len(got) < len(expected):
            raise TopologyError(f"{where}: convolution header has {len(names)} columns, expected "
                                f"{len(expected) + 1}: {CONV_HEADER!r}")
        # SCALE-Sim 3.0.0 reads a ninth value as the sparsity ratio N:M, whatever the header calls it
        _no_extra(header, len(expected) + 2, where, CONV_HEADER + " (and optionally Sparsity,)")
        return "conv", expected
    if len(names) >= 4 and sorted(names[1:4]) == ["k", "m", "n"]:
        _no_extra(header, 4, where, GEMM_HEADER)
        return "gemm", names[1:4]
    raise TopologyError(f"{where}: header {','.join(header)!r} not recognised; expected {GEMM_HEADER!r} "
                        f"(GEMM form) or {CONV_HEADER!r} (convolution form)")


def _no_extra(header: list[str], width: int, where: str, expected: str) -> None:
    if len(header) > width:
        raise TopologyError(f"{where}: column {header[width]!r} is not supported (ChipViz models dense layers); "
                            f"the header must be {expected!r}")


def _layer(form: str, columns: list[str], cells: list[str], source: str, line: int) -> list[Layer]:
    """The layers of one row: one, or one per channel for a depth-wise (`DP`) convolution."""
    where = f"{source}:{line}"
    names = ["layer name"] + [c.upper() if form == "gemm" else c for c in columns]
    sparsity = None
    if form == "conv" and len(cells) == len(names) + 1:  # SCALE-Sim's optional ninth value
        sparsity = cells.pop()
        if not _SPARSITY.fullmatch(sparsity):
            raise TopologyError(f"{where}: the ninth value is SCALE-Sim 3.0.0's sparsity ratio N:M (its "
                                f"convolution rows have one stride, used along both sides), got {sparsity!r}")
    if len(cells) != len(names):
        problem = "missing columns" if len(cells) < len(names) else "too many columns"
        raise TopologyError(f"{where}: {problem}: expected {len(names)} values ({', '.join(names)}), "
                            f"found {len(cells)}")
    name = cells[0]
    if not name:
        raise TopologyError(f"{where}: the layer name (first column) is empty")
    values = {}
    for column, cell in zip(columns, cells[1:]):
        label = column.upper() if form == "gemm" else column
        if not _INTEGER.fullmatch(cell):
            raise TopologyError(f"{where}: {label} must be a whole number >= 1, got {cell!r} (not an integer)")
        value = int(cell)
        if value < 1:
            raise TopologyError(f"{where}: {label} must be a whole number >= 1, got {value}")
        values[column] = value
    if form == "gemm":
        return [Layer(name, m=values["m"], k=values["k"], n=values["n"], line=line)]
    for side in ("height", "width"):
        f, i = values[f"filter {side}"], values[f"ifmap {side}"]
        if f > i:
            raise TopologyError(f"{where}: filter {side} {f} is larger than the ifmap {side} {i} "
                                f"(no padding: the filter must fit inside the ifmap)")
    depthwise = DEPTHWISE_MARK in name
    channels = values["channels"]
    conv = ConvGeometry(values["ifmap height"], values["ifmap width"], 1 if depthwise else channels,
                        values["filter height"], values["filter width"], values["num filter"],
                        values["strides"], values["strides"], padding="scalesim")
    m, k, n = conv.gemm_shapes()["forward"]
    if not depthwise:
        return [Layer(name, m=m, k=k, n=n, line=line, conv=conv, sparsity=sparsity)]
    return [Layer(f"{name}Channel_{c}", m=m, k=k, n=n, line=line, conv=conv, sparsity=sparsity)
            for c in range(channels)]
