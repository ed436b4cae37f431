"""The body rules run by libpcre2-8, the library Debian's nginx (and njs) match with, as
nginx runs them: JIT-compiled, default match context (32 KB JIT stack, default limits)."""

from __future__ import annotations

import ctypes

_LIB = ctypes.CDLL("libpcre2-8.so.0")
_LIB.pcre2_compile_8.argtypes = [
    ctypes.c_char_p,
    ctypes.c_size_t,
    ctypes.c_uint32,
    ctypes.POINTER(ctypes.c_int),
    ctypes.POINTER(ctypes.c_size_t),
    ctypes.c_void_p,
]
_LIB.pcre2_compile_8.restype = ctypes.c_void_p
_LIB.pcre2_jit_compile_8.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
_LIB.pcre2_match_data_create_from_pattern_8.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
_LIB.pcre2_match_data_create_from_pattern_8.restype = ctypes.c_void_p
_LIB.pcre2_match_8.argtypes = [
    ctypes.c_void_p,
    ctypes.c_char_p,
    ctypes.c_size_t,
    ctypes.c_size_t,
    ctypes.c_uint32,
    ctypes.c_void_p,
    ctypes.c_void_p,
]
_LIB.pcre2_get_ovector_pointer_8.argtypes = [ctypes.c_void_p]
_LIB.pcre2_get_ovector_pointer_8.restype = ctypes.POINTER(ctypes.c_size_t)
_JIT_COMPLETE = 1
_NO_MATCH = -1


class MatchError(Exception):
    """PCRE gave up (JIT stack or match limit): nginx answers such a match with a 500."""


class Pcre2:
    def __init__(self, pattern: str) -> None:
        raw = pattern.encode()
        err, offset = ctypes.c_int(), ctypes.c_size_t()
        code = _LIB.pcre2_compile_8(raw, len(raw), 0, ctypes.byref(err), ctypes.byref(offset), None)
        assert code, f"pcre2 error {err.value} at {offset.value}"
        assert _LIB.pcre2_jit_compile_8(code, _JIT_COMPLETE) == 0
        self._code = code
        self._data = _LIB.pcre2_match_data_create_from_pattern_8(code, None)

    def group1(self, subject: bytes | str) -> bytes | None:
        """Group 1 of the first match (b"" if the match has none), None without one."""
        data = subject.encode() if isinstance(subject, str) else subject
        rc = _LIB.pcre2_match_8(self._code, data, len(data), 0, 0, self._data, None)
        if rc == _NO_MATCH:
            return None
        if rc < 0:
            raise MatchError(rc)
        ov = _LIB.pcre2_get_ovector_pointer_8(self._data)
        return data[ov[2] : ov[3]] if rc > 1 else b""
