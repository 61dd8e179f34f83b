"""8. QC: does a profile depend on the siRNA and not on the experiment or plate?

Torch-free; reads the well profiles that ``score`` writes (``report/profiles.py``).
"""

from deepnoise_engine.qc.job import QC_DIR, QCCancelled, qc_paths, run_qc
from deepnoise_engine.qc.retrieval import TASKS, knn_mixing, mean_average_precisions

__all__ = ["QC_DIR", "TASKS", "QCCancelled", "knn_mixing", "mean_average_precisions",
           "qc_paths", "run_qc"]
