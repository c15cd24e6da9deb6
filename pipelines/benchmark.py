"""`python -m pipelines.benchmark`: the speed table, which lives in the measurement wing (pipelines/measure/)."""
from .measure.benchmark import main

if __name__ == "__main__":
    main()
