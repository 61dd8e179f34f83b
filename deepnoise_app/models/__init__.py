"""The app's models and logic, apart from its widgets (as napari keeps its models apart).

Nothing here imports Qt or napari (tests/deepnoise_app/models checks it): the open screen,
the selection and the predictions (``state``, ``predictions``), what is said about plates and
wells (``captions``), how wells are coloured (``colours``, ``well_colours``), where plates
and wells sit in the plate map (``plate_grid``), opening a screen (``screen_opening``,
``screen_summary``), pixels and thumbnails (``thumbnails``, ``well_loading``,
``mosaic_calls``), the QC map's data and the review queue (``qc_map``, ``review_queue``),
user settings. The widgets (``deepnoise_app.*``) import these; psygnal signals work with or
without a Qt event loop.
"""
