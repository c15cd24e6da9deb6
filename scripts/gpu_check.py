"""Each tab's main action and a short training run on CUDA, compared with the CPU's within stated tolerances, with
the times printed; on a machine without CUDA it says so and exits 0. The checks: pipelines/measure/devices.py.

    python scripts/gpu_check.py [--only ddpm,cfg] [--train-steps 30] [--device cpu]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.measure.devices import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
