"""`python -m pipelines.evaluate`: the evaluation command, which lives in the measurement wing (pipelines/measure/)."""
from .measure.evaluate import main

if __name__ == "__main__":
    main()
