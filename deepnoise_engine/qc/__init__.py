"""8. QC: does a profile depend on the siRNA and not on the experiment or plate?

Torch-free; reads the well profiles that ``score`` writes (``report/profiles.py``).
``job.run_qc`` (the ``qc`` command and engine job), ``retrieval`` (mAP via copairs, k-NN
mixing), ``layout`` (PCA, numpy only: the app's QC map imports it without copairs),
``figures`` (matplotlib), ``synthetic`` (planted profiles for tests and benchmarks).
"""
