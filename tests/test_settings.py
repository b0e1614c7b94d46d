"""The settings object: retired variables are named, not silently ignored."""

from taskline.settings import retired_variables


def test_a_retired_variable_is_reported_with_its_replacement() -> None:
    """TASKLINE_OUTBOX_SIZE (frames) is not read any more; `taskline serve` says what to use."""
    assert retired_variables({"TASKLINE_PORT": "1"}) == []
    (warning,) = retired_variables({"TASKLINE_OUTBOX_SIZE": "64"})
    assert "TASKLINE_OUTBOX_BYTES" in warning and "no longer read" in warning
