/* CIFAR-10's binary batches: records of 1 label byte (0..9) then 3072 pixel bytes,
 * 1024 red, 1024 green, 1024 blue, each 32x32 row-major, so (C, H, W) = (3, 32, 32)
 * as they are. Batches are plain files; their sizes are checked (a whole, nonzero
 * number of records) before anything is allocated, and a file that changes size
 * between that check and the read is an I/O error. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "readers.h"

#define CIFAR_SIDE 32
#define CIFAR_IMAGE (3 * CIFAR_SIDE * CIFAR_SIDE) /* 3072 */
#define CIFAR_RECORD (1 + CIFAR_IMAGE)            /* 3073 */
#define CIFAR_CHUNK_RECORDS 1024                  /* records per fread, about 3 MB */

/* Size of a batch file in records; SNN_ERR_IO when it cannot be examined, SNN_ERR_FORMAT
 * when its size is not a whole, nonzero number of records. */
static snn_status batch_records(const char *path, uint64_t *records) {
    struct stat sb;
    uint64_t size;
    if (stat(path, &sb) != 0)
        return snn_fail(SNN_ERR_IO, "cannot open the CIFAR-10 batch %s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return snn_fail(SNN_ERR_IO, "the CIFAR-10 batch %s is not a regular file", path);
    size = (uint64_t)sb.st_size;
    if (size == 0)
        return snn_fail(SNN_ERR_FORMAT,
                        "%s: the CIFAR-10 batch is empty; expected records of %d bytes (1 label "
                        "byte + 3x32x32 pixel bytes)",
                        path, CIFAR_RECORD);
    if (size % CIFAR_RECORD != 0)
        return snn_fail(SNN_ERR_FORMAT,
                        "%s: the CIFAR-10 batch is %" PRIu64 " bytes, not a multiple of the "
                        "%d-byte record (1 label byte + 3x32x32 pixel bytes): %" PRIu64
                        " records and %" PRIu64 " bytes over",
                        path, size, CIFAR_RECORD, size / CIFAR_RECORD, size % CIFAR_RECORD);
    *records = size / CIFAR_RECORD;
    return SNN_OK;
}

/* Reads the records of one batch into images (records x 3072) and labels (records). */
static snn_status read_batch(const char *path, size_t records, unsigned char *images,
                             unsigned char *labels, unsigned char *chunk) {
    FILE *f = fopen(path, "rb");
    struct stat sb;
    snn_status st = SNN_OK;
    size_t done = 0;
    if (!f)
        return snn_fail(SNN_ERR_IO, "cannot open the CIFAR-10 batch %s: %s", path, strerror(errno));
    if (fstat(fileno(f), &sb) != 0 || (uint64_t)sb.st_size != (uint64_t)records * CIFAR_RECORD) {
        st = snn_fail(SNN_ERR_IO, "%s: the CIFAR-10 batch changed while it was being read", path);
        goto done;
    }
    while (done < records) {
        size_t k = records - done < CIFAR_CHUNK_RECORDS ? records - done : CIFAR_CHUNK_RECORDS;
        size_t want = k * CIFAR_RECORD, got;
        errno = 0;
        got = fread(chunk, 1, want, f);
        if (got != want) {
            if (ferror(f))
                st = snn_fail(SNN_ERR_IO, "%s: cannot read the CIFAR-10 batch: %s", path,
                              errno ? strerror(errno) : "read error");
            else
                st = snn_fail(SNN_ERR_IO,
                              "%s: the CIFAR-10 batch ended early at byte %zu (was it changed?)",
                              path, done * CIFAR_RECORD + got);
            goto done;
        }
        for (size_t r = 0; r < k; r++) {
            const unsigned char *rec = chunk + r * CIFAR_RECORD;
            if (rec[0] >= SNN_DATASET_CLASSES) {
                st = snn_fail(SNN_ERR_FORMAT, "%s: record %zu has label %u, expected 0..%d", path,
                              done + r, rec[0], SNN_DATASET_CLASSES - 1);
                goto done;
            }
            labels[done + r] = rec[0];
            memcpy(images + (done + r) * CIFAR_IMAGE, rec + 1, CIFAR_IMAGE);
        }
        done += k;
    }
done:
    fclose(f);
    return st;
}

snn_status snn_cifar10_read(const char *const *paths, int count, snn_image_set *out) {
    unsigned char *images = NULL, *labels = NULL, *chunk = NULL;
    uint64_t total = 0, *records = NULL;
    size_t at = 0;
    snn_status st = SNN_OK;

    records = malloc((size_t)count * sizeof *records);
    if (!records)
        return snn_fail(SNN_ERR_OUT_OF_MEMORY, "out of memory listing %d CIFAR-10 batches", count);
    for (int i = 0; i < count; i++) {
        SNN_CHECK_GOTO(st, batch_records(paths[i], &records[i]), done);
        total += records[i]; /* each < 2^63 / 3073, count < 2^31: no overflow */
    }
    if (total > UINT32_MAX) {
        st = snn_fail(SNN_ERR_FORMAT,
                      "the %d CIFAR-10 batches hold %" PRIu64 " images; at most %" PRIu32
                      " are supported",
                      count, total, UINT32_MAX);
        goto done;
    }
    if (total > SIZE_MAX / CIFAR_IMAGE) {
        st = snn_fail(SNN_ERR_OUT_OF_MEMORY, "%" PRIu64 " CIFAR-10 images do not fit in memory",
                      total);
        goto done;
    }
    images = malloc((size_t)total * CIFAR_IMAGE);
    labels = malloc((size_t)total);
    chunk = malloc((size_t)CIFAR_CHUNK_RECORDS * CIFAR_RECORD);
    if (!images || !labels || !chunk) {
        st = snn_fail(SNN_ERR_OUT_OF_MEMORY, "out of memory loading %" PRIu64 " CIFAR-10 images",
                      total);
        goto done;
    }
    for (int i = 0; i < count; i++) {
        SNN_CHECK_GOTO(
            st,
            read_batch(paths[i], (size_t)records[i], images + at * CIFAR_IMAGE, labels + at, chunk),
            done);
        at += (size_t)records[i];
    }
    *out = (snn_image_set){images, labels, (size_t)total, 3, CIFAR_SIDE, CIFAR_SIDE};
    images = labels = NULL;
done:
    free(records);
    free(chunk);
    free(images);
    free(labels);
    return st;
}
