/*
 * The clients' per-record loops in C: decoding the records of one RecordBatch
 * v2 section (the consumer) and appending one record to a batch being built
 * (the producer).
 *
 * Each mirrors its Python twin in record_codec.py (_decode_section and
 * encode_record), which stays as the fallback when this module is not built,
 * and is tested against it. Decoding makes each record as
 * an instance of the given tuple type, (*prefix, offset, timestamp, key, value,
 * headers), and leaves it out of the cyclic garbage collector: a record holds
 * only strings, ints, bytes, None and tuples of those, so it can never be part
 * of a cycle, and a consumer holding many records no longer makes every
 * collection walk them. Errors are ValueError with the Python decoder's
 * messages; the caller turns them into CorruptRecordError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static const char ENDS_EARLY[] = "record data ends before the batch's record count is reached";

/* Zigzag varint at *pos; returns 0 on success, -1 with ValueError set. */
static int read_varint(const unsigned char *buf, Py_ssize_t len, Py_ssize_t *pos, int64_t *out) {
    uint64_t result = 0;
    int shift = 0;
    Py_ssize_t p = *pos;
    for (;;) {
        if (p >= len) {
            PyErr_SetString(PyExc_ValueError, ENDS_EARLY);
            return -1;
        }
        unsigned char b = buf[p++];
        result |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80) {
            *out = (int64_t)(result >> 1) ^ -(int64_t)(result & 1);
            *pos = p;
            return 0;
        }
        shift += 7;
        if (shift > 63) {
            PyErr_Format(PyExc_ValueError, "varint longer than 10 bytes at position %zd", p);
            return -1;
        }
    }
}

/* bytes of length n at *pos, or None for n == -1; NULL with ValueError set otherwise. */
static PyObject *read_bytes(const unsigned char *buf, Py_ssize_t len, Py_ssize_t *pos, int64_t n, const char *what) {
    if (n == -1) {
        Py_RETURN_NONE;
    }
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "invalid record %s length %lld", what, (long long)n);
        return NULL;
    }
    if (n > len - *pos) {
        PyErr_SetString(PyExc_ValueError, ENDS_EARLY);
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize((const char *)buf + *pos, (Py_ssize_t)n);
    *pos += (Py_ssize_t)n;
    return out;
}

static PyObject *read_headers(const unsigned char *buf, Py_ssize_t len, Py_ssize_t *pos, PyObject *no_headers) {
    int64_t count, n;
    if (read_varint(buf, len, pos, &count) < 0) {
        return NULL;
    }
    if (count == 0) {
        Py_INCREF(no_headers);
        return no_headers;
    }
    if (count < 0) {
        PyErr_Format(PyExc_ValueError, "negative record header count %lld", (long long)count);
        return NULL;
    }
    if (count > len - *pos) {
        PyErr_SetString(PyExc_ValueError, ENDS_EARLY);
        return NULL;
    }
    PyObject *headers = PyTuple_New((Py_ssize_t)count);
    if (headers == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < (Py_ssize_t)count; i++) {
        if (read_varint(buf, len, pos, &n) < 0) {
            goto fail;
        }
        if (n < 0) {
            PyErr_Format(PyExc_ValueError, "negative record header key length %lld", (long long)n);
            goto fail;
        }
        if (n > len - *pos) {
            PyErr_SetString(PyExc_ValueError, ENDS_EARLY);
            goto fail;
        }
        PyObject *key = PyUnicode_DecodeUTF8((const char *)buf + *pos, (Py_ssize_t)n, NULL);
        if (key == NULL) {
            PyObject *type, *value, *trace;
            PyErr_Fetch(&type, &value, &trace);
            PyErr_NormalizeException(&type, &value, &trace);
            PyErr_Format(PyExc_ValueError, "record header key is not UTF-8: %S", value);
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(trace);
            goto fail;
        }
        *pos += (Py_ssize_t)n;
        if (read_varint(buf, len, pos, &n) < 0) {
            Py_DECREF(key);
            goto fail;
        }
        PyObject *value = read_bytes(buf, len, pos, n, "header value");
        if (value == NULL) {
            Py_DECREF(key);
            goto fail;
        }
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_DECREF(key);
            Py_DECREF(value);
            goto fail;
        }
        PyTuple_SET_ITEM(pair, 0, key);
        PyTuple_SET_ITEM(pair, 1, value);
        PyObject_GC_UnTrack(pair);
        PyTuple_SET_ITEM(headers, i, pair);
    }
    PyObject_GC_UnTrack(headers);
    return headers;
fail:
    Py_DECREF(headers);
    return NULL;
}

/* a + b as a Python int, exact even past 64 bits (as the Python decoder computes it). */
static PyObject *exact_sum(int64_t a, int64_t b) {
    long long sum;
    if (!__builtin_add_overflow((long long)a, (long long)b, &sum)) {
        return PyLong_FromLongLong(sum);
    }
    PyObject *x = PyLong_FromLongLong(a), *y = PyLong_FromLongLong(b), *out = NULL;
    if (x != NULL && y != NULL) {
        out = PyNumber_Add(x, y);
    }
    Py_XDECREF(x);
    Py_XDECREF(y);
    return out;
}

static PyObject *decode_section(PyObject *self, PyObject *args) {
    PyObject *records, *prefix, *record_type_obj;
    Py_buffer view;
    Py_ssize_t pos, end, count;
    long long base_offset, base_timestamp;
    if (!PyArg_ParseTuple(args, "O!y*nnnLLO!O!", &PyList_Type, &records, &view, &pos, &end, &count, &base_offset,
                          &base_timestamp, &PyType_Type, &record_type_obj, &PyTuple_Type, &prefix)) {
        return NULL;
    }
    PyTypeObject *record_type = (PyTypeObject *)record_type_obj;
    PyObject *result = NULL;
    PyObject *no_headers = PyTuple_New(0);
    if (no_headers == NULL) {
        goto done;
    }
    if (!PyType_IsSubtype(record_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "record_type must be a tuple type");
        goto done;
    }
    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t len = view.len;
    Py_ssize_t nprefix = PyTuple_GET_SIZE(prefix);
    int untrack = 1;
    for (Py_ssize_t i = 0; i < nprefix; i++) {
        if (PyObject_GC_IsTracked(PyTuple_GET_ITEM(prefix, i))) {
            untrack = 0;
        }
    }
    if (pos < 0 || end > len || pos > end) {
        PyErr_SetString(PyExc_ValueError, ENDS_EARLY);
        goto done;
    }
    for (Py_ssize_t r = 0; r < count; r++) {
        int64_t length, timestamp_delta, offset_delta, n;
        if (read_varint(buf, len, &pos, &length) < 0) {
            goto done;
        }
        Py_ssize_t record_end = (length < 0 || length > len) ? -1 : pos + (Py_ssize_t)length;
        if (pos >= len) { /* attributes: one byte, unused */
            PyErr_SetString(PyExc_ValueError, ENDS_EARLY);
            goto done;
        }
        pos += 1;
        if (read_varint(buf, len, &pos, &timestamp_delta) < 0 || read_varint(buf, len, &pos, &offset_delta) < 0 ||
            read_varint(buf, len, &pos, &n) < 0) {
            goto done;
        }
        PyObject *key = read_bytes(buf, len, &pos, n, "key");
        if (key == NULL) {
            goto done;
        }
        if (read_varint(buf, len, &pos, &n) < 0) {
            Py_DECREF(key);
            goto done;
        }
        PyObject *value = read_bytes(buf, len, &pos, n, "value");
        if (value == NULL) {
            Py_DECREF(key);
            goto done;
        }
        PyObject *headers = read_headers(buf, len, &pos, no_headers);
        if (headers == NULL) {
            Py_DECREF(key);
            Py_DECREF(value);
            goto done;
        }
        PyObject *offset = NULL, *timestamp = NULL, *record = NULL;
        if (pos != record_end) {
            PyErr_Format(PyExc_ValueError, "record length %lld does not match its contents", (long long)length);
        } else if ((offset = exact_sum(base_offset, offset_delta)) != NULL &&
                   (timestamp = exact_sum(base_timestamp, timestamp_delta)) != NULL) {
            record = record_type->tp_alloc(record_type, nprefix + 5);
        }
        if (record == NULL) {
            Py_XDECREF(offset);
            Py_XDECREF(timestamp);
            Py_DECREF(key);
            Py_DECREF(value);
            Py_DECREF(headers);
            goto done;
        }
        for (Py_ssize_t i = 0; i < nprefix; i++) {
            PyObject *item = PyTuple_GET_ITEM(prefix, i);
            Py_INCREF(item);
            PyTuple_SET_ITEM(record, i, item);
        }
        PyTuple_SET_ITEM(record, nprefix, offset);
        PyTuple_SET_ITEM(record, nprefix + 1, timestamp);
        PyTuple_SET_ITEM(record, nprefix + 2, key);
        PyTuple_SET_ITEM(record, nprefix + 3, value);
        PyTuple_SET_ITEM(record, nprefix + 4, headers);
        if (untrack && PyObject_GC_IsTracked(record)) {
            PyObject_GC_UnTrack(record);
        }
        int appended = PyList_Append(records, record);
        Py_DECREF(record);
        if (appended < 0) {
            goto done;
        }
    }
    if (pos != end) {
        PyErr_Format(PyExc_ValueError, "%zd bytes left over after the batch's %zd records", end - pos, count);
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(no_headers);
    PyBuffer_Release(&view);
    return result;
}

/* ---- encoding ---------------------------------------------------------------------- */

static int zigzag_size(int64_t value) {
    uint64_t z = ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
    int size = 1;
    while (z > 0x7F) {
        z >>= 7;
        size++;
    }
    return size;
}

static char *put_zigzag(char *out, int64_t value) {
    uint64_t z = ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
    while (z > 0x7F) {
        *out++ = (char)((z & 0x7F) | 0x80);
        z >>= 7;
    }
    *out++ = (char)z;
    return out;
}

/* Borrow the bytes of key or value: *len is -1 for None. 0 on success, -1 with TypeError set. */
static int borrow(PyObject *obj, Py_buffer *view, Py_ssize_t *len) {
    if (obj == Py_None) {
        *len = -1;
        return 0;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    *len = view->len;
    return 0;
}

static PyObject *append_record(PyObject *self, PyObject *args) {
    PyObject *buf, *key, *value;
    long long offset_delta, timestamp_delta;
    if (!PyArg_ParseTuple(args, "O!LLOO", &PyByteArray_Type, &buf, &offset_delta, &timestamp_delta, &key, &value)) {
        return NULL;
    }
    Py_buffer kview, vview;
    Py_ssize_t klen, vlen;
    if (borrow(key, &kview, &klen) < 0) {
        return NULL;
    }
    if (borrow(value, &vview, &vlen) < 0) {
        if (klen >= 0) {
            PyBuffer_Release(&kview);
        }
        return NULL;
    }
    int64_t body = 1 + zigzag_size(timestamp_delta) + zigzag_size(offset_delta) + zigzag_size(klen) +
                   (klen > 0 ? klen : 0) + zigzag_size(vlen) + (vlen > 0 ? vlen : 0) + 1;
    Py_ssize_t old = PyByteArray_GET_SIZE(buf);
    PyObject *result = NULL;
    if (PyByteArray_Resize(buf, old + zigzag_size(body) + (Py_ssize_t)body) == 0) {
        char *out = PyByteArray_AS_STRING(buf) + old;
        out = put_zigzag(out, body);
        *out++ = 0; /* attributes */
        out = put_zigzag(out, timestamp_delta);
        out = put_zigzag(out, offset_delta);
        out = put_zigzag(out, klen);
        if (klen > 0) {
            memcpy(out, kview.buf, (size_t)klen);
            out += klen;
        }
        out = put_zigzag(out, vlen);
        if (vlen > 0) {
            memcpy(out, vview.buf, (size_t)vlen);
            out += vlen;
        }
        *out = 0; /* no headers */
        result = Py_None;
        Py_INCREF(result);
    }
    if (klen >= 0) {
        PyBuffer_Release(&kview);
    }
    if (vlen >= 0) {
        PyBuffer_Release(&vview);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"decode_section", decode_section, METH_VARARGS,
     "decode_section(records, data, pos, end, count, base_offset, base_timestamp, record_type, prefix)"},
    {"append_record", append_record, METH_VARARGS,
     "append_record(buf, offset_delta, timestamp_delta, key, value): one header-less record onto a bytearray"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_record_codec", NULL, -1, methods};

PyMODINIT_FUNC PyInit__record_codec(void) { return PyModule_Create(&module); }
