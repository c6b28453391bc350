import cython
from txscales._framing cimport LengthPrefixDecoder

cdef object _header

cdef class FrameDecoder:
    cdef LengthPrefixDecoder _frames
    cdef object _decode
    cdef dict _fragments
    cdef Py_ssize_t _charged
    cdef public Py_ssize_t maxFragmentBytes
    cdef public Py_ssize_t maxFragmentedTags

    @cython.locals(start=Py_ssize_t, end=Py_ssize_t, typeByte=int, tagHigh=int, tagLow=int, typeCode=int, tag=int, messages=list)
    cpdef tuple feedUntilError(self, data)
