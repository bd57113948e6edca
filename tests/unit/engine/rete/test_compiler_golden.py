"""The compiler's output is pinned: any drift in the generated rulesets fails here.

Regenerate after an intended change with ``UPDATE_GOLDEN=1 pytest tests/unit/engine/rete``.
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest

from automations.engine.rete import compiler

from .helpers import trig

GOLDEN = pathlib.Path(__file__).parent / "golden"

CASES = {
    "exact_name_exact_label": [
        trig("t", expect=["prefect.flow-run.Failed"], match={"prefect.resource.id": ["flow-run.1"]})
    ],
    "prefix_glob_and_or_list": [
        trig(
            "t",
            expect=["prefect.flow-run.*"],
            match={"prefect.resource.id": ["prefect.flow-run.*", "x"], "env": ["prod", "stage"]},
        )
    ],
    "negation_exact_and_glob": [
        trig("t", expect=["a.b"], match={"env": ["!prod"]}),
        trig("u", expect=["a.b"], match={"env": ["!dev-*"]}),
    ],
    "question_mark_and_brackets": [
        trig("t", expect=["x"], match={"code": ["a?c"], "zone": ["eu-[ab]"]}),
    ],
    "inner_star_relaxed_to_prefix": [
        trig("t", expect=["x"], match={"file": ["s3://bucket/*.csv"], "other": ["*.json"]}),
    ],
    "any_name_and_after": [
        trig("t", match={"prefect.resource.id": ["r.*"]}),
        trig("u", expect=["b.*"], after=["a.start"], match={"prefect.resource.id": ["r.*"]}),
    ],
    "unsafe_literals_relaxed": [
        trig("t", expect=["x"], match={"q": ['say "hi"', "back\\slash"]}),
    ],
    "empty_match_and_unsatisfiable": [
        trig("t", expect=["x"]),
        trig("u", expect=["x"], match={"env": []}),
        trig("v", expect=["x"], related=[{"prefect.resource.role": ["flow"]}]),
    ],
    "shared_rules_deduplicated": [
        trig("t", expect=["x", "y*"], match={"env": ["prod"]}),
        trig("u", expect=["x"], match={"env": ["prod"]}),
    ],
    "too_many_alternatives": [
        trig("t", expect=["x"], match={"env": [f"e{i}-*" for i in range(12)]}),
    ],
    "literal_labels_first": [
        trig("t", expect=["x"], match={"a.env": ["p*"], "z.id": ["x"]}),
    ],
    "many_labels_truncated": [
        trig("t", expect=["x"], match={f"label.{i:02d}": [f"v{i}"] for i in range(40)}),
    ],
    "weight_bound_relaxes_widest": [
        trig(
            "t",
            expect=["x"],
            match={"a": ["a*", "b*", "c*", "d*"], "b": ["a*", "b*", "c*", "d*", "e*"]},
        ),
    ],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_ruleset_matches_golden(case: str) -> None:
    compiled = compiler.compile_triggers(CASES[case])
    text = json.dumps(compiled, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    path = GOLDEN / f"{case}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden {path.name}: run with UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), (
        f"compiler output drifted for {case}; if intended, regenerate with UPDATE_GOLDEN=1"
    )


def test_every_golden_file_has_a_case() -> None:
    assert {p.stem for p in GOLDEN.glob("*.json")} == set(CASES)


def test_golden_rulesets_are_accepted_by_durable_rules() -> None:
    import durable_rules_engine

    for case in sorted(CASES):
        rules = json.loads((GOLDEN / f"{case}.json").read_text(encoding="utf-8"))["rules"]
        if rules:
            durable_rules_engine.create_ruleset(f"golden_{case}", json.dumps(rules))


def test_the_compiler_is_pure() -> None:
    import subprocess
    import sys

    code = (
        "import sys, automations.engine.rete.compiler\n"
        "assert not any(m.startswith('durable') for m in sys.modules), 'durable imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
