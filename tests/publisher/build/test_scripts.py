"""The Julia scripts ``build`` generates are parsed with a real Julia grammar (tree-sitter-julia):
a syntax error cannot ship. The grammar marks what it cannot parse with ERROR nodes and what it
had to invent with MISSING nodes; neither may appear."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.publisher.build import scripts
from depotdelivery.synth.julia_standin import _constants

tree_sitter = pytest.importorskip("tree_sitter", reason="the test extra installs tree-sitter")
tree_sitter_julia = pytest.importorskip("tree_sitter_julia", reason="the test extra installs tree-sitter-julia")
PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_julia.language()))


def problems(source: str) -> list[str]:
    """Every ERROR or MISSING node, with its position."""
    out, stack = [], [PARSER.parse(source.encode()).root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            line, col = node.start_point
            out.append(f"{'MISSING' if node.is_missing else 'ERROR'} {node.type} at {line + 1}:{col + 1}")
        stack.extend(node.children)
    return out


def test_the_grammar_finds_errors():
    """The check can fail: broken Julia is reported."""
    assert problems('create_sysimage(; cpu_target="x"')
    assert problems('x = "unterminated')
    assert problems("for env in ENVS\n  Pkg.activate(env)\n")  # no `end`
    assert not problems('using Pkg\nPkg.instantiate(; allow_autoprecomp=false)\n')


PATHS = ["/cvmfs/sw.example.org/depots/releases/hep/2026.11/depot/environments/hep", "/tmp/a b/$x/\"q\"/\\/é"]


@pytest.mark.parametrize("path", PATHS)
def test_every_generated_script_parses(path):
    generated = {
        "probe": scripts.probe_script(path + "/probe.toml"),
        "instantiate": scripts.instantiate_script([path, path + "2"]),
        "sysimage (packages)": scripts.sysimage_script(path, path + "/sys.so", "generic;haswell,-rdrnd,base(0)",
                                                       ["UnROOT", "FHist"]),
        "sysimage (project default)": scripts.sysimage_script(path, path + "/sys.so", "znver4,-rdrnd", None),
        "precompile": scripts.precompile_script([path]),
        "modules": scripts.modules_script(path + "/sysimage-modules.json"),
    }
    for step, source in generated.items():
        assert problems(source) == [], f"{step}:\n{source}"
        assert source.startswith(scripts.HEADER)


def _literal_value(source: str) -> str:
    """The text of the one string literal in ``x = <literal>``, as the grammar splits it."""
    root = PARSER.parse(source.encode()).root_node
    literal = root.children[0].children[-1]
    assert literal.type == "string_literal", str(root)
    parts = []
    for child in literal.children:
        raw = child.text.decode()
        if child.type == "escape_sequence" and raw[1] in "xu":
            # Julia reads at most 2 (\\x) or 4 (\\u) hex digits; the grammar's token may be longer
            width = 2 if raw[1] == "x" else 4
            parts.append(chr(int(raw[2:2 + width], 16)) + raw[2 + width:])
        elif child.type == "escape_sequence":
            parts.append(raw[1:])
        elif child.type == "content":
            parts.append(raw)
        else:
            assert child.type == '"', f"unexpected {child.type} (an interpolation?) in {source!r}"
    return "".join(parts)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_string_literals_parse_and_round_trip(text):
    """Any path or target string becomes one literal with no interpolation; the grammar and the
    stand-in both read back exactly ``text``."""
    source = f"x = {scripts.jl_string(text)}\n"
    assert problems(source) == []
    assert _literal_value(source) == text
    assert _constants(f"const X = {scripts.jl_string(text)}\n") == {"X": text}
