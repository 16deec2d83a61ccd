"""The adversarial suite's one assertion: bad input gives a clear error raised by the library.

`clear_error(fn, *words)` calls fn and requires a `CondprobError` (or a TypeError raised by the
library's own code, the house answer to a wrong kind of object), whose message contains every
word (the argument's name, the problem). Errors from inside torch, numpy or pickle fail it.
"""

from pathlib import Path

import pytest

from condprob.errors import CondprobError

ROOT = Path(__file__).resolve().parents[2]
OURS = tuple(str(ROOT / pkg) for pkg in ("condprob", "crf", "tpp", "diagrams"))


def _raised_by_us(err: BaseException) -> bool:
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_filename.startswith(OURS)


def check_clear_error(fn, *words: str) -> BaseException:
    try:
        fn()
    except CondprobError as err:
        caught: BaseException = err
    except TypeError as err:
        assert _raised_by_us(err), f"a TypeError from outside the library escaped: {err!r}"
        caught = err
    except Exception as err:  # noqa: BLE001 - the point is to see which escaped
        raise AssertionError(f"{type(err).__name__} escaped instead of a house error: {err}") \
            from err
    else:
        raise AssertionError("no error raised")
    msg = str(caught).lower()
    missing = [w for w in words if w.lower() not in msg]
    assert not missing, f"message {str(caught)!r} does not name {missing}"
    return caught


@pytest.fixture(scope="session")
def clear_error():
    return check_clear_error
