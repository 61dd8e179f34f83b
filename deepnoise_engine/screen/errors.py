"""Typed errors for bad input. Each names the file and, where it applies, the row."""

from __future__ import annotations


class ScreenError(Exception):
    """Base class: the input could not be used. ``file`` and ``row`` say where."""

    kind = "screen_error"

    def __init__(self, message: str, file: str | None = None, row: int | None = None):
        self.file = str(file) if file is not None else None
        self.row = row
        self.detail = message
        where = self.file or ""
        if row is not None:
            where += f", row {row}"
        super().__init__(f"{where}: {message}" if where else message)


class ScreenNotFoundError(ScreenError):
    kind = "screen_not_found"


class MetadataError(ScreenError):
    """A CSV is unreadable or a row in it is wrong (missing column, bad well name, ...)."""

    kind = "metadata_error"


class BadRowError(MetadataError):
    """A row has the wrong number of fields, an empty or malformed value, or contradicts itself."""

    kind = "bad_row"


class MissingColumnError(MetadataError):
    kind = "missing_column"


class BadWellError(MetadataError):
    kind = "bad_well"


class DuplicateIdError(MetadataError):
    kind = "duplicate_id"


class PlateOutOfRangeError(MetadataError):
    kind = "plate_out_of_range"


class LabelFormError(MetadataError):
    kind = "unknown_label_form"


class ImageError(ScreenError):
    """An image is missing, truncated, corrupt, or of the wrong shape or dtype."""

    kind = "image_error"


class MissingImageError(ImageError):
    kind = "missing_image"


class CorruptImageError(ImageError):
    kind = "corrupt_image"


class ImageShapeError(ImageError):
    kind = "wrong_shape"


class ImageDtypeError(ImageError):
    kind = "wrong_dtype"


class MissingChannelError(ImageError):
    kind = "missing_channel"


def error_class(kind: str) -> type[ScreenError]:
    """The error class for a problem ``kind`` (``"missing_image"`` -> ``MissingImageError``)."""
    return _BY_KIND.get(kind, ScreenError)


def _subclasses(cls: type[ScreenError]) -> list[type[ScreenError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_subclasses(sub))
    return found


_BY_KIND: dict[str, type[ScreenError]] = {c.kind: c for c in _subclasses(ScreenError)}
