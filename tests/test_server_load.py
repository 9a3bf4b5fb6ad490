"""Many sessions on one server: fair shares, slower refreshes under load, and only changed data sent."""
import time

import pytest

from chipviz import server_load
from chipviz.session import TrainingSession


@pytest.fixture(autouse=True)
def no_sessions_training():
    assert server_load.training() == 0, "a session from another test is still training"
    yield


def test_refreshes_keep_their_rate_for_a_few_sessions_then_slow_in_proportion():
    assert server_load.stretch(0) == server_load.stretch(server_load.FULL_RATE_SESSIONS) == 1.0
    assert server_load.stretch(20) == pytest.approx(20 / server_load.FULL_RATE_SESSIONS)
    assert server_load.stretch(10_000) == server_load.MAX_STRETCH


def test_training_shares_its_cores_evenly():
    one = server_load.TRAINING_SHARE
    assert server_load.fair_pause(0.002, 1) == pytest.approx(0.002 * (1 / min(one, 1.0) - 1))
    # twenty sessions: each steps at most share/20 of the time, so all together use `share` cores
    rest = server_load.fair_pause(0.002, 20)
    assert 0.002 / (0.002 + rest) * 20 == pytest.approx(one)


def test_sessions_register_while_they_train_and_leave_when_paused_or_closed():
    a, b = TrainingSession(dataset="xor", width1=4), TrainingSession(dataset="xor", width1=4)
    try:
        a.start()
        b.start()
        assert server_load.training() == 2
        a.pause()
        assert server_load.training() == 1
        b.close()
        assert server_load.training() == 0
        a.start()  # its worker is still alive: it trains again
        assert server_load.training() == 1
    finally:
        a.close()
        b.close()
    assert server_load.training() == 0


def test_a_diverged_session_stops_counting():
    s = TrainingSession(dataset="xor", width1=4, optimizer="sgd", lr=10.0, activation="linear")
    try:
        s.start()
        deadline = time.monotonic() + 30
        while not s.diverged and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.diverged
        assert server_load.training() == 0 and not s.running
    finally:
        s.close()


def test_a_busy_server_publishes_less_often(monkeypatch):
    """Twenty sessions training: a worker publishes every 1.25 s, not every 0.25 s."""
    monkeypatch.setattr(server_load, "stretch", lambda n=None: 5.0)
    s = TrainingSession(dataset="xor", width1=4, steps_per_second=100)
    published = []
    s.param.watch(lambda e: published.append(e.new.step), "snapshot")
    try:
        s.start()
        time.sleep(2.0)
    finally:
        s.close()
    assert s.snapshot.step > 50  # it trained the whole time
    assert 1 <= len(published) <= 3  # but published about every 1.25 s


def test_the_sidebar_says_when_a_busy_server_slows_the_plots(monkeypatch):
    pytest.importorskip("panel")
    from chipviz.app.controls import Controls

    s = TrainingSession(dataset="xor", width1=4)
    s.step()
    controls = Controls(session=s)
    assert "sessions are training" not in controls._status_text()
    monkeypatch.setattr(server_load, "training", lambda: 20)
    assert "20 sessions are training on this server, so the plots refresh every 1.2 s" in controls._status_text()
    controls.lang = "zh"
    assert "20 个会话在训练" in controls._status_text()
    s.close()
