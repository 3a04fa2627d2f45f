"""A turbine-nox service under gunicorn (2 workers) with a real Redis, trained on synthetic data.

The model is trained by the real ``vigie train`` command on a synthetic ``turbine_nox/train.csv``
(4 "years", the last one drifted), so these tests need neither the real data nor a prepared model.
"""

from __future__ import annotations

from tests.services.turbine_nox.synthetic import write_turbine_data
from tests.support.serving import Served, served_fixture, trained_models_fixture

SERVICE = "turbine-nox"
CONFIGURED = "GT-LOW"  # an asset with its own, low limits
CONFIGURED_LIMITS = {"nox_limit_mg_m3": 40.0, "co_limit_mg_m3": 80.0, "alerte_fraction": 0.8}


Env = Served

trained_models = trained_models_fixture(SERVICE, lambda d: write_turbine_data(d, rows_per_year=500))
served = served_fixture(SERVICE, sub="plant", asset_config={CONFIGURED: CONFIGURED_LIMITS})
