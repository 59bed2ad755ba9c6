import json
import pathlib

import numpy as np
import pytest

import fastmlp

# the article's worked example, number by number (a copy of the project's shared fixture)
FIXTURE = pathlib.Path(__file__).resolve().parent / "fixtures" / "article_worked_example.json"

BACKEND_NAMES = ["numpy", "numba"]


@pytest.fixture(params=BACKEND_NAMES)
def backend(request):
    return request.param


@pytest.fixture(scope="session")
def worked_example():
    data = json.loads(FIXTURE.read_text())
    return {k: (np.array(v) if isinstance(v, list) else v) for k, v in data.items()}


@pytest.fixture(scope="session")
def xor_data():
    X, y = fastmlp.datasets.xor()
    return X, y, fastmlp.one_hot(y, 2)
