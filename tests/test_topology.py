"""SCALE-Sim topology CSVs: both forms parse, im2col shapes are right, errors name file and line."""
import pytest

from chipviz.chip import ChipConfig, analyze
from chipviz.chip.topology import CONVENTION, Layer, TopologyError, parse_topology, read_topology

CONV_HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,"


def write(tmp_path, text, name="layers.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


def test_gemm_form_reads_n_before_k_with_trailing_commas(tmp_path):
    path = write(tmp_path, "Layer name, M, N, K,\nfc1, 32, 10, 64,\nfc2,  8, 3, 5,\n")
    layers = read_topology(path)
    assert [(l.name, l.m, l.k, l.n) for l in layers] == [("fc1", 32, 64, 10), ("fc2", 8, 5, 3)]
    assert [l.line for l in layers] == [2, 3]
    assert all(l.conv is None for l in layers)
    assert layers[0].macs == 32 * 64 * 10


def test_gemm_form_is_lenient_about_spaces_case_blank_lines_comments_bom(tmp_path):
    # No trailing comma (as in SCALE-Sim's own NCF.csv), a BOM, blank lines and a comment.
    text = "\ufeff  layer ,m,N , k\n\n# a comment line\n1,256,128,2048\n\n2 , 128 , 64 , 2048\n"
    layers = read_topology(write(tmp_path, text))
    assert [(l.name, l.m, l.k, l.n) for l in layers] == [("1", 256, 2048, 128), ("2", 128, 2048, 64)]
    assert [l.line for l in layers] == [4, 6]


def test_gemm_header_order_is_followed_when_it_names_m_k_n(tmp_path):
    layers = read_topology(write(tmp_path, "Layer, M, K, N,\nx, 2, 3, 4,\n"))
    assert (layers[0].m, layers[0].k, layers[0].n) == (2, 3, 4)


def test_conv_form_im2col_alexnet_conv1_as_scalesim(tmp_path):
    text = CONV_HEADER + "\nConv1     ,224    ,224   ,11     ,11     ,3    ,96    ,4     ,\n"
    (layer,) = read_topology(write(tmp_path, text))
    # SCALE-Sim 3.0.0: OH = OW = ceil((224 - 11) / 4) + 1 = 55; M = 55·55; K = 11·11·3; N = 96
    assert (layer.m, layer.k, layer.n) == (3025, 363, 96)
    assert layer.conv.out_h == layer.conv.out_w == 55
    assert layer.conv.stride_h == layer.conv.stride_w == 4
    assert layer.conv.padding == "scalesim"
    assert "SCALE-Sim 3.0.0" in CONVENTION


def test_conv_form_im2col_rectangular_by_hand(tmp_path):
    # IH 7, IW 9, FH 3, FW 2, C 4, NF 5, S 2: OH = ceil((7-3)/2)+1 = 3, OW = ceil((9-2)/2)+1 = 5
    # (the last column of windows overhangs by one: its missing taps are zeros)
    # M = 3·5 = 15, K = 3·2·4 = 24, N = 5; and a 1×1 filter at stride 1 keeps the map: M = 6·5
    text = CONV_HEADER + "\nc1, 7, 9, 3, 2, 4, 5, 2,\nc2, 6, 5, 1, 1, 8, 16, 1,\n"
    c1, c2 = read_topology(write(tmp_path, text))
    assert (c1.m, c1.k, c1.n) == (15, 24, 5)
    assert (c1.conv.out_h, c1.conv.out_w) == (3, 5)
    assert (c2.m, c2.k, c2.n) == (30, 8, 16)


# (M, K, N) per layer as SCALE-Sim 3.0.0 itself lowered these rows (topology_utils + operand_matrix,
# run in its own venv); the first row's ws/os/is cycles on a 4×4 array were 129 / 95 / 279.
SCALESIM_ROWS = """c,9,7,3,2,3,4,2,
Conv1,224,224,11,11,3,96,4,
DPconv,10,10,3,3,4,8,1,
sp,8,8,2,2,1,7,2,1:2,
same1,12,12,3,3,2,5,1,
"""
SCALESIM_MKN = [("c", 16, 18, 4), ("Conv1", 3025, 363, 96)] + [
    (f"DPconvChannel_{i}", 64, 9, 8) for i in range(4)] + [("sp", 16, 4, 7), ("same1", 100, 18, 5)]


def test_conv_form_matches_scalesim_3_0_0(tmp_path):
    layers = read_topology(write(tmp_path, CONV_HEADER + "\n" + SCALESIM_ROWS))
    assert [(l.name, l.m, l.k, l.n) for l in layers] == SCALESIM_MKN
    assert [l.line for l in layers] == [2, 3, 4, 4, 4, 4, 5, 6]
    assert layers[6].sparsity == "1:2" and layers[0].sparsity is None


def test_scalesim_cycles_of_a_strided_layer():
    (layer,) = parse_topology(CONV_HEADER + "\nc,9,7,3,2,3,4,2,\n")
    cycles = {df: analyze(layer.m, layer.k, layer.n, ChipConfig(rows=4, cols=4, dataflow=df)).scalesim_cycles
              for df in ("ws", "os", "is")}
    assert cycles == {"ws": 129, "os": 95, "is": 279}  # SCALE-Sim 3.0.0's COMPUTE_REPORT


def test_conv_form_lenient_header_and_sparsity_column(tmp_path):
    header = "LAYER_NAME,ifmap_height,IFMAP  width,filter height,FilterWidth,channels,NUM FILTER,Stride,Sparsity"
    (layer,) = read_topology(write(tmp_path, header + "\nc,8,8,2,2,1,7,2,2:4\n"))
    assert (layer.conv.stride_h, layer.conv.stride_w) == (2, 2)
    assert (layer.m, layer.k, layer.n) == (16, 4, 7)
    assert layer.sparsity == "2:4"


def test_a_ninth_integer_is_not_a_width_stride(tmp_path):
    with pytest.raises(TopologyError, match="sparsity ratio N:M .*one stride.*got '3'"):
        read_topology(write(tmp_path, CONV_HEADER + "\nc,8,8,2,2,1,7,2,3\n"))


def test_layer_is_a_plain_record():
    assert Layer("x", m=1, k=2, n=3, line=5).macs == 6


@pytest.mark.parametrize("text, line, fragment", [
    ("Layer, M, N, K,\nfc, 32, ten, 64,\n", 2, "N must be a whole number >= 1, got 'ten' (not an integer)"),
    ("Layer, M, N, K,\nfc, 32, 10, 6.5,\n", 2, "not an integer"),
    ("Layer, M, N, K,\nok, 1, 1, 1,\nfc, 0, 10, 64,\n", 3, "M must be a whole number >= 1, got 0"),
    ("Layer, M, N, K,\nfc, -3, 10, 64,\n", 2, "M must be a whole number >= 1, got -3"),
    ("Layer, M, N, K,\nfc, 32, 10,\n", 2, "missing columns: expected 4 values (layer name, M, N, K), found 3"),
    ("Layer, M, N, K,\nfc, 32, 10, 4, 5,\n", 2, "too many columns"),
    ("Layer, M, N, K,\n, 32, 10, 4,\n", 2, "layer name (first column) is empty"),
    (CONV_HEADER + "\nc, 5, 5, 3, 3, 2,\n", 2, "missing columns: expected 8 values"),
    (CONV_HEADER + "\nc, 3, 9, 5, 1, 1, 1, 1,\n", 2, "filter height 5 is larger than the ifmap height 3"),
    (CONV_HEADER + "\nc, 9, 3, 1, 4, 1, 1, 1,\n", 2, "filter width 4 is larger than the ifmap width 3"),
    (CONV_HEADER + "\nc, 9, 9, 1, 1, 1, 1, 0,\n", 2, "strides must be a whole number >= 1, got 0"),
    ("Layer, M, N, K,\n", 1, "a header but no layers"),
    ("Name, Rows, Cols, Depth,\nx, 1, 2, 3,\n", 1, "not recognised"),
    ("Layer Name, M, N, K, Sparsity,\nx, 3, 5, 16, 3:4,\n", 1, "column 'Sparsity' is not supported"),
    ("\n# only a comment\n", None, "the file is empty"),
    ("", None, "the file is empty"),
])
def test_errors_name_file_line_and_problem(tmp_path, text, line, fragment):
    path = write(tmp_path, text)
    with pytest.raises(TopologyError) as info:
        read_topology(path)
    message = str(info.value)
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert message.startswith(where), message
    assert fragment in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


def test_binary_file_is_a_topology_error(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(TopologyError, match="not a text CSV file"):
        read_topology(path)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_topology(tmp_path / "nope.csv")
