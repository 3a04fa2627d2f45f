"""A service-like model class whose module imports no scikit-learn: what a serving artifact
should need (tests of :mod:`vigie.models.store`'s lean loading)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np


@dataclass
class LeanWrapped:
    """Two inner estimators and the vigie.models.compiled hook, like the services' model classes."""

    forest: Any
    linear: Any
    marker: Any = None  # a SideEffect: unpickling it touches a file

    def compiled_parts(self) -> dict[str, Any]:
        return {"forest": self.forest, "linear": self.linear}

    def with_compiled(self, predictors: Any) -> LeanWrapped:
        return replace(
            self,
            forest=predictors.get("forest", self.forest),
            linear=predictors.get("linear", self.linear),
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.forest.predict(x) + self.linear.predict(x))
