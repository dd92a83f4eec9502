"""Research over GraphQL: the mutations create a model, build its matrix (the same sha as
REST's), queue training and a backtest and a sweep's refusal; the queries read them back; bad
input is an INVALID_PARAMETER error naming the field."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Account
from tests.helpers import graphql
from tests.test_research import SYMBOL, dataset_id  # noqa: F401  (the module's dataset)

CREATE = """mutation Create($config: ModelConfigInput!) {
  createModel(templateId: "zerosigma_default", name: "gql", riskProfile: "Balanced", config: $config) {
    modelId packId riskProfile config lineage { configSha createdBy }
  }
}"""
MATRIX = """mutation Matrix($model: String!, $features: [String!]) {
  buildMatrix(modelId: $model, startDate: "2020-01-01", endDate: "2020-12-31", features: $features) {
    matrixSha rows columns columnNames
  }
}"""
TRAIN = """mutation Train($model: String!, $sha: String!) {
  trainModel(modelId: $model, matrixSha: $sha, config: {epochs: 5}) { jobId status queuePosition version }
}"""
BACKTEST = """mutation Backtest($model: String!) {
  runResearchBacktest(modelId: $model, config: {value: 0.5, splits: 2}) { backtestId status jobId }
}"""
SWEEP = """mutation Sweep($model: String!) {
  runSweep(modelId: $model, sweep: {thresholds: [0.5]}) { sweepId }
}"""
READ = """query Read($model: ID!, $modelId: String) {
  model(id: $model) { modelId trainedVersions lineage { matrixSha } }
  models(modelId: $modelId) { modelId }
  leaderboard(modelId: $modelId) { rank backtestId }
}"""


async def test_research_over_graphql(
    client: httpx.AsyncClient,
    alice: Account,
    dataset_id: str,  # noqa: F811
) -> None:
    token = alice.token
    made = await graphql(client, CREATE, {"config": {"ticker": SYMBOL}}, token=token)
    assert "errors" not in made, made
    model = made["data"]["createModel"]
    assert model["packId"] == "zerosigma" and model["lineage"]["createdBy"] == alice.user_id
    model_id = model["modelId"]

    features = ["close", "RSI", "MACD"]
    built = await graphql(client, MATRIX, {"model": model_id, "features": features}, token=token)
    assert "errors" not in built, built
    matrix = built["data"]["buildMatrix"]
    rest = await client.post(
        "/api/v1/build_matrix",
        headers=alice.headers,
        json={"model_id": model_id, "start_date": "2020-01-01", "end_date": "2020-12-31",
              "features": features},
    )  # fmt: skip
    assert rest.json()["matrix_sha"] == matrix["matrixSha"]

    bad = await graphql(client, MATRIX, {"model": model_id, "features": ["nope"]}, token=token)
    error: dict[str, Any] = bad["errors"][0]
    assert error["extensions"]["code"] == "INVALID_PARAMETER" and "nope" in error["message"]

    queued = await graphql(
        client, TRAIN, {"model": model_id, "sha": matrix["matrixSha"]}, token=token
    )
    assert "errors" not in queued, queued
    job = queued["data"]["trainModel"]
    assert job["status"] == "queued" and job["queuePosition"] >= 1 and job["version"] == 1

    started = await graphql(client, BACKTEST, {"model": model_id}, token=token)
    assert "errors" not in started, started
    assert started["data"]["runResearchBacktest"]["status"] == "running"
    early = await graphql(client, SWEEP, {"model": model_id}, token=token)
    assert "POST /backtest first" in early["errors"][0]["message"]

    read = await graphql(client, READ, {"model": model_id, "modelId": model_id}, token=token)
    assert "errors" not in read, read
    assert read["data"]["model"]["lineage"]["matrixSha"] == matrix["matrixSha"]
    assert [m["modelId"] for m in read["data"]["models"]] == [model_id]
    assert read["data"]["leaderboard"] == []  # nothing completed: no worker ran

    # Cancel what no worker will run here, so a later test's worker never picks it up.
    for job_id in (job["jobId"], started["data"]["runResearchBacktest"]["jobId"]):
        cancel = "mutation Cancel($id: ID!) { cancelJob(id: $id) { status } }"
        cancelled = await graphql(client, cancel, {"id": job_id}, token=token)
        assert cancelled["data"]["cancelJob"]["status"] == "CANCELLED", cancelled
    gone = await client.get(f"/api/v1/backtest/{started['data']['runResearchBacktest']['backtestId']}",
                            headers=alice.headers)  # fmt: skip
    assert gone.json()["status"] == "cancelled"  # the job's end closed its backtest
