"""The pure parts of optimistic concurrency: reading If-Match, and planning a replaced
task's sections (which ids are kept, which positions are accepted)."""

from datetime import UTC, datetime

import pytest

from taskline.domain.documents import check_read_only, plan_sections
from taskline.domain.errors import InvalidInputError
from taskline.domain.models import SectionReplace, SubtaskReplace, Task, TaskReplace
from taskline.domain.preconditions import IfMatch, etag


@pytest.mark.parametrize(
    ("header", "versions", "any_version", "weak"),
    [
        ("*", set(), True, False),
        (' "3" ', {3}, False, False),
        ('"3","4" , W/"5"', {3, 4}, False, True),
        ('W/"5"', set(), False, True),
        ('"abc", "0", "99999999999"', set(), False, False),
        ('"3",,', {3}, False, False),
    ],
)
def test_if_match_reads_star_and_lists_of_tags(
    header: str, versions: set[int], any_version: bool, weak: bool
) -> None:
    parsed = IfMatch.parse(header)
    assert parsed.versions == versions and parsed.any is any_version and parsed.weak is weak


@pytest.mark.parametrize("header", ["3", '"3', "", " , ", '"3" x', "**"])
def test_if_match_that_is_not_a_list_of_tags_names_the_field(header: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        IfMatch.parse(header)
    assert refused.value.field == "If-Match"


def test_if_match_with_the_documents_version() -> None:
    assert IfMatch(any=True).and_version(4) == IfMatch.version(4)
    assert IfMatch.parse('"3", "4"').and_version(4).versions == {4}
    assert not IfMatch.version(3).and_version(4).allows(3)
    assert IfMatch.version(3).describe() == "version 3"
    assert "weak" in IfMatch.parse('W/"3"').describe()
    assert etag(7) == '"7"'


NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def task(**fields: object) -> Task:
    document: dict[str, object] = {
        "id": "task_a1",
        "title": "T",
        "description": "",
        "status": "pending",
        "priority": "medium",
        "progress": 0.0,
        "confidence": None,
        "assigned_agent_id": None,
        "tags": [],
        "result": None,
        "created_at": NOW,
        "updated_at": NOW,
        "started_at": None,
        "completed_at": None,
        "version": 3,
        "sections": [
            {
                "id": "sec_a",
                "title": "A",
                "position": 0,
                "subtasks": [
                    {"id": "sub_a1", "title": "a1", "done": False, "notes": "", "position": 0}
                ],
            },
            {"id": "sec_b", "title": "B", "position": 1, "subtasks": []},
        ],
        **fields,
    }
    return Task.model_validate(document)


def test_read_only_fields_pass_unchanged_and_are_named_when_changed() -> None:
    current = task()
    check_read_only(current, TaskReplace.model_validate(current.model_dump(mode="json")))
    naive = TaskReplace(title="T", created_at=NOW.replace(tzinfo=None))  # read as UTC
    check_read_only(current, naive)
    check_read_only(current, TaskReplace(title="T", version=1))  # a precondition, not here
    with pytest.raises(InvalidInputError) as refused:
        check_read_only(current, TaskReplace(title="T", started_at=NOW))
    assert refused.value.field == "started_at" and "null" in refused.value.detail


def test_plan_keeps_known_ids_and_names_new_ones() -> None:
    """A subtask may move to another section; items without id get new ones."""
    plans = plan_sections(
        task(),
        [
            SectionReplace(
                id="sec_b",
                title="B",
                position=1,  # as read, though it is first now
                subtasks=[SubtaskReplace(id="sub_a1", title="a1", position=0)],
            ),
            SectionReplace(title="C", subtasks=[SubtaskReplace(title="c1")]),
        ],
        lambda prefix: f"{prefix}_new",
    )
    assert [(p.id, p.new, p.position) for p in plans] == [("sec_b", False, 0), ("sec_new", True, 1)]
    assert [(s.id, s.new) for p in plans for s in p.subtasks] == [
        ("sub_a1", False),
        ("sub_new", True),
    ]


def test_plan_refuses_a_new_item_with_a_position_other_than_its_place() -> None:
    with pytest.raises(InvalidInputError) as refused:
        plan_sections(task(), [SectionReplace(title="New", position=2)], lambda p: "sec_x")
    assert refused.value.field == "sections.0.position"
