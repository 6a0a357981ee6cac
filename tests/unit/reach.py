"""Counted reach: how often a strategy produces the input a property is about.

A property test proves little if its generator never reaches the branch it
is about (issue 19: an arbitrary-bytes pool test that never produced one
whole record in 200 examples). `shares(strategy, {name: predicate})` draws
examples the way the property does and returns, for each predicate, the
fraction of examples that satisfy it, so that a test can assert it.
"""

from typing import Callable, Dict

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st


def shares(strategy: st.SearchStrategy, predicates: Dict[str, Callable], examples: int = 200) -> Dict[str, float]:
    hits = dict.fromkeys(predicates, 0)
    total = [0]

    @settings(max_examples=examples, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def draw(example):
        total[0] += 1
        for name, predicate in predicates.items():
            hits[name] += bool(predicate(example))

    draw()
    return {name: hits[name] / max(total[0], 1) for name in predicates}
