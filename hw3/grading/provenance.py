"""Is the student's function their own? Refusing the reference implementation of the hw3 package.

The checks of q2, q3a, q3b, q4.2b, q4.3a, q4.3b, q4.3c and q4.4a receive a student's function and
compare it with the reference in `hw3`. Importing that reference would pass every comparison, so:

1. Before the check, `imported_reference` refuses a function that is an `hw3.*` function (its
   `__module__` is `hw3` or `hw3.<...>`, which covers the reference itself), or wraps one: a
   `functools.partial`, a bound method, anything with `__wrapped__` (`functools.wraps`, `lru_cache`),
   an object whose class's `__call__` is one.
2. During the check, `ReferenceWatch` (a `sys.setprofile` hook, also set for threads started meanwhile)
   records any call of the question's reference functions (`REFERENCES`) that does not come straight
   from the verifier's own code: a lambda or def that calls the reference, however deeply, or a
   returned object whose `__float__` does, is caught when it calls it. Functions are recognised by
   module and qualified name or by source file, so a notebook that imported hw3 before the grader
   re-imported it is caught too.

Limits (documented, not closed): code copied from the reference's source (or re-implemented after
reading it) is the student's own code as far as a program can tell; calls made in threads that existed
before the check, in other processes, or by C extensions are not seen; other hw3 functions that happen
to compute the same thing (not listed in REFERENCES) may be called from the student's code. Code
running in the same process can always undo a check it knows about: the watch reports a student's
function that removes the hook, but a determined forger could patch the grader itself.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

REFERENCES: dict[str, tuple[str, ...]] = {
    "q2": ("hw3.rnn:closed_form", "hw3.rnn:hidden_closed_form", "hw3.rnn:simulate", "hw3.rnn:ScalarRNN.forward"),
    "q3a": ("hw3.attention:token_norms",),
    "q3b": ("hw3.attention:self_attention", "hw3.attention:_stable_logits"),
    "q4.2b": ("hw3.sentiment.model:count_parameters",),
    "q4.3a": ("hw3.sentiment.training:binary_accuracy",),
    "q4.3b": ("hw3.sentiment.training:train",),
    "q4.3c": ("hw3.sentiment.training:evaluate",),
    "q4.4a": ("hw3.sentiment.predict:predict_sentiment", "hw3.sentiment.tokenizer:encode"),
}
"""Question id -> the reference functions (`module:qualified name`) a student's function must not call.

The helpers a notebook hands out (`attention.tokens`, `attention.scores`, `tokenize_and_cut`,
`encode_batch`, the model classes) stay allowed."""


def is_hw3_module(name: Any) -> bool:
    """True for `hw3` and its submodules."""
    return isinstance(name, str) and (name == "hw3" or name.startswith("hw3."))


def _name(obj: Any) -> str:
    """`module.qualified_name` of a function or class."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def _module(obj: Any) -> Any:
    """The `__module__` of a function or class (None if reading it fails)."""
    try:
        return obj.__module__
    except Exception:
        return None


def _inner(obj: Any) -> Any:
    """What `obj` wraps (partial, bound method, __wrapped__, a class's __call__), or None."""
    if isinstance(obj, functools.partial):
        return obj.func
    if isinstance(obj, types.MethodType):
        return obj.__func__
    try:
        wrapped = inspect.getattr_static(obj, "__wrapped__", None)
    except Exception:
        wrapped = None
    if wrapped is not None:
        return wrapped
    if not isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, type)):
        call = inspect.getattr_static(type(obj), "__call__", None)
        if isinstance(call, (staticmethod, classmethod)):
            call = call.__func__
        if isinstance(call, types.FunctionType):
            return call
    return None


def imported_reference(obj: Any, what: str) -> str | None:
    """Why `obj`, given as the student's function `what`, is not theirs (it is or wraps an hw3 function), or None."""
    how, seen = "is", set()
    while obj is not None and id(obj) not in seen and len(seen) < 20:
        seen.add(id(obj))
        if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, type)) and is_hw3_module(_module(obj)):
            return f"{what} {how} {_name(obj)}, the course's reference code: write {what} yourself instead of importing it"
        obj, how = _inner(obj), "wraps"
    return None


def _qualname(code: types.CodeType) -> str:
    """The qualified name of a code object (`Class.method`; just the name before Python 3.11)."""
    return getattr(code, "co_qualname", code.co_name)  # co_qualname: Python 3.11+


def _code_objects(module: types.ModuleType) -> set[types.CodeType]:
    """Every code object defined in `module`: its functions, methods, and what they nest (lambdas, closures)."""
    found: set[types.CodeType] = set()
    todo = []
    for value in vars(module).values():
        members = vars(value).values() if isinstance(value, type) and value.__module__ == module.__name__ else [value]
        for member in members:
            member = getattr(member, "__func__", member)
            if isinstance(member, types.FunctionType) and member.__module__ == module.__name__:
                todo.append(member.__code__)
    while todo:
        code = todo.pop()
        if code not in found:
            found.add(code)
            todo.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return found


class ReferenceWatch:
    """While active, records the first call of a reference function that the verifier did not make itself.

    `verifier` is the check's function: calls made directly by code of its module are the check
    computing the expected answer, and so is everything that runs inside such a call.
    """

    def __init__(self, targets: tuple[str, ...], verifier: Callable) -> None:
        self.targets = {tuple(t.split(":")) for t in targets}
        self.names = {qualname.rsplit(".", 1)[-1] for _, qualname in self.targets}
        self.files = self._files()
        self.allowed = _code_objects(sys.modules[verifier.__module__])
        self.found: str | None = None
        self._inside: types.FrameType | None = None  # a reference call made by the verifier, while it runs
        self._previous: tuple[Any, Any] = (None, None)
        self._bound = self._hook  # one bound method, so that __exit__ can tell whether it is still installed
        self._real: dict[str, str] = {}  # code file name -> real path

    def _files(self) -> dict[str, str]:
        """{real path of a reference module's source file: module name}, found without importing the module."""
        files = {}
        for module_name, _ in self.targets:
            try:
                spec = importlib.util.find_spec(module_name)
            except (ImportError, ValueError):
                continue
            if spec is not None and spec.origin:
                files[os.path.realpath(spec.origin)] = module_name
        return files

    def _target(self, frame: types.FrameType) -> str | None:
        """`module.qualname` when `frame` runs a reference function, else None."""
        code = frame.f_code
        qualname = _qualname(code)
        module = frame.f_globals.get("__name__")
        if (module, qualname) in self.targets:
            return f"{module}.{qualname}"
        path = self._real.get(code.co_filename)
        if path is None:
            path = self._real[code.co_filename] = os.path.realpath(code.co_filename)
        module = self.files.get(path)
        if module and (module, qualname) in self.targets:
            return f"{module}.{qualname}"
        return None

    def _hook(self, frame: types.FrameType, event: str, arg: Any) -> None:
        """The profile function: note a reference call unless the verifier made it (or it runs inside one)."""
        if event == "return":
            if frame is self._inside:
                self._inside = None
            return
        if event != "call" or self._inside is not None or frame.f_code.co_name not in self.names:
            return
        target = self._target(frame)
        if target is None:
            return
        caller = frame.f_back
        if caller is not None and caller.f_code in self.allowed:
            self._inside = frame
        elif self.found is None:
            self.found = target

    def __enter__(self) -> "ReferenceWatch":
        self._previous = (sys.getprofile(), threading.getprofile())
        threading.setprofile(self._bound)
        sys.setprofile(self._bound)
        return self

    def __exit__(self, *exc_info: object) -> None:
        removed = sys.getprofile() is not self._bound
        sys.setprofile(self._previous[0])
        threading.setprofile(self._previous[1])
        if removed and self.found is None:
            self.found = "sys.setprofile"

    def reason(self, what: str) -> str | None:
        """Why the student's function `what` fails, or None when it never called the reference."""
        if self.found is None:
            return None
        if self.found == "sys.setprofile":
            return f"{what} switched off the grader's watch on calls (sys.setprofile): remove that from {what}"
        return f"{what} calls {self.found}, the course's reference code: write the computation yourself instead of calling it"


def student_parameter(qid: str, verifier: Callable) -> str | None:
    """The verifier's parameter that receives the student's function, for the questions in REFERENCES."""
    if qid not in REFERENCES:
        return None
    return next(iter(inspect.signature(verifier).parameters), None)


def watch(qid: str, verifier: Callable) -> ReferenceWatch | None:
    """A ReferenceWatch for question `qid`, or None when it does not check a student's function."""
    return ReferenceWatch(REFERENCES[qid], verifier) if qid in REFERENCES else None
