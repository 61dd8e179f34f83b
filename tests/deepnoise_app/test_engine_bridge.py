"""EngineBridge against the real engine process (``python -m deepnoise_engine serve``)."""

from __future__ import annotations

import os
import signal
import sys

import pytest

pytest.importorskip("deepnoise_engine.serve.client")

from qtpy.QtWidgets import QPushButton

from deepnoise_app.engine import DEAD, READY, EngineBridge

pytestmark = pytest.mark.gui
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture
def bridge(qtbot):
    bridge = EngineBridge(env=ENV)
    yield bridge
    bridge.shutdown(timeout=2.0)


def _collect(bridge: EngineBridge) -> list[dict]:
    events: list[dict] = []
    bridge.event.connect(events.append)
    return events


def test_ready_with_devices_and_queued_request(qtbot, bridge):
    events = _collect(bridge)
    # submitted before the engine runs: queued, sent once hello arrived
    request = bridge.submit("echo", payload={"x": 1})
    assert bridge.state == "starting"
    with qtbot.waitSignal(bridge.engine_ready, timeout=60_000) as ready:
        pass
    hello = ready.args[0]
    assert hello["protocol"] == 1
    assert bridge.devices and bridge.devices[0]["type"] in ("cpu", "cuda")
    assert bridge.pid and bridge.pid != os.getpid()
    qtbot.waitUntil(lambda: any(e.get("request") == request for e in events), timeout=10_000)
    answer = next(e for e in events if e.get("request") == request)
    assert answer["event"] == "result"
    assert answer["result"]["params"]["payload"] == {"x": 1}
    assert request not in bridge.open_requests()


def test_job_events_and_cancel(qtbot, bridge):
    events = _collect(bridge)
    bridge.start()
    qtbot.waitUntil(lambda: bridge.state == READY, timeout=60_000)
    request = bridge.submit("sleep", seconds=30, steps=300)
    qtbot.waitUntil(
        lambda: any(e["event"] == "progress" and e["request"] == request for e in events),
        timeout=10_000,
    )
    assert any(e["event"] == "accepted" and e["request"] == request for e in events)
    assert bridge.job_id(request)
    bridge.cancel(request)  # by bridge request id
    qtbot.waitUntil(
        lambda: any(e["event"] in ("cancelled", "finished") and e["request"] == request
                    for e in events),
        timeout=10_000,
    )
    mine = [e["event"] for e in events if e["request"] == request]
    assert "cancelled" in mine or "finished" in mine
    assert "result" not in mine  # it did not run its 30 s


def test_sigkill_is_reported_and_restart_works(qtbot, bridge):
    died: list[dict] = []
    bridge.engine_died.connect(died.append)
    bridge.start()
    qtbot.waitUntil(lambda: bridge.state == READY, timeout=60_000)
    request = bridge.submit("sleep", seconds=30, steps=300)
    qtbot.waitUntil(lambda: bridge.job_id(request) is not None, timeout=10_000)
    old_pid = bridge.pid
    os.kill(old_pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: bool(died), timeout=5_000)
    assert bridge.state == DEAD
    info = died[0]
    assert info["returncode"] == -signal.SIGKILL
    assert "SIGKILL" in info["message"] and "Restart" in info["message"]
    assert "sleep" in info["requests"].values()  # what was running when it died
    # the UI is still alive: a button click is processed
    clicks: list[bool] = []
    button = QPushButton("still here")
    qtbot.addWidget(button)
    button.clicked.connect(lambda: clicks.append(True))
    button.click()
    assert clicks == [True]
    # restart: hello answers again from a new process
    with qtbot.waitSignal(bridge.engine_ready, timeout=60_000):
        bridge.restart()
    assert bridge.state == READY and bridge.pid != old_pid
    events = _collect(bridge)
    hello = bridge.submit("hello")
    qtbot.waitUntil(
        lambda: any(e["request"] == hello and e["event"] == "result" for e in events),
        timeout=10_000,
    )


def test_engine_that_cannot_start_is_an_error_not_a_crash(qtbot):
    bridge = EngineBridge(command=[sys.executable, "-c", "import sys; sys.exit(3)"],
                          start_timeout=10)
    with qtbot.waitSignal(bridge.engine_died, timeout=20_000) as died:
        bridge.start()
    assert bridge.state == DEAD
    assert "could not start" in died.args[0]["message"]
    assert died.args[0]["returncode"] == 3
    bridge.shutdown()


def test_out_of_memory_reaches_the_training_view(qtbot, bridge):
    from deepnoise_app.workflow.training_view import TrainingView

    view = TrainingView(bridge)
    qtbot.addWidget(view)
    request = bridge.submit("sleep", seconds=0.2, steps=2, fail="out_of_memory")
    view.follow(request, None, title="Diagnostic")
    qtbot.waitUntil(lambda: view.status == "failed", timeout=60_000)
    text = view.log_view.toPlainText()
    assert "out_of_memory" in text and "Suggestion:" in text
    assert bridge.state == READY  # the engine keeps serving after a failed job


def test_ask_answers_quick_requests_and_events_are_typed(qtbot, bridge):
    from deepnoise_engine.contract.config import PresetsAnswer
    from deepnoise_engine.contract.events import Finished, Progress

    typed: list = []
    bridge.typed_event.connect(typed.append)
    # ask starts the engine and waits for it (Qt events keep flowing)
    presets = PresetsAnswer.model_validate(bridge.ask("presets", timeout=60))
    assert presets.names[0] == "tiny" and "tiny" in presets.presets
    with pytest.raises(Exception) as info:
        bridge.ask("check_config", overrides=["model.epochs=many"])
    assert "model.epochs" in str(info.value)
    request = bridge.submit("sleep", seconds=0.2, steps=2)
    qtbot.waitUntil(lambda: any(isinstance(e, Finished) for e in typed), timeout=10_000)
    assert any(isinstance(e, Progress) and e.request == request for e in typed)
