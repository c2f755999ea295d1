"""pytest plugin: deselect exact test ids listed in the file named by HERALD_DESELECT.

Lines are node ids without parameters (``tests/x.py::Class::test_name``); ``#`` starts a
comment giving the reason. Unlike ``--deselect`` (a prefix match), ``test_pipeline`` does
not also drop ``test_pipeline_length``.
"""

import os


def _load(path):
    ids = set()
    with open(path, encoding="utf-8") as listing:
        for line in listing:
            line = line.split("#", 1)[0].strip()
            if line:
                ids.add(line)
    return ids


def pytest_collection_modifyitems(config, items):
    path = os.environ.get("HERALD_DESELECT")
    if not path:
        return
    exact = _load(path)
    keep, drop = [], []
    for item in items:
        (drop if item.nodeid.split("[", 1)[0] in exact else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
