"""Training step (torch): configuration, data, epoch plan, mean teacher, evaluation, the
loop, DDP. The job that trains a screen is ``deepnoise_engine.workflows.train``.
"""
