"""``POST /v1/predict`` as a pipeline: validate -> call -> summarize -> respond, then the level
event and the log records.

:meth:`Predictor.handle` is the HTTP side (token, body bytes, ``Idempotency-Key``);
:meth:`Predictor.predict` the rest, one step a method so each can be tested and replaced.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from vigie.auth.authenticator import Authenticator
from vigie.contract.batch import Batch, Scores
from vigie.contract.ids import hex_run, new_hex
from vigie.contract.level_event import LevelEvent
from vigie.contract.levels import Level
from vigie.contract.service import MeasurementBase
from vigie.io.idempotency import StoredResponse
from vigie.io.prediction_log import ForecastPoint, PredictionRecord
from vigie.obs.logs import current_request_id
from vigie.serve.runtime import Runtime
from vigie.serve.scoring import score_call


class Predictor:
    """Serves one service's predictions with a live :class:`Runtime`."""

    def __init__(
        self, runtime: Runtime, authenticator: Authenticator, request_model: type[BaseModel]
    ) -> None:
        self.rt = runtime
        self.service = runtime.service
        self.name = runtime.service.name
        self.auth = authenticator
        self.scope = f"predict:{self.name}"
        self.request_model = request_model
        # The prediction log keeps each prediction's measurement: one serializer call a request.
        self._dump_rows: TypeAdapter[list[MeasurementBase]] = TypeAdapter(
            list[runtime.service.Measurement]  # type: ignore[name-defined]
        )
        self._by_level = runtime.metrics.predictions

    # -- HTTP -------------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        principal = await self.auth.authorize(request, self.scope)
        raw = await request.body()
        body = self.validate(raw)
        # RequestContext's id: the one of the access line and of the X-Request-ID it answers.
        request_id = current_request_id() or new_hex()
        key = request.headers.get("idempotency-key")
        if key is None:
            return _json(await self.predict(body, request_id))
        idempotency = self.rt.idempotency
        outcome = await idempotency.begin(principal.sub, key, raw)
        if isinstance(outcome, StoredResponse):
            self.rt.metrics.idempotent_replays.labels(self.name).inc()
            return Response(
                outcome.body,
                status_code=outcome.status,
                media_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        try:
            payload = await self.predict(body, request_id)
        except BaseException:
            await idempotency.abandon(outcome)
            raise
        await idempotency.complete(outcome, 200, payload)
        return _json(payload)

    def validate(self, raw: bytes) -> Any:
        """The body validated straight from its JSON bytes (one pass, in pydantic's core),
        errors reported as FastAPI reports a body's: 422 (400 for malformed JSON) naming each
        field."""
        try:
            return self.request_model.model_validate_json(raw)
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            raise RequestValidationError(errors) from None

    # -- the pipeline -----------------------------------------------------------------------
    async def predict(self, body: Any, request_id: str) -> bytes:
        """Score a validated body; publish its level event and log its predictions."""
        loaded = self.rt.model.current()
        # Before anything is computed or published: a 503 here means nothing happened.
        settings = self.rt.settings
        await self.rt.prediction_log.room(
            settings.prediction_log_max_backlog, settings.prediction_log_wait_s
        )
        batch: Batch[Any] = Batch(body.asset_id, body.measurements)
        scores = await self.call(batch)
        version = loaded.version
        times = self.times(batch, scores)
        items = [
            {"timestamp": t, "level": lvl, **item}
            for t, lvl, item in zip(times, scores.levels, scores.items, strict=True)
        ]
        response: dict[str, Any] = {
            "service": self.name,
            "model_version": version,
            "asset_id": batch.asset_id,
            "request_id": request_id,
            "level": Level.highest(scores.levels),
            "predictions": items,
        }
        if scores.summary is not None:
            response["summary"] = scores.summary.body
        await self.rt.publisher.publish(self.level_event(batch, scores, times, version, request_id))
        self.rt.prediction_log.submit(self.log_records(batch, scores, items, version, request_id))
        for level, count in Counter(scores.levels).items():
            self._by_level.labels(self.name, level).inc(count)
        return orjson.dumps(response, option=orjson.OPT_UTC_Z)

    async def call(self, batch: Batch[Any]) -> Scores:
        """The service's scoring, inline, on the model thread or micro-batched."""
        rows = len(batch)
        batcher = self.rt.micro_batcher
        if batcher is not None and rows < batcher.max_rows:
            scores: Scores = await batcher.run(rows, batch)
            return scores
        return await self.rt.model_calls.run(rows, score_call, self.service, batch)

    @staticmethod
    def times(batch: Batch[Any], scores: Scores) -> Sequence[datetime]:
        """What each prediction is about: the service's, else its input row's timestamp."""
        if scores.times is not None:
            return scores.times
        if scores.rows is not None:
            return [batch.times[r] for r in scores.rows]
        return batch.times

    def level_event(
        self,
        batch: Batch[Any],
        scores: Scores,
        times: Sequence[datetime],
        version: str,
        request_id: str,
    ) -> LevelEvent:
        """One event per call, about its worst prediction (the latest among equals), so its
        level is the response's level; a batch summary, when given, explains it instead."""
        levels = scores.levels
        worst = max(range(len(levels)), key=lambda i: (levels[i].rank, times[i]))
        summary = scores.summary
        observed_at = times[worst]
        if summary is not None and summary.detail is not None:
            detail = summary.detail
            observed_at = summary.timestamp or observed_at
        else:
            detail = scores.explain(worst)
        return LevelEvent.new(
            service=self.name,
            asset_id=batch.asset_id,
            level=levels[worst],
            observed_at=observed_at,
            value=detail.value,
            unit=detail.unit,
            threshold=detail.threshold,
            model_version=version,
            message=detail.message,
            request_id=request_id,
        )

    def log_records(
        self,
        batch: Batch[Any],
        scores: Scores,
        items: list[dict[str, Any]],
        version: str,
        request_id: str,
    ) -> list[PredictionRecord]:
        """What the prediction log keeps: each prediction with its row's measurement and its
        forecast points."""
        rows = scores.rows if scores.rows is not None else range(len(items))
        measured = self._dump_rows.dump_python(
            [batch.rows[r] for r in rows], mode="json", exclude_none=True
        )
        points: list[list[ForecastPoint]] = [[] for _ in items]
        p = scores.points
        if p is not None:
            for row, horizon, when, value in zip(p.row, p.horizon, p.time, p.value, strict=True):
                points[row].append(ForecastPoint(p.target, horizon, when, value))
        return [
            PredictionRecord(
                prediction_id=row_id,
                asset_id=batch.asset_id,
                timestamp=item["timestamp"],
                request_id=request_id,
                model_version=version,
                level=item["level"],
                measurement=measurement,
                prediction=item,
                points=row_points,
            )
            for row_id, item, measurement, row_points in zip(
                hex_run(len(items)), items, measured, points, strict=True
            )
        ]


def _json(payload: bytes) -> Response:
    return Response(payload, media_type="application/json")
