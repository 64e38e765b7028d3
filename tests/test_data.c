/* Tests of the datasets: IDX (plain and gzip) and CIFAR-10 files written here byte by
 * byte, pixel values after gather with and without normalization, statistics against
 * hand computations, epoch orders (a permutation, reproducible, against an
 * independent reference), every malformed file the readers reject with the status
 * they give, missing files, NULL arguments, and the real Fashion-MNIST when Debian's
 * package is installed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "testutil.h"

/* ----------------------------------------------------------------- helpers -- */

#define ck_assert_error_mentions(needle)                                                           \
    ck_assert_msg(strstr(snn_last_error(), (needle)) != NULL,                                      \
                  "last error \"%s\" does not mention \"%s\"", snn_last_error(), (needle))

/* A non-NULL pointer that a failing loader must overwrite with NULL. */
#define NOT_NULL_DATASET ((snn_dataset *)(uintptr_t)0x1)

typedef struct blob {
    unsigned char b[8192];
    size_t n;
} blob;

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* An IDX file: magic 00 00 type ndim, ndim dimensions, then n data bytes. */
static void idx_blob(blob *o, unsigned type, unsigned ndim, const uint32_t *dims,
                     const unsigned char *data, size_t n) {
    o->b[0] = 0, o->b[1] = 0, o->b[2] = (unsigned char)type, o->b[3] = (unsigned char)ndim;
    o->n = 4;
    for (unsigned i = 0; i < ndim; i++, o->n += 4) put_be32(o->b + o->n, dims[i]);
    ck_assert_uint_le(o->n + n, sizeof o->b);
    if (n) memcpy(o->b + o->n, data, n);
    o->n += n;
}

static void write_gz(const char *path, const void *bytes, size_t n) {
    gzFile f = gzopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (n) ck_assert_int_eq(gzwrite(f, bytes, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(f), Z_OK);
}

static void write_blob(const char *path, const blob *b, int gz) {
    if (gz)
        write_gz(path, b->b, b->n);
    else
        write_bytes(path, b->b, b->n);
}

static void make_dir(const char *path) { ck_assert_int_eq(mkdir(path, 0700), 0); }

/* The sample IDX pair: 3 images of 2x3 pixels and their labels. */
#define SAMPLE_N 3
#define SAMPLE_H 2
#define SAMPLE_W 3
static const unsigned char sample_pixels[SAMPLE_N * SAMPLE_H * SAMPLE_W] = {
    0,   255, 51,  102, 17, 200, /* image 0 */
    1,   2,   3,   4,   5,  6,   /* image 1 */
    255, 254, 128, 127, 0,  64   /* image 2 */
};
static const unsigned char sample_labels[SAMPLE_N] = {9, 0, 4};

static void write_sample_idx(const char *images, const char *labels, int gz_images, int gz_labels) {
    static const uint32_t idims[3] = {SAMPLE_N, SAMPLE_H, SAMPLE_W}, ldims[1] = {SAMPLE_N};
    blob b;
    idx_blob(&b, 0x08, 3, idims, sample_pixels, sizeof sample_pixels);
    write_blob(images, &b, gz_images);
    idx_blob(&b, 0x08, 1, ldims, sample_labels, sizeof sample_labels);
    write_blob(labels, &b, gz_labels);
}

/* An IDX pair of n 1x1 images whose pixel i is i % 256, labels i % 10. */
static snn_dataset *make_sized(size_t n) {
    const char *ip = tmp_path("sized-images"), *lp = tmp_path("sized-labels");
    unsigned char *data = malloc(n + 8);
    const uint32_t idims[3] = {(uint32_t)n, 1, 1}, ldims[1] = {(uint32_t)n};
    FILE *f;
    snn_dataset *ds = NULL;
    ck_assert_ptr_nonnull(data);
    for (int pass = 0; pass < 2; pass++) {
        unsigned char head[16];
        f = fopen(pass ? lp : ip, "wb");
        ck_assert_ptr_nonnull(f);
        head[0] = head[1] = 0, head[2] = 8, head[3] = pass ? 1 : 3;
        for (int d = 0; d < (pass ? 1 : 3); d++)
            put_be32(head + 4 + 4 * d, pass ? ldims[d] : idims[d]);
        ck_assert_uint_eq(fwrite(head, 1, pass ? 8 : 16, f), pass ? 8 : 16);
        for (size_t i = 0; i < n; i++) data[i] = (unsigned char)(pass ? i % 10 : i % 256);
        ck_assert_uint_eq(fwrite(data, 1, n, f), n);
        ck_assert_int_eq(fclose(f), 0);
    }
    free(data);
    ck_assert_snn_ok(snn_dataset_load_idx(&ds, ip, lp));
    return ds;
}

/* One CIFAR-10 record: label, then channel c pixel p = (seed + 7c + 3p) % 256. */
static void cifar_record(unsigned char *rec, unsigned label, unsigned seed) {
    rec[0] = (unsigned char)label;
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 1024; p++)
            rec[1 + c * 1024 + p] = (unsigned char)((seed + 7 * c + 3 * p) % 256);
}

/* A batch of n records with labels labels[i] and seeds first_seed + i. */
static void write_cifar(const char *path, size_t n, const unsigned *labels, unsigned first_seed) {
    unsigned char *buf = malloc(n * 3073 + 1);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < n; i++)
        cifar_record(buf + i * 3073, labels[i], first_seed + (unsigned)i);
    write_bytes(path, buf, n * 3073);
    free(buf);
}

static void assert_shape(const snn_dataset *ds, int c, int h, int w) {
    int gc = -1, gh = -1, gw = -1;
    ck_assert_snn_ok(snn_dataset_shape(ds, &gc, &gh, &gw));
    ck_assert_int_eq(gc, c);
    ck_assert_int_eq(gh, h);
    ck_assert_int_eq(gw, w);
}

/* The documented value of a pixel: ((double)byte / 255 - mean) / std, rounded once. */
static float expect_pixel(unsigned byte, float mean, float std) {
    return (float)(((double)byte / 255.0 - (double)mean) / (double)std);
}

/* Checks the sample IDX dataset: shape, size, classes, and every value of a gather
 * in a shuffled order with the given normalization. */
static void check_sample(const snn_dataset *ds, float mean, float std) {
    static const uint32_t idx[4] = {2, 0, 1, 2};
    float images[4 * 6];
    int64_t labels[4] = {-1, -1, -1, -1};
    ck_assert_uint_eq(snn_dataset_size(ds), SAMPLE_N);
    ck_assert_int_eq(snn_dataset_num_classes(ds), 10);
    assert_shape(ds, 1, SAMPLE_H, SAMPLE_W);
    ck_assert_snn_ok(snn_dataset_gather(ds, idx, 4, images, labels));
    for (int k = 0; k < 4; k++) {
        ck_assert_int_eq(labels[k], sample_labels[idx[k]]);
        for (int p = 0; p < 6; p++)
            ck_assert_float_eq(images[k * 6 + p],
                               expect_pixel(sample_pixels[idx[k] * 6 + p], mean, std));
    }
}

/* ------------------------------------------------------------------ kinds -- */

START_TEST(test_kinds) {
    snn_dataset_kind k;
    static const struct {
        const char *name;
        snn_dataset_kind kind;
    } ok[] = {{"mnist", SNN_DATASET_MNIST},
              {"MNIST", SNN_DATASET_MNIST},
              {"fashion-mnist", SNN_DATASET_FASHION_MNIST},
              {"fashion_mnist", SNN_DATASET_FASHION_MNIST},
              {"fmnist", SNN_DATASET_FASHION_MNIST},
              {"Fashion-MNIST", SNN_DATASET_FASHION_MNIST},
              {"cifar10", SNN_DATASET_CIFAR10},
              {"cifar-10", SNN_DATASET_CIFAR10},
              {"CIFAR10", SNN_DATASET_CIFAR10}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        k = (snn_dataset_kind)-1;
        ck_assert_snn_ok(snn_dataset_kind_parse(ok[i].name, &k));
        ck_assert_int_eq(k, ok[i].kind);
    }
    ck_assert_str_eq(snn_dataset_kind_name(SNN_DATASET_MNIST), "mnist");
    ck_assert_str_eq(snn_dataset_kind_name(SNN_DATASET_FASHION_MNIST), "fashion-mnist");
    ck_assert_str_eq(snn_dataset_kind_name(SNN_DATASET_CIFAR10), "cifar10");
    ck_assert_str_eq(snn_dataset_kind_name((snn_dataset_kind)7), "unknown");
    /* Each name parses back to its kind. */
    for (int i = 0; i < 3; i++) {
        ck_assert_snn_ok(snn_dataset_kind_parse(snn_dataset_kind_name((snn_dataset_kind)i), &k));
        ck_assert_int_eq(k, i);
    }

    k = SNN_DATASET_CIFAR10;
    ck_assert_snn_status(snn_dataset_kind_parse("imagenet", &k), SNN_ERR_INVALID_ARG);
    ck_assert_int_eq(k, SNN_DATASET_CIFAR10);
    ck_assert_error_mentions("imagenet");
    ck_assert_error_mentions("fashion-mnist");
    ck_assert_error_mentions("cifar10");
    ck_assert_snn_status(snn_dataset_kind_parse("", &k), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_kind_parse("mnist ", &k), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_kind_parse(NULL, &k), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_kind_parse("mnist", NULL), SNN_ERR_INVALID_ARG);

    ck_assert_str_eq(snn_dataset_default_dir(SNN_DATASET_FASHION_MNIST),
                     "/usr/share/datasets/fashion-mnist");
    ck_assert_ptr_null(snn_dataset_default_dir(SNN_DATASET_MNIST));
    ck_assert_ptr_null(snn_dataset_default_dir(SNN_DATASET_CIFAR10));
    ck_assert_ptr_null(snn_dataset_default_dir((snn_dataset_kind)7));
}
END_TEST

/* -------------------------------------------------------------------- IDX -- */

START_TEST(test_idx_plain) {
    snn_dataset *ds = NULL;
    float v[6];
    int64_t label;
    uint32_t i0 = 0;
    write_sample_idx(tmp_path("s-images"), tmp_path("s-labels"), 0, 0);
    ck_assert_snn_ok(snn_dataset_load_idx(&ds, tmp_path("s-images"), tmp_path("s-labels")));
    check_sample(ds, 0.0f, 1.0f);
    /* Hand values of image 0 (0, 255, 51, 102, 17, 200). */
    ck_assert_snn_ok(snn_dataset_gather(ds, &i0, 1, v, &label));
    ck_assert_float_eq(v[0], 0.0f);
    ck_assert_float_eq(v[1], 1.0f);
    ck_assert_float_eq(v[2], 0.2f);
    ck_assert_float_eq(v[3], 0.4f);
    ck_assert_float_eq(v[4], (float)(1.0 / 15.0));
    ck_assert_float_eq(v[5], (float)(40.0 / 51.0));
    ck_assert_int_eq(label, 9);

    /* Normalized: (x - 0.5) / 0.25. */
    {
        const float mean = 0.5f, std = 0.25f;
        ck_assert_snn_ok(snn_dataset_set_normalization(ds, &mean, &std));
        check_sample(ds, mean, std);
        ck_assert_snn_ok(snn_dataset_gather(ds, &i0, 1, v, &label));
        ck_assert_float_eq(v[0], -2.0f);
        ck_assert_float_eq(v[1], 2.0f);
        ck_assert_float_eq(v[2], -1.2f);
        ck_assert_float_eq(v[3], -0.4f);
        ck_assert_float_le(fabsf(v[5] - (40.0f / 51.0f - 0.5f) / 0.25f), 1e-6f);
    }
    /* Back to the identity. */
    {
        const float mean = 0.0f, std = 1.0f;
        ck_assert_snn_ok(snn_dataset_set_normalization(ds, &mean, &std));
        check_sample(ds, 0.0f, 1.0f);
    }
    /* Gathering nothing is fine. */
    ck_assert_snn_ok(snn_dataset_gather(ds, &i0, 0, v, &label));
    snn_dataset_free(ds);
    snn_dataset_free(NULL);
}
END_TEST

START_TEST(test_idx_gzip) {
    snn_dataset *ds = NULL;
    /* Both compressed, then each one alone. */
    for (int mode = 0; mode < 3; mode++) {
        char in[64], ln[64];
        snprintf(in, sizeof in, "g%d-images.gz", mode);
        snprintf(ln, sizeof ln, "g%d-labels.gz", mode);
        write_sample_idx(tmp_path(in), tmp_path(ln), mode != 2, mode != 1);
        ck_assert_snn_ok(snn_dataset_load_idx(&ds, tmp_path(in), tmp_path(ln)));
        check_sample(ds, 0.0f, 1.0f);
        snn_dataset_free(ds);
        ds = NULL;
    }
    /* The file really is compressed. */
    {
        size_t n;
        unsigned char *b = read_bytes(tmp_path("g0-images.gz"), &n);
        ck_assert_uint_ge(n, 2);
        ck_assert_int_eq(b[0], 0x1f);
        ck_assert_int_eq(b[1], 0x8b);
        free(b);
    }
}
END_TEST

/* A gzip file with more than one 16 MB read and more than the first 64 MB allocation:
 * 70 MB of images, 5000 images of 112x125. */
START_TEST(test_idx_large_gzip) {
    const uint32_t n = 5000, h = 112, w = 125;
    const char *ip = tmp_path("big-images.gz"), *lp = tmp_path("big-labels");
    const uint32_t ldims[1] = {n};
    unsigned char head[16], *row = malloc(h * w);
    gzFile f = gzopen(ip, "wb1");
    blob b;
    snn_dataset *ds = NULL;
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(row);
    head[0] = head[1] = 0, head[2] = 8, head[3] = 3;
    put_be32(head + 4, n), put_be32(head + 8, h), put_be32(head + 12, w);
    ck_assert_int_eq(gzwrite(f, head, 16), 16);
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t p = 0; p < h * w; p++) row[p] = (unsigned char)((i * 31 + p) % 251);
        ck_assert_int_eq(gzwrite(f, row, h * w), (int)(h * w));
    }
    ck_assert_int_eq(gzclose(f), Z_OK);
    {
        unsigned char labels[5000];
        for (uint32_t i = 0; i < n; i++) labels[i] = (unsigned char)(i % 10);
        idx_blob(&b, 8, 1, ldims, labels, n);
        write_bytes(lp, b.b, b.n);
    }
    ck_assert_snn_ok(snn_dataset_load_idx(&ds, ip, lp));
    ck_assert_uint_eq(snn_dataset_size(ds), n);
    assert_shape(ds, 1, (int)h, (int)w);
    {
        const uint32_t pick[3] = {0, 2500, 4999};
        float *img = malloc(3 * h * w * sizeof *img);
        int64_t lab[3];
        ck_assert_ptr_nonnull(img);
        ck_assert_snn_ok(snn_dataset_gather(ds, pick, 3, img, lab));
        for (int k = 0; k < 3; k++) {
            ck_assert_int_eq(lab[k], pick[k] % 10);
            for (uint32_t p = 0; p < h * w; p += 997)
                ck_assert_float_eq(img[k * h * w + p],
                                   expect_pixel((pick[k] * 31 + p) % 251, 0, 1));
            ck_assert_float_eq(img[k * h * w + h * w - 1],
                               expect_pixel((pick[k] * 31 + h * w - 1) % 251, 0, 1));
        }
        free(img);
    }
    free(row);
    snn_dataset_free(ds);
}
END_TEST

START_TEST(test_load_dir_idx) {
    char dir[4096], slash[4200];
    snn_dataset *ds = NULL;
    snprintf(dir, sizeof dir, "%s", tmp_path("fmnist"));
    make_dir(dir);
    /* train compressed (only the .gz names), test plain. */
    {
        char a[4200], b[4200];
        snprintf(a, sizeof a, "%s/train-images-idx3-ubyte.gz", dir);
        snprintf(b, sizeof b, "%s/train-labels-idx1-ubyte.gz", dir);
        write_sample_idx(a, b, 1, 1);
        snprintf(a, sizeof a, "%s/t10k-images-idx3-ubyte", dir);
        snprintf(b, sizeof b, "%s/t10k-labels-idx1-ubyte", dir);
        write_sample_idx(a, b, 0, 0);
    }
    for (int train = 0; train < 2; train++) {
        ck_assert_snn_ok(snn_dataset_load(&ds, SNN_DATASET_FASHION_MNIST, dir, train));
        check_sample(ds, 0.0f, 1.0f);
        snn_dataset_free(ds);
        ck_assert_snn_ok(snn_dataset_load(&ds, SNN_DATASET_MNIST, dir, train));
        check_sample(ds, 0.0f, 1.0f);
        snn_dataset_free(ds);
    }
    /* A trailing slash is fine. */
    snprintf(slash, sizeof slash, "%s/", dir);
    ck_assert_snn_ok(snn_dataset_load(&ds, SNN_DATASET_FASHION_MNIST, slash, 1));
    snn_dataset_free(ds);

    /* The plain name is tried first: a broken .gz next to a good plain file is not read. */
    {
        char a[4200];
        snprintf(a, sizeof a, "%s/t10k-images-idx3-ubyte.gz", dir);
        write_bytes(a, "garbage", 7);
        ck_assert_snn_ok(snn_dataset_load(&ds, SNN_DATASET_FASHION_MNIST, dir, 0));
        snn_dataset_free(ds);
    }
}
END_TEST

/* ---------------------------------------------------------------- CIFAR-10 -- */

/* img (3, 32, 32) is the record written with seed, normalized by mean and std (NULL:
 * 0 and 1). */
static void assert_cifar_image(const float *img, unsigned seed, const float *mean,
                               const float *std) {
    for (int c = 0; c < 3; c++) {
        int bad = -1;
        for (int p = 0; p < 1024 && bad < 0; p++)
            if (img[c * 1024 + p] != expect_pixel((seed + 7 * c + 3 * p) % 256,
                                                  mean ? mean[c] : 0.0f, std ? std[c] : 1.0f))
                bad = p;
        ck_assert_msg(bad < 0, "seed %u channel %d pixel %d is %.9g", seed, c, bad,
                      bad < 0 ? 0.0 : (double)img[c * 1024 + bad]);
    }
}

START_TEST(test_cifar_files) {
    static const unsigned la[2] = {3, 9}, lb[3] = {0, 5, 1};
    const char *paths[2];
    snn_dataset *ds = NULL;
    float *img = malloc(5 * 3072 * sizeof *img);
    int64_t labels[5];
    const uint32_t order[5] = {4, 0, 1, 2, 3};
    ck_assert_ptr_nonnull(img);
    write_cifar(tmp_path("a.bin"), 2, la, 100);
    write_cifar(tmp_path("b.bin"), 3, lb, 200);
    paths[0] = tmp_path("a.bin");
    paths[1] = tmp_path("b.bin");
    ck_assert_snn_ok(snn_dataset_load_cifar10(&ds, paths, 2));
    ck_assert_uint_eq(snn_dataset_size(ds), 5);
    ck_assert_int_eq(snn_dataset_num_classes(ds), 10);
    assert_shape(ds, 3, 32, 32);
    ck_assert_snn_ok(snn_dataset_gather(ds, order, 5, img, labels));
    for (int k = 0; k < 5; k++) {
        uint32_t i = order[k];
        unsigned seed = i < 2 ? 100 + i : 200 + (i - 2);
        ck_assert_int_eq(labels[k], i < 2 ? la[i] : lb[i - 2]);
        assert_cifar_image(img + k * 3072, seed, NULL, NULL);
    }
    /* Per-channel normalization. */
    {
        const float mean[3] = {0.25f, 0.5f, 0.75f}, std[3] = {0.5f, 0.125f, 2.0f};
        ck_assert_snn_ok(snn_dataset_set_normalization(ds, mean, std));
        ck_assert_snn_ok(snn_dataset_gather(ds, order, 5, img, labels));
        for (int k = 0; k < 5; k++) {
            uint32_t i = order[k];
            assert_cifar_image(img + k * 3072, i < 2 ? 100 + i : 200 + (i - 2), mean, std);
        }
    }
    free(img);
    snn_dataset_free(ds);
}
END_TEST

START_TEST(test_load_dir_cifar) {
    static const unsigned labels[2] = {1, 2};
    char flat[4096], nested[4096], sub[4200], p[4300];
    snn_dataset *ds = NULL;
    snprintf(flat, sizeof flat, "%s", tmp_path("cifar-flat"));
    snprintf(nested, sizeof nested, "%s", tmp_path("cifar-nested"));
    snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", nested);
    make_dir(flat);
    make_dir(nested);
    make_dir(sub);
    for (int i = 1; i <= 5; i++) {
        unsigned l[2] = {labels[0], labels[1]};
        snprintf(p, sizeof p, "%s/data_batch_%d.bin", flat, i);
        write_cifar(p, (size_t)i % 2 + 1, l, (unsigned)i);
        snprintf(p, sizeof p, "%s/data_batch_%d.bin", sub, i);
        write_cifar(p, 1, l, (unsigned)i);
    }
    snprintf(p, sizeof p, "%s/test_batch.bin", flat);
    write_cifar(p, 2, labels, 0);
    snprintf(p, sizeof p, "%s/test_batch.bin", sub);
    write_cifar(p, 1, labels, 0);

    ck_assert_snn_ok(snn_dataset_load(&ds, SNN_DATASET_CIFAR10, flat, 1));
    ck_assert_uint_eq(snn_dataset_size(ds), 2 + 1 + 2 + 1 + 2);
    assert_shape(ds, 3, 32, 32);
    snn_dataset_free(ds);
    ck_assert_snn_ok(snn_dataset_load(&ds, SNN_DATASET_CIFAR10, flat, 0));
    ck_assert_uint_eq(snn_dataset_size(ds), 2);
    snn_dataset_free(ds);
    ck_assert_snn_ok(snn_dataset_load(&ds, SNN_DATASET_CIFAR10, nested, 1));
    ck_assert_uint_eq(snn_dataset_size(ds), 5);
    /* The batches come in order: image i has seed i + 1. */
    {
        uint32_t i = 3;
        float img[3072];
        int64_t label;
        ck_assert_snn_ok(snn_dataset_gather(ds, &i, 1, img, &label));
        ck_assert_float_eq(img[0], expect_pixel(4, 0, 1));
        ck_assert_int_eq(label, 1);
    }
    snn_dataset_free(ds);
    ck_assert_snn_ok(snn_dataset_load(&ds, SNN_DATASET_CIFAR10, nested, 0));
    ck_assert_uint_eq(snn_dataset_size(ds), 1);
    snn_dataset_free(ds);
}
END_TEST

/* ----------------------------------------------------- truncate and stats -- */

START_TEST(test_truncate) {
    snn_dataset *ds = NULL;
    float v[6];
    int64_t label;
    uint32_t i;
    write_sample_idx(tmp_path("t-images"), tmp_path("t-labels"), 0, 0);
    ck_assert_snn_ok(snn_dataset_load_idx(&ds, tmp_path("t-images"), tmp_path("t-labels")));
    ck_assert_snn_status(snn_dataset_truncate(ds, 0), SNN_ERR_INVALID_ARG);
    ck_assert_uint_eq(snn_dataset_size(ds), 3);
    ck_assert_snn_ok(snn_dataset_truncate(ds, 100));
    ck_assert_uint_eq(snn_dataset_size(ds), 3);
    ck_assert_snn_ok(snn_dataset_truncate(ds, 3));
    ck_assert_uint_eq(snn_dataset_size(ds), 3);
    ck_assert_snn_ok(snn_dataset_truncate(ds, 2));
    ck_assert_uint_eq(snn_dataset_size(ds), 2);
    assert_shape(ds, 1, SAMPLE_H, SAMPLE_W);
    i = 2;
    ck_assert_snn_status(snn_dataset_gather(ds, &i, 1, v, &label), SNN_ERR_INVALID_ARG);
    i = 1;
    ck_assert_snn_ok(snn_dataset_gather(ds, &i, 1, v, &label));
    ck_assert_int_eq(label, 0);
    ck_assert_float_eq(v[5], expect_pixel(6, 0, 1));
    {
        uint32_t order[2];
        ck_assert_snn_ok(snn_dataset_order(ds, 1, 0, order));
        ck_assert((order[0] == 0 && order[1] == 1) || (order[0] == 1 && order[1] == 0));
    }
    ck_assert_snn_ok(snn_dataset_truncate(ds, 1));
    ck_assert_uint_eq(snn_dataset_size(ds), 1);
    ck_assert_snn_status(snn_dataset_truncate(ds, 0), SNN_ERR_INVALID_ARG);
    ck_assert_uint_eq(snn_dataset_size(ds), 1);
    snn_dataset_free(ds);
}
END_TEST

START_TEST(test_channel_stats_idx) {
    /* Two images of 1x2: bytes 0, 255, 51, 102 are 0, 1, 0.2, 0.4: mean 0.4, population
     * variance (0.16 + 0.36 + 0.04 + 0) / 4 = 0.14. */
    static const unsigned char px[4] = {0, 255, 51, 102}, lab[2] = {1, 2};
    const uint32_t idims[3] = {2, 1, 2}, ldims[1] = {2};
    snn_dataset *ds = NULL;
    float mean = -1, std = -1;
    blob b;
    idx_blob(&b, 8, 3, idims, px, 4);
    write_blob(tmp_path("st-images"), &b, 0);
    idx_blob(&b, 8, 1, ldims, lab, 2);
    write_blob(tmp_path("st-labels"), &b, 0);
    ck_assert_snn_ok(snn_dataset_load_idx(&ds, tmp_path("st-images"), tmp_path("st-labels")));
    ck_assert_snn_ok(snn_dataset_channel_stats(ds, &mean, &std));
    ck_assert_float_eq_tol(mean, 0.4f, 1e-7f);
    ck_assert_float_eq_tol(std, (float)sqrt(0.14), 1e-7f);
    /* Normalizing by them gives mean 0 and std 1. */
    ck_assert_snn_ok(snn_dataset_set_normalization(ds, &mean, &std));
    {
        const uint32_t all[2] = {0, 1};
        float v[4];
        int64_t l[2];
        double s = 0, sq = 0;
        ck_assert_snn_ok(snn_dataset_gather(ds, all, 2, v, l));
        for (int i = 0; i < 4; i++) s += v[i], sq += (double)v[i] * v[i];
        ck_assert_double_eq_tol(s / 4, 0.0, 1e-6);
        ck_assert_double_eq_tol(sq / 4, 1.0, 1e-6);
    }
    /* Statistics ignore the normalization and follow truncation: image 0 alone is
     * 0 and 1, mean 0.5, std 0.5. */
    ck_assert_snn_ok(snn_dataset_truncate(ds, 1));
    ck_assert_snn_ok(snn_dataset_channel_stats(ds, &mean, &std));
    ck_assert_float_eq(mean, 0.5f);
    ck_assert_float_eq(std, 0.5f);
    snn_dataset_free(ds);
}
END_TEST

START_TEST(test_channel_stats_cifar) {
    /* Two records: red all 255; green all 0; blue 0 in the first, 51 in the second. */
    unsigned char buf[2 * 3073];
    const char *path = tmp_path("stats.bin");
    snn_dataset *ds = NULL;
    float mean[3], std[3];
    for (int r = 0; r < 2; r++) {
        unsigned char *rec = buf + r * 3073;
        rec[0] = (unsigned char)r;
        memset(rec + 1, 255, 1024);
        memset(rec + 1 + 1024, 0, 1024);
        memset(rec + 1 + 2048, r ? 51 : 0, 1024);
    }
    write_bytes(path, buf, sizeof buf);
    ck_assert_snn_ok(snn_dataset_load_cifar10(&ds, &path, 1));
    ck_assert_snn_ok(snn_dataset_channel_stats(ds, mean, std));
    ck_assert_float_eq(mean[0], 1.0f);
    ck_assert_float_eq(std[0], 0.0f);
    ck_assert_float_eq(mean[1], 0.0f);
    ck_assert_float_eq(std[1], 0.0f);
    ck_assert_float_eq_tol(mean[2], 0.1f, 1e-7f);
    ck_assert_float_eq_tol(std[2], 0.1f, 1e-7f);
    /* A zero std is not a valid normalization. */
    ck_assert_snn_status(snn_dataset_set_normalization(ds, mean, std), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("std[0]");
    snn_dataset_free(ds);
}
END_TEST

START_TEST(test_normalization_validation) {
    snn_dataset *ds = NULL;
    const float good_mean = 0.5f, good_std = 0.25f;
    const float bad_std[] = {0.0f, -1.0f, NAN, INFINITY, 1e-40f};
    const float bad_mean[] = {NAN, INFINITY, -INFINITY};
    write_sample_idx(tmp_path("n-images"), tmp_path("n-labels"), 0, 0);
    ck_assert_snn_ok(snn_dataset_load_idx(&ds, tmp_path("n-images"), tmp_path("n-labels")));
    ck_assert_snn_ok(snn_dataset_set_normalization(ds, &good_mean, &good_std));
    for (size_t i = 0; i < sizeof bad_std / sizeof bad_std[0]; i++) {
        ck_assert_snn_status(snn_dataset_set_normalization(ds, &good_mean, &bad_std[i]),
                             SNN_ERR_INVALID_ARG);
        ck_assert_error_mentions("std[0]");
    }
    for (size_t i = 0; i < sizeof bad_mean / sizeof bad_mean[0]; i++) {
        ck_assert_snn_status(snn_dataset_set_normalization(ds, &bad_mean[i], &good_std),
                             SNN_ERR_INVALID_ARG);
        ck_assert_error_mentions("mean[0]");
    }
    ck_assert_snn_status(snn_dataset_set_normalization(ds, NULL, &good_std), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_set_normalization(ds, &good_mean, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_set_normalization(NULL, &good_mean, &good_std),
                         SNN_ERR_INVALID_ARG);
    /* The failures left the earlier normalization in place. */
    check_sample(ds, good_mean, good_std);
    snn_dataset_free(ds);
}
END_TEST

/* ------------------------------------------------------------------ order -- */

/* (Loops over many elements assert once: each passing Check assertion costs a
 * message to the parent process.) */
static void assert_permutation(const uint32_t *order, size_t n) {
    unsigned char *seen = calloc(n, 1);
    size_t bad = n;
    ck_assert_ptr_nonnull(seen);
    for (size_t i = 0; i < n && bad == n; i++) {
        if (order[i] >= n || seen[order[i]])
            bad = i;
        else
            seen[order[i]] = 1;
    }
    ck_assert_msg(bad == n, "order[%zu] = %u is out of range or repeated", bad,
                  bad < n ? (unsigned)order[bad] : 0u);
    free(seen);
}

START_TEST(test_order_permutation) {
    enum { N = 1000 };
    snn_dataset *ds = make_sized(N);
    static uint32_t a[N], b[N], c[N], d[N];
    size_t fixed = 0;
    ck_assert_snn_ok(snn_dataset_order(ds, 42, 3, a));
    assert_permutation(a, N);
    ck_assert_snn_ok(snn_dataset_order(ds, 42, 3, b));
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    ck_assert_snn_ok(snn_dataset_order(ds, 42, 4, c));
    assert_permutation(c, N);
    ck_assert_int_ne(memcmp(a, c, sizeof a), 0);
    ck_assert_snn_ok(snn_dataset_order(ds, 43, 3, d));
    assert_permutation(d, N);
    ck_assert_int_ne(memcmp(a, d, sizeof a), 0);
    ck_assert_int_ne(memcmp(c, d, sizeof a), 0);
    /* A shuffle, not a near-identity: about one fixed point is expected. */
    for (size_t i = 0; i < N; i++) fixed += a[i] == i;
    ck_assert_uint_lt(fixed, 10);
    /* Epochs up to 2^23 - 1; beyond, the streams would run into other uses. */
    ck_assert_snn_ok(snn_dataset_order(ds, 42, 0x7FFFFF, b));
    assert_permutation(b, N);
    ck_assert_snn_status(snn_dataset_order(ds, 42, 0x800000, b), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("epoch");
    ck_assert_snn_status(snn_dataset_order(ds, 42, UINT64_MAX, b), SNN_ERR_INVALID_ARG);
    /* A gather in that order hands out every image once. */
    {
        static float img[N];
        static int64_t lab[N];
        size_t bad = N;
        ck_assert_snn_ok(snn_dataset_gather(ds, a, N, img, lab));
        for (size_t k = 0; k < N && bad == N; k++)
            if (lab[k] != a[k] % 10 || img[k] != expect_pixel(a[k] % 256, 0, 1)) bad = k;
        ck_assert_msg(bad == N, "image %zu of the gather is wrong", bad);
    }
    snn_dataset_free(ds);

    /* One image: the only order. */
    ds = make_sized(1);
    a[0] = 77;
    ck_assert_snn_ok(snn_dataset_order(ds, 5, 5, a));
    ck_assert_uint_eq(a[0], 0);
    snn_dataset_free(ds);
}
END_TEST

/* Expected orders of 10 images from an independent implementation: Philox4x32-10
 * written in Python from the Random123 paper (checked against its published
 * known-answer vectors), the stream rule documented at snn_dataset_order (key = seed,
 * counter = (block low, block high, 0xC0FFEE, 0), block = (0x800000 + epoch) << 40
 * onwards, four words per block) and Fisher-Yates with rejection as documented. */
START_TEST(test_order_reference) {
    static const struct {
        uint64_t seed, epoch;
        uint32_t order[10];
    } ref[] = {
        {42, 0, {7, 6, 5, 9, 2, 8, 1, 3, 0, 4}},
        {42, 1, {1, 6, 7, 0, 2, 5, 3, 9, 8, 4}},
        {0x123456789abcdef0ull, 7, {7, 0, 2, 6, 4, 5, 8, 3, 1, 9}},
    };
    snn_dataset *ds = make_sized(10);
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
        uint32_t got[10];
        ck_assert_snn_ok(snn_dataset_order(ds, ref[i].seed, ref[i].epoch, got));
        for (int k = 0; k < 10; k++)
            ck_assert_msg(got[k] == ref[i].order[k], "case %zu: order[%d] is %u, expected %u", i, k,
                          (unsigned)got[k], (unsigned)ref[i].order[k]);
    }
    snn_dataset_free(ds);
}
END_TEST

/* Every image lands in every position about equally often over many epochs (a biased
 * or off-by-one shuffle, e.g. Sattolo's, fails this). */
START_TEST(test_order_uniform) {
    enum { N = 5, EPOCHS = 5000 };
    snn_dataset *ds = make_sized(N);
    unsigned counts[N][N] = {{0}};
    uint32_t o[N];
    for (uint64_t e = 0; e < EPOCHS; e++) {
        snn_status st = snn_dataset_order(ds, 9, e, o);
        if (st != SNN_OK) ck_assert_snn_ok(st);
        for (int p = 0; p < N; p++) counts[p][o[p] % N]++;
    }
    /* Expected 1000 each, standard deviation about 28. */
    for (int p = 0; p < N; p++)
        for (int v = 0; v < N; v++)
            ck_assert_msg(counts[p][v] > 850 && counts[p][v] < 1150,
                          "image %d at position %d %u times", v, p, counts[p][v]);
    snn_dataset_free(ds);
}
END_TEST

/* ---------------------------------------------------------------- gather -- */

START_TEST(test_gather_errors) {
    snn_dataset *ds = NULL;
    float v[12];
    int64_t l[2];
    const uint32_t bad[2] = {1, 3}, huge[1] = {UINT32_MAX};
    write_sample_idx(tmp_path("ge-images"), tmp_path("ge-labels"), 0, 0);
    ck_assert_snn_ok(snn_dataset_load_idx(&ds, tmp_path("ge-images"), tmp_path("ge-labels")));
    for (int i = 0; i < 12; i++) v[i] = 123.0f;
    l[0] = l[1] = -7;
    ck_assert_snn_status(snn_dataset_gather(ds, bad, 2, v, l), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("indices[1]");
    ck_assert_error_mentions("3");
    /* Nothing was written. */
    for (int i = 0; i < 12; i++) ck_assert_float_eq(v[i], 123.0f);
    ck_assert_int_eq(l[0], -7);
    ck_assert_snn_status(snn_dataset_gather(ds, huge, 1, v, l), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_gather(ds, bad, SIZE_MAX, v, l), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_gather(NULL, bad, 1, v, l), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_gather(ds, NULL, 1, v, l), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_gather(ds, bad, 1, NULL, l), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_gather(ds, bad, 1, v, NULL), SNN_ERR_INVALID_ARG);
    /* A gather right after the failures works, and stays within its output. */
    ck_assert_snn_ok(snn_dataset_gather(ds, bad, 1, v, l));
    ck_assert_int_eq(l[0], 0);
    ck_assert_int_eq(l[1], -7);
    for (int i = 6; i < 12; i++) ck_assert_float_eq(v[i], 123.0f);
    snn_dataset_free(ds);
}
END_TEST

/* ------------------------------------------------------------ bad IDX files -- */

typedef struct idx_case {
    const char *what;
    const char *needle; /* in the message */
    int bad_labels;     /* the message names the label file rather than the image file */
} idx_case;

static const idx_case idx_cases[] = {
    {"bad magic", "not an IDX file", 0},
    {"float images", "32-bit floats", 0},
    {"images with 2 dims", "2 dimensions, expected 3", 0},
    {"labels with 3 dims", "3 dimensions, expected 1", 1},
    {"signed-byte labels", "signed bytes", 1},
    {"header cut short", "cut short", 0},
    {"3-byte file", "too short", 0},
    {"empty file", "too short", 0},
    {"images truncated", "truncated", 0},
    {"labels truncated", "truncated", 1},
    {"label 10", "label 1 is 10", 1},
    {"label 255", "label 0 is 255", 1},
    {"count mismatch", "3 labels", 1},
    {"zero images", "no images", 0},
    {"zero height", "0x2 pixels", 0},
    {"absurd dims", "4294967295x4294967295", 0},
    {"too wide", "1x20000", 0},
    {"too many pixels", "5000x5000", 0},
    {"2^32-1 images, little data", "truncated", 1},
    {"image bytes after the data", "more data", 0},
    {"label bytes after the data", "more data", 1},
    {"gzip cut in half", "gzip", 0},
    {"gzip trailer missing", "gzip", 0},
    {"gzip data damaged", "gzip", 0},
    {"gzip of a truncated file", "truncated", 0},
};

/* Writes the files of case i: a valid pair of 2 images of 2x2 with one thing wrong. */
static void write_idx_case(int i, const char *ip, const char *lp) {
    static const unsigned char px[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    unsigned char lab[3] = {1, 2, 3};
    uint32_t idims[3] = {2, 2, 2}, ldims[1] = {2};
    unsigned itype = 8, indim = 3, ltype = 8, lndim = 1;
    size_t ipx = 8, nlab = 2;
    int gz_mode = 0; /* 1 cut in half, 2 drop trailer, 3 damage, 4 plain gzip */
    blob b;
    switch (i) {
    case 1: itype = 0x0D; break;
    case 2: indim = 2, idims[1] = 4; break;
    case 3: lndim = 3, ltype = 8; break;
    case 4: ltype = 0x09; break;
    case 5:
    case 6:
    case 7: break; /* cut below */
    case 8: ipx = 7; break;
    case 9: nlab = 1; break;
    case 10: lab[1] = 10; break;
    case 11: lab[0] = 255; break;
    case 12: ldims[0] = 3, nlab = 3; break;
    case 13: idims[0] = 0, ldims[0] = 0, ipx = 0, nlab = 0; break;
    case 14: idims[1] = 0; break;
    case 15: idims[0] = 1, idims[1] = idims[2] = UINT32_MAX, ldims[0] = 1, nlab = 1; break;
    case 16: idims[1] = 1, idims[2] = 20000; break;
    case 17: idims[1] = idims[2] = 5000; break;
    case 18: idims[0] = ldims[0] = UINT32_MAX; break;
    case 19: ipx = 9; break;
    case 20: nlab = 3; break;
    case 21: gz_mode = 1; break;
    case 22: gz_mode = 2; break;
    case 23: gz_mode = 3; break;
    case 24: gz_mode = 4, ipx = 7; break;
    }
    idx_blob(&b, itype, indim, idims, px, ipx);
    if (i == 0) b.b[0] = 1;
    if (i == 5) b.n = 10;
    if (i == 6) b.n = 3;
    if (i == 7) b.n = 0;
    if (gz_mode) {
        size_t n;
        unsigned char *z;
        write_gz(ip, b.b, b.n);
        z = read_bytes(ip, &n);
        ck_assert_uint_gt(n, 20);
        if (gz_mode == 1) n /= 2;
        if (gz_mode == 2) n -= 8;
        if (gz_mode == 3)
            for (size_t k = 10; k < n - 8; k++) z[k] ^= 0x5A;
        write_bytes(ip, z, n);
        free(z);
    } else {
        write_blob(ip, &b, 0);
    }
    if (lndim == 3) {
        const uint32_t d3[3] = {2, 1, 1};
        idx_blob(&b, ltype, 3, d3, lab, nlab);
    } else {
        idx_blob(&b, ltype, lndim, ldims, lab, nlab);
    }
    write_blob(lp, &b, 0);
}

START_TEST(test_idx_malformed) {
    const idx_case *c = &idx_cases[_i];
    char in[64], ln[64], ip[4096], lp[4096];
    snn_dataset *ds = NOT_NULL_DATASET;
    snn_status st;
    snprintf(in, sizeof in, "bad%d-images", _i);
    snprintf(ln, sizeof ln, "bad%d-labels", _i);
    snprintf(ip, sizeof ip, "%s", tmp_path(in));
    snprintf(lp, sizeof lp, "%s", tmp_path(ln));
    write_idx_case(_i, ip, lp);
    st = snn_dataset_load_idx(&ds, ip, lp);
    ck_assert_msg(st == SNN_ERR_FORMAT, "case %d (%s): %s, wanted SNN_ERR_FORMAT (%s)", _i, c->what,
                  snn_status_name(st), snn_last_error());
    ck_assert_ptr_null(ds);
    ck_assert_error_mentions(c->needle);
    ck_assert_error_mentions(c->bad_labels ? ln : in);
}
END_TEST

/* ------------------------------------------------------- bad CIFAR-10 files -- */

START_TEST(test_cifar_malformed) {
    static const unsigned labels[3] = {1, 10, 2}, good[2] = {0, 9};
    const char *paths[3];
    snn_dataset *ds;
    unsigned char *buf = calloc(3 * 3073 + 16, 1);
    ck_assert_ptr_nonnull(buf);
    write_cifar(tmp_path("good.bin"), 2, good, 1);

    /* Sizes that are not a whole, nonzero number of records. */
    {
        static const size_t sizes[] = {3072, 0, 3074, 2 * 3073 + 5, 1};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            char name[64];
            snprintf(name, sizeof name, "size%zu.bin", sizes[i]);
            write_bytes(tmp_path(name), buf, sizes[i]);
            paths[0] = tmp_path("good.bin");
            paths[1] = tmp_path(name);
            ds = NOT_NULL_DATASET;
            ck_assert_snn_status(snn_dataset_load_cifar10(&ds, paths, 2), SNN_ERR_FORMAT);
            ck_assert_ptr_null(ds);
            ck_assert_error_mentions(name);
            ck_assert_error_mentions(sizes[i] ? "3073" : "empty");
        }
    }
    /* A label out of range in the second record of the second file. */
    write_cifar(tmp_path("label10.bin"), 3, labels, 1);
    paths[0] = tmp_path("good.bin");
    paths[1] = tmp_path("label10.bin");
    ds = NOT_NULL_DATASET;
    ck_assert_snn_status(snn_dataset_load_cifar10(&ds, paths, 2), SNN_ERR_FORMAT);
    ck_assert_ptr_null(ds);
    ck_assert_error_mentions("label10.bin");
    ck_assert_error_mentions("record 1 has label 10");

    /* Missing files and directories are I/O errors. */
    paths[1] = tmp_path("absent.bin");
    ds = NOT_NULL_DATASET;
    ck_assert_snn_status(snn_dataset_load_cifar10(&ds, paths, 2), SNN_ERR_IO);
    ck_assert_ptr_null(ds);
    ck_assert_error_mentions("absent.bin");
    paths[1] = test_tmpdir();
    ck_assert_snn_status(snn_dataset_load_cifar10(&ds, paths, 2), SNN_ERR_IO);

    /* Bad arguments. */
    paths[1] = NULL;
    ds = NOT_NULL_DATASET;
    ck_assert_snn_status(snn_dataset_load_cifar10(&ds, paths, 2), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(ds);
    ck_assert_error_mentions("paths[1]");
    ck_assert_snn_status(snn_dataset_load_cifar10(&ds, paths, 0), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_load_cifar10(&ds, paths, -3), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_load_cifar10(&ds, NULL, 1), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_load_cifar10(NULL, paths, 1), SNN_ERR_INVALID_ARG);
    free(buf);
}
END_TEST

/* ---------------------------------------------------------- missing files -- */

START_TEST(test_missing_files) {
    char dir[4096], p[4200];
    snn_dataset *ds = NOT_NULL_DATASET;
    snprintf(dir, sizeof dir, "%s", tmp_path("empty-dir"));
    make_dir(dir);

    /* Explicit paths. */
    ck_assert_snn_status(
        snn_dataset_load_idx(&ds, tmp_path("nope-images"), tmp_path("nope-labels")), SNN_ERR_IO);
    ck_assert_ptr_null(ds);
    ck_assert_error_mentions(tmp_path("nope-images"));
    write_sample_idx(tmp_path("m-images"), tmp_path("m-labels"), 0, 0);
    ds = NOT_NULL_DATASET;
    ck_assert_snn_status(snn_dataset_load_idx(&ds, tmp_path("m-images"), tmp_path("nope-labels")),
                         SNN_ERR_IO);
    ck_assert_ptr_null(ds);
    ck_assert_error_mentions(tmp_path("nope-labels"));
    /* A directory cannot be read. */
    ds = NOT_NULL_DATASET;
    ck_assert_snn_status(snn_dataset_load_idx(&ds, dir, tmp_path("m-labels")), SNN_ERR_IO);
    ck_assert_ptr_null(ds);
    ck_assert_error_mentions(dir);

    /* A directory without the files: both names tried, and where to get them. */
    ds = NOT_NULL_DATASET;
    ck_assert_snn_status(snn_dataset_load(&ds, SNN_DATASET_FASHION_MNIST, dir, 1), SNN_ERR_IO);
    ck_assert_ptr_null(ds);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    ck_assert_error_mentions(p);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    ck_assert_error_mentions(p);
    ck_assert_error_mentions("apt-get install dataset-fashion-mnist");
    ck_assert_error_mentions("training split");

    ck_assert_snn_status(snn_dataset_load(&ds, SNN_DATASET_MNIST, dir, 0), SNN_ERR_IO);
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
    ck_assert_error_mentions(p);
    ck_assert_error_mentions("test split");

    /* Images there, labels not. */
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", dir);
    write_sample_idx(p, tmp_path("unused-labels"), 0, 0);
    ck_assert_snn_status(snn_dataset_load(&ds, SNN_DATASET_FASHION_MNIST, dir, 0), SNN_ERR_IO);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", dir);
    ck_assert_error_mentions(p);

    /* CIFAR-10: the directory and its cifar-10-batches-bin/ both tried. */
    ds = NOT_NULL_DATASET;
    ck_assert_snn_status(snn_dataset_load(&ds, SNN_DATASET_CIFAR10, dir, 1), SNN_ERR_IO);
    ck_assert_ptr_null(ds);
    snprintf(p, sizeof p, "%s/data_batch_1.bin", dir);
    ck_assert_error_mentions(p);
    snprintf(p, sizeof p, "%s/cifar-10-batches-bin/data_batch_1.bin", dir);
    ck_assert_error_mentions(p);
    ck_assert_snn_status(snn_dataset_load(&ds, SNN_DATASET_CIFAR10, dir, 0), SNN_ERR_IO);
    ck_assert_error_mentions("test_batch.bin");
    /* Only the first training batch there. */
    {
        static const unsigned l[1] = {4};
        snprintf(p, sizeof p, "%s/data_batch_1.bin", dir);
        write_cifar(p, 1, l, 0);
        ck_assert_snn_status(snn_dataset_load(&ds, SNN_DATASET_CIFAR10, dir, 1), SNN_ERR_IO);
        ck_assert_error_mentions("data_batch_2.bin");
    }
    /* A directory that does not exist. */
    ck_assert_snn_status(
        snn_dataset_load(&ds, SNN_DATASET_FASHION_MNIST, tmp_path("no/such/dir"), 1), SNN_ERR_IO);
}
END_TEST

/* ----------------------------------------------------------- bad arguments -- */

START_TEST(test_null_arguments) {
    snn_dataset *ds = NULL;
    const uint32_t i0 = 0;
    float f[6], mean = 0, std = 1;
    int64_t l;
    int c, h, w;
    uint32_t order[3];
    char longdir[5000];

    ck_assert_snn_status(snn_dataset_load(NULL, SNN_DATASET_MNIST, "/tmp", 1), SNN_ERR_INVALID_ARG);
    ds = NOT_NULL_DATASET;
    ck_assert_snn_status(snn_dataset_load(&ds, SNN_DATASET_MNIST, NULL, 1), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(ds);
    ck_assert_snn_status(snn_dataset_load(&ds, SNN_DATASET_MNIST, "", 1), SNN_ERR_INVALID_ARG);
    ds = NOT_NULL_DATASET;
    ck_assert_snn_status(snn_dataset_load(&ds, (snn_dataset_kind)3, "/tmp", 1),
                         SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(ds);
    ck_assert_snn_status(snn_dataset_load(&ds, (snn_dataset_kind)-1, "/tmp", 1),
                         SNN_ERR_INVALID_ARG);
    memset(longdir, 'a', sizeof longdir - 1);
    longdir[0] = '/';
    longdir[sizeof longdir - 1] = '\0';
    ck_assert_snn_status(snn_dataset_load(&ds, SNN_DATASET_MNIST, longdir, 1), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_load(&ds, SNN_DATASET_CIFAR10, longdir, 1),
                         SNN_ERR_INVALID_ARG);

    ck_assert_snn_status(snn_dataset_load_idx(NULL, "a", "b"), SNN_ERR_INVALID_ARG);
    ds = NOT_NULL_DATASET;
    ck_assert_snn_status(snn_dataset_load_idx(&ds, NULL, "b"), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(ds);
    ck_assert_snn_status(snn_dataset_load_idx(&ds, "a", NULL), SNN_ERR_INVALID_ARG);

    ck_assert_uint_eq(snn_dataset_size(NULL), 0);
    ck_assert_int_eq(snn_dataset_num_classes(NULL), 0);
    ck_assert_snn_status(snn_dataset_shape(NULL, &c, &h, &w), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_truncate(NULL, 1), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_channel_stats(NULL, &mean, &std), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_set_normalization(NULL, &mean, &std), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_order(NULL, 0, 0, order), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_gather(NULL, &i0, 1, f, &l), SNN_ERR_INVALID_ARG);

    write_sample_idx(tmp_path("na-images"), tmp_path("na-labels"), 0, 0);
    ck_assert_snn_ok(snn_dataset_load_idx(&ds, tmp_path("na-images"), tmp_path("na-labels")));
    ck_assert_snn_status(snn_dataset_shape(ds, NULL, &h, &w), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_shape(ds, &c, NULL, &w), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_shape(ds, &c, &h, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_channel_stats(ds, NULL, &std), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_channel_stats(ds, &mean, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_dataset_order(ds, 0, 0, NULL), SNN_ERR_INVALID_ARG);
    snn_dataset_free(ds);
}
END_TEST

/* ------------------------------------------------------ real Fashion-MNIST -- */

START_TEST(test_real_fashion_mnist) {
    const char *dir = snn_dataset_default_dir(SNN_DATASET_FASHION_MNIST);
    struct stat sb;
    snn_dataset *train = NULL, *test = NULL;
    size_t hist[10] = {0};
    if (stat(dir, &sb) != 0) {
        printf("note: %s is absent (apt-get install dataset-fashion-mnist); skipping the real "
               "Fashion-MNIST test\n",
               dir);
        return;
    }
    ck_assert_snn_ok(snn_dataset_load(&train, SNN_DATASET_FASHION_MNIST, dir, 1));
    ck_assert_snn_ok(snn_dataset_load(&test, SNN_DATASET_FASHION_MNIST, dir, 0));
    ck_assert_uint_eq(snn_dataset_size(train), 60000);
    ck_assert_uint_eq(snn_dataset_size(test), 10000);
    assert_shape(train, 1, 28, 28);
    assert_shape(test, 1, 28, 28);
    ck_assert_int_eq(snn_dataset_num_classes(test), 10);
    {
        /* Labels of the test split through gather in an epoch's order: 1000 per class. */
        uint32_t *order = malloc(10000 * sizeof *order);
        float *img = malloc(10000 * 784 * sizeof *img);
        int64_t *lab = malloc(10000 * sizeof *lab);
        ck_assert(order && img && lab);
        ck_assert_snn_ok(snn_dataset_order(test, 1, 0, order));
        assert_permutation(order, 10000);
        ck_assert_snn_ok(snn_dataset_gather(test, order, 10000, img, lab));
        size_t outside = 0;
        for (size_t i = 0; i < 10000; i++)
            if (lab[i] >= 0 && lab[i] < 10)
                hist[lab[i]]++;
            else
                outside++;
        for (int k = 0; k < 10; k++) ck_assert_uint_eq(hist[k], 1000);
        for (size_t i = 0; i < 10000 * 784; i++) outside += !(img[i] >= 0.0f && img[i] <= 1.0f);
        ck_assert_uint_eq(outside, 0);
        free(order);
        free(img);
        free(lab);
    }
    {
        /* The training set's well-known statistics: mean 0.2860, std 0.3530. */
        float mean, std;
        ck_assert_snn_ok(snn_dataset_channel_stats(train, &mean, &std));
        ck_assert_float_eq_tol(mean, 0.2860f, 1e-4f);
        ck_assert_float_eq_tol(std, 0.3530f, 1e-4f);
    }
    snn_dataset_free(train);
    snn_dataset_free(test);
}
END_TEST

static Suite *data_suite(void) {
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, test_kinds);
    tcase_add_test(tc, test_idx_plain);
    tcase_add_test(tc, test_idx_gzip);
    tcase_add_test(tc, test_idx_large_gzip);
    tcase_add_test(tc, test_load_dir_idx);
    tcase_add_test(tc, test_cifar_files);
    tcase_add_test(tc, test_load_dir_cifar);
    suite_add_tcase(s, tc);

    tc = tcase_create("use");
    tcase_add_test(tc, test_truncate);
    tcase_add_test(tc, test_channel_stats_idx);
    tcase_add_test(tc, test_channel_stats_cifar);
    tcase_add_test(tc, test_normalization_validation);
    tcase_add_test(tc, test_order_permutation);
    tcase_add_test(tc, test_order_reference);
    tcase_add_test(tc, test_order_uniform);
    tcase_add_test(tc, test_gather_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_loop_test(tc, test_idx_malformed, 0, (int)(sizeof idx_cases / sizeof idx_cases[0]));
    tcase_add_test(tc, test_cifar_malformed);
    tcase_add_test(tc, test_missing_files);
    tcase_add_test(tc, test_null_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("real");
    tcase_add_test(tc, test_real_fashion_mnist);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(data_suite()); }
