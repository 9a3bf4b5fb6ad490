"""`chipviz serve` without a server: its options, the command it runs, and the files a wheel must carry.

The served page itself is checked in Chromium by tests/browser/test_serve_browser.py.
"""
from __future__ import annotations

import glob
import importlib
import importlib.metadata
import os
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest

import chipviz
from chipviz import cli
from chipviz.data import digits as digits_module
from chipviz.lessons.common import LANGUAGES

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = Path(chipviz.__file__).resolve().parent / "app"


def command(*argv: str) -> list[str]:
    return cli.serve_command(cli.build_parser().parse_args(["serve", *argv]))


# --------------------------------------------------------------------------- the command


def test_no_options_serve_the_app_folder_with_panels_defaults():
    assert command() == [sys.executable, "-m", "panel", "serve", str(APP_DIR)]


def test_every_option_is_passed_through():
    assert command("--port", "8080", "--address", "0.0.0.0", "--allow-websocket-origin", "chipviz.example.org:443",
                   "--allow-websocket-origin", "127.0.0.1:8080", "--num-procs", "2") == [
        sys.executable, "-m", "panel", "serve", str(APP_DIR), "--port", "8080", "--address", "0.0.0.0",
        "--allow-websocket-origin", "chipviz.example.org:443", "--allow-websocket-origin", "127.0.0.1:8080",
        "--num-procs", "2"]


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "localhost", "chipviz.example.org", "my_host"])
def test_addresses_accepted(address):
    assert command("--address", address)[-2:] == ["--address", address]


@pytest.mark.parametrize("origin", ["localhost", "localhost:5006", "*", "*.example.org:443", "10.0.0.7:80"])
def test_websocket_origins_accepted(origin):
    assert command("--allow-websocket-origin", origin)[-1] == origin


def test_the_page_is_the_folders_main_py_served_at_app():
    """Panel names a directory app's route after the folder: chipviz/app/ -> /app, as app.py's stem gives."""
    folder = Path(command()[4])
    assert (folder / "main.py").is_file()
    assert f"/{folder.name}" == cli.APP_ROUTE == f"/{Path(ROOT / 'app.py').stem}"
    assert not (folder / "static").exists() and not (folder / "templates").exists()  # nothing else a dir app reads


@pytest.mark.parametrize("argv, says", [
    (["--port", "0"], "argument --port: must be a whole number from 1 to 65535, got 0"),
    (["--port", "65536"], "argument --port: must be a whole number from 1 to 65535, got 65536"),
    (["--port", "-5"], "argument --port: must be a whole number from 1 to 65535, got -5"),
    (["--port", "http"], "argument --port: must be a whole number, got 'http'"),
    (["--num-procs", "0"], "argument --num-procs: must be a whole number >= 1, got 0"),
    (["--num-procs", "1.5"], "argument --num-procs: must be a whole number, got '1.5'"),
    (["--address", ""], "argument --address: must be an IP address or a host name"),
    (["--address", "local host"], "argument --address: must be an IP address or a host name"),
    (["--address", "*"], "argument --address: must be an IP address or a host name"),
    (["--allow-websocket-origin", "http://example.org"], "without http://"),
    (["--allow-websocket-origin", "example.org/app"], "without http:// or a path"),
    (["--allow-websocket-origin", ":5006"], "the host must be a host name or IP address"),
    (["--allow-websocket-origin", "example.org:"], "the port must be a whole number from 1 to 65535"),
    (["--allow-websocket-origin", "example.org:99999"], "the port must be a whole number from 1 to 65535"),
    (["--allow-websocket-origin", "::1"], "must look like HOST[:PORT]"),
    (["--port"], "argument --port: expected one argument"),
    (["--prot", "5006"], "unrecognized arguments: --prot"),
])
def test_bad_options_give_one_line_and_status_2(argv, says, capsys):
    assert cli.main(["serve", *argv]) == cli.EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("chipviz: error: ") and says in err, err


def test_serve_is_listed_in_the_help(capsys):
    assert cli.main(["--help"]) == 0
    assert "serve" in capsys.readouterr().out
    assert cli.main(["serve", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for option in ("--port", "--address", "--allow-websocket-origin", "--num-procs", "/app"):
        assert option in help_text


def test_building_the_command_imports_no_panel_bokeh_or_app():
    """The import contract holds at run time too: the folder is found without importing chipviz.app."""
    code = ("import sys; from chipviz import cli; cli.serve_command(cli.build_parser().parse_args(['serve'])); "
            "print(sorted(m for m in ('panel', 'bokeh', 'chipviz.app', 'chipviz.app.main') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("exit_with, status, says",
                         [("3", 3, ""), ("None", 0, ""), ("'ERROR: no port'", 1, "ERROR: no port")])
def test_the_server_runs_in_this_process_and_its_status_is_the_commands(tmp_path, monkeypatch, capsys, exit_with,
                                                                          status, says):
    """`chipviz serve` becomes the server: the module runs here with the command's arguments, with the
    collector off until the app's start-up hook freezes what start-up made (on again once it stops)."""
    import gc

    module = f"import gc, sys\nprint(sys.argv[1:], gc.isenabled())\nsys.exit({exit_with})\n"
    (tmp_path / "fake_panel.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    assert cli.run_server([sys.executable, "-m", "fake_panel", "serve", "folder", "--port", "5"]) == status
    out, err = capsys.readouterr()
    assert out.strip() == "['serve', 'folder', '--port', '5'] False" and err.strip() == says
    assert gc.isenabled()


def test_importing_the_page_builds_nothing(monkeypatch):
    """app.py imports chipviz.app.main and calls serve_page() itself; only panel serve's run builds on load."""
    import chipviz.app.dashboard as dashboard

    built = []
    monkeypatch.setattr(dashboard, "Dashboard", lambda *a, **k: built.append(1))
    monkeypatch.delitem(sys.modules, "chipviz.app.main", raising=False)
    main = importlib.import_module("chipviz.app.main")
    assert built == [] and callable(main.serve_page)
    monkeypatch.delitem(sys.modules, "chipviz.app.main")  # the next import gets the real Dashboard


# --------------------------------------------------------------------------- the files a wheel carries


def _data_files() -> dict[str, list[str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]


def test_the_wheel_lists_every_lesson_and_the_digits():
    """pyproject's data-files put lessons/ and assets/ under share/chipviz/, where shipped_path looks."""
    installed = {}
    for target, patterns in _data_files().items():
        assert PurePosixPath(target).parts[:2] == digits_module.SHARE
        for pattern in patterns:
            matches = glob.glob(pattern, root_dir=ROOT)
            assert matches, f"{pattern} matches no file"
            for match in matches:
                installed[PurePosixPath(match).as_posix()] = f"{target}/{PurePosixPath(match).name}"
    wanted = [f"lessons/{lang}/{p.name}" for lang in LANGUAGES for p in sorted((ROOT / "lessons" / lang).glob("*.md"))]
    wanted.append("assets/digits.csv.gz")
    for path in wanted:
        assert installed.get(path) == f"share/chipviz/{path}", f"{path} would be missing from a wheel"


def test_a_checkout_reads_its_own_files():
    assert digits_module.shipped_path("lessons") == ROOT / "lessons"
    assert digits_module.DIGITS_PATH == ROOT / "assets" / "digits.csv.gz"


def _fake_install(tmp_path, monkeypatch) -> Path:
    """No checkout: chipviz/ sits in a site-packages without pyproject.toml or lessons/ beside it."""
    monkeypatch.setattr(digits_module, "CHECKOUT", tmp_path / "lib")
    (tmp_path / "lib").mkdir()
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    return tmp_path


def test_a_wheel_in_a_venv_is_read_from_its_prefix(tmp_path, monkeypatch):
    _fake_install(tmp_path, monkeypatch)
    lessons = tmp_path / "venv" / "share" / "chipviz" / "lessons"
    (lessons / "en").mkdir(parents=True)
    assert digits_module.shipped_path("lessons") == lessons


def test_other_install_schemes_are_found_through_the_record(tmp_path, monkeypatch):
    """pip install --user / --prefix: the files sit where the installer's RECORD says."""
    _fake_install(tmp_path, monkeypatch)
    site = tmp_path / "user" / "lib" / "site-packages"
    info = site / "chipviz-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: chipviz\nVersion: 0.1.0\n")
    (info / "RECORD").write_text("chipviz/__init__.py,,\n../../share/chipviz/lessons/en/01-pe.md,,\n"
                                 "../../share/chipviz/assets/digits.csv.gz,,\n")
    share = tmp_path / "user" / "share" / "chipviz"
    (share / "lessons" / "en").mkdir(parents=True)
    (share / "lessons" / "en" / "01-pe.md").write_text("# The processing element\n")
    (share / "assets").mkdir()
    (share / "assets" / "digits.csv.gz").write_bytes(b"")
    files = importlib.metadata.Distribution.at(info).files
    monkeypatch.setattr(importlib.metadata, "files", lambda name: files if name == "chipviz" else None)
    assert digits_module.shipped_path("lessons") == share / "lessons"
    assert digits_module.shipped_path("assets/digits.csv.gz") == share / "assets" / "digits.csv.gz"
    assert digits_module.shipped_path("assets/nope.csv") == tmp_path / "lib" / "assets" / "nope.csv"  # named in errors


def test_chipviz_lessons_still_overrides(tmp_path):
    code = "import chipviz.lessons as L; print(L.LESSONS_DIR)"
    env = dict(os.environ, CHIPVIZ_LESSONS=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=ROOT)
    assert out.stdout.strip() == str(tmp_path)


def test_the_kernels_warm_up_after_the_first_page_is_drawn(monkeypatch):
    """`chipviz serve` loads the kernels beside the server, but not while its first page is being built
    and drawn: it waits for that page (or for KERNELS_AFTER_SECONDS), then loads each dataflow's."""
    import threading

    import chipviz.chip
    from chipviz.app import document, server_lifecycle

    loaded = []
    monkeypatch.setattr(chipviz.chip, "load_engine", lambda config: loaded.append(config.dataflow))
    monkeypatch.setattr(document, "FIRST_PAGE_DRAWN", threading.Event())
    monkeypatch.setattr(server_lifecycle, "FIRST_PAGE_DRAWN", document.FIRST_PAGE_DRAWN)
    warm = threading.Thread(target=server_lifecycle.warm_up_kernels)
    warm.start()
    warm.join(0.3)
    assert warm.is_alive() and loaded == []  # waiting for the first page
    document.FIRST_PAGE_DRAWN.set()
    warm.join(10)
    assert not warm.is_alive() and loaded == list(chipviz.chip.DATAFLOWS)
    monkeypatch.setattr(server_lifecycle, "KERNELS_AFTER_SECONDS", 0.05)  # no page: it starts anyway
    monkeypatch.setattr(server_lifecycle, "FIRST_PAGE_DRAWN", threading.Event())
    loaded.clear()
    server_lifecycle.warm_up_kernels()
    assert loaded == list(chipviz.chip.DATAFLOWS)


def test_served_pages_leave_out_the_bundles_they_never_use():
    """MathJax and WebGL are not among a served page's scripts; the widgets and the tables (Panel's widgets
    build on both) are."""
    from bokeh.resources import Resources

    import panel.io.server as server
    from chipviz.app.document import UNUSED_BUNDLES, lighter_pages
    from panel.io.resources import Resources as PanelResources

    lighter_pages()
    lighter_pages()  # once is enough: a second call changes nothing
    bundle = server.bundle_resources([], PanelResources.from_bokeh(Resources(mode="server")))
    scripts = " ".join(map(str, bundle.js_files))
    assert all(name not in scripts for name in UNUSED_BUNDLES), scripts
    assert all(f"{name}.min.js" in scripts for name in ("bokeh", "bokeh-widgets", "bokeh-tables")), scripts
    assert not getattr(server.bundle_resources.__wrapped__, "chipviz_lighter", False)
