"""The built-in agent's review, without a server: files, analysis, report, answers."""

import ast
import os
from pathlib import Path

import pytest

import taskline.agent as agent_package
from taskline.agent.analysis import Heading, find_headings, find_links, find_markers
from taskline.agent.answers import HumanMessage, answer_message, format_size
from taskline.agent.files import SAMPLE_DOCS, FileKind, FolderError, list_files, read_document
from taskline.agent.report import SECTION_TITLES, render_report
from taskline.agent.review import BrokenLink, FolderReview, review_path

README = """\
# Project

Intro text of five words.

## Setup ##

TODO: write the install steps
See [guide](docs/guide.md), [gone](docs/missing.md#part) and [site](https://example.com).
Also [mail](mailto:a@example.com), [top](#project) and [dir](docs/).
![logo](img/logo.png) ![none](img/none.png "title")
`[code](not-a-link.md)` is code.
"""

GUIDE = """\
---
title: Guide
---
Guide
=====

```md
# not a heading
[x](nope.md) TODO inside code still counts
```

Part two
--------
FIXME: explain [the root](/README.md) and [space](<my file.md>)
[ref]: ../absent.md
"""


def prepare_folder(root: Path) -> Path:
    """A folder with known content: 3 text, 1 empty, 2 binary, 1 unreadable, skipped dirs."""
    (root / "docs").mkdir(parents=True)
    (root / "img").mkdir()
    (root / "README.md").write_text(README)
    (root / "docs" / "guide.md").write_text(GUIDE)
    (root / "docs" / "my file.md").write_text("a b c\n")
    (root / "docs" / "empty.md").write_bytes(b"")
    (root / "img" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    (root / "latin1.txt").write_bytes(b"caf\xe9 TODO\n")
    (root / "dangling.md").symlink_to(root / "does-not-exist.md")
    for hidden in (".git", "node_modules", ".cache"):
        (root / hidden).mkdir()
        (root / hidden / "x.md").write_text("TODO hidden\n")
    return root


def test_list_files_walks_sorted_and_skips_hidden_and_vendor_folders(tmp_path: Path) -> None:
    """Files come in name order, sub-folders where they sort; .git/node_modules/.x are skipped."""
    listing = list_files(prepare_folder(tmp_path))
    assert listing.files == (
        "README.md",
        "dangling.md",
        "docs/empty.md",
        "docs/guide.md",
        "docs/my file.md",
        "img/logo.png",
        "latin1.txt",
    )
    assert not listing.truncated


def test_list_files_is_bounded(tmp_path: Path) -> None:
    """Past max_files the listing stops and says it was truncated."""
    for n in range(5):
        (tmp_path / f"f{n}.txt").write_text("x")
    listing = list_files(tmp_path, max_files=3)
    assert listing.files == ("f0.txt", "f1.txt", "f2.txt")
    assert listing.truncated
    assert not list_files(tmp_path, max_files=5).truncated


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_path_that_is_not_a_folder_is_a_clear_error(tmp_path: Path, kind: str) -> None:
    """A missing path and a file both raise FolderError naming the path and the reason."""
    target = tmp_path / "nothing"
    if kind == "file":
        target.write_text("x")
    with pytest.raises(FolderError) as caught:
        review_path(target)
    assert caught.value.path == str(target)
    assert caught.value.reason == ("no such folder" if kind == "missing" else "not a folder")
    assert str(target) in str(caught.value)


def test_read_document_classifies_every_kind(tmp_path: Path) -> None:
    """Text, empty, binary (NUL, bad UTF-8), too large, and unreadable entries, none raising."""
    root = prepare_folder(tmp_path)
    (root / "big.txt").write_text("x" * 100)
    os.mkfifo(root / "pipe")
    (root / "folder-link").symlink_to(root / "docs")

    def kind(name: str, **limits: int) -> tuple[FileKind, str | None]:
        document = read_document(root, name, **limits)
        return document.kind, document.detail

    assert kind("README.md") == (FileKind.TEXT, None)
    assert kind("docs/empty.md") == (FileKind.EMPTY, None)
    assert kind("img/logo.png") == (FileKind.BINARY, "contains NUL bytes")
    assert kind("latin1.txt") == (FileKind.BINARY, "not UTF-8 text")
    assert kind("big.txt", max_bytes=99) == (
        FileKind.TOO_LARGE,
        "100 bytes, over the 99-byte limit",
    )
    assert kind("big.txt", max_bytes=100)[0] is FileKind.TEXT
    assert kind("dangling.md") == (FileKind.UNREADABLE, "broken symbolic link")
    assert kind("pipe") == (FileKind.UNREADABLE, "not a regular file (a FIFO)")
    assert kind("folder-link") == (FileKind.UNREADABLE, "a link to a folder (not followed)")
    assert kind("vanished.md") == (FileKind.UNREADABLE, "No such file or directory")


def test_review_of_a_prepared_folder_finds_exact_counts(tmp_path: Path) -> None:
    """Words, headings, TODO/FIXME and broken relative links come out exactly."""
    review = review_path(prepare_folder(tmp_path))
    assert [(f.path, f.kind) for f in review.files] == [
        ("README.md", FileKind.TEXT),
        ("dangling.md", FileKind.UNREADABLE),
        ("docs/empty.md", FileKind.EMPTY),
        ("docs/guide.md", FileKind.TEXT),
        ("docs/my file.md", FileKind.TEXT),
        ("img/logo.png", FileKind.BINARY),
        ("latin1.txt", FileKind.BINARY),
    ]
    readme = review.find("README.md")
    assert readme is not None
    assert readme.words == len(README.split())
    assert readme.headings == (Heading(1, "Project", 1), Heading(2, "Setup", 5))
    assert readme.links_checked == 5  # guide, missing, docs/, logo, none
    assert readme.broken_links == (
        BrokenLink("README.md", 8, "docs/missing.md#part"),
        BrokenLink("README.md", 10, "img/none.png"),
    )
    guide = review.find("docs/guide.md")
    assert guide is not None
    assert guide.headings == (Heading(1, "Guide", 4), Heading(2, "Part two", 12))
    assert guide.broken_links == (BrokenLink("docs/guide.md", 15, "../absent.md"),)
    assert [(m.path, m.line, m.marker) for m in review.markers] == [
        ("README.md", 7, "TODO"),
        ("docs/guide.md", 9, "TODO"),
        ("docs/guide.md", 14, "FIXME"),
    ]
    assert review.markers[0].text == "TODO: write the install steps"
    assert review.totals() == {
        "files": 7,
        "read": 6,
        "text": 3,
        "empty": 1,
        "binary": 2,
        "unreadable": 1,
        "too_large": 0,
        "words": len(README.split()) + len(GUIDE.split()) + 3,
        "bytes": review.total_bytes,
        "headings": 4,
        "todo": 2,
        "fixme": 1,
        "broken_links": 3,
        "confidence": round(6 / 7, 4),
    }
    assert [f.path for f in review.largest()] == [
        "README.md",
        "docs/guide.md",
        "img/logo.png",
        "latin1.txt",
        "docs/my file.md",
    ]


def test_confidence_counts_files_that_could_be_read(tmp_path: Path) -> None:
    """Unreadable and too-large files lower confidence; binary ones do not; empty folder is 1."""
    assert review_path(tmp_path).confidence == 1.0
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.bin").write_bytes(b"\0\1")
    (tmp_path / "c.txt").write_text("x" * 50)
    (tmp_path / "d.md").symlink_to(tmp_path / "gone")
    assert review_path(tmp_path).confidence == 0.75
    review = review_path(tmp_path, max_bytes=10)
    assert review.files_read == 2
    assert review.confidence == 0.5


def test_headings_ignore_code_front_matter_and_non_paragraph_underlines() -> None:
    """ATX closing hashes go, `#x` is text, setext needs a paragraph line above it."""
    text = "#NoSpace\n#  Spaced  #\n####### seven\n- item\n---\n\n---\n    # indented\nTitle\n==\n"
    assert find_headings(text) == [Heading(1, "Spaced", 2), Heading(1, "Title", 9)]
    assert find_headings("````\n# a\n```\n# b\n````\n# c\n") == [Heading(1, "c", 6)]
    assert find_headings("~~~~\n```\n# in\n~~~~\n# out\n") == [Heading(1, "out", 5)]
    assert find_headings("#\n") == [Heading(1, "", 1)]


def test_markers_are_whole_upper_case_words() -> None:
    """TODO and FIXME count as whole words only; one finding per line; long lines are cut."""
    text = "todo lower\nTODOs plural\nxTODO\n// TODO: a\nFIXME and TODO\n" + "TODO " + "y" * 300
    found = find_markers("f.py", text)
    assert [(m.line, m.marker) for m in found] == [(4, "TODO"), (5, "FIXME"), (6, "TODO")]
    assert found[0].text == "// TODO: a"
    assert len(found[2].text) == 200 and found[2].text.endswith("…")


def test_links_keep_only_relative_file_targets() -> None:
    """Schemes, anchors and //hosts are ignored; fragments, queries and escapes are resolved."""
    text = (
        "[a](a.md) [b](b.md#x) [c](c.md?raw=1) [d](d%20e.md) [e](<f g.md>)\n"
        "[h](http://x) [i](HTTPS://x) [j](mailto:x) [k](#k) [l](//cdn/x) [m](tel:1)\n"
        "[![img](pic.png)](page.md) `[n](code.md)`\n"
        "[ref]: ref.md\n[^1]: a footnote\n"
    )
    assert [(link.line, link.path) for link in find_links(text)] == [
        (1, "a.md"),
        (1, "b.md"),
        (1, "c.md"),
        (1, "d e.md"),
        (1, "f g.md"),
        (3, "pic.png"),
        (3, "page.md"),
        (4, "ref.md"),
    ]


def test_report_of_a_prepared_folder_has_every_section(tmp_path: Path) -> None:
    """The report has the sections in order and names every finding."""
    review = review_path(prepare_folder(tmp_path))
    message = HumanMessage("ana", "Which links are broken?")
    report = render_report(review, [message])
    titles = [line[3:] for line in report.splitlines() if line.startswith("## ")]
    assert titles == list(SECTION_TITLES)
    assert "- Files: 7 (3 text, 1 empty, 2 binary, 1 unreadable, 0 too large)" in report
    assert "- TODO: 2, FIXME: 1" in report
    assert "- Broken relative links: 3" in report
    assert "- Confidence: 0.86 (6 of 7 files could be read)" in report
    assert "| `README.md` | 7 | TODO | `TODO: write the install steps` |" in report
    assert "| `docs/guide.md` | 15 | `../absent.md` |" in report
    assert "| `dangling.md` | unreadable | broken symbolic link |" in report
    assert "| `latin1.txt` | binary | not UTF-8 text |" in report
    assert "1. `README.md` — " in report
    assert "> Which links are broken?" in report
    assert "3 broken relative links: `docs/missing.md#part` in `README.md` line 8" in report
    assert report.endswith("\n")


def test_report_of_an_empty_folder_says_so(tmp_path: Path) -> None:
    """An empty folder (hidden content only) gets a short report with no file sections."""
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    review = review_path(tmp_path)
    assert review.files == ()
    report = render_report(review, [HumanMessage("bo", "Anything?")])
    titles = [line[3:] for line in report.splitlines() if line.startswith("## ")]
    assert titles == ["Summary", "Messages"]
    assert "- Files: 0" in report
    assert "The folder has no files to review" in report
    assert "0 files reviewed, 0 words, 0 TODO, 0 FIXME, 0 broken relative links." in report


def test_report_escapes_document_text_in_tables(tmp_path: Path) -> None:
    """A pipe or backtick in a TODO line cannot break the findings table."""
    (tmp_path / "a|b.txt").write_text("TODO: use `x | y`\n")
    report = render_report(review_path(tmp_path))
    assert "| `a\\|b.txt` | 1 | TODO | `` TODO: use `x \\| y` `` |" in report


def test_report_mentions_a_truncated_listing(tmp_path: Path) -> None:
    """When the folder has more files than max_files, the summary says only some were read."""
    for n in range(3):
        (tmp_path / f"{n}.txt").write_text("x")
    report = render_report(review_path(tmp_path, max_files=2))
    assert "- Only the first 2 files were reviewed: the folder has more." in report


def test_answers_pick_topics_and_named_files(tmp_path: Path) -> None:
    """A message naming a file gets its figures; topic words get their findings."""
    review = review_path(prepare_folder(tmp_path))
    answer = answer_message("How big is guide.md, and any TODO?", review)
    assert answer.startswith("`docs/guide.md` (")
    assert "2 TODO and 1 FIXME: TODO in `README.md` line 7" in answer
    assert "The largest files: `README.md`" in answer
    assert answer_message("hello", review) == (
        f"7 files reviewed, {review.words} words, 2 TODO, 1 FIXME, 3 broken relative links."
    )
    assert "could be read" in answer_message("How confident are you?", review)
    assert answer_message("skipped?", FolderReview("x")) == "Every file was read as text."


def test_format_size() -> None:
    """Byte counts read like people write them."""
    assert [format_size(n) for n in (0, 1023, 1024, 1536, 5 * 1024**2)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 KiB",
        "5.0 MiB",
    ]


def test_the_shipped_sample_folder_has_one_of_each_finding() -> None:
    """The demo folder has a TODO, a FIXME, one broken and valid links, and a binary file."""
    review = review_path(SAMPLE_DOCS)
    totals = review.totals()
    assert (totals["files"], totals["text"], totals["binary"]) == (4, 3, 1)
    assert (totals["todo"], totals["fixme"], totals["broken_links"]) == (1, 1, 1)
    assert review.broken_links == [BrokenLink("README.md", 8, "CHANGELOG.md")]
    assert sum(f.links_checked for f in review.files) == 4


def test_a_report_too_large_for_its_budget_is_shortened(tmp_path: Path) -> None:
    """With max_bytes, long lists are cut with a note; the summary stays whole."""
    for n in range(60):
        (tmp_path / f"f{n:02}.txt").write_text("TODO a\nTODO b\n")
    review = review_path(tmp_path)
    full = render_report(review)
    short = render_report(review, max_bytes=len(full.encode()) // 2)
    assert len(short.encode()) <= len(full.encode()) // 2
    assert "- TODO: 120, FIXME: 0" in short
    assert "more (left out to keep the report short)." in short
    assert short.count("\n| `f") < full.count("\n| `f")
    tiny = render_report(review, max_bytes=300)
    assert len(tiny.encode()) <= 300 and tiny.endswith("… (the report was cut to fit)\n")


def test_the_agent_package_imports_only_the_sdk_and_the_domain() -> None:
    """Layering: taskline.agent never imports the server's packages."""
    package = Path(agent_package.__file__).parent
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        ours = {name.split(".")[1] for name in names if name.startswith("taskline.")}
        assert ours <= {"agent", "sdk", "domain"}, f"{module.name} imports {ours}"
