/* The IDX files of MNIST and Fashion-MNIST: a 4-byte magic 00 00 <type> <ndim>, then
 * ndim big-endian uint32 dimensions, then the data in row-major order. snncl reads
 * unsigned-byte files (type 0x08): images with 3 dimensions (N, H, W) and labels with
 * 1 dimension (N). Both go through zlib's gzread, which reads plain and
 * gzip-compressed files alike.
 *
 * Files are treated as hostile: the headers of both files are checked against each
 * other before any data is read, and the data buffers grow as data arrives, so a
 * header that claims more than the file holds fails as truncated instead of
 * allocating what it claims. Bytes after the data the header describes are an error
 * too (they mean the header is wrong). */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "readers.h"

#define IDX_TYPE_UBYTE 0x08
/* Largest image side and area accepted; anything larger is taken for a bad header. */
#define IDX_MAX_SIDE 16384u
#define IDX_MAX_PIXELS (1u << 24)
/* Bytes per gzread call (it takes an unsigned int) and zlib's input buffer. */
#define IDX_CHUNK (16u << 20)
#define IDX_GZBUFFER (128u << 10)
/* First allocation for a file's data; it doubles (up to the size the header gives)
 * while data keeps coming. Fashion-MNIST's 47 MB training images fit at once. */
#define IDX_FIRST_ALLOC ((size_t)64 << 20)

typedef struct idx_file {
    gzFile gz;
    const char *path;
    const char *what; /* "image file" or "label file", for messages */
    uint32_t dims[3];
    uint64_t offset; /* uncompressed bytes read so far */
} idx_file;

static const char *idx_type_name(unsigned code) {
    switch (code) {
    case 0x08: return "unsigned bytes";
    case 0x09: return "signed bytes";
    case 0x0B: return "16-bit integers";
    case 0x0C: return "32-bit integers";
    case 0x0D: return "32-bit floats";
    case 0x0E: return "64-bit floats";
    }
    return "an unknown type";
}

/* zlib's messages start with the path; drop it, since ours name the file already. */
static const char *zlib_message(const char *msg, const char *path) {
    size_t n = strlen(path);
    if (msg && strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ') return msg + n + 2;
    return msg ? msg : "unknown zlib error";
}

/* Reads up to n bytes of the uncompressed stream; *got says how many arrived, fewer
 * than n only at the end of the file. A failed read is SNN_ERR_IO, damaged or cut-off
 * gzip data SNN_ERR_FORMAT. */
static snn_status idx_read(idx_file *f, void *buf, size_t n, size_t *got) {
    unsigned char *p = buf;
    *got = 0;
    while (*got < n) {
        size_t want = n - *got < IDX_CHUNK ? n - *got : IDX_CHUNK;
        int r, err, saved_errno;
        const char *msg;
        errno = 0;
        r = gzread(f->gz, p + *got, (unsigned)want);
        saved_errno = errno;
        if (r > 0) *got += (size_t)r, f->offset += (uint64_t)r;
        if (r == (int)want) continue;
        msg = gzerror(f->gz, &err);
        switch (err) {
        case Z_OK:
        case Z_STREAM_END:
            if (r > 0 && !gzeof(f->gz)) continue;
            return SNN_OK; /* end of file */
        case Z_ERRNO:
            return snn_fail(SNN_ERR_IO, "%s: cannot read the %s: %s", f->path, f->what,
                            saved_errno ? strerror(saved_errno) : "read error");
        case Z_BUF_ERROR:
            return snn_fail(SNN_ERR_FORMAT,
                            "%s: the gzip-compressed %s is cut off after %" PRIu64
                            " uncompressed bytes (zlib: %s)",
                            f->path, f->what, f->offset, zlib_message(msg, f->path));
        case Z_DATA_ERROR:
            return snn_fail(SNN_ERR_FORMAT,
                            "%s: the %s holds damaged gzip data after %" PRIu64
                            " uncompressed bytes (zlib: %s)",
                            f->path, f->what, f->offset, zlib_message(msg, f->path));
        case Z_MEM_ERROR:
            return snn_fail(SNN_ERR_OUT_OF_MEMORY, "%s: out of memory decompressing the %s",
                            f->path, f->what);
        default:
            return snn_fail(SNN_ERR_IO, "%s: cannot read the %s: %s (zlib error %d)", f->path,
                            f->what, zlib_message(msg, f->path), err);
        }
    }
    return SNN_OK;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Opens path and reads and checks its header: unsigned bytes with ndim dimensions. */
static snn_status idx_open(idx_file *f, const char *path, const char *what, int ndim) {
    unsigned char head[4 + 4 * 3];
    size_t got, want = 4 * (size_t)ndim;
    f->path = path;
    f->what = what;
    errno = 0;
    f->gz = gzopen(path, "rb");
    if (!f->gz)
        return snn_fail(SNN_ERR_IO, "cannot open the %s %s: %s", what, path,
                        errno ? strerror(errno) : "out of memory");
    gzbuffer(f->gz, IDX_GZBUFFER);

    SNN_TRY(idx_read(f, head, 4, &got));
    if (got < 4)
        return snn_fail(SNN_ERR_FORMAT,
                        "%s: the %s is %zu bytes long, too short for the 4-byte IDX magic", path,
                        what, got);
    if (head[0] != 0 || head[1] != 0)
        return snn_fail(SNN_ERR_FORMAT,
                        "%s: not an IDX file: it starts with %02x %02x %02x %02x, expected "
                        "00 00 08 %02x",
                        path, head[0], head[1], head[2], head[3], (unsigned)ndim);
    if (head[2] != IDX_TYPE_UBYTE)
        return snn_fail(SNN_ERR_FORMAT,
                        "%s: the %s holds %s (IDX type code 0x%02x), expected unsigned bytes "
                        "(0x08)",
                        path, what, idx_type_name(head[2]), head[2]);
    if (head[3] != ndim)
        return snn_fail(SNN_ERR_FORMAT, "%s: the %s has %u dimensions, expected %d (%s)", path,
                        what, head[3], ndim, ndim == 3 ? "images x height x width" : "labels");
    SNN_TRY(idx_read(f, head + 4, want, &got));
    if (got < want)
        return snn_fail(SNN_ERR_FORMAT,
                        "%s: the %s's header is cut short: %zu bytes of dimensions expected, %zu "
                        "found",
                        path, what, want, got);
    for (int i = 0; i < ndim; i++) f->dims[i] = be32(head + 4 + 4 * i);
    return SNN_OK;
}

/* Reads exactly n (> 0) bytes of data, described by desc for messages, into a new
 * buffer, and checks that nothing follows them. */
static snn_status idx_read_data(idx_file *f, size_t n, const char *desc, unsigned char **out) {
    size_t cap = n < IDX_FIRST_ALLOC ? n : IDX_FIRST_ALLOC, have = 0, got;
    unsigned char *buf = malloc(cap), extra;
    snn_status st;
    *out = NULL;
    if (!buf)
        return snn_fail(SNN_ERR_OUT_OF_MEMORY, "%s: out of memory reading the %s (%zu bytes)",
                        f->path, f->what, cap);
    for (;;) {
        SNN_CHECK_GOTO(st, idx_read(f, buf + have, cap - have, &got), fail);
        have += got;
        if (have < cap || cap == n) break;
        {
            size_t next = cap > n / 2 ? n : cap * 2;
            unsigned char *p = realloc(buf, next);
            if (!p) {
                st = snn_fail(SNN_ERR_OUT_OF_MEMORY, "%s: out of memory reading the %s (%zu bytes)",
                              f->path, f->what, next);
                goto fail;
            }
            buf = p;
            cap = next;
        }
    }
    if (have < n) {
        st = snn_fail(SNN_ERR_FORMAT,
                      "%s: the %s is truncated: its header describes %s (%zu bytes after the "
                      "header) but only %zu bytes follow",
                      f->path, f->what, desc, n, have);
        goto fail;
    }
    SNN_CHECK_GOTO(st, idx_read(f, &extra, 1, &got), fail);
    if (got) {
        st = snn_fail(SNN_ERR_FORMAT,
                      "%s: the %s has more data than its header describes (%s, %zu bytes after "
                      "the header)",
                      f->path, f->what, desc, n);
        goto fail;
    }
    *out = buf;
    return SNN_OK;
fail:
    free(buf);
    return st;
}

static void idx_close(idx_file *f) {
    if (f->gz) gzclose(f->gz);
    f->gz = NULL;
}

snn_status snn_idx_read(const char *images_path, const char *labels_path, snn_image_set *out) {
    idx_file im = {0}, lb = {0};
    unsigned char *images = NULL, *labels = NULL;
    char desc[96];
    uint32_t n, h, w;
    uint64_t image_bytes;
    snn_status st;

    SNN_CHECK_GOTO(st, idx_open(&im, images_path, "image file", 3), done);
    SNN_CHECK_GOTO(st, idx_open(&lb, labels_path, "label file", 1), done);
    n = im.dims[0], h = im.dims[1], w = im.dims[2];
    if (n == 0) {
        st = snn_fail(SNN_ERR_FORMAT,
                      "%s: the image file holds no images (its first dimension is 0)", images_path);
        goto done;
    }
    if (h == 0 || w == 0 || h > IDX_MAX_SIDE || w > IDX_MAX_SIDE ||
        (uint64_t)h * w > IDX_MAX_PIXELS) {
        st = snn_fail(SNN_ERR_FORMAT,
                      "%s: the image file's images are %" PRIu32 "x%" PRIu32
                      " pixels; expected 1..%u on each side and at most %u pixels",
                      images_path, h, w, IDX_MAX_SIDE, IDX_MAX_PIXELS);
        goto done;
    }
    if (lb.dims[0] != n) {
        st = snn_fail(SNN_ERR_FORMAT,
                      "%s holds %" PRIu32 " labels but the image file %s holds %" PRIu32 " images",
                      labels_path, lb.dims[0], images_path, n);
        goto done;
    }
    image_bytes = (uint64_t)n * h * w; /* < 2^56 */
    if (image_bytes > SIZE_MAX) {
        st = snn_fail(SNN_ERR_OUT_OF_MEMORY,
                      "%s: %" PRIu32 " images of %" PRIu32 "x%" PRIu32 " do not fit in memory",
                      images_path, n, h, w);
        goto done;
    }

    snprintf(desc, sizeof desc, "%" PRIu32 " labels", n);
    SNN_CHECK_GOTO(st, idx_read_data(&lb, n, desc, &labels), done);
    for (uint32_t i = 0; i < n; i++)
        if (labels[i] >= SNN_DATASET_CLASSES) {
            st = snn_fail(SNN_ERR_FORMAT, "%s: label %" PRIu32 " is %u, expected 0..%d",
                          labels_path, i, labels[i], SNN_DATASET_CLASSES - 1);
            goto done;
        }
    snprintf(desc, sizeof desc, "%" PRIu32 " images of %" PRIu32 "x%" PRIu32, n, h, w);
    SNN_CHECK_GOTO(st, idx_read_data(&im, (size_t)image_bytes, desc, &images), done);

    *out = (snn_image_set){images, labels, n, 1, (int)h, (int)w};
    images = labels = NULL;
done:
    idx_close(&im);
    idx_close(&lb);
    free(images);
    free(labels);
    return st;
}
