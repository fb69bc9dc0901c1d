"""The notebook API against moto: the training set from the store, a notebook pipeline registered as a
candidate (never champion), model files through the CLI, and refusals on record."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

import driftline
from driftline import aws as aws_mod
from driftline.features.ingest import Ingestor, IngestTargets, S3Object
from driftline.features.schema import FeatureSetCatalog
from driftline.registry.artifacts import read_verified
from driftline.registry.store import Registry
from driftline.training.dataset import encode_table
from driftline.training.onnx_export import OnnxModel

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "cdk.json"
MODEL = "credit-default"


def _ingest(env: dict[str, str], table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    key = "incoming/credit_default/notebook.parquet"
    resp = aws_mod.client("s3").put_object(Bucket=env["FEATURES_BUCKET"], Key=key, Body=buf.getvalue())
    ingestor = Ingestor(FeatureSetCatalog(env["FEATURE_SETS_DIR"]), IngestTargets.from_env())
    result = ingestor.process(
        S3Object(
            env["FEATURES_BUCKET"],
            key,
            resp.get("VersionId"),
            resp["ETag"],
            len(buf.getvalue()),
            "2026-11-26T00:00:00Z",
        )
    )
    assert result.status == "accepted"


@pytest.fixture
def store(aws: dict[str, str]) -> dict[str, str]:
    from driftline.datasets.credit_default import generate

    _ingest(aws, generate(1500, "2026-01-01", "2026-04-01", seed=5))
    return aws


def _notebook_pipeline(frame: Any) -> tuple[Pipeline, list[str]]:
    cats = ["employment_type", "housing", "region", "card_tier", "channel"]
    numeric = [c for c in frame.columns if c not in (*cats, "customer_id", "event_timestamp", "defaulted", "split")]
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        (
                            "num",
                            Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                            numeric,
                        ),
                        (
                            "cat",
                            Pipeline(
                                [
                                    ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                                    ("onehot", OneHotEncoder(handle_unknown="ignore")),
                                ]
                            ),
                            cats,
                        ),
                    ]
                ),
            ),
            ("model", HistGradientBoostingClassifier(max_iter=40, random_state=0)),
        ]
    )
    return pipe, numeric + cats


def test_load_fit_register_is_a_candidate_with_lineage(store: dict[str, str]) -> None:
    df = driftline.load_training_set(MODEL, config=CONFIG)
    assert set(df["split"]) == {"train", "validation"}
    assert df["employment_type"].dtype == object and df["autopay_enabled"].dtype == bool
    assert df["income"].isna().any() and df["channel"].isna().any()
    assert df.attrs["driftline"]["split"]["validation_rows"] == int((df.split == "validation").sum())
    train = df[df.split == "train"]
    assert train["event_timestamp"].max() < df[df.split == "validation"]["event_timestamp"].min()
    pipe, features = _notebook_pipeline(df)
    pipe.fit(train[features], train["defaulted"])

    registry = Registry.from_env()
    result = driftline.register_model(pipe, model=MODEL, config=CONFIG, code_path=__file__)
    assert result.status == "candidate" and int(result) == result.version
    assert registry.aliases(MODEL).champion is None  # a candidate, never a shortcut to champion
    mv = registry.get_version(MODEL, result.version)
    assert mv.status == "candidate" and mv.algorithm.startswith("imported:Pipeline(ColumnTransformer")
    assert mv.lineage["source"] == "notebook" and mv.lineage["code"]["sha256"]
    assert mv.created_by.startswith("arn:aws:")  # proved by STS, not passed in
    assert mv.lineage["training_set"]["uri"].startswith("s3://")
    assert "profile" in mv.artifacts and "skops" in mv.artifacts
    # What the endpoint serves equals the notebook's predict_proba on the same request rows.
    runtime = OnnxModel(read_verified(mv.artifacts["onnx"]))
    val = df[df.split == "validation"]
    X = encode_table(mv.input_schema, pa.Table.from_pandas(val[features]))
    got = runtime.predict(X)
    assert got.probabilities is not None
    assert np.abs(got.probabilities - pipe.predict_proba(val[features])).max() <= 1e-5


def test_model_files_through_the_cli_and_refusals_on_record(store: dict[str, str], tmp_path: Path) -> None:
    import lightgbm
    import skops.io as sio
    from typer.testing import CliRunner

    from driftline.cli.main import app

    df = driftline.load_training_set(MODEL, config=CONFIG)
    train = df[df.split == "train"]
    pipe, features = _notebook_pipeline(df)
    pipe.fit(train[features], train["defaulted"])
    (tmp_path / "model.skops").write_bytes(sio.dumps(pipe))

    def run(*args: str) -> Any:
        return CliRunner().invoke(
            app,
            ["models", "register", MODEL, *args, "--config", str(CONFIG)],
            catch_exceptions=False,
            env={"COLUMNS": "200"},
        )

    res = run("--artifact", str(tmp_path / "model.skops"))
    assert res.exit_code == 0, res.output
    assert "candidate credit-default v1 registered" in res.output
    from driftline.datasets.credit_default import generate

    pq.write_table(generate(600, "2026-01-01", "2026-04-01", seed=9), tmp_path / "labelled.parquet")
    res = run("--artifact", str(tmp_path / "model.skops"), "--data", str(tmp_path / "labelled.parquet"))
    assert res.exit_code == 0 and "v2 registered" in res.output, res.output  # --data once always crashed

    # A LightGBM booster trained on the encoded matrix (feature-set order, class indices).
    schema = Registry.from_env().get_version(MODEL, 1).input_schema
    X = encode_table(schema, pa.Table.from_pandas(train))
    booster = lightgbm.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1}, lightgbm.Dataset(X, train["defaulted"].to_numpy()), 20
    )
    (tmp_path / "model.txt").write_text(booster.model_to_string())
    res = run("--artifact", str(tmp_path / "model.txt"))
    assert res.exit_code == 0, res.output
    assert "v3 registered" in res.output

    for name, body, message in (
        ("empty.onnx", b"", "the file is empty"),
        ("model.pkl", b"x", "unknown model file kind '.pkl'"),
        ("bad.txt", b"not a model", "not a readable LightGBM text model"),
    ):
        (tmp_path / name).write_bytes(body)
        res = run("--artifact", str(tmp_path / name))
        assert res.exit_code == 2 and message in res.output, res.output

    custom = Pipeline(
        [("log", FunctionTransformer(np.log1p)), ("model", HistGradientBoostingClassifier(max_iter=5))]
    ).fit(train[["income", "balance"]].fillna(0), train["defaulted"])
    with pytest.raises(driftline.ModelRejectedError, match="FunctionTransformer") as info:
        driftline.register_model(custom, model=MODEL, config=CONFIG)
    rejected = Registry.from_env().get_version(MODEL, info.value.version)
    assert rejected.status == "rejected" and "FunctionTransformer" in rejected.reason


def test_unknown_model_and_no_data(aws: dict[str, str]) -> None:
    with pytest.raises(driftline.NotebookError, match="unknown model"):
        driftline.load_training_set("nope", config=CONFIG)
    with pytest.raises(driftline.NotebookError, match="no curated"):
        driftline.load_training_set(MODEL, config=CONFIG)


def test_the_train_function_runs_the_users_trainer(
    store: dict[str, str], platform_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the retraining workflow's train task does: the configured trainer, not the built-in algorithm."""
    from driftline.features.schema import FeatureSetCatalog
    from driftline.training.sources import from_feature_store
    from driftline.training.task import TrainContext, run_training

    monkeypatch.setenv("TRAINERS_DIR", str(ROOT / "examples" / "trainers"))
    models = tuple(
        m.model_copy(update={"trainer": "credit_pipeline:build", "params": {"max_iter": 30}}) if m.name == MODEL else m
        for m in platform_config.models
    )
    ctx = TrainContext(
        config=platform_config.model_copy(update={"models": models}),
        feature_sets=FeatureSetCatalog(store["FEATURE_SETS_DIR"]),
        registry=Registry.from_env(),
        features_bucket=store["FEATURES_BUCKET"],
        artifacts_bucket=store["ARTIFACTS_BUCKET"],
        source=lambda fs, bucket, model, run_id: from_feature_store(fs, bucket, model=model, run_id=run_id),
    )
    out = run_training({"request": {"model": MODEL, "trigger": "drift"}, "execution_id": "arn:x:run-1"}, ctx)
    assert out["status"] == "candidate", out
    mv = Registry.from_env().get_version(MODEL, out["version"])
    assert mv.algorithm == "trainer:credit_pipeline:build" and mv.trigger == "drift"
