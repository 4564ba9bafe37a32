"""Every example of the README and of the documentation runs (tests/docs/examples.py says how).

The blocks that do not run are listed here, with the reason each gives; their convscope
commands are still parsed. A new ``<!-- not run: ... -->`` marker fails
``test_every_example_runs_or_is_listed`` until it is added to ``NOT_RUN``, so the list stays
short and reviewed.
"""

from __future__ import annotations

import pytest

from docs_examples import Sandbox, build_assets, commands, documents, examples, parse_only

# (document, a piece of the block's code, why): the blocks that are only parsed
NOT_RUN = [
    ("README.md", "-e . && .venv/bin/convscope demo", "installs from the package index, then trains for minutes"),
    ("README.md", "-e '.[test]' && .venv/bin/python -m pytest", "the test suite itself (.ci/run runs it)"),
    ("docs/getting-started.md", "-e . && .venv/bin/convscope demo", "installs from the package index"),
    ("docs/getting-started.md", "convscope demo\n", "trains for two minutes (tests/demo runs its parts on small inputs)"),
    ("docs/guides/atlas.md", "torchvision:vgg16 photos/ --weights DEFAULT", "needs a GPU and a download of pretrained weights"),
    ("docs/guides/distributed.md", "torchrun --nproc_per_node 8", "needs 8 GPUs"),
    ("docs/development.md", ".venv/bin/python -m pytest", "the test suite and the benchmarks themselves"),
    ("docs/development.md", ".venv/bin/mkdocs build --strict", "tests/docs/test_docs_build.py runs the same build"),
]

ALL = [example for path in documents() for example in examples(path)]
RUN_DOCUMENTS = sorted({e.document for e in ALL if e.not_run is None})


@pytest.fixture(scope="session")
def assets(tmp_path_factory):
    return build_assets(tmp_path_factory.mktemp("example-assets"))


def test_every_example_runs_or_is_listed():
    not_run = [e for e in ALL if e.not_run is not None]
    def matches(example, doc, piece):
        return example.document == doc and (example.code == piece if piece.endswith("\n") else piece in example.code)

    unlisted = [e.where for e in not_run if sum(matches(e, doc, piece) for doc, piece, _ in NOT_RUN) != 1]
    assert not unlisted, f"blocks marked 'not run' but not (once) in NOT_RUN: {unlisted}"
    stale = [piece for doc, piece, _ in NOT_RUN if sum(matches(e, doc, piece) for e in not_run) != 1]
    assert not stale, f"NOT_RUN names blocks that now run, are gone or are ambiguous: {stale}"
    parsed = sum(parse_only(e) for e in not_run)
    runs = [e for e in ALL if e.not_run is None]
    python = sum(e.language == "python" for e in runs)
    shell = sum(len(commands(e.code)) for e in runs if e.language != "python")
    print(f"\n{len(ALL)} example blocks in README.md and docs/: {len(runs)} run ({python} Python blocks and "
          f"{shell} shell commands), {len(not_run)} only parsed ({parsed} convscope commands in them parsed):")
    for e in not_run:
        print(f"  {e.where}: {e.not_run}")
    assert len(ALL) >= 20 and len(not_run) <= 10 and shell >= 25
    assert {"README.md", "docs/guides/python.md", "docs/getting-started.md"} <= set(RUN_DOCUMENTS)


@pytest.mark.slow
@pytest.mark.parametrize("document", RUN_DOCUMENTS)
def test_examples_run(document, assets, tmp_path):
    sandbox = Sandbox(tmp_path, assets)
    ran = 0
    for example in [e for e in ALL if e.document == document and e.not_run is None]:
        ran += sandbox.run(example)
    print(f"\n{document}: {ran} commands and blocks ran")
    assert ran > 0
