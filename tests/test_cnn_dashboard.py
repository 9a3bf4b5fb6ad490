"""The CNN and MNIST in the dashboard, without a browser: the model choice, its coherence with
the data set, links, the conv view linked to the PE array, MNIST from a folder the server was
given (and a clear word when it was not), the seed article's preset, and the cost line."""
from __future__ import annotations

import pytest

from chipviz import settings
from chipviz.app.controls import MNIST_MISSING, SEED_NETWORK
from chipviz.app.dashboard import Dashboard
from chipviz.session import TrainingSession
from chipviz.weight_map import WeightMap
from test_data import write_mnist


@pytest.fixture
def dash():
    d = Dashboard()
    yield d
    d.session.close()


def test_cnn_settings_make_the_layer_grammar():
    values = {**settings.DEFAULTS, "model": "cnn", "filters": 6, "kernel": 5, "hidden_layers": 0}
    assert settings.train_settings(values).hidden == ("conv5x5x6", "pool2")
    assert settings.train_settings({**values, "model": "mlp"}).hidden == ()


def test_a_cnn_needs_images_whichever_setting_changed():
    s = TrainingSession(dataset="xor")
    s.model = "cnn"
    assert (s.model, s.dataset) == ("cnn", "digits") and s.trainer.net.sizes[1] == "conv3x3x8"
    built = s.network
    s.dataset = "moons"
    assert (s.model, s.dataset) == ("mlp", "moons") and s.network == built + 1  # one new network, not two
    s.close()


def test_links_refuse_what_cannot_be_built():
    link = settings.parse_query({"model": "cnn", "dataset": "spiral"})
    assert "model" not in link.settings and "a CNN needs an image data set" in str(link.notices[0])
    link = settings.parse_query({"dataset": "mnist"})
    assert "dataset" not in link.settings and "--mnist-dir" in str(link.notices[0])


def test_the_conv_view_follows_the_pe_array_and_selects_weights(dash):
    dash.session.apply({"model": "cnn", "filters": 4}, announce=False)
    dash.session.step()
    assert dash.conv_view.visible and not dash.network_box.visible
    assert dash.conv_view._state["op"].layer == 1 and dash.conv_view._state["op"].phase == "forward"
    dash.pe_array.seek(14)  # past the 8×8 ws array's 8 preload cycles
    dash.pe_array.selected_pe = (1, 2)
    assert "A[3, 1] · B[1, 2]" in dash.conv_view.text.object  # PE (1, 2) at cycle 14: m = 14 − 8 − 3
    dash.conv_view.selected_weight = (1, 4, 2)  # the centre tap of kernel 2
    op = dash.session.snapshot.report.ops[dash.op]
    expected = [(r, c) for f, r, c in WeightMap.for_operation(op).pes_for_weight(1, 4, 2).pes if f == 0]
    assert dash.pe_array.highlight == expected and expected
    dash.session.apply({"model": "mlp"}, announce=False)
    dash.session.step()
    assert dash.network_box.visible and not dash.conv_view.visible


def test_mnist_is_offered_only_when_the_server_has_it(tmp_path, monkeypatch):
    d = Dashboard()
    options = d.controls.widgets["dataset"].options
    missing = next(k for k, v in options.items() if v == MNIST_MISSING)
    assert "mnist" not in options.values() and "--mnist-dir" in missing
    assert d.controls.widgets["dataset"].disabled_options == [MNIST_MISSING]
    assert not d.controls.seed_network.visible
    with pytest.raises(ValueError):
        d.session.dataset = "mnist"  # no files: the session cannot choose it
    d.session.close()
    monkeypatch.setenv(settings.MNIST_ENV, str(write_mnist(tmp_path)))
    d = Dashboard()
    assert "mnist" in d.controls.widgets["dataset"].options.values()
    assert not d.controls.widgets["dataset"].disabled_options
    assert d.controls.seed_network.visible
    d.controls.seed_network.clicks += 1  # the seed article's 784-64-64-10 with Adam
    s = d.session
    assert {k: getattr(s, k) for k, _ in SEED_NETWORK} == dict(SEED_NETWORK)
    assert s.trainer.net.sizes == (784, 64, 64, 10)
    s.step()
    d.controls._on_snapshot(None)
    assert "one epoch (1 steps)" in d.controls.cost.object and "cycles" in d.controls.cost.object
    s.close()
