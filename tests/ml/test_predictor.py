import math

import numpy as np
import pytest
import xgboost as xgb

from ml.features import FEATURE_NAMES, feature_matrix
from ml.predictor import Predictor
from ml.synthetic import generate_patches
from ml.train import TrainedModel, train_model
from tests.support.ml import NOW, make_patch

KEYS = {"modelVersion", "confidence", "prediction", "shapValues", "executionTimeMs", "bias"}


@pytest.fixture(scope="module")
def history():
    return generate_patches(2500, seed=21, now=NOW)


@pytest.fixture(scope="module")
def model(history) -> TrainedModel:
    return train_model(history, seed=1)


@pytest.fixture(scope="module")
def predictor(model) -> Predictor:
    return Predictor.from_artifact(model.artifact, version=model.version, feature_names=model.feature_names,
                                   threshold=model.threshold)


def _booster(model: TrainedModel) -> xgb.Booster:
    booster = xgb.Booster()
    booster.load_model(bytearray(model.artifact))
    return booster


def test_prediction_shape_and_confidence_semantics(predictor, model, history):
    for patch in history[:200]:
        out = predictor.predict(patch)
        assert out.keys() == KEYS
        assert out["modelVersion"] == model.version
        assert 0.5 <= out["confidence"] <= 1.0
        p = predictor.probability(patch)
        assert out["prediction"] is (p >= 0.5)
        assert out["confidence"] == pytest.approx(p if out["prediction"] else 1 - p, abs=1e-6)
        assert [s["feature"] for s in out["shapValues"]].count("wargaming_validation_passed") == 1
        assert sorted(s["feature"] for s in out["shapValues"]) == sorted(FEATURE_NAMES)
        mags = [abs(s["value"]) for s in out["shapValues"]]
        assert mags == sorted(mags, reverse=True)
        assert out["executionTimeMs"] > 0
    assert predictor.threshold == model.threshold


def test_shap_values_and_bias_sum_to_the_margin(predictor, model, history):
    patches = history[:300] + [make_patch(), make_patch(wargaming=None, cvss_vector=None, current_version="x")]
    margins = _booster(model).predict(xgb.DMatrix(feature_matrix(patches), feature_names=FEATURE_NAMES), output_margin=True)
    for patch, margin in zip(patches, margins, strict=True):
        out = predictor.predict(patch)
        total = out["bias"] + math.fsum(s["value"] for s in out["shapValues"])
        assert total == pytest.approx(float(margin), abs=1e-4)
        p = 1 / (1 + math.exp(-total))
        assert out["confidence"] == pytest.approx(max(p, 1 - p), abs=1e-6)


def test_saved_and_loaded_model_predicts_identically(model, history):
    x = feature_matrix(history)
    original = _booster(model)
    reloaded = xgb.Booster()
    reloaded.load_model(bytearray(original.save_raw("ubj")))
    dm = xgb.DMatrix(x, feature_names=FEATURE_NAMES)
    np.testing.assert_array_equal(original.predict(dm), reloaded.predict(dm))
    np.testing.assert_array_equal(original.predict(dm, pred_contribs=True), reloaded.predict(dm, pred_contribs=True))
    assert bytes(reloaded.save_raw("ubj")) == model.artifact

    a = Predictor.from_artifact(model.artifact, version="a", feature_names=model.feature_names, threshold=None)
    b = Predictor.from_artifact(bytes(reloaded.save_raw("ubj")), version="a", feature_names=model.feature_names,
                                threshold=None)
    for patch in history[:100]:
        left, right = a.predict(patch), b.predict(patch)
        left.pop("executionTimeMs"), right.pop("executionTimeMs")
        assert left == right
        assert a.probability(patch) == pytest.approx(float(original.predict(
            xgb.DMatrix(feature_matrix([patch]), feature_names=FEATURE_NAMES))[0]), abs=1e-7)


def test_unseen_evidence_predicts(predictor):
    v4 = make_patch(cvss_vector="CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", cvss_score=None,
                    severity="CRITICAL", current_version="release-7", target_version="release-8", version_bump="OTHER",
                    cwe_ids=["NVD-CWE-Other"], wargaming=None)
    out = predictor.predict(v4)
    assert out.keys() == KEYS and 0.5 <= out["confidence"] <= 1.0


def test_a_good_patch_and_a_bad_patch(predictor):
    good = predictor.predict(make_patch())
    bad = predictor.predict(make_patch(
        version_bump="MAJOR", current_version="1.4.2", target_version="4.0.0", patch_size_lines=4000,
        cwe_ids=["CWE-787"], wargaming={"phase1Success": True, "phase2Success": False, "validationPassed": False,
                                        "executionTimeMs": 300_000, "errorMessage": "tests failed", "exploitId": "E"}))
    assert good["prediction"] is True and bad["prediction"] is False
    assert bad["shapValues"][0]["value"] < 0


def test_feature_name_mismatch_is_refused(model):
    with pytest.raises(ValueError, match="does not compute"):
        Predictor.from_artifact(model.artifact, version="x", feature_names=[*FEATURE_NAMES[:-1], "mystery"], threshold=None)
    with pytest.raises(ValueError, match="do not match"):
        Predictor.from_artifact(model.artifact, version="x", feature_names=list(reversed(FEATURE_NAMES)), threshold=None)


async def test_concurrent_explanations_equal_single_predictions(predictor, history):
    import asyncio

    patches = history[:40]
    results = await asyncio.gather(*(predictor.explain(patch) for patch in patches))
    for patch, result in zip(patches, results, strict=True):
        single = predictor.predict(patch)
        assert result["prediction"] == single["prediction"]
        assert result["confidence"] == pytest.approx(single["confidence"], abs=1e-6)
        assert [v["feature"] for v in result["shapValues"][:8]] == [v["feature"] for v in single["shapValues"][:8]]


def _counting_model_calls(predictor: Predictor, monkeypatch) -> list[int]:
    """The rows of each explanation call the predictor makes to its (real) booster."""
    explained: list[int] = []
    predict = predictor._booster.predict

    def counted(dmatrix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if kwargs.get("pred_contribs"):
            explained.append(dmatrix.num_row())
        return predict(dmatrix, *args, **kwargs)

    monkeypatch.setattr(predictor._booster, "predict", counted)
    return explained


def _distinct(patches) -> int:
    return len({row.tobytes() for row in feature_matrix(patches).astype(np.float32)})


def test_each_distinct_row_is_explained_once_and_as_if_alone(model, history, monkeypatch):
    """A burst of the same upgrade: repeated feature rows (missing features included) are explained once, and each
    patch gets exactly the SHAP values the model gives its row."""
    predictor = Predictor.from_artifact(model.artifact, version=model.version, feature_names=model.feature_names, threshold=None)
    explained = _counting_model_calls(predictor, monkeypatch)
    missing = make_patch(wargaming=None, cvss_vector=None, current_version="x")
    patches = history[:6] * 3 + [missing, missing]
    results = predictor.predict_many(patches)
    assert explained == [_distinct(history[:6]) + 1]
    expected = _booster(model).predict(xgb.DMatrix(feature_matrix(patches), feature_names=FEATURE_NAMES), pred_contribs=True)
    for result, contribs in zip(results, expected, strict=True):
        by_name = dict(zip(model.feature_names, contribs[:-1].tolist(), strict=True))
        assert {v["feature"]: v["value"] for v in result["shapValues"]} == pytest.approx(by_name, abs=1e-6)
        assert result["bias"] == pytest.approx(float(contribs[-1]), abs=1e-6)
    assert results[0] is not results[6] and results[0]["shapValues"] is not results[6]["shapValues"]
    predictor.predict_many(history[:6] + history[6:9])  # rows seen before are not explained again
    assert explained == [_distinct(history[:6]) + 1, _distinct(history[6:9])]


def test_remembered_explanations_are_bounded(model, history, monkeypatch):
    import ml.predictor

    monkeypatch.setattr(ml.predictor, "EXPLAINED_ROWS", 10)
    predictor = Predictor.from_artifact(model.artifact, version=model.version, feature_names=model.feature_names, threshold=None)
    explained = _counting_model_calls(predictor, monkeypatch)
    patches = history[:200]
    predictor.predict_many(patches)
    assert len(predictor._explained_rows) == 10
    newest = list(predictor._explained_rows)
    rows = feature_matrix(patches).astype(np.float32)
    recent = [patch for patch, row in zip(patches, rows, strict=True) if row.tobytes() in newest]
    predictor.predict_many(recent)
    assert explained == [_distinct(patches)]  # the ten newest were still known
    assert rows[0].tobytes() not in newest  # explained first, pushed out since: explained again
    predictor.predict_many(history[:1])
    assert explained == [_distinct(patches), 1]
