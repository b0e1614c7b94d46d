"""The built-in agent's confinement, without a server: which folders, which files in them."""

from pathlib import Path

import pytest

from taskline.agent.confine import FolderRefused, ReviewRoots, confine, permitted
from taskline.agent.files import SAMPLE_DOCS, FileKind, list_files, read_document
from taskline.agent.review import review_path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``roots/docs`` (a root, with a sub-folder, a hidden file and folder, links in and out),
    ``roots/other`` (a second root), and ``outside`` (secrets next to them)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret heading\n\nTODO: leaked\n")
    docs = tmp_path / "roots" / "docs"
    (docs / "guide").mkdir(parents=True)
    (docs / "guide" / "setup.md").write_text("# Setup\n")
    (docs / "README.md").write_text("# Read me\n")
    (docs / ".env").write_text("TOKEN=1\n")
    (docs / ".private").mkdir()
    (docs / ".private" / "notes.md").write_text("# Private\n")
    (docs / "out").symlink_to(outside, target_is_directory=True)
    (docs / "out.md").symlink_to(outside / "secret.md")
    (docs / "env-link").symlink_to(docs / ".env")
    (docs / "in.md").symlink_to(docs / "README.md")
    (docs / "loop").symlink_to(docs / "loop")
    (tmp_path / "roots" / "other").mkdir()
    return tmp_path


def roots_of(tree: Path, *names: str) -> ReviewRoots:
    return ReviewRoots.of([str(tree / "roots" / name) for name in names], default=SAMPLE_DOCS)


def test_the_default_root_is_the_sample_folder_named_by_its_name() -> None:
    roots = ReviewRoots.of([], default=SAMPLE_DOCS)
    assert roots.paths == (SAMPLE_DOCS.resolve(),) and roots.names == ("sample_docs",)
    assert confine("sample_docs", roots) == SAMPLE_DOCS.resolve()
    assert confine(".", roots) == SAMPLE_DOCS.resolve()
    assert confine("guide", roots) == (SAMPLE_DOCS / "guide").resolve()
    assert confine(str(SAMPLE_DOCS / "guide"), roots) == (SAMPLE_DOCS / "guide").resolve()


def test_a_root_and_folders_under_it_are_allowed(tree: Path) -> None:
    roots = roots_of(tree, "docs", "other")
    docs = (tree / "roots" / "docs").resolve()
    assert confine(str(docs), roots) == docs
    assert confine(str(docs / "guide"), roots) == docs / "guide"
    assert confine(str(tree / "roots" / "other"), roots) == (tree / "roots" / "other").resolve()
    # relative: to the first root, or from a root's parent when it starts with its name
    assert confine("guide", roots) == docs / "guide"
    assert confine("docs/guide", roots) == docs / "guide"
    assert confine("docs", roots) == docs
    assert confine("other", roots) == (tree / "roots" / "other").resolve()
    assert confine("guide/../guide", roots) == docs / "guide"
    # nothing there: None, not a refusal; a name after a missing one stays missing
    assert confine("nothing/here", roots) is None
    assert confine("review guide/..", roots) is None  # not the root: "review guide" is missing


@pytest.mark.parametrize(
    "requested",
    ["/etc", "/", "~", "~/.ssh", "..", "../..", "../../outside", "docs/../../outside",
     "out", "out/secret.md", "guide/../../other/../../outside", "~nobody-here", "a\0b", "loop"],
)  # fmt: skip
def test_paths_out_of_every_root_are_refused_naming_only_the_configured_roots(
    tree: Path, requested: str
) -> None:
    roots = roots_of(tree, "docs")
    with pytest.raises(FolderRefused) as refused:
        confine(requested, roots)
    assert not refused.value.hidden
    name = roots.names[0]
    # exactly this: the request as given, the root as configured, nothing the file system said
    assert str(refused.value) == (
        f"{requested!r} is not a folder the built-in agent may review: it reviews only {name} "
        f"and the folders under it (a relative path is taken relative to {name})"
    )


def test_roots_are_named_as_configured(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tree / "roots"))
    roots = ReviewRoots.of(["~/docs", "~/other"], default=SAMPLE_DOCS)
    assert roots.paths == tuple((tree / "roots" / name).resolve() for name in ("docs", "other"))
    with pytest.raises(FolderRefused) as refused:
        confine("/etc", roots)
    assert "it reviews only ~/docs, ~/other and the folders under them" in str(refused.value)
    assert str(tree) not in str(refused.value)


def test_hidden_names_below_a_root_are_refused_unless_allowed(tree: Path) -> None:
    roots = roots_of(tree, "docs")
    docs = (tree / "roots" / "docs").resolve()
    for requested in (".private", "docs/.private", str(docs / ".private"), "env-link"):
        with pytest.raises(FolderRefused) as refused:
            confine(requested, roots)
        assert refused.value.hidden and "hidden" in str(refused.value)
    assert confine(".private", roots, hidden=True) == docs / ".private"
    # a root may itself be hidden (it was configured so)
    hidden_root = ReviewRoots.of([str(docs / ".private")], default=SAMPLE_DOCS)
    assert confine(".", hidden_root) == docs / ".private"


def test_permitted_is_the_rule_for_one_resolved_path(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert permitted(root, root) and permitted(root / "a" / "b.md", root)
    assert not permitted(tmp_path, root) and not permitted(tmp_path / "rootless", root)
    assert not permitted(root / ".git" / "x", root)
    assert permitted(root / ".git" / "x", root, hidden=True)


def test_the_walk_skips_links_out_and_hidden_entries(tree: Path) -> None:
    docs = tree / "roots" / "docs"
    assert list_files(docs).files == ("README.md", "guide/setup.md", "in.md")
    assert list_files(docs, hidden=True).files == (
        ".env",
        ".private/notes.md",
        "README.md",
        "env-link",
        "guide/setup.md",
        "in.md",
    )
    # a link out of the folder under review is skipped even when it stays under the root
    (docs / "guide" / "up.md").symlink_to(docs / "README.md")
    assert list_files(docs / "guide").files == ("setup.md",)


def test_reading_stays_in_the_folder(tree: Path) -> None:
    docs = tree / "roots" / "docs"

    def read(name: str, **options: bool) -> tuple[FileKind, str | None]:
        document = read_document(docs, name, **options)
        return document.kind, document.detail

    assert read("in.md")[0] is FileKind.TEXT
    assert read("out.md") == (FileKind.UNREADABLE, "outside the folder (not followed)")
    assert read("out/secret.md") == (FileKind.UNREADABLE, "outside the folder (not followed)")
    assert read("../../outside/secret.md")[1] == "outside the folder (not followed)"
    assert read(".env") == (FileKind.UNREADABLE, "hidden (not read)")
    assert read("env-link") == (FileKind.UNREADABLE, "hidden (not read)")
    assert read(".env", hidden=True)[0] is FileKind.TEXT
    assert read("loop") == (FileKind.UNREADABLE, "a link that cannot be resolved")


def test_links_out_of_the_folder_are_not_looked_up(tree: Path) -> None:
    """A Markdown link leaving the folder is neither fine nor broken: the report tells
    nothing about what exists outside."""
    docs = tree / "roots" / "docs"
    (docs / "links.md").write_text(
        "[a](../../outside/secret.md) [b](../../outside/none.md) [c](/guide/setup.md) "
        "[d](missing.md) [e](.env)\n"
    )
    review = review_path(docs)
    links = next(f for f in review.files if f.path == "links.md")
    assert links.links_checked == 2
    assert [b.target for b in links.broken_links] == ["missing.md"]
    with_hidden = next(f for f in review_path(docs, hidden=True).files if f.path == "links.md")
    assert with_hidden.links_checked == 3
