import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from recording_helpers import fake_api  # noqa: E402,F401  (fixture: a local server answering like the APIs)

SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLES = ROOT / "sample_traces"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def samples() -> Path:
    return SAMPLES


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray with 2 CPUs for one test module (modules opt in with `usefixtures`)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()
