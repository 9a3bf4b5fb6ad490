"""SCALE-Sim topology CSVs: both forms parse, im2col shapes are right, errors name file and line."""
import pytest

from chipviz.chip.topology import Layer, TopologyError, read_topology

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


def test_conv_form_im2col_alexnet_conv1(tmp_path):
    text = CONV_HEADER + "\nConv1     ,224    ,224   ,11     ,11     ,3    ,96    ,4     ,\n"
    (layer,) = read_topology(write(tmp_path, text))
    # OH = OW = (224 - 11) // 4 + 1 = 54; M = 54·54; K = 11·11·3; N = 96
    assert (layer.m, layer.k, layer.n) == (2916, 363, 96)
    assert layer.conv.ofmap_h == layer.conv.ofmap_w == 54
    assert layer.conv.stride_h == layer.conv.stride_w == 4


def test_conv_form_im2col_rectangular_by_hand(tmp_path):
    # IH 7, IW 9, FH 3, FW 2, C 4, NF 5, S 2: OH = (7-3)//2+1 = 3, OW = (9-2)//2+1 = 4
    # M = 3·4 = 12, K = 3·2·4 = 24, N = 5; and a 1×1 filter at stride 1 keeps the map: M = 6·5
    text = CONV_HEADER + "\nc1, 7, 9, 3, 2, 4, 5, 2,\nc2, 6, 5, 1, 1, 8, 16, 1,\n"
    c1, c2 = read_topology(write(tmp_path, text))
    assert (c1.m, c1.k, c1.n) == (12, 24, 5)
    assert (c1.conv.ofmap_h, c1.conv.ofmap_w) == (3, 4)
    assert (c2.m, c2.k, c2.n) == (30, 8, 16)


def test_conv_form_header_lenient_and_separate_width_stride(tmp_path):
    header = ("LAYER_NAME,ifmap_height,IFMAP  width,filter height,FilterWidth,channels,NUM FILTER,"
              "Stride height,Stride width")
    # IH 8, IW 8, F 2×2, strides 2 (height) and 3 (width): OH = 6//2+1 = 4, OW = 6//3+1 = 3
    (layer,) = read_topology(write(tmp_path, header + "\nc,8,8,2,2,1,7,2,3\n"))
    assert (layer.conv.stride_h, layer.conv.stride_w) == (2, 3)
    assert (layer.m, layer.k, layer.n) == (12, 4, 7)


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
