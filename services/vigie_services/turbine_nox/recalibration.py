"""One request's static values and online correction, each turbine's correction kept in Redis.

What the service's ``infer`` computes, :func:`model_outputs`, needs the rows only: the static
values and the corrector's terms of each target (rows of several calls may be joined). What its
``present`` does with them depends on the turbine: :meth:`Recalibration.score` reads the
turbine's correction state once, with one ``GET`` when the call carries no analyser value;
otherwise in the one transaction (:meth:`~vigie.io.asset_state.AssetStateStore.update`) that
learns the call's values and writes the new state. The rows are scored with the state as read,
before learning. The state is one JSON object per turbine: the model version it was learned for
and each target's :class:`~.corrector.Corrector` state; a state learned for another model
version counts as nothing learned. When the store cannot be reached the static values are
served, ``calibration.status`` saying ``unavailable``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from vigie.io.asset_state import AssetStateStore, StateUnavailable
from vigie.io.feedback import MatchResult
from vigie.models.store import LoadedModel
from vigie_services.turbine_nox.corrector import correctors
from vigie_services.turbine_nox.pems import INPUTS, TARGETS, FloatArray, PemsModel

log = logging.getLogger(__name__)

State = dict[str, Any]
#: per target, the analyser values to learn, in order: (row, timestamp key, value)
Observed = dict[str, list[tuple[int, str, float]]]
Arrays = Mapping[str, Any]

UNAVAILABLE = "not learned: correction state unavailable"


def static_key(target: str) -> str:
    return f"{target}_static"


def terms_key(target: str) -> str:
    return f"{target}_terms"


def model_outputs(model: PemsModel, x: FloatArray) -> dict[str, FloatArray]:
    """Per target, the static values (``NOX_static``) and the corrector's terms
    (``NOX_terms``) of rows of :data:`~.pems.INPUTS` values.

    Each row's outputs depend on that row only, in exact arithmetic; in floating point, a linear
    estimator's (``Ridge``, compiled in float32 or joblib) may differ in the last bits with the
    number of rows scored together (ONNX Runtime rounds a one-row call differently from the same
    row among others: up to 7.6e-6 mg/m3 on ~5 % of rows). The service therefore does not let
    the runtime join calls (``rows_independent`` stays false), so that a request's answer never
    depends on what else was in flight; gradient boosting (the model on the real data) is exact
    whatever the batch."""
    static = model.static(x)
    out: dict[str, FloatArray] = {}
    for target in TARGETS:
        out[static_key(target)] = static[target]
        out[terms_key(target)] = model.terms(target, x, static[target])
    return out


def observed(times: Sequence[datetime], measured: Mapping[str, FloatArray]) -> Observed:
    """The analyser values sent with the rows (NaN: none), keyed by their row's timestamp."""
    out: Observed = {}
    for target, values in measured.items():
        rows = np.flatnonzero(~np.isnan(values)).tolist()
        out[target] = [(i, times[i].isoformat(), float(values[i])) for i in rows]
    return out


class Recalibration:
    """The correction of every turbine in the runtime's :class:`AssetStateStore`."""

    def __init__(self) -> None:
        self.correctors = correctors()

    def score(
        self,
        store: AssetStateStore | None,
        asset_id: str,
        version: str,
        outputs: Arrays,
        values: Observed,
    ) -> tuple[dict[str, FloatArray], dict[str, Any]]:
        """The corrected values per target of one call's rows and their ``calibration`` body,
        learning ``values`` (the call's analyser values) after scoring."""
        static = {t: outputs[static_key(t)] for t in TARGETS}
        terms = {t: outputs[terms_key(t)] for t in TARGETS}
        if not any(values.values()):
            state, available = self._read(store, asset_id, version)
            return self._corrected(state, terms, static), self._calibration(state, available)
        scored: dict[str, Any] = {}

        def learn(state: State, serving: State | None) -> None:
            # the rows are scored with the state as read, before learning changes it in place
            # (on a retried transaction, with the last attempt's)
            scored["corrected"] = self._corrected(serving, terms, static)
            scored["calibration"] = self._calibration(serving, True)
            counts = self._learn(state, terms, static, values)
            scored["learning"] = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))

        try:
            self._update(store, asset_id, version, learn)
        except StateUnavailable as exc:
            log.warning("turbine-nox: correction of %s not updated: %s", asset_id, exc)
            return self._corrected(None, terms, static), self._calibration(None, False, UNAVAILABLE)
        calibration = scored["calibration"]
        calibration["learning"] = scored["learning"]
        return scored["corrected"], calibration

    def learn_feedback(
        self,
        store: AssetStateStore | None,
        asset_id: str,
        loaded: LoadedModel,
        target: str,
        matches: list[MatchResult],
    ) -> None:
        """Analyser values of ``target`` from feedback: the static value is recomputed with the
        model in service from the inputs stored with the matched prediction, then learned."""
        rows: list[list[float]] = []
        values: Observed = {target: []}
        for match in matches:
            if match.target != target or not match.predictions:
                continue  # nothing predicted at that hour: no inputs to learn from
            inputs = match.predictions[0].get("inputs")
            if not isinstance(inputs, dict) or any(c not in inputs for c in INPUTS):
                continue
            values[target].append((len(rows), match.timestamp.isoformat(), float(match.value)))
            rows.append([float(inputs[c]) for c in INPUTS])
        if not values[target]:
            return
        x = np.array(rows, dtype=float)
        model: PemsModel = loaded.model
        static = model.static(x)
        terms = {target: model.terms(target, x, static[target])}
        self._update(
            store, asset_id, loaded.version, lambda s, _: self._learn(s, terms, static, values)
        )

    # -- the state ----------------------------------------------------------------------------
    @staticmethod
    def _read(
        store: AssetStateStore | None, asset_id: str, version: str
    ) -> tuple[State | None, bool]:
        """(state learned for ``version``, available?)."""
        if store is None:
            return None, False
        try:
            state = store.get(asset_id)
        except StateUnavailable:
            return None, False
        if state is None or state.get("model_version") != version:
            return None, True  # nothing learned for this model yet
        return state, True

    @staticmethod
    def _update(
        store: AssetStateStore | None,
        asset_id: str,
        version: str,
        learn: Callable[[State, State | None], object],
    ) -> None:
        """Apply ``learn(state, serving_state)`` to the turbine's state atomically: ``state`` is
        what to change (a fresh one when nothing was learned for ``version``), and
        ``serving_state`` the state as read (``None`` when fresh), before any change."""
        if store is None:
            raise StateUnavailable("no correction state store")

        def change(old: State | None) -> State:
            fresh = old is None or old.get("model_version") != version
            state: State = {"model_version": version} if fresh else dict(old or {})
            learn(state, None if fresh else old)
            return state

        store.update(asset_id, change)

    def _learn(
        self, state: State, terms: Arrays, static: Arrays, values: Observed
    ) -> dict[str, int]:
        """Feed each target's ``(row, key, value)`` observations, in order, to its corrector
        (:meth:`~.corrector.Corrector.learn_many`); counts by outcome."""
        counts: dict[str, int] = {}
        for target, rows in values.items():
            if not rows:
                continue
            index = np.array([row for row, _, _ in rows])
            new, outcomes = self.correctors[target].learn_many(
                state.get(target),
                terms[target][index],
                static[target][index],
                [value for _, _, value in rows],
                [key for _, key, _ in rows],
            )
            state[target] = new
            for outcome in outcomes:
                counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    def _corrected(
        self, state: State | None, terms: Arrays, static: Arrays
    ) -> dict[str, FloatArray]:
        """Corrected values per target with ``state`` (``None``: the static values)."""
        return {
            t: c.corrected(state.get(t) if state else None, terms[t], static[t])
            for t, c in self.correctors.items()
        }

    @staticmethod
    def _calibration(
        state: State | None, available: bool, learning: str | None = None
    ) -> dict[str, Any]:
        nox, co = (state or {}).get("NOX") or {}, (state or {}).get("CO") or {}
        status = "unavailable" if not available else "corrected" if state else "static"
        mae = nox.get("mae_corrected")
        static_mae = nox.get("mae_static")
        return {
            "status": status,
            "nox_values_learned": int(nox.get("learned", 0)),
            "co_values_learned": int(co.get("learned", 0)),
            "nox_recent_mae_mg_m3": None if mae is None else round(mae, 3),
            "nox_recent_static_mae_mg_m3": None if static_mae is None else round(static_mae, 3),
            "learning": learning,
        }
