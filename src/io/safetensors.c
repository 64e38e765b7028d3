/* The safetensors file format: an 8-byte little-endian header length N, N bytes of
 * UTF-8 JSON describing each tensor (dtype, shape, data_offsets into the data buffer)
 * plus an optional "__metadata__" object of strings, then the data buffer.
 *
 * The reader treats every file as hostile: it bounds the header size, validates the
 * JSON structure, dtypes, shapes and offsets (inside the buffer, sized for dtype and
 * shape, non-overlapping) before allocating or reading any tensor data, and reports
 * what is wrong and where. Each tensor gets its own allocation, so data is aligned
 * for its dtype whatever its offset in the file. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "internal.h"

/* A header longer than this is rejected before it is read (same limit as the
 * reference implementation). */
#define ST_MAX_HEADER 100000000ull
/* Largest integer a JSON number (a double in cJSON) holds exactly. */
#define ST_MAX_JSON_INT 9007199254740992ull /* 2^53 */

typedef struct st_tensor {
    snn_tensor pub; /* what snn_safetensors_at/find hand out; points into name/data */
    char *name;
    void *data;
} st_tensor;

struct snn_safetensors {
    st_tensor **tensors; /* separately allocated so pointers survive later adds */
    size_t count, cap;
    char **meta_keys;
    char **meta_values;
    size_t meta_count, meta_cap;
};

/* ----------------------------------------------------------------- helpers -- */

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

static int dtype_valid(snn_dtype dtype) {
    return dtype == SNN_F32 || dtype == SNN_F64 || dtype == SNN_I64;
}

static size_t dtype_size(snn_dtype dtype) { return dtype == SNN_F32 ? 4 : 8; }

static const char *dtype_name(snn_dtype dtype) {
    switch (dtype) {
    case SNN_F32:
        return "F32";
    case SNN_F64:
        return "F64";
    case SNN_I64:
        return "I64";
    }
    return "?";
}

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* "[64, 3, 3, 3]"; "[]" for a scalar. Truncates to fit. */
static const char *format_shape(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t used = 0;
    int n = snprintf(buf, size, "[");
    if (n > 0) used = (size_t)n;
    for (int i = 0; i < ndim && used < size; i++) {
        n = snprintf(buf + used, size - used, "%s%" PRId64, i ? ", " : "", shape[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

/* A name from a file, made safe to print in a message: control bytes become '?', and
 * long names are cut short. */
static const char *printable(char *buf, size_t size, const char *s) {
    size_t n = 0, limit = size > 4 ? size - 4 : 0;
    for (; s[n] && n < limit; n++) {
        unsigned char c = (unsigned char)s[n];
        buf[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (s[n] && size >= 4) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* Returns 1 when s[0..len) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points above U+10FFFF); otherwise 0 with the offending byte's offset in *bad. */
static int utf8_valid(const unsigned char *s, size_t len, size_t *bad) {
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t extra;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            extra = 1, cp = c & 0x1fu, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            extra = 2, cp = c & 0x0fu, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            extra = 3, cp = c & 0x07u, min = 0x10000;
        } else {
            *bad = i;
            return 0;
        }
        if (len - i <= extra) {
            *bad = i;
            return 0;
        }
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                *bad = i + k;
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            *bad = i;
            return 0;
        }
        i += extra + 1;
    }
    return 1;
}

/* Element count of a shape; 0 on overflow of limit (a dimension of 0 makes the
 * count 0 whatever the others are). Dimensions must already be non-negative. */
static int shape_count(int ndim, const int64_t *shape, uint64_t limit, uint64_t *count) {
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0) {
            *count = 0;
            return 1;
        }
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (n > limit / d) return 0;
        n *= d;
    }
    *count = n;
    return 1;
}

static void tensor_free(st_tensor *t) {
    if (!t) return;
    free(t->name);
    free(t->data);
    free(t);
}

/* A tensor with nbytes of uninitialised data; data is never NULL, even when empty. */
static st_tensor *tensor_new(const char *name, snn_dtype dtype, int ndim, const int64_t *shape,
                             size_t nbytes) {
    st_tensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->name = dup_string(name);
    t->data = malloc(nbytes ? nbytes : 1);
    if (!t->name || !t->data) {
        tensor_free(t);
        return NULL;
    }
    t->pub.name = t->name;
    t->pub.dtype = dtype;
    t->pub.ndim = ndim;
    for (int i = 0; i < ndim; i++) t->pub.shape[i] = shape[i];
    t->pub.data = t->data;
    t->pub.nbytes = nbytes;
    return t;
}

static snn_status push_tensor(snn_safetensors *st, st_tensor *t) {
    if (st->count == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 16;
        st_tensor **p;
        if (cap > SIZE_MAX / sizeof *p) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "too many tensors");
        p = realloc(st->tensors, cap * sizeof *p);
        if (!p) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "out of memory growing the tensor list");
        st->tensors = p;
        st->cap = cap;
    }
    st->tensors[st->count++] = t;
    return SNN_OK;
}

static long find_index(const snn_safetensors *st, const char *name) {
    for (size_t i = 0; i < st->count; i++)
        if (strcmp(st->tensors[i]->name, name) == 0) return (long)i;
    return -1;
}

static long find_meta(const snn_safetensors *st, const char *key) {
    for (size_t i = 0; i < st->meta_count; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return (long)i;
    return -1;
}

/* Takes ownership of key and value on success only. */
static snn_status push_meta(snn_safetensors *st, char *key, char *value) {
    if (st->meta_count == st->meta_cap) {
        size_t cap = st->meta_cap ? st->meta_cap * 2 : 8;
        char **k, **v;
        if (cap > SIZE_MAX / sizeof *k) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "too many metadata keys");
        k = realloc(st->meta_keys, cap * sizeof *k);
        if (!k) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "out of memory growing the metadata");
        st->meta_keys = k;
        v = realloc(st->meta_values, cap * sizeof *v);
        if (!v) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "out of memory growing the metadata");
        st->meta_values = v;
        st->meta_cap = cap;
    }
    st->meta_keys[st->meta_count] = key;
    st->meta_values[st->meta_count] = value;
    st->meta_count++;
    return SNN_OK;
}

/* -------------------------------------------------------- basic interface -- */

snn_status snn_safetensors_create(snn_safetensors **out) {
    if (!out) return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_create: out is NULL");
    *out = NULL;
    if (!host_is_little_endian())
        return snn_fail(SNN_ERR_UNSUPPORTED, "safetensors: big-endian hosts are not supported");
    *out = calloc(1, sizeof **out);
    if (!*out) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "out of memory creating a safetensors object");
    return SNN_OK;
}

void snn_safetensors_free(snn_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->count; i++) tensor_free(st->tensors[i]);
    for (size_t i = 0; i < st->meta_count; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->tensors);
    free(st->meta_keys);
    free(st->meta_values);
    free(st);
}

size_t snn_safetensors_count(const snn_safetensors *st) { return st ? st->count : 0; }

const snn_tensor *snn_safetensors_at(const snn_safetensors *st, size_t i) {
    if (!st || i >= st->count) return NULL;
    return &st->tensors[i]->pub;
}

const snn_tensor *snn_safetensors_find(const snn_safetensors *st, const char *name) {
    long i;
    if (!st || !name) return NULL;
    i = find_index(st, name);
    return i < 0 ? NULL : &st->tensors[i]->pub;
}

snn_status snn_safetensors_add(snn_safetensors *st, const char *name, snn_dtype dtype, int ndim,
                               const int64_t *shape, const void *data) {
    char shape_buf[256], name_buf[160];
    uint64_t count;
    size_t nbytes, bad;
    st_tensor *t;
    long existing;

    if (!st) return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_add: st is NULL");
    if (!name) return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_add: name is NULL");
    if (!name[0]) return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_add: name is empty");
    if (strcmp(name, "__metadata__") == 0)
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "snn_safetensors_add: '__metadata__' is reserved and cannot name a tensor");
    if (!utf8_valid((const unsigned char *)name, strlen(name), &bad))
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "snn_safetensors_add: tensor name '%s' is not valid UTF-8 (byte %zu)",
                        printable(name_buf, sizeof name_buf, name), bad);
    printable(name_buf, sizeof name_buf, name);
    if (!dtype_valid(dtype))
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_add: tensor '%s': unknown dtype %d",
                        name_buf, (int)dtype);
    if (ndim < 0 || ndim > SNN_MAX_DIMS)
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "snn_safetensors_add: tensor '%s': ndim %d is outside 0..%d", name_buf,
                        ndim, SNN_MAX_DIMS);
    if (ndim > 0 && !shape)
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "snn_safetensors_add: tensor '%s': shape is NULL but ndim is %d", name_buf,
                        ndim);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return snn_fail(SNN_ERR_INVALID_ARG,
                            "snn_safetensors_add: tensor '%s': shape %s has a negative dimension",
                            name_buf, format_shape(shape_buf, sizeof shape_buf, ndim, shape));
        if ((uint64_t)shape[i] > ST_MAX_JSON_INT)
            return snn_fail(SNN_ERR_INVALID_ARG,
                            "snn_safetensors_add: tensor '%s': shape %s has a dimension over 2^53",
                            name_buf, format_shape(shape_buf, sizeof shape_buf, ndim, shape));
    }
    /* Keep sizes within what a JSON number holds exactly, so the file can be read back. */
    if (!shape_count(ndim, shape, ST_MAX_JSON_INT / dtype_size(dtype), &count))
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "snn_safetensors_add: tensor '%s': %s shape %s is too large", name_buf,
                        dtype_name(dtype), format_shape(shape_buf, sizeof shape_buf, ndim, shape));
    if (count > SIZE_MAX / dtype_size(dtype))
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "snn_safetensors_add: tensor '%s': shape %s does not fit in memory",
                        name_buf, format_shape(shape_buf, sizeof shape_buf, ndim, shape));
    nbytes = (size_t)count * dtype_size(dtype);
    if (nbytes > 0 && !data)
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "snn_safetensors_add: tensor '%s': data is NULL but shape %s holds %" PRIu64
                        " elements",
                        name_buf, format_shape(shape_buf, sizeof shape_buf, ndim, shape), count);

    /* Copy first, so a failure (or data pointing into the tensor being replaced)
     * leaves the existing tensor intact. */
    t = tensor_new(name, dtype, ndim, shape, nbytes);
    if (!t)
        return snn_fail(SNN_ERR_OUT_OF_MEMORY, "out of memory adding tensor '%s' (%zu bytes)",
                        name_buf, nbytes);
    if (nbytes) memcpy(t->data, data, nbytes);

    existing = find_index(st, name);
    if (existing >= 0) {
        /* Keep the existing record (and its place in the order), so a pointer from
         * snn_safetensors_find/at stays valid; it now describes the new contents. */
        st_tensor *old = st->tensors[existing];
        free(old->data);
        old->data = t->data;
        old->pub = t->pub;
        old->pub.name = old->name;
        t->data = NULL;
        tensor_free(t);
        return SNN_OK;
    }
    {
        snn_status s = push_tensor(st, t);
        if (s != SNN_OK) tensor_free(t);
        return s;
    }
}

snn_status snn_safetensors_get_f32(const snn_safetensors *st, const char *name, int ndim,
                                   const int64_t *shape, float *out) {
    char have[256], want[256], name_buf[160];
    const snn_tensor *t;
    size_t n;

    if (!st) return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_get_f32: st is NULL");
    if (!name) return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_get_f32: name is NULL");
    printable(name_buf, sizeof name_buf, name);
    if (ndim > SNN_MAX_DIMS)
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "snn_safetensors_get_f32: tensor '%s': ndim %d is more than %d", name_buf,
                        ndim, SNN_MAX_DIMS);
    if (ndim > 0 && !shape)
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "snn_safetensors_get_f32: tensor '%s': shape is NULL but ndim is %d",
                        name_buf, ndim);
    t = snn_safetensors_find(st, name);
    if (!t) return snn_fail(SNN_ERR_NOT_FOUND, "tensor '%s' is missing", name_buf);

    if (ndim >= 0) {
        int same = ndim == t->ndim;
        for (int i = 0; same && i < ndim; i++) same = shape[i] == t->shape[i];
        if (!same)
            return snn_fail(SNN_ERR_SHAPE, "tensor '%s' has shape %s but %s was expected",
                            name_buf, format_shape(have, sizeof have, t->ndim, t->shape),
                            format_shape(want, sizeof want, ndim, shape));
    }
    n = t->nbytes / dtype_size(t->dtype);
    if (n > 0 && !out)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_get_f32: tensor '%s': out is NULL",
                        name_buf);

    const unsigned char *src = t->data;
    switch (t->dtype) {
    case SNN_F32:
        if (n) memcpy(out, src, n * sizeof(float));
        break;
    case SNN_F64:
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, src + i * sizeof v, sizeof v);
            /* Out-of-range conversions are undefined in C; saturate to infinity. */
            if (v > FLT_MAX)
                out[i] = INFINITY;
            else if (v < -FLT_MAX)
                out[i] = -INFINITY;
            else
                out[i] = (float)v;
        }
        break;
    case SNN_I64:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, src + i * sizeof v, sizeof v);
            out[i] = (float)v;
        }
        break;
    }
    return SNN_OK;
}

const char *snn_safetensors_meta_get(const snn_safetensors *st, const char *key) {
    long i;
    if (!st || !key) return NULL;
    i = find_meta(st, key);
    return i < 0 ? NULL : st->meta_values[i];
}

snn_status snn_safetensors_meta_set(snn_safetensors *st, const char *key, const char *value) {
    size_t bad;
    char *k = NULL, *v;
    long i;
    if (!st) return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_meta_set: st is NULL");
    if (!key) return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_meta_set: key is NULL");
    if (!value)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_meta_set: value of '%s' is NULL", key);
    if (!utf8_valid((const unsigned char *)key, strlen(key), &bad))
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "snn_safetensors_meta_set: key is not valid UTF-8 (byte %zu)", bad);
    if (!utf8_valid((const unsigned char *)value, strlen(value), &bad))
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "snn_safetensors_meta_set: value of '%s' is not valid UTF-8 (byte %zu)",
                        key, bad);
    v = dup_string(value);
    if (!v) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "out of memory setting metadata '%s'", key);
    i = find_meta(st, key);
    if (i >= 0) {
        free(st->meta_values[i]);
        st->meta_values[i] = v;
        return SNN_OK;
    }
    k = dup_string(key);
    if (!k) {
        free(v);
        return snn_fail(SNN_ERR_OUT_OF_MEMORY, "out of memory setting metadata '%s'", key);
    }
    {
        snn_status s = push_meta(st, k, v);
        if (s != SNN_OK) {
            free(k);
            free(v);
        }
        return s;
    }
}

size_t snn_safetensors_meta_count(const snn_safetensors *st) { return st ? st->meta_count : 0; }

const char *snn_safetensors_meta_key(const snn_safetensors *st, size_t i) {
    if (!st || i >= st->meta_count) return NULL;
    return st->meta_keys[i];
}

/* ------------------------------------------------------------------ reading -- */

/* One tensor entry of a header, validated but not yet read. */
typedef struct st_entry {
    const char *name; /* points into the cJSON tree */
    snn_dtype dtype;
    int ndim;
    int64_t shape[SNN_MAX_DIMS];
    uint64_t begin, end;
    size_t order; /* position in the header, to keep sorting stable */
} st_entry;

static const char *json_type_name(const cJSON *item) {
    switch (item->type & 0xff) {
    case cJSON_False:
    case cJSON_True:
        return "a boolean";
    case cJSON_NULL:
        return "null";
    case cJSON_Number:
        return "a number";
    case cJSON_String:
        return "a string";
    case cJSON_Array:
        return "an array";
    case cJSON_Object:
        return "an object";
    default:
        return "an unknown JSON value";
    }
}

/* A JSON number that is an integer in [0, 2^53]. */
static int json_uint(const cJSON *item, uint64_t *v) {
    double d;
    if (!cJSON_IsNumber(item)) return 0;
    d = item->valuedouble;
    if (!(d >= 0 && d <= (double)ST_MAX_JSON_INT)) return 0; /* also rejects NaN */
    if ((double)(uint64_t)d != d) return 0;
    *v = (uint64_t)d;
    return 1;
}

/* Describes a JSON value that is not a valid count/offset, for messages. */
static const char *describe_bad_uint(char *buf, size_t size, const cJSON *item) {
    if (!cJSON_IsNumber(item))
        snprintf(buf, size, "%s", json_type_name(item));
    else
        snprintf(buf, size, "%.17g", item->valuedouble);
    return buf;
}

/* Where the reader takes its bytes from: an open file, or a buffer in memory (the
 * fuzzers' way in too: snn_safetensors_read_memory). */
typedef struct st_source {
    int fd;                     /* read with pread when bytes is NULL */
    const unsigned char *bytes; /* size bytes in memory, or NULL */
    uint64_t size;
} st_source;

/* Reads n bytes at offset; returns 0, or -1 with errno set (0 for end of file). */
static int read_at(const st_source *src, void *buf, size_t n, uint64_t offset) {
    unsigned char *p = buf;
    if (src->bytes) {
        if (offset > src->size || n > src->size - offset) {
            errno = 0;
            return -1;
        }
        if (n) memcpy(buf, src->bytes + offset, n);
        return 0;
    }
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : n;
        ssize_t got = pread(src->fd, p, chunk, (off_t)offset);
        if (got < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (got == 0) {
            errno = 0;
            return -1;
        }
        p += got;
        n -= (size_t)got;
        offset += (uint64_t)got;
    }
    return 0;
}

static snn_status read_failed(const char *path, const char *what) {
    if (errno == 0)
        return snn_fail(SNN_ERR_IO, "%s: file ended early while reading %s (was it changed?)", path,
                        what);
    return snn_fail(SNN_ERR_IO, "%s: cannot read %s: %s", path, what, strerror(errno));
}

/* Validates one tensor entry of the header against the data buffer size. */
static snn_status parse_entry(const char *path, const cJSON *item, uint64_t data_len,
                              st_entry *e) {
    char name_buf[160], a[64], b[64], shape_buf[256];
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL, *field;
    const char *name = printable(name_buf, sizeof name_buf, item->string);
    uint64_t count;
    int ndim;

    if (!cJSON_IsObject(item))
        return snn_fail(SNN_ERR_FORMAT, "%s: tensor '%s': entry is %s, not an object", path, name,
                        json_type_name(item));
    cJSON_ArrayForEach(field, item) {
        const cJSON **slot = NULL;
        if (strcmp(field->string, "dtype") == 0)
            slot = &dtype;
        else if (strcmp(field->string, "shape") == 0)
            slot = &shape;
        else if (strcmp(field->string, "data_offsets") == 0)
            slot = &offsets;
        else
            continue; /* unknown fields are ignored */
        if (*slot)
            return snn_fail(SNN_ERR_FORMAT, "%s: tensor '%s': field '%s' appears twice", path, name,
                            field->string);
        *slot = field;
    }
    if (!dtype) return snn_fail(SNN_ERR_FORMAT, "%s: tensor '%s': missing field 'dtype'", path, name);
    if (!shape) return snn_fail(SNN_ERR_FORMAT, "%s: tensor '%s': missing field 'shape'", path, name);
    if (!offsets)
        return snn_fail(SNN_ERR_FORMAT, "%s: tensor '%s': missing field 'data_offsets'", path, name);

    /* dtype */
    if (!cJSON_IsString(dtype))
        return snn_fail(SNN_ERR_FORMAT, "%s: tensor '%s': dtype is %s, not a string", path, name,
                        json_type_name(dtype));
    if (strcmp(dtype->valuestring, "F32") == 0)
        e->dtype = SNN_F32;
    else if (strcmp(dtype->valuestring, "F64") == 0)
        e->dtype = SNN_F64;
    else if (strcmp(dtype->valuestring, "I64") == 0)
        e->dtype = SNN_I64;
    else {
        char dt[40];
        return snn_fail(SNN_ERR_UNSUPPORTED,
                        "%s: tensor '%s': dtype '%s' is not supported (snncl reads F32, F64 and I64)",
                        path, name, printable(dt, sizeof dt, dtype->valuestring));
    }

    /* shape */
    if (!cJSON_IsArray(shape))
        return snn_fail(SNN_ERR_FORMAT, "%s: tensor '%s': shape is %s, not an array", path, name,
                        json_type_name(shape));
    ndim = cJSON_GetArraySize(shape);
    if (ndim > SNN_MAX_DIMS)
        return snn_fail(SNN_ERR_UNSUPPORTED,
                        "%s: tensor '%s': shape has %d dimensions; snncl supports at most %d", path,
                        name, ndim, SNN_MAX_DIMS);
    e->ndim = ndim;
    {
        int i = 0;
        cJSON_ArrayForEach(field, shape) {
            uint64_t d;
            if (!json_uint(field, &d))
                return snn_fail(SNN_ERR_FORMAT,
                                "%s: tensor '%s': shape[%d] is %s, not a non-negative integer", path,
                                name, i, describe_bad_uint(a, sizeof a, field));
            e->shape[i++] = (int64_t)d;
        }
    }
    if (!shape_count(ndim, e->shape, UINT64_MAX / dtype_size(e->dtype), &count))
        return snn_fail(SNN_ERR_FORMAT, "%s: tensor '%s': element count of shape %s overflows", path,
                        name, format_shape(shape_buf, sizeof shape_buf, ndim, e->shape));

    /* data_offsets */
    if (!cJSON_IsArray(offsets))
        return snn_fail(SNN_ERR_FORMAT, "%s: tensor '%s': data_offsets is %s, not an array", path,
                        name, json_type_name(offsets));
    if (cJSON_GetArraySize(offsets) != 2)
        return snn_fail(SNN_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets has %d element%s, not 2 ([begin, end])", path,
                        name, cJSON_GetArraySize(offsets),
                        cJSON_GetArraySize(offsets) == 1 ? "" : "s");
    if (!json_uint(offsets->child, &e->begin))
        return snn_fail(SNN_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets[0] is %s, not a non-negative integer", path,
                        name, describe_bad_uint(a, sizeof a, offsets->child));
    if (!json_uint(offsets->child->next, &e->end))
        return snn_fail(SNN_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets[1] is %s, not a non-negative integer", path,
                        name, describe_bad_uint(b, sizeof b, offsets->child->next));
    if (e->begin > e->end)
        return snn_fail(SNN_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "]: begin is after end",
                        path, name, e->begin, e->end);
    if (e->end > data_len)
        return snn_fail(SNN_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                        "] reach past the end of the %" PRIu64 "-byte data buffer",
                        path, name, e->begin, e->end, data_len);
    if (e->end - e->begin != count * dtype_size(e->dtype))
        return snn_fail(SNN_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                        " bytes but %s shape %s needs %" PRIu64,
                        path, name, e->begin, e->end, e->end - e->begin, dtype_name(e->dtype),
                        format_shape(shape_buf, sizeof shape_buf, ndim, e->shape),
                        count * dtype_size(e->dtype));
#if SIZE_MAX < UINT64_MAX
    if (e->end - e->begin > SIZE_MAX)
        return snn_fail(SNN_ERR_OUT_OF_MEMORY, "%s: tensor '%s' is too large for this machine",
                        path, name);
#endif
    e->name = item->string;
    return SNN_OK;
}

static int cmp_entry_name(const void *pa, const void *pb) {
    const st_entry *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);
    if (c) return c;
    return a->order < b->order ? -1 : a->order > b->order;
}

static int cmp_entry_offset(const void *pa, const void *pb) {
    const st_entry *a = pa, *b = pb;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

static int cmp_string_ptr(const void *pa, const void *pb) {
    return strcmp(*(char *const *)pa, *(char *const *)pb);
}

static snn_status parse_metadata(const char *path, const cJSON *meta, snn_safetensors *st) {
    char key_buf[160];
    const cJSON *item;
    if (!cJSON_IsObject(meta))
        return snn_fail(SNN_ERR_FORMAT, "%s: __metadata__ is %s, not an object of strings", path,
                        json_type_name(meta));
    cJSON_ArrayForEach(item, meta) {
        char *k, *v;
        snn_status s;
        printable(key_buf, sizeof key_buf, item->string);
        if (!cJSON_IsString(item))
            return snn_fail(SNN_ERR_FORMAT, "%s: __metadata__ value of '%s' is %s, not a string",
                            path, key_buf, json_type_name(item));
        k = dup_string(item->string);
        v = dup_string(item->valuestring);
        if (!k || !v) {
            free(k);
            free(v);
            return snn_fail(SNN_ERR_OUT_OF_MEMORY, "%s: out of memory reading __metadata__", path);
        }
        s = push_meta(st, k, v);
        if (s != SNN_OK) {
            free(k);
            free(v);
            return s;
        }
    }
    /* Duplicate keys: sort a copy of the key list and compare neighbours (a linear
     * search per key would let a hostile header take quadratic time). */
    if (st->meta_count > 1) {
        char **keys = malloc(st->meta_count * sizeof *keys);
        snn_status s = SNN_OK;
        if (!keys) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "%s: out of memory reading __metadata__", path);
        memcpy(keys, st->meta_keys, st->meta_count * sizeof *keys);
        qsort(keys, st->meta_count, sizeof *keys, cmp_string_ptr);
        for (size_t i = 1; i < st->meta_count; i++)
            if (strcmp(keys[i - 1], keys[i]) == 0) {
                s = snn_fail(SNN_ERR_FORMAT, "%s: __metadata__ key '%s' appears twice", path,
                             printable(key_buf, sizeof key_buf, keys[i]));
                break;
            }
        free(keys);
        return s;
    }
    return SNN_OK;
}

/* Parses and validates the header, then reads each tensor's bytes from src. */
static snn_status parse_header(const char *path, const st_source *src, char *header, uint64_t header_len,
                               uint64_t data_start, uint64_t data_len, snn_safetensors *st) {
    snn_status s = SNN_OK;
    cJSON *root = NULL;
    const cJSON *item, *meta = NULL;
    const char *end = NULL;
    st_entry *entries = NULL;
    size_t n = 0, bad;

    if (!utf8_valid((const unsigned char *)header, (size_t)header_len, &bad))
        return snn_fail(SNN_ERR_FORMAT, "%s: header is not valid UTF-8 (byte 0x%02x at header offset %zu)",
                        path, (unsigned char)header[bad], bad);
    root = cJSON_ParseWithOpts(header, &end, 0);
    if (!root) {
        size_t at = end && end >= header ? (size_t)(end - header) : 0;
        return snn_fail(SNN_ERR_FORMAT,
                        "%s: header is not valid JSON (error near byte %zu of %" PRIu64 ")", path, at,
                        header_len);
    }
    /* Only padding may follow the JSON (also catches an embedded NUL byte). */
    for (const char *p = end; p < header + header_len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            s = snn_fail(SNN_ERR_FORMAT,
                         "%s: header has unexpected byte 0x%02x at offset %zu after the JSON object",
                         path, (unsigned char)*p, (size_t)(p - header));
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        s = snn_fail(SNN_ERR_FORMAT, "%s: header is %s, not a JSON object", path,
                     json_type_name(root));
        goto done;
    }

    {
        int size = cJSON_GetArraySize(root);
        entries = calloc(size > 0 ? (size_t)size : 1, sizeof *entries);
        if (!entries) {
            s = snn_fail(SNN_ERR_OUT_OF_MEMORY, "%s: out of memory reading the header", path);
            goto done;
        }
    }
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (meta) {
                s = snn_fail(SNN_ERR_FORMAT, "%s: __metadata__ appears twice", path);
                goto done;
            }
            meta = item;
            SNN_CHECK_GOTO(s, parse_metadata(path, item, st), done);
            continue;
        }
        SNN_CHECK_GOTO(s, parse_entry(path, item, data_len, &entries[n]), done);
        entries[n].order = n;
        n++;
    }

    /* Duplicate names: sort by name, compare neighbours; report in header order. */
    if (n > 1) {
        char name_buf[160];
        qsort(entries, n, sizeof *entries, cmp_entry_name);
        for (size_t i = 1; i < n; i++)
            if (strcmp(entries[i - 1].name, entries[i].name) == 0) {
                s = snn_fail(SNN_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path,
                             printable(name_buf, sizeof name_buf, entries[i].name));
                goto done;
            }
    }

    /* File order is data order; no two non-empty tensors may share bytes. */
    qsort(entries, n, sizeof *entries, cmp_entry_offset);
    {
        const st_entry *last = NULL; /* the non-empty tensor reaching furthest so far */
        for (size_t i = 0; i < n; i++) {
            const st_entry *e = &entries[i];
            if (e->begin == e->end) continue;
            if (last && e->begin < last->end) {
                char a[160], b[160];
                s = snn_fail(SNN_ERR_FORMAT,
                             "%s: tensors '%s' (data_offsets [%" PRIu64 ", %" PRIu64
                             "]) and '%s' (data_offsets [%" PRIu64 ", %" PRIu64 "]) overlap",
                             path, printable(a, sizeof a, last->name), last->begin, last->end,
                             printable(b, sizeof b, e->name), e->begin, e->end);
                goto done;
            }
            if (!last || e->end > last->end) last = e;
        }
    }

    for (size_t i = 0; i < n; i++) {
        const st_entry *e = &entries[i];
        size_t nbytes = (size_t)(e->end - e->begin);
        st_tensor *t = tensor_new(e->name, e->dtype, e->ndim, e->shape, nbytes);
        char name_buf[160];
        if (!t) {
            s = snn_fail(SNN_ERR_OUT_OF_MEMORY, "%s: out of memory for tensor '%s' (%zu bytes)",
                         path, printable(name_buf, sizeof name_buf, e->name), nbytes);
            goto done;
        }
        if (nbytes && read_at(src, t->data, nbytes, data_start + e->begin) != 0) {
            char what[200];
            snprintf(what, sizeof what, "tensor '%s'", printable(name_buf, sizeof name_buf, e->name));
            s = read_failed(path, what);
            tensor_free(t);
            goto done;
        }
        s = push_tensor(st, t);
        if (s != SNN_OK) {
            tensor_free(t);
            goto done;
        }
    }

done:
    free(entries);
    cJSON_Delete(root);
    return s;
}

/* Reads a whole safetensors file from src; path names it in messages. */
static snn_status read_source(snn_safetensors **out, const char *path, const st_source *src) {
    snn_status s;
    snn_safetensors *st = NULL;
    unsigned char len_bytes[8];
    uint64_t file_size = src->size, header_len = 0;
    char *header = NULL;

    if (file_size < 8)
        return snn_fail(SNN_ERR_FORMAT,
                        "%s: file is %" PRIu64 " bytes, too short for the 8-byte header length",
                        path, file_size);
    if (read_at(src, len_bytes, 8, 0) != 0) return read_failed(path, "the header length");
    for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | len_bytes[i];
    if (header_len > ST_MAX_HEADER)
        return snn_fail(SNN_ERR_FORMAT,
                        "%s: header length %" PRIu64 " is over the limit of %llu bytes", path,
                        header_len, ST_MAX_HEADER);
    if (header_len > file_size - 8)
        return snn_fail(SNN_ERR_FORMAT,
                        "%s: header length %" PRIu64 " is more than the %" PRIu64
                        " bytes that follow it in the file",
                        path, header_len, file_size - 8);
    header = malloc((size_t)header_len + 1);
    if (!header)
        return snn_fail(SNN_ERR_OUT_OF_MEMORY, "%s: out of memory for the %" PRIu64 "-byte header",
                        path, header_len);
    if (read_at(src, header, (size_t)header_len, 8) != 0) {
        s = read_failed(path, "the header");
        goto fail;
    }
    header[header_len] = '\0';

    SNN_CHECK_GOTO(s, snn_safetensors_create(&st), fail);
    SNN_CHECK_GOTO(s,
                   parse_header(path, src, header, header_len, 8 + header_len,
                                file_size - 8 - header_len, st),
                   fail);
    free(header);
    *out = st;
    return SNN_OK;

fail:
    snn_safetensors_free(st);
    free(header);
    return s;
}

snn_status snn_safetensors_read(snn_safetensors **out, const char *path) {
    snn_status s;
    st_source src = {0};
    struct stat sb;

    if (out) *out = NULL;
    if (!out) return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_read: out is NULL");
    if (!path) return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_read: path is NULL");

    src.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (src.fd < 0) return snn_fail(SNN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(src.fd, &sb) != 0)
        s = snn_fail(SNN_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        s = snn_fail(SNN_ERR_IO, "%s: not a regular file", path);
    else {
        src.size = (uint64_t)sb.st_size;
        s = read_source(out, path, &src);
    }
    close(src.fd);
    return s;
}

snn_status snn_safetensors_read_memory(snn_safetensors **out, const char *name, const void *bytes,
                                       size_t size) {
    st_source src = {.fd = -1, .bytes = bytes, .size = size};
    if (out) *out = NULL;
    if (!out) return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_read_memory: out is NULL");
    if (!name) return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_read_memory: name is NULL");
    if (!bytes && size)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_read_memory: bytes is NULL");
    if (!bytes) src.bytes = (const unsigned char *)""; /* an empty buffer, not a file */
    return read_source(out, name, &src);
}

/* ------------------------------------------------------------------ writing -- */

/* A JSON integer written exactly (cJSON would print large doubles with exponents). */
static cJSON *json_int(uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return cJSON_CreateRaw(buf);
}

/* Builds the header JSON text (unpadded); NULL on allocation failure. */
static char *build_header(const snn_safetensors *st) {
    cJSON *root = cJSON_CreateObject();
    char *text = NULL;
    uint64_t offset = 0;
    if (!root) return NULL;
    if (st->meta_count > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        if (!meta) goto done;
        for (size_t i = 0; i < st->meta_count; i++)
            if (!cJSON_AddStringToObject(meta, st->meta_keys[i], st->meta_values[i])) goto done;
    }
    for (size_t i = 0; i < st->count; i++) {
        const snn_tensor *t = &st->tensors[i]->pub;
        cJSON *entry = cJSON_AddObjectToObject(root, t->name), *shape, *offsets, *num;
        if (!entry || !cJSON_AddStringToObject(entry, "dtype", dtype_name(t->dtype))) goto done;
        shape = cJSON_AddArrayToObject(entry, "shape");
        if (!shape) goto done;
        for (int d = 0; d < t->ndim; d++) {
            if (!(num = json_int((uint64_t)t->shape[d]))) goto done;
            cJSON_AddItemToArray(shape, num);
        }
        offsets = cJSON_AddArrayToObject(entry, "data_offsets");
        if (!offsets) goto done;
        if (!(num = json_int(offset))) goto done;
        cJSON_AddItemToArray(offsets, num);
        offset += t->nbytes;
        if (!(num = json_int(offset))) goto done;
        cJSON_AddItemToArray(offsets, num);
    }
    text = cJSON_PrintUnformatted(root);
done:
    cJSON_Delete(root);
    return text;
}

snn_status snn_safetensors_write(const snn_safetensors *st, const char *path) {
    if (!st) return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_write: st is NULL");
    if (!path) return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_write: path is NULL");
    if (!path[0]) return snn_fail(SNN_ERR_INVALID_ARG, "snn_safetensors_write: path is empty");

    char *header = build_header(st);
    if (!header) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "%s: out of memory building the header", path);
    const size_t json_len = strlen(header);
    const size_t header_len = (json_len + 7) / 8 * 8; /* 8 + header_len stays a multiple of 8 */
    unsigned char len_bytes[8];
    for (int i = 0; i < 8; i++) len_bytes[i] = (unsigned char)((uint64_t)header_len >> (8 * i));
    static const char spaces[8] = "        ";

    snn_file *f = NULL;
    snn_status s = snn_file_begin(&f, path);
    if (s == SNN_OK) {
        FILE *out = snn_file_stream(f);
        int ok = fwrite(len_bytes, 1, 8, out) == 8 && fwrite(header, 1, json_len, out) == json_len &&
                 fwrite(spaces, 1, header_len - json_len, out) == header_len - json_len;
        for (size_t i = 0; ok && i < st->count; i++) {
            const snn_tensor *t = &st->tensors[i]->pub;
            ok = fwrite(t->data, 1, t->nbytes, out) == t->nbytes;
        }
        if (ok) {
            s = snn_file_commit(f);
        } else {
            s = snn_fail(SNN_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
            snn_file_abort(f);
        }
    }
    cJSON_free(header);
    return s;
}
