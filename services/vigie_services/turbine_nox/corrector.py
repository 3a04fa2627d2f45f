"""Online recalibration of one target of the static model (:class:`Corrector`).

The emissions drift strongly from year to year (NOx ≈ 68-70 mg/m3 in 2011-2013, ≈ 60 in 2014)
while the inputs do not, so a static model is biased on any later period. As a real PEMS is
recalibrated against reference analysers, every analyser value (``POST /v1/feedback`` or ``NOX`` /
``CO`` sent with the measurements) updates a per-asset, per-target correction:

* method: exponentially weighted ridge regression of the residual ``measured - static`` on
  ``z = [1, (static - mean) / std, standardised inputs]`` (11 terms). The state is the weighted
  normal equations ``A = sum w_i z_i z_i^T`` and ``b = sum w_i z_i r_i`` with ``w_i =
  FORGETTING^age``; the coefficients solve ``(A + R) theta = b`` with ``R = diag(INTERCEPT_RIDGE,
  RIDGE, ..., RIDGE)`` (``INTERCEPT_RIDGE`` = 2, ``RIDGE`` = 10: the first value moves the
  correction by a third of its residual, 24 values by ~90 %). The ridge term keeps it stable
  when the turbine sits at one operating point (plain recursive least squares with forgetting
  blows up there), and shrinks the correction towards 0 (= the static model) while little is
  known.
* memory: ``FORGETTING = 0.99`` per accepted sample, a half-life of ``ln 0.5 / ln 0.99`` ≈ 69
  samples (about 3 days of hourly values); after ~300 samples an old value weighs < 5 %.
* corrected prediction = ``static + clip(theta . z, -max_correction, +max_correction)``
  (``max_correction`` 30 mg/m3 for NOx, 10 mg/m3 for CO), never below 0.
* faulty analyser: (1) an observation for a timestamp already learned is ignored (re-sent
  feedback counts once); (2) a *stuck* analyser: a value identical to the previous one
  (``STUCK_REPEATS`` = 2 equal readings in a row) is ignored until it changes; (3) an *outlier*:
  after ``WARMUP`` accepted values, a value whose innovation ``|measured - corrected|`` exceeds
  ``REJECT_K`` = 5 times the robust scale (exponentially weighted mean absolute innovation of
  the accepted values, floored at ``scale_floor``) is ignored, unless ``MAX_REJECT_RUN`` = 12
  values in a row were rejected: a sustained shift is then taken as real, learned, and the scale
  widened to it (it shrinks back at ``SCALE_RATE`` per value).
* the state is a small JSON object (kept in Redis by the service, shared by every worker, see
  :mod:`.recalibration`); the same class replays the data offline in :func:`.training.replay`,
  so serving and evaluation cannot differ. The service learns a request's values with
  :meth:`Corrector.learn_many`, which gives the state (bit for bit) and outcomes of
  :meth:`Corrector.learn` value by value, with the solves of consecutive accepted values batched
  into one ``np.linalg.solve`` call.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vigie_services.turbine_nox.pems import INPUTS, TARGETS, FloatArray

FORGETTING = 0.99
RIDGE = 10.0
INTERCEPT_RIDGE = 2.0
REJECT_K = 5.0
WARMUP = 24
MAX_REJECT_RUN = 12
STUCK_REPEATS = 2
SCALE_RATE = 0.05  # weight of a new |innovation| in the robust scale
MAE_RATE = 0.02  # weight of a new |error| in the live MAE (half-life ~ 34 values)
SEEN_KEEP = 96  # timestamps remembered to ignore re-sent observations
LEARN_CHUNK = 64  # values learned per batched solve (Corrector.learn_many)
MAX_CORRECTION = {"NOX": 30.0, "CO": 10.0}
SCALE_FLOOR = {"NOX": 1.0, "CO": 0.2}


@dataclass(frozen=True)
class Corrector:
    """Online recalibration of one target; the state is a JSON-ready dict (see module doc)."""

    target: str
    forgetting: float = FORGETTING
    ridge: float = RIDGE
    intercept_ridge: float = INTERCEPT_RIDGE
    reject_k: float = REJECT_K
    warmup: int = WARMUP
    max_reject_run: int = MAX_REJECT_RUN
    stuck_repeats: int = STUCK_REPEATS
    max_correction: float = 30.0
    scale_floor: float = 1.0

    @classmethod
    def for_target(cls, target: str) -> Corrector:
        return cls(target, max_correction=MAX_CORRECTION[target], scale_floor=SCALE_FLOOR[target])

    @property
    def half_life(self) -> float:
        return math.log(0.5) / math.log(self.forgetting)

    def describe(self) -> dict[str, object]:
        return {
            "method": "exponentially weighted ridge regression of (measured - static) on "
            "[1, standardised static prediction, standardised inputs]",
            "forgetting": self.forgetting,
            "half_life_samples": round(self.half_life, 1),
            "ridge": self.ridge,
            "intercept_ridge": self.intercept_ridge,
            "max_correction_mg_m3": self.max_correction,
            "outlier_rule": f"ignore |measured - corrected| > {self.reject_k} x robust scale "
            f"(floor {self.scale_floor} mg/m3) after {self.warmup} values, unless "
            f"{self.max_reject_run} in a row",
            "stuck_rule": f"ignore a value equal to the previous one ({self.stuck_repeats} equal "
            "readings in a row) until it changes",
            "duplicates": "an observation for an already learned timestamp is ignored",
        }

    def empty(self) -> dict[str, Any]:
        k = 2 + len(INPUTS)
        return {
            "A": np.zeros((k, k)).tolist(),
            "b": [0.0] * k,
            "theta": [0.0] * k,
            "learned": 0,
            "ignored": {"duplicate": 0, "stuck": 0, "outlier": 0},
            "scale": None,
            "reject_run": 0,
            "last_value": None,
            "repeats": 0,
            "seen": [],
            "mae_corrected": None,
            "mae_static": None,
        }

    def correction(self, state: dict[str, Any] | None, z: FloatArray) -> FloatArray:
        """Corrections (mg/m3) for rows of terms ``z``; 0 without state."""
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        if not state:
            return np.zeros(len(z))
        raw = z @ np.asarray(state["theta"], dtype=np.float64)
        return np.clip(raw, -self.max_correction, self.max_correction)

    def corrected(self, state: dict[str, Any] | None, z: FloatArray, static: FloatArray) -> Any:
        return np.clip(np.asarray(static) + self.correction(state, z), 0.0, None)

    def learn(
        self,
        state: dict[str, Any] | None,
        z: FloatArray,
        static: float,
        measured: float,
        key: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        """Learn one analyser value; returns the new state and ``learned`` or why it was ignored
        (``duplicate``, ``stuck``, ``outlier``). ``state`` is modified in place when given."""
        s = state if state else self.empty()
        if key is not None:
            if key in s["seen"]:
                return self._ignored(s, "duplicate")
            s["seen"] = [*s["seen"], key][-SEEN_KEEP:]
        if s["last_value"] is not None and measured == s["last_value"]:
            s["repeats"] += 1
        else:
            s["last_value"], s["repeats"] = float(measured), 1
        if s["repeats"] >= self.stuck_repeats:
            return self._ignored(s, "stuck")
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        corrected = float(self.corrected(s, z[None, :], np.array([static]))[0])
        innovation = measured - corrected
        scale = max(s["scale"] or 0.0, self.scale_floor)
        if s["learned"] >= self.warmup and abs(innovation) > self.reject_k * scale:
            s["reject_run"] += 1
            if s["reject_run"] < self.max_reject_run:
                return self._ignored(s, "outlier")
            s["scale"] = abs(innovation)  # a sustained shift: widen the gate, it shrinks back
        s["reject_run"] = 0
        a = self.forgetting * np.asarray(s["A"]) + np.outer(z, z)
        b = self.forgetting * np.asarray(s["b"]) + z * (measured - static)
        penalty = np.full(len(z), self.ridge)
        penalty[0] = self.intercept_ridge
        s["A"], s["b"] = a.tolist(), b.tolist()
        s["theta"] = np.linalg.solve(a + np.diag(penalty), b).tolist()
        s["scale"] = abs(innovation) if s["scale"] is None else (
            (1 - SCALE_RATE) * s["scale"] + SCALE_RATE * abs(innovation)
        )  # fmt: skip
        s["mae_corrected"] = _ew(s["mae_corrected"], abs(innovation))
        s["mae_static"] = _ew(s["mae_static"], abs(measured - static))
        s["learned"] += 1
        return s, "learned"

    def learn_many(
        self,
        state: dict[str, Any] | None,
        z: FloatArray,
        static: npt.ArrayLike,
        measured: npt.ArrayLike,
        keys: list[str] | None = None,
    ) -> tuple[dict[str, Any], list[str]]:
        """Learn analyser values in order: row ``i`` of ``z`` (terms), ``static``, ``measured``
        and ``keys``. The same new state (bit for bit) and outcomes as :meth:`learn` called on
        each value in turn, without one ``np.linalg.solve`` per value:

        * the checks that do not depend on the correction (re-sent timestamp, stuck analyser)
          run first, in one pass;
        * the values that reach the outlier gate are learned in runs of up to
          :data:`LEARN_CHUNK`: the normal equations of each value of a run (assuming every
          one is accepted) are stacked, solved in one batched ``np.linalg.solve``, and the gate
          is checked in order with the coefficients before each value; an outlier ends the run
          (the values after it are redone from the state before it, in shorter runs at first).

        ``state`` is modified in place when given (as :meth:`learn` does)."""
        s = state if state else self.empty()
        z = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
        static_values = np.asarray(static, dtype=np.float64).reshape(-1).tolist()
        values = np.asarray(measured, dtype=np.float64).reshape(-1).tolist()
        outcomes = [""] * len(values)
        ignored: dict[str, int] = s["ignored"]

        # 1. re-sent timestamps and a stuck analyser (they do not depend on the correction)
        gate: list[int] = []  # rows that reach the outlier gate, in order
        seen = s["seen"]  # unique keys, oldest first (learn never appends a known one)
        window, known = collections.deque(seen, maxlen=SEEN_KEEP), set(seen)
        last_value, repeats = s["last_value"], s["repeats"]
        for i, value in enumerate(values):
            key = None if keys is None else keys[i]
            if key is not None:
                if key in known:
                    ignored["duplicate"] = ignored.get("duplicate", 0) + 1
                    outcomes[i] = "duplicate"
                    continue
                if len(window) == SEEN_KEEP:
                    known.discard(window[0])
                window.append(key)
                known.add(key)
            if last_value is not None and value == last_value:
                repeats += 1
            else:
                last_value, repeats = value, 1
            if repeats >= self.stuck_repeats:
                ignored["stuck"] = ignored.get("stuck", 0) + 1
                outcomes[i] = "stuck"
                continue
            gate.append(i)
        if len(window) != len(seen) or (window and window[-1] != seen[-1]):
            s["seen"] = list(window)
        s["last_value"], s["repeats"] = last_value, repeats
        if not gate:
            return s, outcomes

        # 2. the outlier gate and the ridge regression, in runs of stacked normal equations
        k = z.shape[1]
        penalty = np.diag(np.full(k, self.ridge))
        penalty[0, 0] = self.intercept_ridge
        system = np.column_stack([np.asarray(s["A"], dtype=np.float64), s["b"]])  # [A | b]
        theta = np.asarray(s["theta"], dtype=np.float64)
        rows = np.array(gate)
        zg = z[rows]
        static_gate = [static_values[i] for i in gate]
        value_gate = [values[i] for i in gate]
        residual = np.array([v - p for v, p in zip(value_gate, static_gate, strict=True)])
        # each gated value's [z z^T | z (measured - static)], as learn computes them
        terms = np.concatenate(
            [zg[:, :, None] * zg[:, None, :], (zg * residual[:, None])[:, :, None]], axis=2
        )
        scale, reject_run, learned = s["scale"], s["reject_run"], s["learned"]
        mae_corrected, mae_static = s["mae_corrected"], s["mae_static"]
        floor, limit, warmup = self.scale_floor, self.max_correction, self.warmup
        learned_any = False
        start, chunk = 0, LEARN_CHUNK
        while start < len(gate):
            end = min(start + chunk, len(gate))
            run = end - start
            stacked = np.empty((run, k, k + 1))
            previous = system
            for j in range(run):  # the forgetting recurrence, in learn's order of operations
                np.multiply(self.forgetting, previous, out=stacked[j])
                np.add(stacked[j], terms[start + j], out=stacked[j])
                previous = stacked[j]
            thetas = np.linalg.solve(stacked[:, :, :k] + penalty, stacked[:, :, k:])[:, :, 0]
            before = np.concatenate([theta[None, :], thetas[:-1]])
            raw = np.matmul(zg[start:end, None, :], before[:, :, None])[:, 0, 0].tolist()
            accepted = run
            for j in range(run):
                g = start + j
                # learn's corrected value (np.clip of float64: min/max of the same floats)
                corrected = max(static_gate[g] + min(max(raw[j], -limit), limit), 0.0)
                innovation = value_gate[g] - corrected
                gate_scale = max(scale or 0.0, floor)
                if learned >= warmup and abs(innovation) > self.reject_k * gate_scale:
                    reject_run += 1
                    if reject_run < self.max_reject_run:
                        ignored["outlier"] = ignored.get("outlier", 0) + 1
                        outcomes[gate[g]] = "outlier"
                        accepted = j
                        break
                    scale = abs(innovation)  # a sustained shift: see learn
                reject_run = 0
                scale = abs(innovation) if scale is None else (
                    (1 - SCALE_RATE) * scale + SCALE_RATE * abs(innovation)
                )  # fmt: skip
                mae_corrected = _ew(mae_corrected, abs(innovation))
                mae_static = _ew(mae_static, abs(value_gate[g] - static_gate[g]))
                learned += 1
                outcomes[gate[g]] = "learned"
            if accepted:
                system, theta = stacked[accepted - 1], thetas[accepted - 1]
                learned_any = True
            start += accepted + (accepted < run)  # past the outlier, if the run stopped at one
            # after an outlier more may follow (a shift): shorter runs for a while
            chunk = min(2 * chunk, LEARN_CHUNK) if accepted == run else 4
        s["scale"], s["reject_run"], s["learned"] = scale, reject_run, learned
        s["mae_corrected"], s["mae_static"] = mae_corrected, mae_static
        if learned_any:
            s["A"], s["b"] = system[:, :k].tolist(), system[:, k].tolist()
            s["theta"] = theta.tolist()
        return s, outcomes

    @staticmethod
    def _ignored(s: dict[str, Any], why: str) -> tuple[dict[str, Any], str]:
        s["ignored"][why] = s["ignored"].get(why, 0) + 1
        return s, why


def _ew(old: float | None, new: float) -> float:
    return new if old is None else (1 - MAE_RATE) * old + MAE_RATE * new


def correctors() -> dict[str, Corrector]:
    return {t: Corrector.for_target(t) for t in TARGETS}
