"""gunicorn.conf.py: gunicorn takes it as the web process's settings, and each worker freezes what loading the app
left alive (so a full collection no longer walks Django's objects while requests wait), never what is garbage."""

from __future__ import annotations

import gc
import importlib.util
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gunicorn.config import Config

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF = REPO_ROOT / "gunicorn.conf.py"


@pytest.fixture
def conf() -> dict[str, Any]:
    """The file's names, loaded as gunicorn loads a config file (a module from its path)."""
    spec = importlib.util.spec_from_file_location("gunicorn_conf", CONF)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return vars(module)


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_gunicorn_reads_it_from_the_working_directory_the_image_runs_in() -> None:
    assert Config().settings["config"].default == "./gunicorn.conf.py"
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "WORKDIR /app" in dockerfile and "COPY --from=build /app /app" in dockerfile
    assert "gunicorn.conf.py" not in (REPO_ROOT / ".dockerignore").read_text()


def test_gunicorn_takes_its_hook(conf: dict[str, Any]) -> None:
    config = Config()
    config.set("post_worker_init", conf["post_worker_init"])  # gunicorn validates a callable of one argument
    assert config.post_worker_init is conf["post_worker_init"]


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_a_worker_freezes_what_loading_left_alive_after_collecting_its_garbage(
    conf: dict[str, Any], unfrozen: None
) -> None:
    kept = _Cycle()
    garbage = _Cycle()
    garbage_ref = weakref.ref(garbage)
    del garbage

    conf["post_worker_init"](None)

    assert garbage_ref() is None  # collected, not frozen forever
    assert gc.get_freeze_count() > 0
    assert kept.me is kept
    gc.unfreeze()
    assert gc.get_freeze_count() == 0


def test_the_urlconf_is_loaded_before_the_freeze(
    conf: dict[str, Any], unfrozen: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = []

    class Resolver:
        @property
        def url_patterns(self) -> list[str]:
            loaded.append(gc.get_freeze_count())
            return []

    monkeypatch.setattr("django.urls.get_resolver", lambda: Resolver())
    conf["post_worker_init"](None)
    assert loaded == [0]  # read once, before anything was frozen
    assert gc.get_freeze_count() > 0
