"""A pure-Python evaluator of XGBoost's own JSON model format, so that serving never imports xgboost.

The predict Lambda must stay lean (no numpy, scipy, xgboost, pandas or scikit-learn: xgboost-cpu alone is 188 MB
and a cold import costs far more than a prediction). A gradient-boosted tree model is only numbers, so evaluating
it needs nothing beyond the standard library. It also keeps loading a model free of code execution: the model is
parsed as JSON data, never unpickled.

Scope: what ``XGBClassifier(...).save_model("model.json")`` / ``Booster.save_model`` produce for a binary
classifier (objective ``binary:logistic`` or ``reg:logistic``, booster ``gbtree``, numeric splits, scalar
leaves). Anything else (multiclass, dart, gblinear, categorical splits, vector leaves, raw-margin objectives) is
refused with a ``ValueError`` rather than evaluated wrongly.

Fidelity to XGBoost, which computes in float32:
- inputs are float32 in XGBoost; a float64 input that rounds onto a split threshold goes right there, not left.
  Rather than rounding each input at run time, each threshold is moved at load time to the float64 boundary
  that splits the inputs exactly as float32 rounding would (``_float32_boundary``), so the hot loop stays a plain
  comparison;
- ``x < threshold`` goes left, otherwise right; a missing value (NaN or None) follows the node's default
  direction. Infinity is a value, not missing, as in XGBoost with ``missing=np.nan``;
- leaf values are float32. XGBoost's CPU predictor sums them in float32, rounding after every tree; up to
  ``FLOAT64_SUM_MAX_TREES`` trees the margin is summed in float64 instead, exact for the leaves, which leaves
  XGBoost's own rounding as the only difference. Measured on every game of the shared 2009-2023 history (16.6k
  rows, real ties and missing values), its largest effect on a probability is 2.9e-7 for 200 trees of depth 3,
  3.5e-7 for 400 (the retrain grid's largest), 4.7e-7 for 800 of depth 4 and 5.5e-7 for 1000 of depth 6, within
  the 1e-6 the serving contract allows; it grows with the square root of the trees. Larger forests, and leaves
  whose float32 total could overflow to infinity, are summed as XGBoost does (``exact_float32``): matching bit for
  bit or within an ulp, probabilities within ~1e-7, at about 1.5 times the cost (the rounding takes three float
  operations a tree, ``float32_by_splitting``; bench/bench_serving.py measured the 400-tree slate at 1.26 ms that
  way against 0.99 ms summed in float64).

Iterations: a model trained with early stopping keeps every tree it grew plus a ``best_iteration`` attribute.
``XGBClassifier.predict_proba`` (freshly trained or reloaded from JSON) uses only the trees up to and including
``best_iteration``, whereas ``Booster.predict``/``inplace_predict`` use every tree. We match ``predict_proba``,
the call the training code evaluates the model with; pass ``use_best_iteration=False`` to use every tree.

Compiled evaluation, and why it is safe: walking linked tuples costs the interpreter about 0.4 µs a tree
(unpacking nodes, following them, the ``array('f')`` cell), so 400 trees of depth 3 cost 0.16 ms of CPU a
game, and a 15-game slate 2 ms. Once a model is parsed and checked, the same decisions are written out as
one Python function, a statement per tree of nested conditional expressions (``x3 < 0.25``) whose value is
the leaf (followed by the float32 rounding when ``exact_float32``): about 20 µs a game for 400 trees of depth
3, for about 40 ms more CPU when the model loads. The
source is built only from values this module has already parsed and checked, never from text in the file:
feature indices are Python ``int`` objects checked to lie in ``range(num_feature)`` and written as ``x{index}``;
thresholds and leaf values are Python ``float`` objects written with ``repr`` (or ``1e999`` for infinity),
and each literal is matched against a number-only pattern and parsed back to the same float before use. The
function runs with empty builtins and reads no global name. So a crafted ``model.json`` can change
which numbers the function compares, exactly as it can change the tuples the walker follows, but never what
code runs. Trees deeper than ``MAX_COMPILED_DEPTH`` (Python's parser limits nesting) or shared sub-trees (a
DAG, whose source would grow exponentially) keep the walker; both paths give the same bits.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import struct
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_SUPPORTED_OBJECTIVES = frozenset({"binary:logistic", "reg:logistic"})
# A node of the evaluation tree: (feature, threshold or leaf value, left, right, missing). Leaves have feature -1.
_Node = tuple[int, float, Any, Any, Any]
# Deepest tree compiled: each level nests one conditional expression, and CPython's parser refuses 200
# nested parentheses (and recurses in C for each). Deeper trees keep the walker.
MAX_COMPILED_DEPTH = 32
_SPLITTER = 536870913.0  # 2**29 + 1: float64's 53 bits split into float32's 24 and 29 more
# Forests up to this many trees sum their leaves in float64 (the module docstring has the measured differences).
FLOAT64_SUM_MAX_TREES = 1000
# What a number may look like in generated source: repr() of a finite float, or 1e999 for an infinity.
_LITERAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:e[-+][0-9]+)?")


def _float32(x: float) -> float:
    """Round to the nearest float32, as XGBoost stores every threshold, leaf and input."""
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:  # beyond float32's range: XGBoost's cast gives an infinity
        return math.copysign(math.inf, x)


def _float32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def _float32_from_bits(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def _float32_boundary(threshold: float) -> float:
    """The float64 ``b`` such that ``x < b`` exactly when ``float32(x) < threshold``, for every float64 ``x``.

    XGBoost rounds inputs to float32 before comparing them with float32 thresholds. ``float32(x) < t`` holds
    when ``float32(x)`` is at most the float32 just below ``t`` (``p``), i.e. when ``x`` lies below the midpoint
    ``m`` of ``p`` and ``t``, or on it if round-half-to-even sends ``m`` down to ``p``. ``m`` is exact in float64.
    """
    t = _float32(threshold)
    if math.isnan(t):
        raise ValueError("a split threshold is NaN")
    if t == -math.inf:
        return t  # nothing is below -inf
    bits = _float32_bits(t)
    if t == 0.0:
        below_bits = 0x80000001  # the negative float32 closest to zero (both zeros compare equal)
    elif t > 0:
        below_bits = bits - 1
    else:
        below_bits = bits + 1
    below = _float32_from_bits(below_bits)
    midpoint = below + (t - below) / 2 if t != math.inf else below + (below - _float32_from_bits(below_bits - 1)) / 2
    if below_bits & 1 == 0:  # the tie goes down to `below`, so `midpoint` itself is still "less than t"
        return math.nextafter(midpoint, math.inf)
    return midpoint


def _parse_scalar_param(value: Any, name: str) -> float:
    """XGBoost ≥ 2 writes ``base_score`` as a string such as "5E-1", and ≥ 3 as a vector string "[5E-1]"."""
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        parts = [p for p in text[1:-1].split(",") if p.strip()]
        if len(parts) != 1:
            raise ValueError(f"{name} must hold a single value for a binary model, got {text!r}")
        text = parts[0]
    try:
        return float(text)
    except ValueError as exc:
        raise ValueError(f"{name} is not a number: {text!r}") from exc


def _require(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, Mapping) or key not in mapping:
        raise ValueError(f"not an XGBoost JSON model: missing {where}.{key}")
    return mapping[key]


@dataclass(frozen=True, slots=True)
class _TreeArrays:
    """One tree as XGBoost stores it: parallel arrays indexed by node id, each read with the checks a crafted
    file calls for."""

    where: str
    left: Sequence[Any]
    right: Sequence[Any]
    feats: Sequence[Any]
    conds: Sequence[Any]
    default_left: Sequence[Any]

    @classmethod
    def read(cls, tree: Mapping[str, Any], where: str) -> _TreeArrays:
        if any(int(s) != 0 for s in tree.get("split_type", [])) or tree.get("categories_nodes"):
            raise ValueError(f"{where} has categorical splits; only numeric features are supported")
        if int(_require(tree, "tree_param", where).get("size_leaf_vector", "1")) > 1:
            raise ValueError(f"{where} has vector leaves (multi-target); only one output is supported")
        names = ("left_children", "right_children", "split_indices", "split_conditions", "default_left")
        arrays = cls(where, *(_require(tree, name, where) for name in names))
        n = len(arrays.left)
        if n == 0 or any(len(a) != n for a in (arrays.right, arrays.feats, arrays.conds, arrays.default_left)):
            raise ValueError(f"{where} has arrays of different lengths")
        return arrays

    def leaf(self, nid: int) -> _Node | None:
        """The node as a leaf, or None when it splits."""
        if int(self.left[nid]) != -1:
            return None
        if int(self.right[nid]) != -1:
            raise ValueError(f"{self.where} node {nid} has a right child but no left child")
        value = _float32(float(self.conds[nid]))
        if not math.isfinite(value):
            raise ValueError(f"{self.where} leaf {nid} has a non-finite value")
        return (-1, value, None, None, None)

    def children_to_build(self, nid: int, state: list[int]) -> list[int]:
        children = [int(self.left[nid]), int(self.right[nid])]
        for child in children:
            if not 0 <= child < len(self.left):
                raise ValueError(f"{self.where} node {nid} points at a node that does not exist ({child})")
            if state[child] == 1:
                raise ValueError(f"{self.where} is not a tree: node {child} is its own ancestor")
        return [child for child in children if state[child] == 0]

    def split(self, nid: int, built: list[_Node | None], num_feature: int) -> _Node:
        feature = int(self.feats[nid])
        if not 0 <= feature < num_feature:
            raise ValueError(f"{self.where} node {nid} splits on feature {feature}, model has {num_feature}")
        lnode, rnode = built[int(self.left[nid])], built[int(self.right[nid])]
        if lnode is None or rnode is None:
            raise ValueError(f"{self.where} is not a tree at node {nid}")
        missing = lnode if int(self.default_left[nid]) else rnode
        return (feature, _float32_boundary(float(self.conds[nid])), lnode, rnode, missing)


def _build_tree(tree: Mapping[str, Any], index: int, num_feature: int) -> tuple[_Node, float]:
    """Turn one tree's parallel arrays into linked tuples, checking everything a crafted file could get wrong;
    with the largest magnitude of its leaves (what bounds the running total of the margin)."""
    arrays = _TreeArrays.read(tree, f"tree {index}")
    built: list[_Node | None] = [None] * len(arrays.left)
    # Post-order without recursion: a node is built once both its children are; `state` guards against cycles.
    state = [0] * len(arrays.left)  # 0 unseen, 1 on the stack, 2 built
    stack = [0]
    largest = 0.0
    while stack:
        nid = stack[-1]
        leaf = arrays.leaf(nid)
        if leaf is not None:
            built[nid], state[nid] = leaf, 2
            largest = max(largest, abs(leaf[1]))
            stack.pop()
        elif state[nid] == 0:
            state[nid] = 1
            stack.extend(arrays.children_to_build(nid, state))
        else:
            stack.pop()
            if state[nid] != 2:  # a node pushed twice (two parents) is built once: a finite DAG still evaluates
                built[nid], state[nid] = arrays.split(nid, built, num_feature), 2
    root = built[0]
    assert root is not None
    return root, largest


def _learner_params(learner: Mapping[str, Any]) -> tuple[str, int, float]:
    """(objective, number of features, base score) of a binary model with numeric features, or ValueError."""
    objective = _require(_require(learner, "objective", "learner"), "name", "learner.objective")
    if objective not in _SUPPORTED_OBJECTIVES:
        raise ValueError(f"objective {objective!r} is not supported; only {sorted(_SUPPORTED_OBJECTIVES)}")
    params = _require(learner, "learner_model_param", "learner")
    num_class = int(params.get("num_class", "0"))
    num_target = int(params.get("num_target", "1"))
    if num_class > 1 or num_target > 1:
        raise ValueError(f"a multiclass/multi-target model (num_class={num_class}, num_target={num_target})")
    num_feature = int(_require(params, "num_feature", "learner.learner_model_param"))
    if num_feature <= 0:
        raise ValueError("model declares no features")
    base_score = _parse_scalar_param(_require(params, "base_score", "learner_model_param"), "base_score")
    if not 0.0 < base_score < 1.0:
        raise ValueError(f"base_score {base_score} is not a probability in (0, 1)")
    if any(t == "c" for t in learner.get("feature_types") or []):
        raise ValueError("the model has categorical features; only numeric features are supported")
    return objective, num_feature, base_score


def _iteration_indptr(model: Mapping[str, Any], n_trees: int) -> list[int]:
    """Where each boosting iteration's trees start: the model's own index, checked to partition the trees."""
    tree_info = model.get("tree_info", [0] * n_trees)
    if len(tree_info) != n_trees or any(int(g) != 0 for g in tree_info):
        raise ValueError("trees belong to several output groups (multiclass); only binary models are supported")
    indptr = model.get("iteration_indptr")
    if indptr is None:  # before the field existed: every iteration grew num_parallel_tree trees
        per_iteration = int(model.get("gbtree_model_param", {}).get("num_parallel_tree", "1"))
        indptr = list(range(0, n_trees + 1, max(per_iteration, 1)))
    indptr = [int(i) for i in indptr]
    if indptr[0] != 0 or indptr[-1] != n_trees or any(a > b for a, b in itertools.pairwise(indptr)):
        raise ValueError("iteration_indptr does not partition the trees")
    return indptr


class _NotCompilable(Exception):
    """A forest the generated function cannot express within its limits; the walker evaluates it instead."""


def float32_by_splitting(x: float) -> float:
    """``x`` rounded to float32 with float64 arithmetic alone (Veltkamp's splitting), as the compiled function does.

    ``c = x * (2**29 + 1); c - (c - x)`` keeps the 24 leading bits of ``x``, rounded to nearest with ties to even
    in binary (the tests check it against a real float32 cast on every tie they construct). It equals the cast
    for each running total the margin takes: the sum of two float32 values is exact in float64 whenever rounding
    could matter, is a multiple of 2**-149 (so float32's subnormals need no special case), and stays below
    2**127 when ``_compile_margin`` agrees to compile (so it never overflows float32). Three float operations
    instead of an ``array('f')`` store and load, which cost five times as much.
    """
    c = x * _SPLITTER
    return c - (c - x)


def _literal(value: float) -> str:
    """A checked float as source text: the only way a number from a model reaches the generated function."""
    if type(value) is not float or math.isnan(value):
        raise ValueError(f"not a number to compile: {value!r}")
    if math.isinf(value):
        return "1e999" if value > 0 else "-1e999"  # the literal overflows to the infinity itself
    text = repr(value)
    if not _LITERAL.fullmatch(text) or float(text) != value:
        raise ValueError(f"float repr {text!r} is not a plain number")
    return text


def _tree_expression(node: _Node, num_feature: int, depth: int, budget: list[int]) -> str:
    """One tree as nested conditional expressions on ``x{feature}``, whose value is the leaf the row reaches.

    A missing value (NaN) compares false, so the test is written so that false leads the default way:
    ``x < b`` when missing goes right, ``x >= b`` when it goes left. ``budget`` counts the nodes still allowed.
    """
    budget[0] -= 1
    if budget[0] < 0:
        raise _NotCompilable("shared sub-trees")
    feature, value, left, right, missing = node
    if feature < 0:
        return _literal(value)
    if depth >= MAX_COMPILED_DEPTH:
        raise _NotCompilable(f"deeper than {MAX_COMPILED_DEPTH}")
    if type(feature) is not int or not 0 <= feature < num_feature:
        raise ValueError(f"feature index {feature!r} outside the model's {num_feature}")
    if missing is left:
        test, first, second = f"x{feature} >= {_literal(value)}", right, left
    else:
        test, first, second = f"x{feature} < {_literal(value)}", left, right
    a = _tree_expression(first, num_feature, depth + 1, budget)
    b = _tree_expression(second, num_feature, depth + 1, budget)
    return f"({a} if {test} else {b})"


def _compile_margin(
    trees: Sequence[_Node], base_margin: float, num_feature: int, node_count: int, *, exact_float32: bool
) -> Callable[[list[float]], float] | None:
    """One function computing ``walk``'s margin for a row of floats, or None when the forest is not compilable.

    Each tree is one statement, ``t += (leaf if x3 < b else ...)``; with ``exact_float32``, ``t`` is then rounded
    to float32 by ``float32_by_splitting`` inlined. ``node_count`` is how many nodes the file's trees hold:
    emitting more means a node is reached twice. The module docstring says why running the function is safe.
    """
    names = "".join(f"x{i}, " for i in range(num_feature))
    lines = ["def margin(x):", f" {names}= x", f" t = {_literal(base_margin)}"]
    rounding = f"\n c = t * {_literal(_SPLITTER)}\n t = c - (c - t)" if exact_float32 else ""
    budget = [node_count]
    try:
        lines += [f" t += {_tree_expression(tree, num_feature, 0, budget)}{rounding}" for tree in trees]
    except _NotCompilable:
        return None
    lines.append(" return t")
    namespace: dict[str, Any] = {"__builtins__": {}}
    code = compile("\n".join(lines) + "\n", f"<nbaml.forest: {len(trees)} trees>", "exec")
    exec(code, namespace)  # noqa: S102  # nosec B102 - built only from checked ints and floats (FINDINGS F-10)
    return namespace["margin"]


@dataclass(frozen=True, slots=True)
class Forest:
    """A loaded binary-logistic XGBoost tree ensemble, ready to score rows of floats in feature order."""

    trees: tuple[_Node, ...] = field(repr=False)
    base_margin: float
    num_feature: int
    feature_names: tuple[str, ...]
    objective: str
    best_iteration: int | None
    total_trees: int
    # Whether the margin is summed in float32 as XGBoost does, rounding after every tree (else in float64).
    exact_float32: bool = False
    # The same trees as one generated function (None: the walker evaluates them); see the module docstring.
    compiled: Callable[[list[float]], float] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: bytes | str, *, use_best_iteration: bool = True, compile_trees: bool = True) -> Forest:
        """Parse and validate a model saved by ``save_model("*.json")``; raises ValueError for anything else.

        ``use_best_iteration`` (default) uses the trees up to ``best_iteration`` when the model was trained with
        early stopping, as ``XGBClassifier.predict_proba`` does; False uses every tree, as ``Booster.predict``.
        ``compile_trees`` False keeps the walker alone (the tests compare the two).
        """
        if isinstance(data, bytes | bytearray | memoryview):
            try:
                text = bytes(data).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError("not an XGBoost JSON model: not UTF-8 text (UBJ and pickles are refused)") from exc
        else:
            text = data
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not an XGBoost JSON model: invalid JSON ({exc})") from exc
        return cls.from_dict(doc, use_best_iteration=use_best_iteration, compile_trees=compile_trees)

    @classmethod
    def from_dict(cls, doc: Any, *, use_best_iteration: bool = True, compile_trees: bool = True) -> Forest:
        """Validate an already-parsed model document; see ``from_json``."""
        try:
            return cls._from_dict(doc, use_best_iteration, compile_trees)
        except (TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
            # A crafted or truncated file fails as a ValueError like every other refusal, never as a crash.
            raise ValueError(f"not an XGBoost JSON model: malformed ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def _from_dict(cls, doc: Any, use_best_iteration: bool, compile_trees: bool) -> Forest:
        learner = _require(doc, "learner", "model")
        booster = _require(learner, "gradient_booster", "learner")
        booster_name = _require(booster, "name", "learner.gradient_booster")
        if booster_name != "gbtree":
            raise ValueError(f"booster {booster_name!r} is not supported; only 'gbtree' (not dart or gblinear)")
        objective, num_feature, base_score = _learner_params(learner)
        model = _require(booster, "model", "learner.gradient_booster")
        raw_trees = _require(model, "trees", "learner.gradient_booster.model")
        indptr = _iteration_indptr(model, len(raw_trees))
        attributes = learner.get("attributes") or {}
        best_iteration = int(attributes["best_iteration"]) if "best_iteration" in attributes else None
        used = len(raw_trees)
        if use_best_iteration and best_iteration is not None:
            if not 0 <= best_iteration < len(indptr) - 1:
                raise ValueError(f"best_iteration {best_iteration} is outside the model's iterations")
            used = indptr[best_iteration + 1]

        built = [_build_tree(raw_trees[i], i, num_feature) for i in range(used)]
        trees = tuple(root for root, _ in built)
        # For logistic objectives base_score is a probability; boosting starts from its logit.
        base_margin = _float32(math.log(base_score / (1.0 - base_score)))
        node_count = sum(len(raw_trees[i]["left_children"]) for i in range(used))
        # Beyond 2**127 XGBoost's float32 total can round to infinity, and the splitting no longer equals the cast:
        # the walker's float32 cell sums those. Every running total is within the base plus each tree's largest leaf.
        may_overflow = abs(base_margin) + sum(largest for _, largest in built) >= 2.0**127
        exact = len(trees) > FLOAT64_SUM_MAX_TREES or may_overflow
        compiled = None
        if compile_trees and not may_overflow:
            compiled = _compile_margin(trees, base_margin, num_feature, node_count, exact_float32=exact)
        return cls(
            trees=trees,
            base_margin=base_margin,
            num_feature=num_feature,
            feature_names=tuple(str(n) for n in learner.get("feature_names") or []),
            objective=objective,
            best_iteration=best_iteration,
            total_trees=len(raw_trees),
            exact_float32=exact,
            compiled=compiled,
        )

    def margin(self, row: Sequence[float | None]) -> float:
        """The raw score (log-odds) of one row: base margin plus one leaf per tree."""
        if len(row) != self.num_feature:
            raise ValueError(f"row has {len(row)} features, model expects {self.num_feature}")
        x = [math.nan if v is None else float(v) for v in row]
        return self.compiled(x) if self.compiled is not None else self.walk(x)

    def walk(self, x: list[float]) -> float:
        """``margin`` by following the linked nodes: the reference the compiled function must equal bit for bit."""
        # A float32 cell rounds every addition as XGBoost does; a float64 one keeps the leaves' exact sum.
        total = array("f" if self.exact_float32 else "d", (self.base_margin,))
        for node in self.trees:
            feature, threshold, left, right, missing = node
            while feature >= 0:
                value = x[feature]
                if value < threshold:
                    node = left
                elif value >= threshold:
                    node = right
                else:  # NaN compares false both ways
                    node = missing
                feature, threshold, left, right, missing = node
            total[0] += threshold  # a leaf keeps its value in the threshold slot
        return total[0]

    def predict_proba(self, row: Sequence[float | None]) -> float:
        """Probability of class 1 for one row in feature order; None or NaN marks a missing value."""
        return _sigmoid(self.margin(row))

    def predict_proba_floats(self, x: list[float]) -> float:
        """``predict_proba`` of a row that is already a list of ``num_feature`` floats, NaN for missing (what the
        bundle's scaler returns): the serving path, without checking and converting the row again."""
        return _sigmoid(self.compiled(x) if self.compiled is not None else self.walk(x))

    def predict_many(self, rows: Iterable[Sequence[float | None]]) -> list[float]:
        """Probabilities of class 1 for many rows."""
        return [_sigmoid(self.margin(row)) for row in rows]


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)  # avoids overflow of exp(-z) for very negative margins
    return e / (1.0 + e)
