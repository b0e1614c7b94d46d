"""The settings object: retired variables are named, not silently ignored."""

import os

import pytest
from pydantic import ValidationError

from taskline.settings import Settings, retired_variables


def test_a_retired_variable_is_reported_with_its_replacement() -> None:
    """TASKLINE_OUTBOX_SIZE (frames) is not read any more; `taskline serve` says what to use."""
    assert retired_variables({"TASKLINE_PORT": "1"}) == []
    (warning,) = retired_variables({"TASKLINE_OUTBOX_SIZE": "64"})
    assert "TASKLINE_OUTBOX_BYTES" in warning and "no longer read" in warning


@pytest.mark.parametrize(
    ("value", "roots"),
    [
        (f"/srv/docs{os.pathsep}/srv/other", ("/srv/docs", "/srv/other")),
        (f" /srv/docs {os.pathsep}{os.pathsep}", ("/srv/docs",)),  # blanks and empty parts
        ("~/notes", ("~/notes",)),
        ('["/srv/docs", "/srv/a:b"]', ("/srv/docs", "/srv/a:b")),  # JSON keeps separators
        ("", ()),
    ],
)
def test_review_roots_come_from_a_path_list_or_json(
    monkeypatch: pytest.MonkeyPatch, value: str, roots: tuple[str, ...]
) -> None:
    """TASKLINE_REVIEW_ROOTS is a plain os.pathsep-separated list, or a JSON list."""
    monkeypatch.setenv("TASKLINE_REVIEW_ROOTS", value)
    monkeypatch.setenv("TASKLINE_REVIEW_HIDDEN", "true")
    settings = Settings()
    assert settings.review_roots == roots
    assert settings.review_hidden is True
    assert Settings(review_roots=["/a", "/b"]).review_roots == ("/a", "/b")


def test_review_roots_that_look_like_json_but_are_not_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKLINE_REVIEW_ROOTS", "[/srv/docs")
    with pytest.raises(ValidationError, match="not a JSON list"):
        Settings()
