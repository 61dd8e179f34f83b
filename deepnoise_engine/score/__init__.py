"""Scoring: inference (torch, score/inference.py) and the scoring job (score/job.py).

Importing this package stays torch-free; ``run_scoring`` imports torch when it loads
the models.
"""
