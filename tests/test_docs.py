"""The documentation cannot rot: every ```sh/```bash/```python block in README.md and docs/*.md
runs against a real demo repository, every CLI flag a page mentions exists, every relative link
and every source reference resolves, and troubleshooting.md covers every exit code and error class.

Blocks of one page run in order, in one fresh working directory, with ``DEPOTDELIVERY_*``
pointing at a repository built once per session by :func:`depotdelivery.demo.run_demo`. A block
that cannot run here is preceded by ``<!-- docs-test: skip (REASON) -->``; ```julia blocks
must carry that marker (no Julia binary exists on this machine). ```text, ```toml, ```json
and ```jsonl blocks are data or output, not code.

``julia`` itself is a stand-in on PATH (a Julia binary cannot be installed here,
tests/stand_ins/julia-recorder): it records its argv and the JULIA_* environment in
``$JULIA_RECORD`` and fails if ``--sysimage`` names a file that does not exist, so
``depotdelivery exec -- julia ...`` snippets run for real up to the exec.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OWN_PAGES = ("README.md", "quickstart.md", "site-admin.md", "publisher.md", "launchers.md", "format.md",
             "security.md", "troubleshooting.md")
EXECUTED = frozenset({"sh", "bash", "python"})
NEEDS_MARKER = frozenset({"julia"})
DATA = frozenset({"", "text", "toml", "json", "jsonl"})  # "": an untagged fence is plain text
_FENCE = re.compile(r"^```(\S*)\s*$")
_SKIP = re.compile(r"^<!-- docs-test: skip \((?P<reason>[^()]*\S[^()]*)\) -->$")
_MARKER = re.compile(r"docs-test")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None  # the reason, when marked

    @property
    def where(self) -> str:
        return f"{_rel(self.page)}:{self.line}"


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name


def parse_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, with the skip marker of the line before."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        assert j < len(lines), f"{_rel(page)}:{start + 1}: unclosed code block"
        prev = lines[start - 1].strip() if start > 0 else ""
        marker = _SKIP.match(prev)
        assert marker is not None or not _MARKER.search(prev), \
            f"{_rel(page)}:{start}: malformed marker {prev!r} (use <!-- docs-test: skip (REASON) -->)"
        blocks.append(Block(page=page, line=start + 1, lang=lang, code="\n".join(lines[start + 1:j]) + "\n",
                            skip=marker.group("reason") if marker else None))
        i = j + 1
    return blocks


ALL_BLOCKS = [b for p in PAGES for b in parse_blocks(p)]

# A recipe that needs what this machine cannot give a docs test (a Slurm cluster) is run, as
# written, by the test file its marker names: <!-- docs-test: skip (runs in TEST as NAME: why) -->.
# That test takes the block's text from here (recipe()), so docs and test cannot drift apart.
_ELSEWHERE = re.compile(r"^runs in (?P<test>tests/\S+\.py) as (?P<name>[\w-]+):")


def recipe(page: str, name: str) -> str:
    """The code of the block of ``page`` (under docs/) marked as recipe ``name``."""
    found = [b for b in parse_blocks(ROOT / "docs" / page)
             if b.skip and (m := _ELSEWHERE.match(b.skip)) and m.group("name") == name]
    assert len(found) == 1, f"docs/{page}: {len(found)} blocks marked as recipe {name!r}"
    return found[0].code


def heredoc(page: str, filename: str) -> str:
    """The text a block of ``page`` writes with ``cat > FILENAME <<'EOF'`` (a runnable block
    that creates a script, such as the TaskProlog)."""
    pattern = re.compile(rf"^cat > {re.escape(filename)} <<'EOF'\n(.*?\n)EOF$", re.MULTILINE | re.DOTALL)
    found = [m.group(1) for b in parse_blocks(ROOT / "docs" / page) if (m := pattern.search(b.code))]
    assert len(found) == 1, f"docs/{page}: {len(found)} blocks write {filename}"
    return found[0]


# ---- the environment blocks run in ---------------------------------------------------------------

JULIA_RECORDER = ROOT / "tests" / "stand_ins" / "julia-recorder"


@pytest.fixture(scope="session")
def docs_env(tmp_path_factory):
    from depotdelivery.demo import demo_env, run_demo

    base = tmp_path_factory.mktemp("docs")
    run_demo(base / "demo", out=None)
    standin = base / "bin"
    standin.mkdir()
    (standin / "julia").symlink_to(JULIA_RECORDER)
    (base / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPOTDELIVERY_", "JULIA_"))}
    env.update(demo_env(base / "demo"))
    env.update(PATH=f"{Path(sys.executable).parent}:{standin}:{env.get('PATH', '/usr/bin:/bin')}",
               HOME=str(base / "home"), XDG_CACHE_HOME=str(base / "home" / ".cache"),
               XDG_CONFIG_HOME=str(base / "home" / ".config"))
    yield {"base": base, "env": env}
    # overlay mounts made by a snippet live under base: gc unmounts them
    subprocess.run([sys.executable, "-m", "depotdelivery", "gc", "--keep", "0"], env=env, capture_output=True)
    with open("/proc/self/mounts") as f:
        left = [line.split()[1] for line in f if line.split()[1].startswith(str(base))]
    assert not left, f"documentation snippets left mounts behind: {left}"


def _run(block: Block, cwd: Path, env: dict[str, str], n: int) -> subprocess.CompletedProcess[str]:
    if block.lang == "python":
        script = cwd / f".docs-block-{n}.py"
        script.write_text(block.code)
        argv = [sys.executable, str(script)]
    else:
        argv = ["bash", "-e", "-c", block.code]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _runnable(page: Path) -> list[Block]:
    return [b for b in parse_blocks(page) if b.lang in EXECUTED and b.skip is None]


@pytest.mark.parametrize("page", [p for p in PAGES if _runnable(p)], ids=lambda p: p.name)
def test_code_blocks_run(page, docs_env):
    import json

    blocks = _runnable(page)
    cwd = docs_env["base"] / f"work-{page.stem}"
    cwd.mkdir()
    env = {**docs_env["env"], "JULIA_RECORD": str(cwd / ".julia-calls.jsonl")}
    for n, block in enumerate(blocks):
        done = _run(block, cwd, env, n)
        assert done.returncode == 0, (
            f"{block.where}: ```{block.lang} block failed (exit {done.returncode})\n{block.code}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")
    # every `julia` a snippet started got the prepared sysimage and depot stack
    log = cwd / ".julia-calls.jsonl"
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    if any("exec -- julia" in b.code or "exec -- time julia" in b.code for b in blocks):
        assert calls, f"{page.name}: a snippet runs julia through depotdelivery, but julia was never started"
    for c in calls:
        assert c["argv"][0] == "--sysimage" and c["env"]["JULIA_DEPOT_PATH"].endswith(":"), c


# ---- structure of the pages ------------------------------------------------------------------------

@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.where)
def test_every_block_is_tagged_and_skips_say_why(block):
    known = EXECUTED | NEEDS_MARKER | DATA
    assert block.lang in known, f"{block.where}: code block language {block.lang!r} (use one of {sorted(known)})"
    if block.lang in NEEDS_MARKER:
        assert block.skip, f"{block.where}: a ```{block.lang} block cannot run here; mark it with a reason"
    if block.skip is not None:
        assert block.lang in EXECUTED | NEEDS_MARKER, f"{block.where}: only code blocks take a skip marker"
        assert len(block.skip.split()) >= 2, f"{block.where}: say why it cannot run here, got {block.skip!r}"


def test_pages_exist_and_readme_links_them():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    for name in OWN_PAGES[1:] + ("architecture.md", "configuration.md", "reliability.md"):
        assert (ROOT / "docs" / name).is_file(), name
        assert f"docs/{name}" in readme, f"README.md does not link docs/{name}"


_LINK = re.compile(r"\[(?P<text>[^\]]+)\]\((?P<target>[^)\s]+)\)")


def _links(page: Path) -> list[tuple[int, str, str]]:
    out, fenced = [], False
    for n, line in enumerate(page.read_text().splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        if not fenced:
            out += [(n, m.group("text"), m.group("target")) for m in _LINK.finditer(line)]
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_and_source_references_resolve(page):
    for n, text, target in _links(page):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.name}:{n}: link to {target} which does not exist"
        if path.suffix == ".py" and (name := re.fullmatch(r"`(?:[\w.]+\.)?(\w+)(?:\(\))?`", text)):
            # [`TrustStore.verify`](../src/depotdelivery/store/keys.py): the name is defined there
            source = path.read_text()
            assert re.search(rf"^\s*(def|class) {name.group(1)}\b|^{name.group(1)}\b.*=", source, re.MULTILINE), \
                f"{page.name}:{n}: {text} is not defined in {target}"


def test_troubleshooting_covers_every_exit_code_and_error_class():
    from depotdelivery import errors

    text = (ROOT / "docs" / "troubleshooting.md").read_text()
    for code in errors.EXIT_CODES:
        assert re.search(rf"^#+ .*\bexit {code}\b", text, re.MULTILINE | re.IGNORECASE), f"no section for exit {code}"
    for name in errors.__all__:
        if name != "EXIT_CODES":
            assert f"`{name}`" in text, f"troubleshooting.md does not explain {name}"


# ---- the CLI the pages show is the CLI that exists ---------------------------------------------------

def _subcommand_options() -> dict[str, set[str]]:
    from depotdelivery.cli import _parser

    parser = _parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {name: set(p._option_string_actions) for name, p in sub.choices.items()}


def _commands(text: str) -> list[list[str]]:
    """Every ``depotdelivery <cmd> ...`` invocation in ``text`` (continuation lines joined)."""
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        for m in re.finditer(r"(?<![\w./-])depotdelivery\s+([a-z][a-z-]*)([^|;&)`\n]*)", line):
            try:
                words = shlex.split(m.group(2), comments=True)
            except ValueError:
                words = m.group(2).split()
            out.append([m.group(1), *words])
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_cli_flags_shown_exist(page):
    options = _subcommand_options()
    for cmd, *words in _commands(page.read_text()):
        if cmd not in options:
            continue  # prose ("depotdelivery delivers ...")
        for w in words:
            if w == "--":
                break
            flag = w.split("=", 1)[0]
            if flag.startswith("--"):
                assert flag in options[cmd], f"{page.name}: `depotdelivery {cmd}` has no option {flag}"


def test_parser_reads_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- docs-test: skip (needs Slurm) -->\n```sh\nsrun x\n```\n\n```python\nprint(1)\n```\n")
    blocks = parse_blocks(page)
    assert [(b.lang, b.skip, b.code) for b in blocks] == [("sh", "needs Slurm", "srun x\n"), ("python", None, "print(1)\n")]
    page.write_text("<!-- docs-test: skip -->\n```sh\nx\n```\n")
    with pytest.raises(AssertionError, match="malformed marker"):
        parse_blocks(page)


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.skip and _ELSEWHERE.match(b.skip)], ids=lambda b: b.where)
def test_recipes_run_elsewhere_are_run_there(block):
    """A block marked "runs in TEST as NAME" is taken by TEST (by NAME) and is valid shell."""
    m = _ELSEWHERE.match(block.skip)
    test = ROOT / m.group("test")
    assert test.is_file(), f"{block.where}: {m.group('test')} does not exist"
    assert re.search(rf"""recipe\(["'][\w.-]+["'], ["']{m.group("name")}["']\)""", test.read_text()), \
        f"{block.where}: {m.group('test')} does not run recipe {m.group('name')!r}"
    if block.lang in ("sh", "bash"):
        done = subprocess.run(["bash", "-n", "-c", block.code], capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{block.where}: not valid shell: {done.stderr}"
