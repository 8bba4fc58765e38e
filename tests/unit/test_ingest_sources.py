"""Source enumeration: folders and globs, single files, inline documents, URLs, read limits, confinement."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from concierge.api.resources import KnowledgeSource
from concierge.retrieval.sources import (
    DocumentProblem,
    DocumentRef,
    SourceProblem,
    download_format,
    enumerate_source,
    list_folder,
    load,
)


def source(**fields: object) -> KnowledgeSource:
    return KnowledgeSource.model_validate({"name": "docs", **fields})


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in [
        "docs/returns.md",
        "docs/faq/shipping.html",
        "docs/faq/deep/warranty.pdf",
        "docs/terms.docx",
        "docs/notes.txt",
        "docs/slides/training.pptx",
        "docs/prices.xlsx",
        "docs/prices.csv",
        "docs/faq.json",
        "docs/photo.png",
        "docs/.hidden.md",
        "docs/.git/HEAD.md",
    ]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return tmp_path


def keys(refs: list[DocumentRef]) -> list[str]:
    return [ref.key for ref in refs]


def test_a_folder_lists_supported_files_recursively_in_a_stable_order(tree: Path) -> None:
    refs = enumerate_source(source(path="docs"), tree)
    assert [(ref.key, ref.format) for ref in refs] == [
        ("faq/deep/warranty.pdf", "pdf"),
        ("faq/shipping.html", "html"),
        ("faq.json", "json"),
        ("notes.txt", "text"),
        ("prices.csv", "csv"),
        ("prices.xlsx", "xlsx"),
        ("returns.md", "markdown"),
        ("slides/training.pptx", "pptx"),
        ("terms.docx", "docx"),
    ]


def test_hidden_files_and_folders_are_never_documents(tree: Path) -> None:
    assert not any(".hidden" in key or ".git" in key for key in keys(enumerate_source(source(path="docs"), tree)))


def test_include_globs_choose_the_files(tree: Path) -> None:
    refs = enumerate_source(source(path="docs", include=["*.md", "faq/*.html"]), tree)
    assert keys(refs) == ["faq/shipping.html", "returns.md"]


def test_overlapping_globs_list_a_file_once(tree: Path) -> None:
    assert list_folder(tree / "docs", ["**/*.md", "*.md"]) == [tree / "docs" / "returns.md"]


def test_files_of_unsupported_types_matched_by_a_glob_are_skipped(tree: Path) -> None:
    assert keys(enumerate_source(source(path="docs", include=["*"]), tree)) == [
        "faq.json",
        "notes.txt",
        "prices.csv",
        "prices.xlsx",
        "returns.md",
        "terms.docx",
    ]


def test_citation_uri_is_the_path_relative_to_the_spec_folder(tree: Path) -> None:
    ref = enumerate_source(source(path="docs", include=["*.md"]), tree)[0]
    assert ref.uri == "docs/returns.md"
    assert ref.path == tree / "docs" / "returns.md"
    assert ref.doc_key == ("docs", "returns.md")


def test_an_absolute_path_needs_no_base_dir(tree: Path) -> None:
    refs = enumerate_source(source(path=str(tree / "docs"), include=["*.md"]), None)
    assert keys(refs) == ["returns.md"]


def test_a_single_file_source_is_one_document(tree: Path) -> None:
    refs = enumerate_source(source(path="docs/faq/shipping.html"), tree)
    assert [(ref.key, ref.format, ref.uri) for ref in refs] == [("shipping.html", "html", "docs/faq/shipping.html")]


def test_a_single_file_of_unsupported_type_is_a_source_problem(tree: Path) -> None:
    with pytest.raises(SourceProblem, match="unsupported file type"):
        enumerate_source(source(path="docs/photo.png"), tree)


def test_a_missing_path_is_a_source_problem_that_names_it(tree: Path) -> None:
    with pytest.raises(SourceProblem, match="'nope' does not exist"):
        enumerate_source(source(path="nope"), tree)


def test_a_relative_path_without_base_dir_is_a_source_problem() -> None:
    with pytest.raises(SourceProblem, match="no base_dir"):
        enumerate_source(source(path="docs"), None)


@pytest.mark.parametrize("pattern", ["../*.md", "/etc/*"])
def test_include_patterns_cannot_leave_the_folder(tree: Path, pattern: str) -> None:
    with pytest.raises(SourceProblem, match="must be relative"):
        enumerate_source(source(path="docs", include=[pattern]), tree)


def test_an_empty_folder_has_no_documents(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert enumerate_source(source(path="empty"), tmp_path) == []


def test_inline_documents_are_keyed_by_title_and_repeats_stay_distinct() -> None:
    docs = [
        {"title": "Hours", "content": "9-5"},
        {"title": "Hours", "content": "10-4"},
        {"title": "Phone", "content": "1"},
    ]
    refs = enumerate_source(source(inline=docs), None)
    assert keys(refs) == ["Hours", "Hours (2)", "Phone"]
    assert refs[0].uri == "inline:docs/Hours"


def test_a_url_source_is_one_document_whose_format_is_decided_later() -> None:
    refs = enumerate_source(source(url="https://help.example.com/faq/returns.html"), None)
    assert [(ref.key, ref.name, ref.format) for ref in refs] == [
        ("https://help.example.com/faq/returns.html", "returns.html", None)
    ]


async def test_a_file_over_the_size_limit_is_a_document_problem(tmp_path: Path) -> None:
    (tmp_path / "big.md").write_bytes(b"x" * 2000)
    ref = enumerate_source(source(path="big.md"), tmp_path)[0]
    async with httpx.AsyncClient() as client:
        with pytest.raises(DocumentProblem, match="2000 bytes, more than the limit of 1024"):
            await load(ref, client=client, max_bytes=1024)


def serving(status: int, body: bytes, content_type: str) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_a_download_takes_its_format_from_the_content_type() -> None:
    ref = enumerate_source(source(url="https://x.test/doc"), None)[0]
    async with serving(200, b"%PDF-1.4", "application/pdf; charset=binary") as client:
        loaded = await load(ref, client=client, max_bytes=1024)
    assert (loaded.format, loaded.data) == ("pdf", b"%PDF-1.4")


async def test_a_download_without_a_known_content_type_uses_the_url_suffix() -> None:
    ref = enumerate_source(source(url="https://x.test/manual.docx"), None)[0]
    async with serving(200, b"PK", "application/octet-stream") as client:
        assert (await load(ref, client=client, max_bytes=1024)).format == "docx"


async def test_a_download_over_the_size_limit_is_a_document_problem() -> None:
    ref = enumerate_source(source(url="https://x.test/big"), None)[0]
    async with serving(200, b"x" * 5000, "text/html") as client:
        with pytest.raises(DocumentProblem, match="limit of 1024"):
            await load(ref, client=client, max_bytes=1024)


async def test_an_http_error_is_a_document_problem_with_the_status() -> None:
    ref = enumerate_source(source(url="https://x.test/gone"), None)[0]
    async with serving(404, b"", "text/html") as client:
        with pytest.raises(DocumentProblem, match="HTTP 404"):
            await load(ref, client=client, max_bytes=1024)


async def test_an_unreachable_url_is_a_document_problem() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    ref = enumerate_source(source(url="https://x.test/down"), None)[0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(DocumentProblem, match="ConnectError: connection refused"):
            await load(ref, client=client, max_bytes=1024)


async def test_a_download_of_a_format_that_is_no_document_is_a_document_problem() -> None:
    ref = enumerate_source(source(url="https://x.test/logo"), None)[0]
    async with serving(200, b"\x89PNG", "image/png") as client:
        with pytest.raises(DocumentProblem, match=r"is image/png, not a document format \(supported formats: csv,"):
            await load(ref, client=client, max_bytes=1024)


@pytest.mark.parametrize(
    ("mimetype", "url", "fmt"),
    [
        ("text/plain", "https://x.test/faq.md", "markdown"),
        ("text/plain", "https://x.test/prices.csv", "csv"),
        ("text/plain", "https://x.test/notes", "text"),
        ("application/vnd.api+json", "https://x.test/api", "json"),
        ("application/vnd.openxmlformats-officedocument.presentationml.presentation", "https://x.test/d", "pptx"),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "https://x.test/d", "xlsx"),
        ("", "https://x.test/page", "html"),
        ("text/css", "https://x.test/site.css", None),
    ],
)
def test_a_download_format_comes_from_the_content_type_then_the_extension(
    mimetype: str, url: str, fmt: str | None
) -> None:
    assert download_format(mimetype, url) == fmt


async def test_a_redirect_is_checked_again_at_every_hop() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/start":
            return httpx.Response(302, headers={"location": "file:///etc/passwd"})
        return httpx.Response(200, content=b"x", headers={"content-type": "text/plain"})

    ref = enumerate_source(source(url="https://x.test/start"), None)[0]
    # follow_redirects=True as the server's client has it: the fetch must still check each hop itself.
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True) as client:
        with pytest.raises(DocumentProblem, match="only http and https URLs are read, not file URLs"):
            await load(ref, client=client, max_bytes=1024)


async def test_a_url_at_a_private_address_is_refused_when_private_networks_are_not_allowed() -> None:
    ref = enumerate_source(source(url="http://10.0.0.8/admin"), None)[0]
    async with serving(200, b"secret", "text/plain") as client:
        with pytest.raises(DocumentProblem, match=r"10\.0\.0\.8 is at 10\.0\.0\.8, a private"):
            await load(ref, client=client, max_bytes=1024, allow_private_networks=False)
        assert (await load(ref, client=client, max_bytes=1024, allow_private_networks=True)).data == b"secret"


def test_a_crawled_source_cannot_be_listed_without_the_network() -> None:
    with pytest.raises(SourceProblem, match="needs `discover`"):
        enumerate_source(source(url="https://x.test/", crawl={}), None)


# --- allowed roots -------------------------------------------------------------------------


def test_a_path_inside_the_allowed_root_is_listed(tree: Path) -> None:
    refs = enumerate_source(source(path="docs", include=["*.md"]), tree, allowed_roots=[tree])
    assert keys(refs) == ["returns.md"]
    assert refs[0].problem is None


def test_a_path_that_leaves_the_allowed_root_by_dotdot_is_a_source_problem(tree: Path) -> None:
    (tree.parent / "outside.md").write_text("secret")
    with pytest.raises(SourceProblem, match=r"path '../outside.md' resolves to .*outside.md, outside the folders"):
        enumerate_source(source(path="../outside.md"), tree, allowed_roots=[tree])
    with pytest.raises(SourceProblem, match="outside the folders sources may read"):
        enumerate_source(source(path="/etc"), tree, allowed_roots=[tree])


def test_a_path_that_leaves_the_allowed_root_by_symlink_is_a_source_problem(
    tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "secret.md").write_text("secret")
    (tree / "linked").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(SourceProblem, match=f"resolves to {elsewhere}, outside"):
        enumerate_source(source(path="linked"), tree, allowed_roots=[tree])


async def test_a_symlinked_file_in_a_folder_that_leads_out_of_the_root_is_a_document_problem(
    tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    secret = tmp_path_factory.mktemp("elsewhere") / "secret.md"
    secret.write_text("secret")
    (tree / "docs" / "innocent.md").symlink_to(secret)
    (tree / "docs" / "alias.md").symlink_to(tree / "docs" / "returns.md")
    refs = {ref.key: ref for ref in enumerate_source(source(path="docs", include=["*.md"]), tree, allowed_roots=[tree])}
    assert sorted(refs) == ["alias.md", "innocent.md", "returns.md"]
    async with httpx.AsyncClient() as client:
        with pytest.raises(DocumentProblem, match=f"file resolves to {secret}, outside the folders"):
            await load(refs["innocent.md"], client=client, max_bytes=1024)
        assert (await load(refs["alias.md"], client=client, max_bytes=1024)).data == b"x"
    # Without allowed roots, nothing is confined (a laptop reading the user's own files).
    free = {ref.key: ref for ref in enumerate_source(source(path="docs", include=["*.md"]), tree)}
    assert free["innocent.md"].problem is None
