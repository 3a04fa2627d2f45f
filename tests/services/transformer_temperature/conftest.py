"""A transformer-temperature service under gunicorn, with a real Redis, trained on synthetic data.

The model is trained by the real ``vigie train`` command on synthetic ETT-shaped CSVs, so these
tests need neither the real data set nor a model prepared beforehand.
"""

from __future__ import annotations

from tests.support.serving import Served, served_fixture, trained_models_fixture
from tests.support.synthetic import write_transformer_data

SERVICE = "transformer-temperature"
MAX_BATCH = 300

Env = Served

trained_models = trained_models_fixture(SERVICE, lambda d: write_transformer_data(d, hours=900))
served = served_fixture(SERVICE, sub="scada", max_batch=MAX_BATCH)
