/* Datasets: the kinds and where their files live, the dataset object, statistics and
 * normalization, the shuffled order of an epoch, and batches as float. The file
 * formats are read in idx.c (MNIST, Fashion-MNIST) and cifar10.c. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "readers.h"
#include "rng.h"

/* A dataset: images and labels held as bytes (read by readers.h's readers). */
#define SNN_DATASET_MAX_CHANNELS 3

struct snn_dataset {
    size_t count;                /* images; 1 .. UINT32_MAX (order and gather use uint32_t) */
    int channels, height, width; /* channels 1 .. SNN_DATASET_MAX_CHANNELS */
    size_t image_bytes;          /* channels * height * width */
    unsigned char *images;       /* count * image_bytes: (N, C, H, W) */
    unsigned char *labels;       /* count, each < SNN_DATASET_CLASSES */
    float mean[SNN_DATASET_MAX_CHANNELS], std[SNN_DATASET_MAX_CHANNELS];
    /* lut[c][b] = ((double)b / 255 - mean[c]) / std[c], rounded once to float. */
    float lut[SNN_DATASET_MAX_CHANNELS][256];
};

/* Philox streams of the epoch orders (see snn_dataset_order). rng.c puts the stream in
 * bits 40..63 of the 64-bit block counter, so only a stream's low 24 bits count: the
 * shuffles take the upper half of that space, 0x800000 + epoch for epoch < 2^23, and
 * each stream has 2^40 blocks (2^42 draws), far more than a shuffle uses. */
#define SHUFFLE_STREAM_BASE 0x800000u
#define SHUFFLE_EPOCHS 0x800000u

/* ------------------------------------------------------------------ kinds -- */

const char *snn_dataset_kind_name(snn_dataset_kind kind) {
    switch (kind) {
    case SNN_DATASET_MNIST: return "mnist";
    case SNN_DATASET_FASHION_MNIST: return "fashion-mnist";
    case SNN_DATASET_CIFAR10: return "cifar10";
    }
    return "unknown";
}

snn_status snn_dataset_kind_parse(const char *name, snn_dataset_kind *out) {
    static const struct {
        const char *name;
        snn_dataset_kind kind;
    } names[] = {
        {"mnist", SNN_DATASET_MNIST},
        {"fashion-mnist", SNN_DATASET_FASHION_MNIST},
        {"fashion_mnist", SNN_DATASET_FASHION_MNIST},
        {"fmnist", SNN_DATASET_FASHION_MNIST},
        {"cifar10", SNN_DATASET_CIFAR10},
        {"cifar-10", SNN_DATASET_CIFAR10},
    };
    if (!name) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_kind_parse: name is NULL");
    if (!out) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_kind_parse: out is NULL");
    for (size_t i = 0; i < SNN_ARRAY_LEN(names); i++)
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].kind;
            return SNN_OK;
        }
    return snn_fail(SNN_ERR_INVALID_ARG,
                    "snn_dataset_kind_parse: unknown dataset name '%.100s'; expected mnist, "
                    "fashion-mnist (or fashion_mnist, fmnist) or cifar10 (or cifar-10)",
                    name);
}

const char *snn_dataset_default_dir(snn_dataset_kind kind) {
    /* Debian 12 packages only Fashion-MNIST (dataset-fashion-mnist). */
    return kind == SNN_DATASET_FASHION_MNIST ? "/usr/share/datasets/fashion-mnist" : NULL;
}

/* ------------------------------------------------------------------ files -- */

#define PATH_BUF 4096

/* dir/sub/name (sub may be NULL) into buf; 0 when it does not fit. */
static int join_path(char *buf, const char *dir, const char *sub, const char *name) {
    size_t len = strlen(dir);
    const char *sep = len && dir[len - 1] == '/' ? "" : "/";
    int n = sub ? snprintf(buf, PATH_BUF, "%s%s%s/%s", dir, sep, sub, name)
                : snprintf(buf, PATH_BUF, "%s%s%s", dir, sep, name);
    return n >= 0 && n < PATH_BUF;
}

/* Whether opening path is worth trying: it exists, or stat fails for a reason other
 * than its absence (so that opening it reports that reason). */
static int path_present(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 || (errno != ENOENT && errno != ENOTDIR);
}

static const char *install_hint(snn_dataset_kind kind) {
    return kind == SNN_DATASET_FASHION_MNIST
               ? " (Debian packages it: apt-get install dataset-fashion-mnist, then use "
                 "/usr/share/datasets/fashion-mnist)"
               : "";
}

/* dir/name, or else dir/name.gz, into buf. */
static snn_status find_idx_file(char *buf, snn_dataset_kind kind, const char *dir,
                                const char *name) {
    char gz[PATH_BUF];
    if (!join_path(buf, dir, NULL, name) || snprintf(gz, sizeof gz, "%s.gz", buf) >= (int)sizeof gz)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_load: directory name is too long");
    if (path_present(buf)) return SNN_OK;
    if (path_present(gz)) {
        memcpy(buf, gz, strlen(gz) + 1);
        return SNN_OK;
    }
    return snn_fail(SNN_ERR_IO, "%s missing: tried %s and %s%s", name, buf, gz, install_hint(kind));
}

static snn_status load_idx_split(snn_dataset **out, snn_dataset_kind kind, const char *dir,
                                 int train) {
    char images[PATH_BUF], labels[PATH_BUF];
    const char *prefix = train ? "train" : "t10k";
    char name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    SNN_TRY(find_idx_file(images, kind, dir, name));
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    SNN_TRY(find_idx_file(labels, kind, dir, name));
    return snn_dataset_load_idx(out, images, labels);
}

static snn_status load_cifar_split(snn_dataset **out, const char *dir, int train) {
    static const char *const train_names[] = {"data_batch_1.bin", "data_batch_2.bin",
                                              "data_batch_3.bin", "data_batch_4.bin",
                                              "data_batch_5.bin"};
    static const char *const test_names[] = {"test_batch.bin"};
    const char *const *names = train ? train_names : test_names;
    int count = train ? (int)SNN_ARRAY_LEN(train_names) : (int)SNN_ARRAY_LEN(test_names);
    const char *sub = NULL;
    char first[PATH_BUF], nested[PATH_BUF], paths[5][PATH_BUF];
    const char *ptrs[5];

    if (!join_path(first, dir, NULL, names[0]) ||
        !join_path(nested, dir, "cifar-10-batches-bin", names[0]))
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_load: directory name is too long");
    if (!path_present(first)) {
        if (!path_present(nested))
            return snn_fail(SNN_ERR_IO, "%s missing: tried %s and %s", names[0], first, nested);
        sub = "cifar-10-batches-bin";
    }
    for (int i = 0; i < count; i++) {
        join_path(paths[i], dir, sub, names[i]); /* no longer than first or nested */
        ptrs[i] = paths[i];
    }
    return snn_dataset_load_cifar10(out, ptrs, count);
}

snn_status snn_dataset_load(snn_dataset **out, snn_dataset_kind kind, const char *dir, int train) {
    snn_status st;
    if (!out) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_load: out is NULL");
    *out = NULL;
    if (!dir) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_load: dir is NULL");
    if (!dir[0]) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_load: dir is empty");
    switch (kind) {
    case SNN_DATASET_MNIST:
    case SNN_DATASET_FASHION_MNIST: st = load_idx_split(out, kind, dir, train); break;
    case SNN_DATASET_CIFAR10: st = load_cifar_split(out, dir, train); break;
    default:
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_load: unknown dataset kind %d",
                        (int)kind);
    }
    if (st != SNN_OK && st != SNN_ERR_INVALID_ARG)
        snn_fail_context(st, "loading the %s split of %s", train ? "training" : "test",
                         snn_dataset_kind_name(kind));
    return st;
}

/* ---------------------------------------------------------------- objects -- */

/* The lookup table of one channel; 0 when a value does not fit in a float. */
static int make_lut(float lut[256], double mean, double std) {
    for (int b = 0; b < 256; b++) {
        double v = ((double)b / 255.0 - mean) / std;
        if (!(fabs(v) <= FLT_MAX)) return 0;
        lut[b] = (float)v;
    }
    return 1;
}

/* A dataset over what a reader read, with mean 0 and std 1. Takes ownership of its
 * buffers whether it succeeds or not. */
static snn_status adopt(snn_dataset **out, snn_image_set set) {
    unsigned char *images = set.images, *labels = set.labels;
    snn_dataset *ds = calloc(1, sizeof *ds);
    *out = NULL;
    if (!ds) {
        free(images);
        free(labels);
        return snn_fail(SNN_ERR_OUT_OF_MEMORY, "out of memory creating a dataset");
    }
    ds->count = set.count;
    ds->channels = set.channels;
    ds->height = set.height;
    ds->width = set.width;
    ds->image_bytes = (size_t)set.channels * (size_t)set.height * (size_t)set.width;
    ds->images = images;
    ds->labels = labels;
    for (int c = 0; c < SNN_DATASET_MAX_CHANNELS; c++) {
        ds->mean[c] = 0.0f;
        ds->std[c] = 1.0f;
        make_lut(ds->lut[c], 0.0, 1.0);
    }
    *out = ds;
    return SNN_OK;
}

snn_status snn_dataset_load_idx(snn_dataset **out, const char *images_path, const char *labels_path) {
    if (!out) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_load_idx: out is NULL");
    *out = NULL;
    if (!images_path) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_load_idx: images_path is NULL");
    if (!labels_path) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_load_idx: labels_path is NULL");
    snn_image_set set;
    SNN_TRY(snn_idx_read(images_path, labels_path, &set));
    return adopt(out, set);
}

snn_status snn_dataset_load_cifar10(snn_dataset **out, const char *const *paths, int count) {
    if (!out) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_load_cifar10: out is NULL");
    *out = NULL;
    if (!paths) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_load_cifar10: paths is NULL");
    if (count < 1)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_load_cifar10: count is %d, expected at least 1", count);
    for (int i = 0; i < count; i++)
        if (!paths[i]) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_load_cifar10: paths[%d] is NULL", i);
    snn_image_set set;
    SNN_TRY(snn_cifar10_read(paths, count, &set));
    return adopt(out, set);
}

void snn_dataset_free(snn_dataset *ds) {
    if (!ds) return;
    free(ds->images);
    free(ds->labels);
    free(ds);
}

size_t snn_dataset_size(const snn_dataset *ds) { return ds ? ds->count : 0; }

snn_status snn_dataset_shape(const snn_dataset *ds, int *channels, int *height, int *width) {
    if (!ds) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_shape: ds is NULL");
    if (!channels || !height || !width)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_shape: %s is NULL",
                        !channels ? "channels"
                        : !height ? "height"
                                  : "width");
    *channels = ds->channels;
    *height = ds->height;
    *width = ds->width;
    return SNN_OK;
}

int snn_dataset_num_classes(const snn_dataset *ds) { return ds ? SNN_DATASET_CLASSES : 0; }

snn_status snn_dataset_truncate(snn_dataset *ds, size_t n) {
    if (!ds) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_truncate: ds is NULL");
    if (n < 1)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_truncate: n is 0, expected at least 1");
    if (n >= ds->count) return SNN_OK;
    {
        /* Give the memory back where the allocator can; keep the old block otherwise. */
        unsigned char *p = realloc(ds->images, n * ds->image_bytes);
        if (p) ds->images = p;
        p = realloc(ds->labels, n);
        if (p) ds->labels = p;
    }
    ds->count = n;
    return SNN_OK;
}

/* ------------------------------------------------------------ statistics -- */

snn_status snn_dataset_channel_stats(const snn_dataset *ds, float *mean, float *std) {
    uint64_t hist[SNN_DATASET_MAX_CHANNELS][256];
    size_t hw;
    if (!ds) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_channel_stats: ds is NULL");
    if (!mean) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_channel_stats: mean is NULL");
    if (!std) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_channel_stats: std is NULL");
    /* A histogram per channel, then exact sums over its 256 values in double: the
     * result does not depend on the order of the images. */
    memset(hist, 0, sizeof hist);
    hw = (size_t)ds->height * (size_t)ds->width;
    for (size_t i = 0; i < ds->count; i++)
        for (int c = 0; c < ds->channels; c++) {
            const unsigned char *p = ds->images + i * ds->image_bytes + (size_t)c * hw;
            uint64_t *h = hist[c];
            for (size_t k = 0; k < hw; k++) h[p[k]]++;
        }
    for (int c = 0; c < ds->channels; c++) {
        double n = (double)ds->count * (double)hw, sum = 0.0, sq = 0.0, m;
        for (int b = 0; b < 256; b++) sum += (double)hist[c][b] * ((double)b / 255.0);
        m = sum / n;
        for (int b = 0; b < 256; b++) {
            double d = (double)b / 255.0 - m;
            sq += (double)hist[c][b] * d * d;
        }
        mean[c] = (float)m;
        std[c] = (float)sqrt(sq / n);
    }
    return SNN_OK;
}

snn_status snn_dataset_set_normalization(snn_dataset *ds, const float *mean, const float *std) {
    float lut[SNN_DATASET_MAX_CHANNELS][256];
    if (!ds) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_set_normalization: ds is NULL");
    if (!mean) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_set_normalization: mean is NULL");
    if (!std) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_set_normalization: std is NULL");
    for (int c = 0; c < ds->channels; c++) {
        if (!isfinite(mean[c]))
            return snn_fail(
                SNN_ERR_INVALID_ARG,
                "snn_dataset_set_normalization: mean[%d] is %g, expected a finite value", c,
                (double)mean[c]);
        if (!(std[c] > 0.0f) || !isfinite(std[c]))
            return snn_fail(SNN_ERR_INVALID_ARG,
                            "snn_dataset_set_normalization: std[%d] is %g, expected a positive "
                            "finite value",
                            c, (double)std[c]);
        if (!make_lut(lut[c], mean[c], std[c]))
            return snn_fail(SNN_ERR_INVALID_ARG,
                            "snn_dataset_set_normalization: std[%d] = %g is so small that images "
                            "overflow float",
                            c, (double)std[c]);
    }
    /* Nothing changes unless every channel is valid. */
    for (int c = 0; c < ds->channels; c++) {
        ds->mean[c] = mean[c];
        ds->std[c] = std[c];
        memcpy(ds->lut[c], lut[c], sizeof lut[c]);
    }
    return SNN_OK;
}

/* ---------------------------------------------------------------- batches -- */

/* Uniform in [0, range), 1 <= range <= 2^32: the first u32 u below the largest multiple
 * of range that fits in 2^32, reduced mod range (so no value is favoured). */
static uint32_t draw_below(snn_rng *r, uint64_t range) {
    uint64_t limit = (UINT64_C(1) << 32) / range * range;
    for (;;) {
        uint64_t u = snn_rng_u32(r);
        if (u < limit) return (uint32_t)(u % range);
    }
}

snn_status snn_dataset_order(const snn_dataset *ds, uint64_t seed, uint64_t epoch,
                             uint32_t *order) {
    snn_rng rng;
    if (!ds) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_order: ds is NULL");
    if (!order) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_order: order is NULL");
    if (epoch >= SHUFFLE_EPOCHS)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_order: epoch %llu is outside 0..%u",
                        (unsigned long long)epoch, SHUFFLE_EPOCHS - 1);
    /* count <= UINT32_MAX, checked by the readers. */
    for (size_t i = 0; i < ds->count; i++) order[i] = (uint32_t)i;
    snn_rng_init(&rng, seed, (uint32_t)(SHUFFLE_STREAM_BASE + epoch));
    for (size_t i = ds->count - 1; i > 0; i--) {
        uint32_t j = draw_below(&rng, (uint64_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    return SNN_OK;
}

snn_status snn_dataset_gather(const snn_dataset *ds, const uint32_t *indices, size_t count,
                              float *images, int64_t *labels) {
    size_t hw;
    if (!ds) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_gather: ds is NULL");
    if (!indices) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_gather: indices is NULL");
    if (!images) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_gather: images is NULL");
    if (!labels) return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_gather: labels is NULL");
    if (count > SIZE_MAX / sizeof(float) / ds->image_bytes)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_dataset_gather: count %zu is too large", count);
    /* Check every index before writing anything. */
    for (size_t k = 0; k < count; k++)
        if (indices[k] >= ds->count)
            return snn_fail(SNN_ERR_INVALID_ARG,
                            "snn_dataset_gather: indices[%zu] is %u, outside 0..%zu", k,
                            (unsigned)indices[k], ds->count - 1);
    hw = (size_t)ds->height * (size_t)ds->width;
    for (size_t k = 0; k < count; k++) {
        const unsigned char *src = ds->images + (size_t)indices[k] * ds->image_bytes;
        float *dst = images + k * ds->image_bytes;
        for (int c = 0; c < ds->channels; c++) {
            const float *lut = ds->lut[c];
            for (size_t p = 0; p < hw; p++) dst[p] = lut[src[p]];
            src += hw;
            dst += hw;
        }
        labels[k] = ds->labels[indices[k]];
    }
    return SNN_OK;
}
