"""The toy char lang dir (3-gram HLG) of ``tests/lang/conftest.py``, shared with these tests."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "lang_conftest", Path(__file__).parents[1] / "lang" / "conftest.py"
)
_lang_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_lang_conftest)

toy_lang = _lang_conftest.toy_lang
make_posteriors = _lang_conftest.make_posteriors
