"""Code tests of the pure-Python XGBoost evaluator: it must agree with xgboost itself, and refuse what it can't do."""

from __future__ import annotations

import json
import math
import struct

import pytest

np = pytest.importorskip("numpy")
xgb = pytest.importorskip("xgboost")

from nbaml.forest import FLOAT64_SUM_MAX_TREES, MAX_COMPILED_DEPTH, Forest, float32_by_splitting  # noqa: E402

TOLERANCE = 1e-6


def _data(seed: int, n_rows: int = 800, n_features: int = 8, missing_rate: float = 0.0):
    """Features with an interaction and noise, so trees of every depth find something to split on."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_rows, n_features))
    y = (x[:, 0] * x[:, 1] + x[:, 2] - 0.5 * x[:, 3] + rng.normal(scale=0.7, size=n_rows) > 0).astype(int)
    if missing_rate:
        x[rng.random(x.shape) < missing_rate] = np.nan
    return x, y


def _classifier(**params):
    """One thread: OpenMP's spinning threads slow down a lot when other jobs share this machine's few cores."""
    return xgb.XGBClassifier(**({"tree_method": "hist", "n_jobs": 1, "random_state": 0} | params))


def _model_json(model) -> bytes:
    return bytes(model.get_booster().save_raw("json"))


def _assert_matches_xgboost(model, forest: Forest, x) -> None:
    expected = model.predict_proba(x)[:, 1]
    actual = np.array(forest.predict_many(x.tolist()))
    assert np.abs(expected - actual).max() < TOLERANCE
    _assert_compiled_equals_walker(forest, x.tolist())


def _assert_compiled_equals_walker(forest: Forest, rows) -> None:
    """The generated function is what serves; the walker is the reference it must equal bit for bit."""
    assert forest.compiled is not None
    for row in rows:
        x = [math.nan if v is None else float(v) for v in row]
        assert forest.compiled(x) == forest.walk(x)


@pytest.mark.parametrize(
    ("max_depth", "n_estimators", "learning_rate", "base_score", "missing_rate"),
    [
        (1, 1, 0.3, None, 0.0),
        (2, 10, 1.0, None, 0.0),
        (3, 100, 0.05, 0.3, 0.1),
        (4, 300, 0.1, None, 0.2),
        (6, 200, 0.3, 0.8, 0.05),
        (8, 500, 0.3, None, 0.1),
    ],
)
def test_given_trained_classifier_when_forest_scores_then_it_equals_xgboost_predict_proba(
    max_depth, n_estimators, learning_rate, base_score, missing_rate
):
    # Given a classifier trained with these settings, NaNs in training and in the rows scored
    x, y = _data(seed=max_depth, missing_rate=missing_rate)
    extra = {} if base_score is None else {"base_score": base_score}
    model = _classifier(n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate, **extra).fit(x, y)
    x_new, _ = _data(seed=100 + max_depth, n_rows=1500, missing_rate=max(missing_rate, 0.05))
    # When it is loaded from XGBoost's JSON
    forest = Forest.from_json(_model_json(model))
    # Then every probability agrees with xgboost's
    assert len(forest.trees) == n_estimators
    _assert_matches_xgboost(model, forest, x_new)


def test_given_a_saved_model_file_when_loaded_from_str_then_same_as_from_bytes(tmp_path):
    # Given the file XGBClassifier.save_model writes (it adds sklearn attributes to the learner)
    x, y = _data(seed=1)
    model = _classifier(n_estimators=20, max_depth=3).fit(x, y)
    path = tmp_path / "model.json"
    model.save_model(path)
    # When loaded as text and as bytes
    from_text = Forest.from_json(path.read_text())
    from_bytes = Forest.from_json(path.read_bytes())
    # Then both score like xgboost
    _assert_matches_xgboost(model, from_text, x)
    assert from_text.predict_many(x[:50].tolist()) == from_bytes.predict_many(x[:50].tolist())


def test_given_custom_base_score_when_no_trees_split_then_probability_is_the_base_score():
    # Given a model whose trees cannot split (gamma blocks every split) and a custom base_score
    x, y = _data(seed=2)
    model = _classifier(n_estimators=3, max_depth=3, base_score=0.25, gamma=1e9, learning_rate=0.0).fit(x, y)
    # When scoring
    forest = Forest.from_json(_model_json(model))
    # Then the probability starts from base_score, i.e. the margin from its logit
    assert forest.base_margin == pytest.approx(math.log(0.25 / 0.75), abs=1e-6)
    assert forest.predict_proba(x[0].tolist()) == pytest.approx(0.25, abs=1e-6)
    _assert_matches_xgboost(model, forest, x)


def test_given_early_stopping_when_loaded_then_best_iteration_is_used_like_predict_proba():
    # Given a model trained with early stopping, so it holds more trees than its best iteration needs
    x, y = _data(seed=3, n_rows=1200, missing_rate=0.05)
    model = _classifier(n_estimators=500, max_depth=4, learning_rate=0.5, early_stopping_rounds=5)
    model.fit(x[:800], y[:800], eval_set=[(x[800:], y[800:])], verbose=False)
    booster = model.get_booster()
    assert json.loads(_model_json(model))["learner"]["attributes"]["best_iteration"] == str(model.best_iteration)
    assert model.best_iteration + 1 < booster.num_boosted_rounds()
    # When loaded by default, and with every tree
    best = Forest.from_json(_model_json(model))
    every = Forest.from_json(_model_json(model), use_best_iteration=False)
    # Then the default matches XGBClassifier.predict_proba and the other Booster.inplace_predict (every tree)
    assert best.best_iteration == model.best_iteration
    assert len(best.trees) == model.best_iteration + 1
    assert len(every.trees) == every.total_trees == booster.num_boosted_rounds()
    _assert_matches_xgboost(model, best, x)
    assert np.abs(booster.inplace_predict(x) - np.array(every.predict_many(x.tolist()))).max() < TOLERANCE
    assert np.abs(model.predict_proba(x)[:, 1] - booster.inplace_predict(x)).max() > 1e-3


def test_given_reg_logistic_objective_when_scored_then_matches_booster_predict():
    # Given a booster trained with reg:logistic (same link as binary:logistic, another loss name)
    x, y = _data(seed=16, missing_rate=0.1)
    params = {"objective": "reg:logistic", "max_depth": 4, "nthread": 1, "base_score": 0.4}
    booster = xgb.train(params, xgb.DMatrix(x, y), num_boost_round=40)
    # When scored
    forest = Forest.from_json(bytes(booster.save_raw("json")))
    # Then as xgboost
    assert forest.objective == "reg:logistic"
    assert np.abs(booster.inplace_predict(x) - np.array(forest.predict_many(x.tolist()))).max() < TOLERANCE


def test_given_num_parallel_tree_when_scored_then_matches_xgboost():
    # Given a boosted random forest: several trees per iteration
    x, y = _data(seed=4, missing_rate=0.1)
    model = _classifier(n_estimators=10, num_parallel_tree=4, subsample=0.6, max_depth=3).fit(x, y)
    # When scored
    forest = Forest.from_json(_model_json(model))
    # Then every tree counts, as in xgboost
    assert len(forest.trees) == 40
    _assert_matches_xgboost(model, forest, x)


def _float32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def _float32_neighbours(value: float) -> list[float]:
    bits = struct.unpack("<I", struct.pack("<f", value))[0]
    return [struct.unpack("<f", struct.pack("<I", b))[0] for b in (bits - 1, bits + 1)]


def test_given_inputs_on_and_around_thresholds_when_scored_then_float32_rounding_matches_xgboost():
    # Given a model and, for every threshold, float64 inputs that are on it, a float32 ulp away, and on the
    # midpoints to its float32 neighbours (where float64 and float32 comparisons disagree); trained with missing
    # values, so that splits send them both ways (the compiled function writes the two kinds differently)
    x, y = _data(seed=5, n_features=4, missing_rate=0.2)
    model = _classifier(n_estimators=30, max_depth=4).fit(x, y)
    doc = json.loads(_model_json(model))
    directions = {d for tree in doc["learner"]["gradient_booster"]["model"]["trees"] for d in tree["default_left"]}
    assert directions == {0, 1}
    probes: list[list[float]] = []
    base = [0.0, 0.0, 0.0, 0.0]
    for tree in doc["learner"]["gradient_booster"]["model"]["trees"]:
        for node, feature in enumerate(tree["split_indices"]):
            if tree["left_children"][node] == -1:
                continue
            t = _float32(tree["split_conditions"][node])
            for nb in _float32_neighbours(t):
                mid = (t + nb) / 2
                for value in (t, nb, mid, math.nextafter(mid, math.inf), math.nextafter(mid, -math.inf)):
                    row = list(base)
                    row[feature] = value
                    probes.append(row)
    probes_array = np.array(probes)
    # When scored by both
    forest = Forest.from_json(_model_json(model))
    # Then they agree on every probe (a float64 comparison would send some probes the other way)
    assert len(probes) > 500
    margins = model.get_booster().inplace_predict(probes_array, predict_type="margin")
    ours = np.array([forest.margin(row) for row in probes])
    assert np.abs(margins - ours).max() < 1e-5
    _assert_matches_xgboost(model, forest, probes_array)


def test_given_none_or_nan_when_scored_then_both_follow_default_direction():
    # Given a model trained with missing values
    x, y = _data(seed=6, missing_rate=0.3)
    model = _classifier(n_estimators=50, max_depth=4).fit(x, y)
    forest = Forest.from_json(_model_json(model))
    row = x[0].tolist()
    row[0] = row[2] = math.nan
    # When missing is written as None or NaN
    with_none = [None if math.isnan(v) else v for v in row]
    # Then the result is the same, and xgboost's
    assert forest.predict_proba(with_none) == forest.predict_proba(row)
    assert forest.predict_proba(row) == pytest.approx(float(model.predict_proba(np.array([row]))[0, 1]), abs=TOLERANCE)


def test_given_infinite_inputs_when_scored_then_treated_as_values_like_xgboost():
    # Given rows holding ±inf (values, not missing, for xgboost with missing=NaN)
    x, y = _data(seed=7)
    model = _classifier(n_estimators=30, max_depth=3).fit(x, y)
    rows = x[:20].copy()
    rows[:10, 0] = np.inf
    rows[10:, 2] = -np.inf
    # When scored, Then as xgboost
    _assert_matches_xgboost(model, Forest.from_json(_model_json(model)), rows)


def test_given_row_of_wrong_length_when_scored_then_value_error():
    x, y = _data(seed=8)
    forest = Forest.from_json(_model_json(_classifier(n_estimators=2).fit(x, y)))
    with pytest.raises(ValueError, match="expects 8"):
        forest.predict_proba([0.0] * 7)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"booster": "gblinear", "tree_method": None}, "gblinear"),
        ({"booster": "dart"}, "dart"),
        ({"objective": "binary:logitraw"}, "objective"),
    ],
)
def test_given_unsupported_model_when_loaded_then_refused(params, message):
    # Given a binary model the evaluator cannot reproduce
    x, y = _data(seed=9)
    model = _classifier(n_estimators=3, **params).fit(x, y)
    # When loaded, Then refused with a reason
    with pytest.raises(ValueError, match=message):
        Forest.from_json(_model_json(model))


def test_given_multiclass_model_when_loaded_then_refused():
    x, _ = _data(seed=10)
    labels = np.random.default_rng(0).integers(0, 3, len(x))
    model = _classifier(n_estimators=3).fit(x, labels)
    with pytest.raises(ValueError, match="multi:softprob"):
        Forest.from_json(_model_json(model))


def test_given_multiclass_trees_under_binary_objective_when_loaded_then_refused():
    # Given a multiclass file edited to claim a binary objective (the tree groups still say multiclass)
    x, _ = _data(seed=10)
    labels = np.random.default_rng(0).integers(0, 3, len(x))
    doc = json.loads(_model_json(_classifier(n_estimators=3).fit(x, labels)))
    doc["learner"]["objective"] = {"name": "binary:logistic", "reg_loss_param": {"scale_pos_weight": "1"}}
    doc["learner"]["learner_model_param"]["num_class"] = "0"
    doc["learner"]["learner_model_param"]["base_score"] = "[5E-1]"
    # When loaded, Then refused
    with pytest.raises(ValueError, match="multiclass"):
        Forest.from_json(json.dumps(doc))


def test_given_regression_model_when_loaded_then_refused():
    x, y = _data(seed=11)
    model = xgb.XGBRegressor(n_estimators=3, n_jobs=1).fit(x, y.astype(float))
    with pytest.raises(ValueError, match="reg:squarederror"):
        Forest.from_json(_model_json(model))


def test_given_categorical_model_when_loaded_then_refused():
    # Given a model trained with a categorical feature
    x, y = _data(seed=12, n_features=4)
    x[:, 1] = np.random.default_rng(0).integers(0, 6, len(x))
    dtrain = xgb.DMatrix(x, y, feature_types=["q", "c", "q", "q"], enable_categorical=True)
    booster = xgb.train(
        {"objective": "binary:logistic", "tree_method": "hist", "nthread": 1}, dtrain, num_boost_round=5
    )
    # When loaded, Then refused
    with pytest.raises(ValueError, match="categorical"):
        Forest.from_json(bytes(booster.save_raw("json")))


def test_given_categorical_split_type_when_loaded_then_refused():
    # Given a numeric model whose first split is relabelled categorical
    x, y = _data(seed=13)
    doc = json.loads(_model_json(_classifier(n_estimators=2, max_depth=2).fit(x, y)))
    doc["learner"]["gradient_booster"]["model"]["trees"][0]["split_type"][0] = 1
    with pytest.raises(ValueError, match="categorical"):
        Forest.from_json(json.dumps(doc))


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x04\x95\x00\x00",  # a pickle header
        b"\xff\xfe not utf-8",
        "{not json",
        "[]",
        json.dumps({"learner": {"gradient_booster": {"name": "gbtree"}}}),
        bytes(_classifier(n_estimators=1).fit([[0.0], [1.0]], [0, 1]).get_booster().save_raw("ubj")),
    ],
    ids=["pickle", "not-utf8", "bad-json", "json-array", "truncated-model", "ubj"],
)
def test_given_bytes_that_are_not_an_xgboost_json_model_when_loaded_then_value_error(data):
    with pytest.raises(ValueError, match="not an XGBoost JSON model"):
        Forest.from_json(data)


def test_given_a_tree_with_a_cycle_when_loaded_then_refused_not_looping():
    # Given a crafted tree whose child points back at the root
    x, y = _data(seed=14)
    doc = json.loads(_model_json(_classifier(n_estimators=1, max_depth=2).fit(x, y)))
    tree = doc["learner"]["gradient_booster"]["model"]["trees"][0]
    tree["left_children"][1] = 0
    # When loaded, Then refused
    with pytest.raises(ValueError, match="ancestor"):
        Forest.from_json(json.dumps(doc))


def _single_tree_doc(left, right, feats, conds, default_left=None) -> dict:
    """A trained one-tree model's document with its tree replaced by these arrays (a crafted file)."""
    x, y = _data(seed=17)
    doc = json.loads(_model_json(_classifier(n_estimators=1, max_depth=1).fit(x, y)))
    tree = doc["learner"]["gradient_booster"]["model"]["trees"][0]
    n = len(left)
    tree.update(
        left_children=left,
        right_children=right,
        split_indices=feats,
        split_conditions=conds,
        default_left=default_left or [0] * n,
        split_type=[0] * n,
        parents=[2147483647] * n,
        base_weights=[0.0] * n,
        loss_changes=[0.0] * n,
        sum_hessian=[1.0] * n,
    )
    tree["tree_param"]["num_nodes"] = str(n)
    return doc


def _chain_doc(depth: int) -> dict:
    """A tree that splits ``depth`` times in a row on feature 0 (node 2k splits, 2k+1 is its left leaf)."""
    left, right, feats, conds = [], [], [], []
    for k in range(depth):
        left += [2 * k + 1, -1]
        right += [2 * k + 2, -1]
        feats += [0, 0]
        conds += [float(k), 0.01 * (k + 1)]
    left.append(-1), right.append(-1), feats.append(0), conds.append(-0.5)
    return _single_tree_doc(left, right, feats, conds)


def test_given_a_tree_deeper_than_the_compiled_limit_when_loaded_then_the_walker_scores_it_alike():
    # Given crafted chains just within and just beyond the depth the generated function nests
    within = Forest.from_json(json.dumps(_chain_doc(MAX_COMPILED_DEPTH)))
    beyond = Forest.from_json(json.dumps(_chain_doc(MAX_COMPILED_DEPTH + 1)))
    # When scored, Then the first is compiled and equals its walker; the second keeps the walker
    pad = [0.0] * 7  # the model the crafted tree went into reads 8 features
    values = [v / 2 for v in range(-2, 2 * MAX_COMPILED_DEPTH + 4)] + [math.nan, math.inf, -math.inf]
    _assert_compiled_equals_walker(within, [[v, *pad] for v in values])
    assert beyond.compiled is None
    assert beyond.margin([MAX_COMPILED_DEPTH + 0.5, *pad]) == pytest.approx(beyond.base_margin - 0.5, abs=1e-6)
    assert beyond.margin([0.5, *pad]) == pytest.approx(beyond.base_margin + 0.02, abs=1e-6)


def test_given_two_splits_sharing_a_child_when_loaded_then_evaluated_by_the_walker():
    # Given a crafted DAG: both children of the root point at the same split (each sub-tree is written out in
    # source, so a chain of such nodes would grow the generated function exponentially)
    doc = _single_tree_doc(left=[1, 2, -1, -1], right=[1, 3, -1, -1], feats=[0, 1, 0, 0], conds=[0.0, 0.0, 0.25, -0.75])
    # When loaded, Then it still evaluates, through the walker
    forest = Forest.from_json(json.dumps(doc))
    assert forest.compiled is None
    pad = [0.0] * 6
    assert forest.margin([1.0, -1.0, *pad]) == pytest.approx(forest.base_margin + 0.25, abs=1e-6)
    assert forest.margin([-1.0, 1.0, *pad]) == pytest.approx(forest.base_margin - 0.75, abs=1e-6)


def test_given_leaves_whose_sum_could_overflow_float32_when_loaded_then_the_walker_scores_them():
    # Given crafted leaves near float32's largest value, so a running total could round to infinity
    doc = _single_tree_doc(left=[1, -1, -1], right=[2, -1, -1], feats=[0, 0, 0], conds=[0.0, 3e38, 3e38])
    trees = doc["learner"]["gradient_booster"]["model"]["trees"]
    trees.append(json.loads(json.dumps(trees[0])) | {"id": 1})
    doc["learner"]["gradient_booster"]["model"]["tree_info"] = [0, 0]
    doc["learner"]["gradient_booster"]["model"]["iteration_indptr"] = [0, 1, 2]
    doc["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"] = "2"
    # When loaded, Then the walker (a real float32 cell) scores it, giving XGBoost's infinity
    forest = Forest.from_json(json.dumps(doc))
    assert forest.compiled is None
    assert forest.margin([1.0] * 8) == math.inf
    assert forest.predict_proba([1.0] * 8) == 1.0


def test_given_a_threshold_written_as_code_when_loaded_then_refused_before_anything_is_generated():
    # Given a crafted split condition that is text rather than a number
    doc = _single_tree_doc(
        left=[1, -1, -1], right=[2, -1, -1], feats=[0, 0, 0], conds=["__import__('os').system('true')", 0.1, 0.2]
    )
    # When loaded, Then refused: the text is parsed as a number or not at all
    with pytest.raises(ValueError, match="could not convert string to float"):
        Forest.from_json(json.dumps(doc))


def test_given_a_compiled_forest_when_inspected_then_it_has_no_builtins_to_call():
    x, y = _data(seed=18)
    forest = Forest.from_json(_model_json(_classifier(n_estimators=5, max_depth=3).fit(x, y)))
    assert forest.compiled is not None
    assert forest.compiled.__globals__["__builtins__"] == {}
    assert set(forest.compiled.__code__.co_names) == set()  # every name it reads is a local (x0.., t, c)


def test_given_float64_values_on_and_near_float32_ties_when_split_then_equal_to_a_float32_cast():
    # Given every kind of value the margin's running total takes: sums of two float32 numbers of near and far
    # magnitudes, and the exact midpoints between float32 neighbours (ties: round half to even), subnormals too
    rng = np.random.default_rng(19)
    values: list[float] = []
    for a, b in rng.normal(scale=[[2.0, 0.05]], size=(20_000, 2)).astype(np.float32).tolist():
        values += [a + b, a - b, a + b * 1e-7, a * 1e-30 + b * 1e-32]
        for nb in _float32_neighbours(a):
            values.append((a + nb) / 2)
    values += [2.0**-149, 3 * 2.0**-149, 2.0**-126 - 2.0**-149, -(2.0**-127) - 2.0**-150 * 2, 0.0, -0.0]
    # When rounded by splitting, Then exactly as struct's float32 cast
    assert all(float32_by_splitting(v) == _float32(v) for v in values)


def test_given_forests_either_side_of_the_float64_limit_when_loaded_then_each_sums_its_way_and_equals_xgboost():
    # Given two models on the same data: one at the largest size summed in float64, one tree more
    x, y = _data(seed=20)
    x_new, _ = _data(seed=21, n_rows=1500, missing_rate=0.05)
    small = _classifier(n_estimators=FLOAT64_SUM_MAX_TREES, max_depth=2, learning_rate=0.05).fit(x, y)
    large = _classifier(n_estimators=FLOAT64_SUM_MAX_TREES + 1, max_depth=2, learning_rate=0.05).fit(x, y)
    # When loaded
    summed, exact = Forest.from_json(_model_json(small)), Forest.from_json(_model_json(large))
    # Then the first sums in float64, the second rounds to float32 after every tree as XGBoost does; both are
    # compiled, equal their walkers bit for bit and agree with xgboost
    assert not summed.exact_float32 and exact.exact_float32
    for forest, model in ((summed, small), (exact, large)):
        _assert_matches_xgboost(model, forest, x_new)
    # ... and the two ways differ where they should: the float32 one's running total rounds after every tree
    rows = x_new.tolist()
    assert all(struct.unpack("<f", struct.pack("<f", m))[0] == m for m in map(exact.compiled, rows))
    assert any(struct.unpack("<f", struct.pack("<f", m))[0] != m for m in map(summed.compiled, rows))
