"""``verify_images``: decode every image of a screen (any layout) and record what is wrong."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from deepnoise_engine.contract import Reporter
from deepnoise_engine.screen.errors import ImageError
from deepnoise_engine.screen.model import Problem, Screen, Site
from deepnoise_engine.screen.reader_common import ProblemLog


def verify_images(
    screen: Screen,
    reporter: Reporter | None = None,
    *,
    strict: bool = False,
    workers: int | None = None,
) -> list[Problem]:
    """Decode every image of every site that has files; record what is wrong.

    Truncated/corrupt files, wrong shape (not ``screen.image_size``, or not one plane per
    PNG) and wrong dtype become problems on the site and in ``screen.problems``; the new
    problems are returned. ``reporter`` gets progress of stage ``verify`` (sites) and may
cancel between sites (``Cancelled``; the problems found so far stay). Decoding runs on
    ``workers`` threads (PIL and tifffile release the GIL).
    """
    from deepnoise_engine.screen.images import read_site, site_errors

    reporter = reporter or Reporter()
    log = ProblemLog(strict)
    sites = [
        s for _, _, w in screen.wells() for s in w.sites if s.channels or s.tiff or s.zarr
    ]
    total = len(sites)
    expected = screen.image_size

    def check(site: Site) -> list[ImageError]:
        return site_errors(site, screen.channels, expected)

    if expected is None:  # nothing was readable at open: the first good image sets the size
        for site in sites:
            try:
                expected = tuple(read_site(site, screen.channels[:1]).shape[1:])
            except ImageError:
                continue
            screen.image_size = (int(expected[0]), int(expected[1]))
            break
    pool = ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1))
    try:
        for done, (site, errors) in enumerate(zip(sites, pool.map(check, sites), strict=True)):
            known = {(p.kind, p.file) for p in site.problems}
            for exc in errors:
                if (exc.kind, exc.file) not in known:
                    log.add_error(exc, site)
            reporter.progress("verify", done + 1, total)
            reporter.check_cancelled("image check cancelled")
    finally:  # on a strict error, a cancel or an interrupt, drop the queued decodes
        pool.shutdown(wait=True, cancel_futures=True)
        screen.problems.extend(log.items)
    return log.items
