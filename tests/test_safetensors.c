/* Tests of the safetensors reader and writer: round trips, the object interface, and
 * a table of hostile files that must each fail cleanly with a specific status and a
 * message naming what is wrong. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* ----------------------------------------------------------------- helpers -- */

/* Writes a safetensors file by hand: the length of json, json padded with spaces
 * to a multiple of 8 bytes, then data_len bytes of data (from data, or a counter
 * pattern when data is NULL). */
static void write_st_file(const char *path, const char *json, const void *data, size_t data_len) {
    size_t json_len = strlen(json), header_len = (json_len + 7) / 8 * 8;
    size_t n = 8 + header_len + data_len;
    unsigned char *buf = malloc(n);
    ck_assert_ptr_nonnull(buf);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)header_len >> (8 * i));
    memcpy(buf + 8, json, json_len);
    memset(buf + 8 + json_len, ' ', header_len - json_len);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + header_len + i] = data ? ((const unsigned char *)data)[i] : (unsigned char)i;
    write_bytes(path, buf, n);
    free(buf);
}

/* Number of entries in the temporary directory whose name contains needle. */
static int count_files_containing(const char *needle) {
    DIR *d = opendir(test_tmpdir());
    struct dirent *e;
    int n = 0;
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, needle)) n++;
    closedir(d);
    return n;
}

#define ck_assert_error_mentions(needle)                                                  \
    ck_assert_msg(strstr(snn_last_error(), (needle)) != NULL,                             \
                  "last error \"%s\" does not mention \"%s\"", snn_last_error(), (needle))

static void assert_tensor_eq(const snn_tensor *a, const snn_tensor *b) {
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(a->name, b->name);
    ck_assert_int_eq(a->dtype, b->dtype);
    ck_assert_int_eq(a->ndim, b->ndim);
    for (int d = 0; d < a->ndim; d++) ck_assert_int_eq(a->shape[d], b->shape[d]);
    ck_assert_uint_eq(a->nbytes, b->nbytes);
    ck_assert_ptr_nonnull(a->data);
    ck_assert_ptr_nonnull(b->data);
    ck_assert_int_eq(memcmp(a->data, b->data, a->nbytes), 0);
}

/* A store with every dtype, a scalar, an empty tensor and metadata. */
static snn_safetensors *make_sample(void) {
    static const float w[6] = {1.0f, -2.5f, 3.25f, 0.0f, -0.0f, 1e-30f};
    static const double b[4] = {0.1, -1e300, 3.0, 4.5};
    static const int64_t step = -1234567890123ll;
    static const int64_t w_shape[2] = {2, 3}, b_shape[1] = {4}, e_shape[2] = {0, 3};
    snn_safetensors *st = NULL;
    ck_assert_snn_ok(snn_safetensors_create(&st));
    ck_assert_snn_ok(snn_safetensors_add(st, "conv1.weight", SNN_F32, 2, w_shape, w));
    ck_assert_snn_ok(snn_safetensors_add(st, "conv1.bias", SNN_F64, 1, b_shape, b));
    ck_assert_snn_ok(snn_safetensors_add(st, "step", SNN_I64, 0, NULL, &step));
    ck_assert_snn_ok(snn_safetensors_add(st, "empty", SNN_I64, 2, e_shape, NULL));
    ck_assert_snn_ok(snn_safetensors_meta_set(st, "format", "snncl"));
    ck_assert_snn_ok(snn_safetensors_meta_set(st, "note", "quote \" backslash \\ newline \n \xc3\xa9"));
    ck_assert_snn_ok(snn_safetensors_meta_set(st, "", "empty key"));
    return st;
}

/* -------------------------------------------------------------- round trip -- */

START_TEST(test_round_trip) {
    snn_safetensors *st = make_sample(), *back = NULL;
    const char *path = tmp_path("round.safetensors");
    ck_assert_snn_ok(snn_safetensors_write(st, path));
    ck_assert_snn_ok(snn_safetensors_read(&back, path));

    ck_assert_uint_eq(snn_safetensors_count(back), 4);
    for (size_t i = 0; i < snn_safetensors_count(st); i++) {
        const snn_tensor *t = snn_safetensors_at(back, i);
        assert_tensor_eq(t, snn_safetensors_at(st, i));
        ck_assert_uint_eq((uintptr_t)t->data % 8, 0);
        ck_assert_ptr_eq(snn_safetensors_find(back, t->name), t);
    }
    ck_assert_int_eq(snn_safetensors_at(back, 2)->ndim, 0);
    ck_assert_uint_eq(snn_safetensors_at(back, 2)->nbytes, 8);
    ck_assert_uint_eq(snn_safetensors_at(back, 3)->nbytes, 0);

    ck_assert_uint_eq(snn_safetensors_meta_count(back), 3);
    for (size_t i = 0; i < snn_safetensors_meta_count(st); i++) {
        const char *key = snn_safetensors_meta_key(st, i);
        ck_assert_str_eq(snn_safetensors_meta_key(back, i), key);
        ck_assert_str_eq(snn_safetensors_meta_get(back, key), snn_safetensors_meta_get(st, key));
    }
    ck_assert_ptr_null(snn_safetensors_meta_get(back, "absent"));

    /* Writing what was read gives the same bytes. */
    {
        const char *path2 = tmp_path("round2.safetensors");
        size_t n1, n2;
        unsigned char *a, *b;
        ck_assert_snn_ok(snn_safetensors_write(back, path2));
        a = read_bytes(path, &n1);
        b = read_bytes(path2, &n2);
        ck_assert_uint_eq(n1, n2);
        ck_assert_int_eq(memcmp(a, b, n1), 0);
        free(a);
        free(b);
    }
    snn_safetensors_free(st);
    snn_safetensors_free(back);
}
END_TEST

START_TEST(test_header_layout) {
    snn_safetensors *st = make_sample();
    const char *path = tmp_path("layout.safetensors");
    unsigned char *buf;
    size_t n;
    uint64_t header_len = 0;
    ck_assert_snn_ok(snn_safetensors_write(st, path));
    buf = read_bytes(path, &n);
    for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | buf[i];
    ck_assert_uint_eq(header_len % 8, 0);
    ck_assert_uint_ge(n, 8 + header_len);
    /* data: 24 + 32 + 8 + 0 bytes */
    ck_assert_uint_eq(n - 8 - header_len, 64);
    ck_assert_int_eq(buf[8], '{');
    {
        char *header = (char *)buf + 8;
        size_t end = (size_t)header_len;
        while (end > 0 && header[end - 1] == ' ') end--;
        ck_assert_int_eq(header[end - 1], '}');
        ck_assert_uint_lt((size_t)header_len - end, 8);
        header[end] = '\0';
        ck_assert_ptr_nonnull(strstr(header, "\"__metadata__\""));
        ck_assert_ptr_nonnull(strstr(header,
            "\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"));
        ck_assert_ptr_nonnull(strstr(header, "\"step\":{\"dtype\":\"I64\",\"shape\":[],"
                                             "\"data_offsets\":[56,64]}"));
        {
            const char *w = strstr(header, "conv1.weight"), *b = strstr(header, "conv1.bias"),
                       *s = strstr(header, "\"step\""), *e = strstr(header, "\"empty\"");
            ck_assert(w && b && s && e);
            ck_assert(w < b && b < s && s < e);
        }
    }
    free(buf);
    snn_safetensors_free(st);
}
END_TEST

START_TEST(test_empty_store_round_trip) {
    snn_safetensors *st = NULL, *back = NULL;
    const char *path = tmp_path("empty.safetensors");
    size_t n;
    unsigned char *buf;
    ck_assert_snn_ok(snn_safetensors_create(&st));
    ck_assert_snn_ok(snn_safetensors_write(st, path));
    buf = read_bytes(path, &n);
    ck_assert_uint_eq(n, 16);
    ck_assert_int_eq(memcmp(buf + 8, "{}      ", 8), 0);
    free(buf);
    ck_assert_snn_ok(snn_safetensors_read(&back, path));
    ck_assert_uint_eq(snn_safetensors_count(back), 0);
    ck_assert_uint_eq(snn_safetensors_meta_count(back), 0);
    snn_safetensors_free(st);
    snn_safetensors_free(back);
}
END_TEST

START_TEST(test_overwrite_existing) {
    snn_safetensors *a = make_sample(), *b = NULL, *back = NULL;
    const char *path = tmp_path("over.safetensors");
    const float x = 7.0f;
    ck_assert_snn_ok(snn_safetensors_write(a, path));
    ck_assert_snn_ok(snn_safetensors_create(&b));
    ck_assert_snn_ok(snn_safetensors_add(b, "x", SNN_F32, 0, NULL, &x));
    ck_assert_snn_ok(snn_safetensors_write(b, path));
    ck_assert_snn_ok(snn_safetensors_read(&back, path));
    ck_assert_uint_eq(snn_safetensors_count(back), 1);
    assert_tensor_eq(snn_safetensors_at(back, 0), snn_safetensors_at(b, 0));
    ck_assert_uint_eq(snn_safetensors_meta_count(back), 0);
    ck_assert_int_eq(count_files_containing(".tmp."), 0);
    snn_safetensors_free(a);
    snn_safetensors_free(b);
    snn_safetensors_free(back);
}
END_TEST

/* Files from other writers: __metadata__ first, keys out of data order, a tensor at a
 * file offset not aligned for its dtype, an empty tensor sharing an offset. */
START_TEST(test_read_foreign_order) {
    const char *path = tmp_path("foreign.safetensors");
    const char *json =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[4,12]},"
        "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
        "\"z\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
        "\"y\":{\"shape\":[1],\"data_offsets\":[12,20],\"dtype\":\"I64\",\"extra\":[1]}}";
    unsigned char data[20];
    const float z = 1.5f;
    const double a = -2.75;
    const int64_t y = 42;
    snn_safetensors *st = NULL;
    memcpy(data, &z, 4);
    memcpy(data + 4, &a, 8);
    memcpy(data + 12, &y, 8);
    write_st_file(path, json, data, sizeof data);
    ck_assert_snn_ok(snn_safetensors_read(&st, path));
    ck_assert_uint_eq(snn_safetensors_count(st), 4);
    ck_assert_str_eq(snn_safetensors_at(st, 0)->name, "z");
    ck_assert_str_eq(snn_safetensors_at(st, 1)->name, "a");
    ck_assert_str_eq(snn_safetensors_at(st, 2)->name, "e");
    ck_assert_str_eq(snn_safetensors_at(st, 3)->name, "y");
    ck_assert_str_eq(snn_safetensors_meta_get(st, "format"), "pt");
    for (size_t i = 0; i < 4; i++)
        ck_assert_uint_eq((uintptr_t)snn_safetensors_at(st, i)->data % 8, 0);
    {
        double got;
        memcpy(&got, snn_safetensors_at(st, 1)->data, 8);
        ck_assert_double_eq(got, a);
    }
    {
        float out[1];
        ck_assert_snn_ok(snn_safetensors_get_f32(st, "y", 1, (const int64_t[]){1}, out));
        ck_assert_float_eq(out[0], 42.0f);
        ck_assert_snn_ok(snn_safetensors_get_f32(st, "z", 0, NULL, out));
        ck_assert_float_eq(out[0], 1.5f);
    }
    snn_safetensors_free(st);
}
END_TEST

/* ------------------------------------------------------------------- objects -- */

START_TEST(test_add_replaces) {
    snn_safetensors *st = NULL;
    const float w2[2] = {1, 2}, x[1] = {5};
    const double w3[3] = {7, 8, 9};
    const snn_tensor *w;
    ck_assert_snn_ok(snn_safetensors_create(&st));
    ck_assert_snn_ok(snn_safetensors_add(st, "w", SNN_F32, 1, (const int64_t[]){2}, w2));
    ck_assert_snn_ok(snn_safetensors_add(st, "x", SNN_F32, 1, (const int64_t[]){1}, x));
    w = snn_safetensors_find(st, "w");
    ck_assert_ptr_eq(w, snn_safetensors_at(st, 0));
    ck_assert_snn_ok(snn_safetensors_add(st, "w", SNN_F64, 2, (const int64_t[]){1, 3}, w3));
    ck_assert_uint_eq(snn_safetensors_count(st), 2);
    ck_assert_ptr_eq(snn_safetensors_at(st, 0), w); /* same place, same record */
    ck_assert_str_eq(w->name, "w");
    ck_assert_int_eq(w->dtype, SNN_F64);
    ck_assert_int_eq(w->ndim, 2);
    ck_assert_int_eq(w->shape[0], 1);
    ck_assert_int_eq(w->shape[1], 3);
    ck_assert_uint_eq(w->nbytes, 24);
    ck_assert_int_eq(memcmp(w->data, w3, 24), 0);
    ck_assert_str_eq(snn_safetensors_at(st, 1)->name, "x");

    /* Replacing a tensor with its own data (aliasing) works. */
    ck_assert_snn_ok(snn_safetensors_add(st, "w", SNN_F64, 1, (const int64_t[]){3}, w->data));
    ck_assert_int_eq(memcmp(w->data, w3, 24), 0);

    /* The data is copied, not referenced. */
    {
        float buf[2] = {3, 4};
        ck_assert_snn_ok(snn_safetensors_add(st, "c", SNN_F32, 1, (const int64_t[]){2}, buf));
        buf[0] = 99;
        ck_assert_float_eq(((const float *)snn_safetensors_find(st, "c")->data)[0], 3.0f);
    }

    /* Metadata replacement keeps the key's place. */
    ck_assert_snn_ok(snn_safetensors_meta_set(st, "k", "1"));
    ck_assert_snn_ok(snn_safetensors_meta_set(st, "j", "2"));
    ck_assert_snn_ok(snn_safetensors_meta_set(st, "k", "3"));
    ck_assert_uint_eq(snn_safetensors_meta_count(st), 2);
    ck_assert_str_eq(snn_safetensors_meta_key(st, 0), "k");
    ck_assert_str_eq(snn_safetensors_meta_get(st, "k"), "3");
    snn_safetensors_free(st);
}
END_TEST

START_TEST(test_add_validation) {
    snn_safetensors *st = NULL;
    const float v[4] = {0};
    const int64_t shape2[2] = {2, 2}, neg[2] = {2, -1}, zero[2] = {0, 5};
    const int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    const int64_t huge[3] = {(int64_t)1 << 40, (int64_t)1 << 40, 2};
    ck_assert_snn_ok(snn_safetensors_create(&st));
    ck_assert_snn_status(snn_safetensors_add(st, NULL, SNN_F32, 2, shape2, v), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_safetensors_add(st, "", SNN_F32, 2, shape2, v), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("empty");
    ck_assert_snn_status(snn_safetensors_add(st, "__metadata__", SNN_F32, 2, shape2, v),
                         SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("__metadata__");
    ck_assert_snn_status(snn_safetensors_add(st, "bad\xff", SNN_F32, 2, shape2, v),
                         SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("UTF-8");
    ck_assert_snn_status(snn_safetensors_add(st, "t", (snn_dtype)7, 2, shape2, v),
                         SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("dtype");
    ck_assert_snn_status(snn_safetensors_add(st, "t", SNN_F32, -1, shape2, v), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("-1");
    ck_assert_snn_status(snn_safetensors_add(st, "t", SNN_F32, 9, nine, v), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("9");
    ck_assert_snn_status(snn_safetensors_add(st, "t", SNN_F32, 2, NULL, v), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("shape is NULL");
    ck_assert_snn_status(snn_safetensors_add(st, "t", SNN_F32, 2, neg, v), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("[2, -1]");
    ck_assert_snn_status(snn_safetensors_add(st, "t", SNN_F32, 3, huge, v), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("too large");
    {
        const int64_t wide[2] = {0, INT64_MAX}; /* empty, but unwritable as an exact JSON number */
        ck_assert_snn_status(snn_safetensors_add(st, "t", SNN_F32, 2, wide, NULL),
                             SNN_ERR_INVALID_ARG);
        ck_assert_error_mentions("2^53");
    }
    ck_assert_snn_status(snn_safetensors_add(st, "t", SNN_F32, 2, shape2, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("data is NULL");
    ck_assert_uint_eq(snn_safetensors_count(st), 0);

    /* NULL data is fine for an empty tensor; a failed replacement keeps the old one. */
    ck_assert_snn_ok(snn_safetensors_add(st, "t", SNN_F32, 2, zero, NULL));
    ck_assert_snn_ok(snn_safetensors_add(st, "u", SNN_F32, 2, shape2, v));
    ck_assert_snn_status(snn_safetensors_add(st, "u", SNN_F32, 2, neg, v), SNN_ERR_INVALID_ARG);
    ck_assert_uint_eq(snn_safetensors_count(st), 2);
    ck_assert_uint_eq(snn_safetensors_find(st, "u")->nbytes, 16);
    ck_assert_uint_eq(snn_safetensors_find(st, "t")->nbytes, 0);
    ck_assert_ptr_nonnull(snn_safetensors_find(st, "t")->data);

    ck_assert_snn_status(snn_safetensors_meta_set(st, "k", "\xc3"), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("UTF-8");
    snn_safetensors_free(st);
}
END_TEST

START_TEST(test_get_f32) {
    snn_safetensors *st = NULL;
    const double d[3] = {1.5, -2.25, 1e300};
    const int64_t i[3] = {3, -7, (int64_t)1 << 40};
    const float f[2] = {0.5f, -8.0f};
    float out[64 * 3 * 3] = {0};
    int64_t conv[4] = {64, 1, 3, 3};
    ck_assert_snn_ok(snn_safetensors_create(&st));
    ck_assert_snn_ok(snn_safetensors_add(st, "d", SNN_F64, 1, (const int64_t[]){3}, d));
    ck_assert_snn_ok(snn_safetensors_add(st, "i", SNN_I64, 1, (const int64_t[]){3}, i));
    ck_assert_snn_ok(snn_safetensors_add(st, "f", SNN_F32, 2, (const int64_t[]){1, 2}, f));
    ck_assert_snn_ok(snn_safetensors_add(st, "conv1.weight", SNN_F32, 4, conv, out));

    ck_assert_snn_ok(snn_safetensors_get_f32(st, "d", 1, (const int64_t[]){3}, out));
    ck_assert_float_eq(out[0], 1.5f);
    ck_assert_float_eq(out[1], -2.25f);
    ck_assert_msg(isinf(out[2]) && out[2] > 0, "1e300 became %g", out[2]);
    ck_assert_snn_ok(snn_safetensors_get_f32(st, "i", 1, (const int64_t[]){3}, out));
    ck_assert_float_eq(out[0], 3.0f);
    ck_assert_float_eq(out[1], -7.0f);
    ck_assert_float_eq(out[2], 1099511627776.0f);
    ck_assert_snn_ok(snn_safetensors_get_f32(st, "f", -1, NULL, out)); /* no shape check */
    ck_assert_float_eq(out[0], 0.5f);
    ck_assert_float_eq(out[1], -8.0f);

    ck_assert_snn_status(snn_safetensors_get_f32(st, "conv1.weight", 4,
                                                 (const int64_t[]){64, 3, 3, 3}, out),
                         SNN_ERR_SHAPE);
    ck_assert_error_mentions("'conv1.weight'");
    ck_assert_error_mentions("[64, 1, 3, 3]");
    ck_assert_error_mentions("[64, 3, 3, 3]");
    ck_assert_snn_status(snn_safetensors_get_f32(st, "f", 1, (const int64_t[]){2}, out),
                         SNN_ERR_SHAPE);
    ck_assert_error_mentions("[1, 2]");
    ck_assert_error_mentions("[2]");
    ck_assert_snn_status(snn_safetensors_get_f32(st, "f", 0, NULL, out), SNN_ERR_SHAPE);
    ck_assert_error_mentions("[]");
    ck_assert_snn_status(snn_safetensors_get_f32(st, "nope", -1, NULL, out), SNN_ERR_NOT_FOUND);
    ck_assert_str_eq(snn_last_error(), "tensor 'nope' is missing");
    ck_assert_snn_status(snn_safetensors_get_f32(st, "f", 2, NULL, out), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_safetensors_get_f32(st, "f", -1, NULL, NULL), SNN_ERR_INVALID_ARG);
    snn_safetensors_free(st);
}
END_TEST

START_TEST(test_null_arguments) {
    snn_safetensors *st = NULL, *p = (snn_safetensors *)&st;
    const float v = 1;
    float out;
    ck_assert_snn_status(snn_safetensors_create(NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_safetensors_read(NULL, "x"), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_safetensors_read(&p, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(p);
    snn_safetensors_free(NULL);
    ck_assert_uint_eq(snn_safetensors_count(NULL), 0);
    ck_assert_ptr_null(snn_safetensors_at(NULL, 0));
    ck_assert_ptr_null(snn_safetensors_find(NULL, "x"));
    ck_assert_ptr_null(snn_safetensors_meta_get(NULL, "x"));
    ck_assert_uint_eq(snn_safetensors_meta_count(NULL), 0);
    ck_assert_ptr_null(snn_safetensors_meta_key(NULL, 0));
    ck_assert_snn_status(snn_safetensors_write(NULL, tmp_path("null-arg.safetensors")), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_safetensors_add(NULL, "x", SNN_F32, 0, NULL, &v), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_safetensors_get_f32(NULL, "x", -1, NULL, &out), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_safetensors_meta_set(NULL, "k", "v"), SNN_ERR_INVALID_ARG);

    ck_assert_snn_ok(snn_safetensors_create(&st));
    ck_assert_snn_ok(snn_safetensors_add(st, "x", SNN_F32, 0, NULL, &v));
    ck_assert_snn_ok(snn_safetensors_meta_set(st, "k", "v"));
    ck_assert_snn_status(snn_safetensors_write(st, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_safetensors_get_f32(st, NULL, -1, NULL, &out), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_safetensors_meta_set(st, NULL, "v"), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_safetensors_meta_set(st, "k", NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(snn_safetensors_at(st, 1));
    ck_assert_ptr_null(snn_safetensors_at(st, (size_t)-1));
    ck_assert_ptr_null(snn_safetensors_find(st, NULL));
    ck_assert_ptr_null(snn_safetensors_find(st, "y"));
    ck_assert_ptr_null(snn_safetensors_meta_get(st, NULL));
    ck_assert_ptr_null(snn_safetensors_meta_key(st, 1));
    ck_assert_str_eq(snn_safetensors_meta_key(st, 0), "k");
    ck_assert_int_eq(count_files_containing("null-arg.safetensors"), 0);
    snn_safetensors_free(st);
}
END_TEST

/* ------------------------------------------------------------------ writing -- */

START_TEST(test_write_missing_directory) {
    snn_safetensors *st = make_sample();
    const char *path = tmp_path("no/such/dir/out.safetensors");
    ck_assert_snn_status(snn_safetensors_write(st, path), SNN_ERR_IO);
    ck_assert_error_mentions(path);
    ck_assert_error_mentions(strerror(ENOENT));
    ck_assert_int_eq(count_files_containing(".tmp."), 0);
    snn_safetensors_free(st);
}
END_TEST

/* rename() onto a directory fails after the temporary file was written. */
START_TEST(test_write_rename_fails) {
    snn_safetensors *st = make_sample();
    const char *path = tmp_path("a_directory");
    struct stat sb;
    ck_assert_int_eq(mkdir(path, 0755), 0);
    ck_assert_snn_status(snn_safetensors_write(st, path), SNN_ERR_IO);
    ck_assert_error_mentions(path);
    ck_assert_error_mentions("rename");
    ck_assert_int_eq(count_files_containing(".tmp."), 0);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert(S_ISDIR(sb.st_mode));
    snn_safetensors_free(st);
}
END_TEST

/* A write that fails part way (file size limit) leaves the old file untouched. */
START_TEST(test_write_failure_keeps_old_file) {
    snn_safetensors *small = make_sample(), *big = NULL;
    const char *path = tmp_path("keep.safetensors");
    static float data[4096];
    unsigned char *before, *after;
    size_t n_before, n_after;
    struct rlimit old_limit, limit;
    void (*old_handler)(int);
    snn_status s;

    ck_assert_snn_ok(snn_safetensors_write(small, path));
    before = read_bytes(path, &n_before);
    ck_assert_snn_ok(snn_safetensors_create(&big));
    ck_assert_snn_ok(snn_safetensors_add(big, "big", SNN_F32, 1, (const int64_t[]){4096}, data));

    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
    limit = old_limit;
    limit.rlim_cur = 1024;
    old_handler = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &limit), 0);
    s = snn_safetensors_write(big, path);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old_limit), 0);
    signal(SIGXFSZ, old_handler);

    ck_assert_msg(s == SNN_ERR_IO, "write returned %s: %s", snn_status_name(s), snn_last_error());
    ck_assert_error_mentions(path);
    ck_assert_error_mentions(strerror(EFBIG));
    ck_assert_int_eq(count_files_containing(".tmp."), 0);
    after = read_bytes(path, &n_after);
    ck_assert_uint_eq(n_after, n_before);
    ck_assert_int_eq(memcmp(before, after, n_before), 0);
    free(before);
    free(after);
    snn_safetensors_free(small);
    snn_safetensors_free(big);
}
END_TEST

/* ------------------------------------------------------------ atomic files -- */

/* snn_file: the new content appears whole at commit; abort leaves the old file; either
 * way no temporary file stays; stale temporaries of dead processes are removed. */
START_TEST(test_atomic_file) {
    const char *path = tmp_path("atomic.txt");
    snn_file *f = NULL;
    ck_assert_snn_ok(snn_file_begin(&f, path));
    ck_assert_int_gt(fputs("first\n", snn_file_stream(f)), -1);
    ck_assert_int_eq(access(path, F_OK), -1); /* nothing at PATH before the commit */
    ck_assert_snn_ok(snn_file_commit(f));
    size_t n;
    unsigned char *got = read_bytes(path, &n);
    ck_assert_uint_eq(n, 6);
    ck_assert_int_eq(memcmp(got, "first\n", 6), 0);
    free(got);

    ck_assert_snn_ok(snn_file_begin(&f, path));
    fputs("second, never committed\n", snn_file_stream(f));
    snn_file_abort(f);
    got = read_bytes(path, &n);
    ck_assert_uint_eq(n, 6);
    free(got);
    ck_assert_int_eq(count_files_containing(".tmp."), 0);

    ck_assert_snn_status(snn_file_begin(&f, tmp_path("no/such/dir/x")), SNN_ERR_IO);
    ck_assert_ptr_null(f);
    ck_assert_error_mentions("no/such/dir");

    /* a temporary of a process that is gone is removed, one of a live process is not */
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    ck_assert_int_eq(waitpid(dead, NULL, 0), dead);
    char stale[4200], live[4200];
    snprintf(stale, sizeof stale, "%s.tmp.%ld", path, (long)dead);
    snprintf(live, sizeof live, "%s.tmp.%ld", path, (long)getppid());
    FILE *a = fopen(stale, "wb"), *b = fopen(live, "wb");
    ck_assert(a && b);
    fclose(a);
    fclose(b);
    ck_assert_int_eq(snn_file_remove_stale(path), 1);
    ck_assert_int_eq(access(stale, F_OK), -1);
    ck_assert_int_eq(access(live, F_OK), 0);
    unlink(live);
}
END_TEST

/* ------------------------------------------------------------ hostile files -- */

#define TENSOR(name, dtype, shape, offsets) \
    "\"" name "\":{\"dtype\":" dtype ",\"shape\":" shape ",\"data_offsets\":" offsets "}"

typedef struct hostile_case {
    const char *label;
    const char *json;  /* header JSON, padded by write_st_file; NULL: use raw */
    size_t data_len;   /* bytes of data after the header */
    const char *raw;   /* the whole file, when json is NULL */
    size_t raw_len;
    snn_status want;
    const char *needle1, *needle2; /* both must appear in snn_last_error() */
} hostile_case;

static const hostile_case hostile[] = {
    /* the length prefix */
    {"empty file", NULL, 0, "", 0, SNN_ERR_FORMAT, "0 bytes", "too short"},
    {"five bytes", NULL, 0, "\x02\0\0\0\0", 5, SNN_ERR_FORMAT, "5 bytes", "too short"},
    {"length past end", NULL, 0, "\xe8\x03\0\0\0\0\0\0{}", 10, SNN_ERR_FORMAT,
     "header length 1000", "2 bytes"},
    {"absurd length", NULL, 0, "\x00\xc2\xeb\x0b\0\0\0\0{}", 10, SNN_ERR_FORMAT,
     "200000000", "limit"},
    {"max length", NULL, 0, "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10, SNN_ERR_FORMAT,
     "18446744073709551615", "limit"},
    {"zero length", NULL, 0, "\0\0\0\0\0\0\0\0", 8, SNN_ERR_FORMAT, "not valid JSON", "0"},
    {"embedded NUL", NULL, 0, "\x04\0\0\0\0\0\0\0{}\0 ", 12, SNN_ERR_FORMAT, "0x00", "offset 2"},
    /* the JSON */
    {"not JSON", "{\"a\": ", 0, NULL, 0, SNN_ERR_FORMAT, "not valid JSON", "byte"},
    {"array header", "[1, 2]", 0, NULL, 0, SNN_ERR_FORMAT, "an array", "not a JSON object"},
    {"string header", "\"x\"", 0, NULL, 0, SNN_ERR_FORMAT, "a string", "not a JSON object"},
    {"trailing garbage", "{} x", 0, NULL, 0, SNN_ERR_FORMAT, "0x78", "after the JSON"},
    {"bad UTF-8", "{\"a\xff\":{}}", 0, NULL, 0, SNN_ERR_FORMAT, "UTF-8", "0xff"},
    {"surrogate UTF-8", "{\"a\xed\xa0\x80\":{}}", 0, NULL, 0, SNN_ERR_FORMAT, "UTF-8", "0xed"},
    {"entry not object", "{\"a\":5}", 0, NULL, 0, SNN_ERR_FORMAT, "'a'", "a number, not an object"},
    {"missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "missing field 'dtype'"},
    {"missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "missing field 'shape'"},
    {"missing offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, NULL, 0, SNN_ERR_FORMAT,
     "'a'", "missing field 'data_offsets'"},
    {"duplicate field",
     "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     NULL, 0, SNN_ERR_FORMAT, "'a'", "'dtype' appears twice"},
    /* dtype */
    {"dtype number", "{" TENSOR("a", "7", "[1]", "[0,4]") "}", 4, NULL, 0, SNN_ERR_FORMAT, "'a'",
     "dtype is a number"},
    {"dtype F16", "{" TENSOR("fc.w", "\"F16\"", "[2]", "[0,4]") "}", 4, NULL, 0,
     SNN_ERR_UNSUPPORTED, "'fc.w'", "'F16'"},
    {"dtype BOOL", "{" TENSOR("mask", "\"BOOL\"", "[4]", "[0,4]") "}", 4, NULL, 0,
     SNN_ERR_UNSUPPORTED, "'mask'", "'BOOL'"},
    {"dtype unknown", "{" TENSOR("a", "\"Q7\"", "[1]", "[0,4]") "}", 4, NULL, 0,
     SNN_ERR_UNSUPPORTED, "'a'", "'Q7'"},
    {"dtype lower case", "{" TENSOR("a", "\"f32\"", "[1]", "[0,4]") "}", 4, NULL, 0,
     SNN_ERR_UNSUPPORTED, "'a'", "'f32'"},
    /* shape */
    {"shape not array", "{" TENSOR("a", "\"F32\"", "4", "[0,16]") "}", 16, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "shape is a number"},
    {"shape negative", "{" TENSOR("a", "\"F32\"", "[2,-3]", "[0,24]") "}", 24, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "shape[1] is -3"},
    {"shape fraction", "{" TENSOR("a", "\"F32\"", "[1.5]", "[0,4]") "}", 4, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "shape[0] is 1.5"},
    {"shape string", "{" TENSOR("a", "\"F32\"", "[\"2\"]", "[0,8]") "}", 8, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "shape[0] is a string"},
    {"shape huge number", "{" TENSOR("a", "\"F32\"", "[1e300]", "[0,8]") "}", 8, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "shape[0] is 1"},
    {"too many dims", "{" TENSOR("a", "\"F32\"", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4, NULL, 0,
     SNN_ERR_UNSUPPORTED, "'a'", "9 dimensions"},
    {"shape overflow",
     "{" TENSOR("a", "\"F32\"", "[4294967296,4294967296,4294967296]", "[0,4]") "}", 4, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "overflows"},
    /* data_offsets */
    {"offsets not array", "{" TENSOR("a", "\"F32\"", "[1]", "\"0-4\"") "}", 4, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "data_offsets is a string"},
    {"offsets one element", "{" TENSOR("a", "\"F32\"", "[1]", "[0]") "}", 4, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "has 1 element,"},
    {"offsets three elements", "{" TENSOR("a", "\"F32\"", "[1]", "[0,4,8]") "}", 8, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "3 elements"},
    {"offset negative", "{" TENSOR("a", "\"F32\"", "[1]", "[-4,0]") "}", 4, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "data_offsets[0] is -4"},
    {"offset fraction", "{" TENSOR("a", "\"F32\"", "[1]", "[0,4.5]") "}", 8, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "data_offsets[1] is 4.5"},
    {"offset null", "{" TENSOR("a", "\"F32\"", "[1]", "[null,4]") "}", 4, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "data_offsets[0] is null"},
    {"offset huge", "{" TENSOR("a", "\"F32\"", "[1]", "[0,1e300]") "}", 4, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "e+300"},
    {"begin after end", "{" TENSOR("a", "\"F32\"", "[0]", "[8,4]") "}", 8, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "[8, 4]: begin is after end"},
    {"past buffer", "{" TENSOR("a", "\"F32\"", "[6]", "[0,24]") "}", 16, NULL, 0, SNN_ERR_FORMAT,
     "[0, 24]", "16-byte data buffer"},
    {"empty past buffer", "{" TENSOR("a", "\"F32\"", "[0]", "[20,20]") "}", 16, NULL, 0,
     SNN_ERR_FORMAT, "'a'", "16-byte data buffer"},
    {"size mismatch", "{" TENSOR("fc.weight", "\"F32\"", "[10,4096]", "[0,100]") "}", 100, NULL, 0,
     SNN_ERR_FORMAT, "'fc.weight'",
     "data_offsets [0, 100] hold 100 bytes but F32 shape [10, 4096] needs 163840"},
    {"scalar size", "{" TENSOR("step", "\"I64\"", "[]", "[0,4]") "}", 4, NULL, 0, SNN_ERR_FORMAT,
     "'step'", "I64 shape [] needs 8"},
    /* tensors together */
    {"overlap",
     "{" TENSOR("a", "\"F32\"", "[4]", "[0,16]") "," TENSOR("b", "\"F32\"", "[4]", "[8,24]") "}",
     24, NULL, 0, SNN_ERR_FORMAT, "'a' (data_offsets [0, 16]) and 'b' (data_offsets [8, 24])",
     "overlap"},
    {"overlap later",
     "{" TENSOR("c", "\"F32\"", "[1]", "[20,24]") "," TENSOR("a", "\"F64\"", "[3]", "[0,24]") ","
     TENSOR("b", "\"F32\"", "[1]", "[24,28]") "}",
     28, NULL, 0, SNN_ERR_FORMAT, "'a'", "'c'"},
    {"duplicate name",
     "{" TENSOR("w", "\"F32\"", "[1]", "[0,4]") "," TENSOR("w", "\"F32\"", "[1]", "[4,8]") "}", 8,
     NULL, 0, SNN_ERR_FORMAT, "'w'", "appears twice"},
    /* __metadata__ */
    {"metadata array", "{\"__metadata__\":[]}", 0, NULL, 0, SNN_ERR_FORMAT, "__metadata__",
     "an array"},
    {"metadata null", "{\"__metadata__\":null}", 0, NULL, 0, SNN_ERR_FORMAT, "__metadata__",
     "null"},
    {"metadata number value", "{\"__metadata__\":{\"ok\":\"1\",\"epoch\":3}}", 0, NULL, 0,
     SNN_ERR_FORMAT, "'epoch'", "a number, not a string"},
    {"metadata duplicate key", "{\"__metadata__\":{\"k\":\"1\",\"j\":\"2\",\"k\":\"3\"}}", 0, NULL,
     0, SNN_ERR_FORMAT, "'k'", "appears twice"},
    {"metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, NULL, 0, SNN_ERR_FORMAT,
     "__metadata__", "appears twice"},
};

START_TEST(test_hostile_file) {
    const hostile_case *c = &hostile[_i];
    char name[64];
    const char *path;
    snn_safetensors *st = (snn_safetensors *)&name; /* must be reset to NULL */
    snn_status s;
    snprintf(name, sizeof name, "hostile%d.safetensors", _i);
    path = tmp_path(name);
    if (c->json)
        write_st_file(path, c->json, NULL, c->data_len);
    else
        write_bytes(path, c->raw, c->raw_len);
    s = snn_safetensors_read(&st, path);
    ck_assert_msg(s == c->want, "%s: got %s (%s), wanted %s", c->label, snn_status_name(s),
                  snn_last_error(), snn_status_name(c->want));
    ck_assert_ptr_null(st);
    ck_assert_msg(strstr(snn_last_error(), path) != NULL, "%s: \"%s\" does not name the file",
                  c->label, snn_last_error());
    ck_assert_msg(strstr(snn_last_error(), c->needle1) != NULL, "%s: \"%s\" lacks \"%s\"",
                  c->label, snn_last_error(), c->needle1);
    ck_assert_msg(strstr(snn_last_error(), c->needle2) != NULL, "%s: \"%s\" lacks \"%s\"",
                  c->label, snn_last_error(), c->needle2);
}
END_TEST

START_TEST(test_read_io_errors) {
    snn_safetensors *st = NULL;
    const char *missing = tmp_path("does-not-exist.safetensors");
    const char *dir = tmp_path("dir.safetensors");
    ck_assert_snn_status(snn_safetensors_read(&st, missing), SNN_ERR_IO);
    ck_assert_ptr_null(st);
    ck_assert_error_mentions(missing);
    ck_assert_error_mentions(strerror(ENOENT));
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    ck_assert_snn_status(snn_safetensors_read(&st, dir), SNN_ERR_IO);
    ck_assert_ptr_null(st);
    ck_assert_error_mentions(dir);
}
END_TEST

/* Every truncated copy of a valid file fails cleanly; the full file reads. */
START_TEST(test_truncated_copies) {
    snn_safetensors *st = make_sample(), *back = NULL;
    const char *full = tmp_path("full.safetensors"), *cut = tmp_path("cut.safetensors");
    unsigned char *bytes;
    size_t n;
    ck_assert_snn_ok(snn_safetensors_write(st, full));
    bytes = read_bytes(full, &n);
    for (size_t len = 0; len <= n; len++) {
        snn_status s;
        write_bytes(cut, bytes, len);
        s = snn_safetensors_read(&back, cut);
        if (len == n) {
            ck_assert_msg(s == SNN_OK, "full file: %s", snn_last_error());
            ck_assert_uint_eq(snn_safetensors_count(back), 4);
            snn_safetensors_free(back);
        } else {
            ck_assert_msg(s == SNN_ERR_FORMAT, "cut to %zu of %zu bytes: got %s (%s)", len, n,
                          snn_status_name(s), snn_last_error());
            ck_assert_ptr_null(back);
            ck_assert_msg(strstr(snn_last_error(), cut) != NULL, "%s", snn_last_error());
        }
    }
    free(bytes);
    snn_safetensors_free(st);
}
END_TEST

/* The in-memory reader (the fuzzers' way in) agrees with the file reader: the same
 * tensors for a whole file, the same failure for every truncated copy. */
START_TEST(test_read_memory) {
    snn_safetensors *st = make_sample(), *from_file = NULL, *from_memory = NULL;
    const char *full = tmp_path("memory.safetensors");
    unsigned char *bytes;
    size_t n;
    ck_assert_snn_ok(snn_safetensors_write(st, full));
    bytes = read_bytes(full, &n);
    ck_assert_snn_ok(snn_safetensors_read(&from_file, full));
    ck_assert_snn_ok(snn_safetensors_read_memory(&from_memory, "in memory", bytes, n));
    ck_assert_uint_eq(snn_safetensors_count(from_memory), snn_safetensors_count(from_file));
    for (size_t i = 0; i < snn_safetensors_count(from_file); i++)
        assert_tensor_eq(snn_safetensors_at(from_memory, i), snn_safetensors_at(from_file, i));
    ck_assert_uint_eq(snn_safetensors_meta_count(from_memory), snn_safetensors_meta_count(from_file));
    snn_safetensors_free(from_memory);
    snn_safetensors_free(from_file);
    for (size_t len = 0; len < n; len++) {
        snn_status s = snn_safetensors_read_memory(&from_memory, "in memory", bytes, len);
        ck_assert_msg(s == SNN_ERR_FORMAT, "cut to %zu of %zu bytes: got %s (%s)", len, n,
                      snn_status_name(s), snn_last_error());
        ck_assert_ptr_null(from_memory);
        ck_assert_msg(strncmp(snn_last_error(), "in memory: ", 11) == 0, "%s", snn_last_error());
    }
    ck_assert_int_eq(snn_safetensors_read_memory(&from_memory, "x", NULL, 0), SNN_ERR_FORMAT);
    ck_assert_int_eq(snn_safetensors_read_memory(&from_memory, "x", NULL, 8), SNN_ERR_INVALID_ARG);
    ck_assert_int_eq(snn_safetensors_read_memory(&from_memory, NULL, bytes, n), SNN_ERR_INVALID_ARG);
    ck_assert_int_eq(snn_safetensors_read_memory(NULL, "x", bytes, n), SNN_ERR_INVALID_ARG);
    free(bytes);
    snn_safetensors_free(st);
}
END_TEST

/* Single corrupted bytes anywhere in the header never crash or leak; most fail. */
START_TEST(test_corrupted_bytes) {
    snn_safetensors *st = make_sample(), *back = NULL;
    const char *full = tmp_path("corrupt-src.safetensors"), *bad = tmp_path("corrupt.safetensors");
    static const unsigned char replacements[] = {0x00, '"', '{', ']', '-', '9', 0xff, ' '};
    unsigned char *bytes;
    size_t n, header_end;
    ck_assert_snn_ok(snn_safetensors_write(st, full));
    bytes = read_bytes(full, &n);
    header_end = 8 + (size_t)bytes[0] + ((size_t)bytes[1] << 8);
    for (size_t pos = 0; pos < header_end; pos++) {
        unsigned char saved = bytes[pos];
        for (size_t r = 0; r < sizeof replacements; r++) {
            snn_status s;
            if (replacements[r] == saved) continue;
            bytes[pos] = replacements[r];
            write_bytes(bad, bytes, n);
            s = snn_safetensors_read(&back, bad);
            if (s == SNN_OK) {
                ck_assert_ptr_nonnull(back);
                snn_safetensors_free(back);
                back = NULL;
            } else {
                ck_assert_ptr_null(back);
                ck_assert_msg(s == SNN_ERR_FORMAT || s == SNN_ERR_UNSUPPORTED,
                              "byte %zu -> 0x%02x: %s (%s)", pos, replacements[r],
                              snn_status_name(s), snn_last_error());
            }
        }
        bytes[pos] = saved;
    }
    free(bytes);
    snn_safetensors_free(st);
}
END_TEST

static Suite *safetensors_suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("round_trip");
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_header_layout);
    tcase_add_test(tc, test_empty_store_round_trip);
    tcase_add_test(tc, test_overwrite_existing);
    tcase_add_test(tc, test_read_foreign_order);
    suite_add_tcase(s, tc);

    tc = tcase_create("objects");
    tcase_add_test(tc, test_add_replaces);
    tcase_add_test(tc, test_add_validation);
    tcase_add_test(tc, test_get_f32);
    tcase_add_test(tc, test_null_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("write_failures");
    tcase_add_test(tc, test_write_missing_directory);
    tcase_add_test(tc, test_write_rename_fails);
    tcase_add_test(tc, test_write_failure_keeps_old_file);
    tcase_add_test(tc, test_atomic_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_hostile_file, 0, (int)(sizeof hostile / sizeof hostile[0]));
    tcase_add_test(tc, test_read_io_errors);
    tcase_add_test(tc, test_truncated_copies);
    tcase_add_test(tc, test_read_memory);
    tcase_add_test(tc, test_corrupted_bytes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(safetensors_suite()); }
