import cython

cdef object _length

cdef class LengthPrefixDecoder:
    cdef public Py_ssize_t maxFrameSize
    cdef public Py_ssize_t minFrameSize
    cdef public object name
    cdef list _chunks
    cdef Py_ssize_t _buffered
    cdef Py_ssize_t _need

    @cython.locals(size=Py_ssize_t, offset=Py_ssize_t, end=Py_ssize_t, length=Py_ssize_t, ends=list)
    cpdef tuple splitUntilError(self, data)
