"""The engine's contract: what the steps, the engine process and the app agree on.

Torch-free and Qt-free; the lowest layer of the engine (imports no step). The app uses
these same types: request parameters (:mod:`.requests`), events (:mod:`.events`), job
results (:mod:`.results`), the model description (:mod:`.model_description`), the
configuration answers (:mod:`.config`), the run folder's layout (:mod:`.run_folder`),
and one reporter with one cancellation exception (:mod:`.progress`).
"""

from deepnoise_engine.contract.progress import Cancelled, EventSink, Reporter

__all__ = ["Cancelled", "EventSink", "Reporter"]
