/* Tests of the public API's error handling: every bad argument or bad file returns
 * the documented status (never aborts) and leaves a message of its own in
 * snn_last_error(). Also the positive guarantees that depend on the same code paths:
 * create -> save -> load reproduces the model exactly, and forward passes and
 * initialization are deterministic in their seeds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

/* ----------------------------------------------------------------- helpers -- */

#define SNN_ARRAY_LEN_T(a) (sizeof(a) / sizeof((a)[0]))

/* A message no library call produces: planted before each failing call so that the
 * test can tell that the call wrote a message of its own. */
#define SENTINEL "sentinel-7d1c0e"

static void plant_sentinel(void) {
    snn_encoding e;
    ck_assert_int_eq(snn_encoding_parse(SENTINEL, &e), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), SENTINEL));
}

/* expr must return `want` and replace the planted message with a non-empty one. */
#define ck_assert_fails(expr, want)                                                             \
    do {                                                                                        \
        plant_sentinel();                                                                       \
        ck_assert_snn_status(expr, want);                                                       \
        ck_assert_msg(snn_last_error()[0] != '\0' && strstr(snn_last_error(), SENTINEL) == NULL, \
                      "%s set no message of its own (last error: \"%s\")", #expr,              \
                      snn_last_error());                                                        \
    } while (0)

#define ck_assert_error_mentions(needle)                                                  \
    ck_assert_msg(strstr(snn_last_error(), (needle)) != NULL,                             \
                  "last error \"%s\" does not mention \"%s\"", snn_last_error(), (needle))

/* A small model config: simple [4, 8] or vgg [8, 16, 32] on 2x8x8, 5 classes, T = 4,
 * direct encoding. */
static snn_model_config small_config(snn_model_kind kind) {
    snn_model_config cfg;
    ck_assert_snn_ok(snn_model_config_default(&cfg, kind == SNN_MODEL_VGG ? "vgg" : "simple"));
    cfg.in_channels = 2;
    cfg.height = 8;
    cfg.width = 8;
    cfg.num_classes = 5;
    cfg.T = 4;
    cfg.encoding = SNN_ENCODING_DIRECT;
    if (kind == SNN_MODEL_VGG) {
        cfg.num_blocks = 3;
        cfg.channels[0] = 8;
        cfg.channels[1] = 16;
        cfg.channels[2] = 32;
    } else {
        cfg.num_blocks = 2;
        cfg.channels[0] = 4;
        cfg.channels[1] = 8;
        cfg.channels[2] = 0;
    }
    return cfg;
}

static snn_model *make_model(const snn_model_config *cfg, uint64_t seed) {
    snn_model *m = NULL;
    ck_assert_snn_ok(snn_model_create(&m, test_context(), cfg, seed));
    ck_assert_ptr_nonnull(m);
    return m;
}

static size_t input_count(const snn_model_config *cfg, int batch) {
    size_t n = (size_t)batch * (size_t)cfg->in_channels * (size_t)cfg->height * (size_t)cfg->width;
    return cfg->encoding == SNN_ENCODING_NONE ? n * (size_t)cfg->T : n;
}

static float *make_input(const snn_model_config *cfg, int batch, uint64_t seed) {
    size_t n = input_count(cfg, batch);
    float *x = malloc(n * sizeof *x);
    test_rng r;
    ck_assert_ptr_nonnull(x);
    test_rng_seed(&r, seed);
    test_fill_uniform(&r, x, n, 0.0f, 2.0f);
    return x;
}

/* A copy of src without tensor `skip` (may be NULL) and with its metadata. */
static snn_safetensors *copy_without(const snn_safetensors *src, const char *skip) {
    snn_safetensors *dst = NULL;
    ck_assert_snn_ok(snn_safetensors_create(&dst));
    for (size_t i = 0; i < snn_safetensors_count(src); i++) {
        const snn_tensor *t = snn_safetensors_at(src, i);
        if (skip && strcmp(t->name, skip) == 0) continue;
        ck_assert_snn_ok(snn_safetensors_add(dst, t->name, t->dtype, t->ndim, t->shape, t->data));
    }
    for (size_t i = 0; i < snn_safetensors_meta_count(src); i++) {
        const char *key = snn_safetensors_meta_key(src, i);
        ck_assert_snn_ok(snn_safetensors_meta_set(dst, key, snn_safetensors_meta_get(src, key)));
    }
    return dst;
}

/* Every tensor (name, dtype, shape, bytes) and every metadata entry equal. */
static void assert_same_safetensors(const snn_safetensors *a, const snn_safetensors *b) {
    ck_assert_uint_eq(snn_safetensors_count(a), snn_safetensors_count(b));
    for (size_t i = 0; i < snn_safetensors_count(a); i++) {
        const snn_tensor *x = snn_safetensors_at(a, i);
        const snn_tensor *y = snn_safetensors_find(b, x->name);
        ck_assert_msg(y != NULL, "tensor '%s' is missing from the second file", x->name);
        ck_assert_msg(x->dtype == y->dtype && x->ndim == y->ndim && x->nbytes == y->nbytes,
                      "tensor '%s' differs in dtype, rank or size", x->name);
        for (int d = 0; d < x->ndim; d++) ck_assert_int_eq(x->shape[d], y->shape[d]);
        ck_assert_msg(x->nbytes == 0 || memcmp(x->data, y->data, x->nbytes) == 0,
                      "tensor '%s' has different bytes", x->name);
    }
    ck_assert_uint_eq(snn_safetensors_meta_count(a), snn_safetensors_meta_count(b));
    for (size_t i = 0; i < snn_safetensors_meta_count(a); i++) {
        const char *key = snn_safetensors_meta_key(a, i);
        const char *vb = snn_safetensors_meta_get(b, key);
        ck_assert_msg(vb != NULL, "metadata '%s' is missing from the second file", key);
        ck_assert_str_eq(snn_safetensors_meta_get(a, key), vb);
    }
}

/* The model file of small_config(kind) with init seed 1, in memory. */
static snn_safetensors *small_model_tensors(snn_model_kind kind) {
    snn_model_config cfg = small_config(kind);
    snn_model *m = make_model(&cfg, 1);
    snn_safetensors *st = NULL;
    ck_assert_snn_ok(snn_model_to_safetensors(m, &st));
    snn_model_free(m);
    return st;
}

/* ------------------------------------------------------------ NULL pointers -- */

START_TEST(test_null_status_and_devices) {
    int n = -1;
    snn_device_info info;
    ck_assert_fails(snn_device_count(NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_device_get_info(0, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_ok(snn_device_count(&n));
    ck_assert_int_ge(n, 1);
    ck_assert_fails(snn_device_get_info(-1, &info), SNN_ERR_NO_DEVICE);
    ck_assert_fails(snn_device_get_info(n, &info), SNN_ERR_NO_DEVICE);
    ck_assert_snn_ok(snn_device_get_info(0, &info));
    ck_assert_int_eq(info.index, 0);
    ck_assert_uint_gt(strlen(info.name), 0);

    /* Names of codes that do not exist are still strings. */
    ck_assert_ptr_nonnull(snn_status_str((snn_status)-1000));
    ck_assert_ptr_nonnull(snn_status_name((snn_status)-1000));
    ck_assert_str_eq(snn_status_name(SNN_ERR_SHAPE), "SNN_ERR_SHAPE");
    ck_assert_str_eq(snn_version(), SNNCL_VERSION_STRING);
    ck_assert_ptr_nonnull(snn_model_kind_name((snn_model_kind)42));
    ck_assert_ptr_nonnull(snn_encoding_name((snn_encoding)42));
}
END_TEST

START_TEST(test_null_context) {
    snn_context *ctx = NULL;
    snn_device_info info;
    ck_assert_fails(snn_context_create(NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_context_device_info(NULL, &info), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_context_device_info(test_context(), NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_context_finish(NULL), SNN_ERR_INVALID_ARG);
    const char *impl = NULL, *reason = NULL;
    ck_assert_fails(snn_context_gemm_info(NULL, &impl, &reason), SNN_ERR_INVALID_ARG);
    ck_assert_snn_ok(snn_context_gemm_info(test_context(), NULL, NULL));
    ck_assert_snn_ok(snn_context_gemm_info(test_context(), &impl, &reason));
    ck_assert(strcmp(impl, "native") == 0 || strcmp(impl, "clblast") == 0);
    ck_assert(strcmp(reason, "SNNCL_GEMM") == 0 || strcmp(reason, "snncl tune") == 0 ||
              strcmp(reason, "device-type default") == 0);
    snn_context_params_default(NULL);
    ck_assert_ptr_null(ctx);
}
END_TEST

START_TEST(test_null_tune) {
    snn_tune_params p;
    snn_tune_params_default(NULL);
    snn_tune_params_default(&p);
    snn_tune_result r;
    int found = 0;
    char path[64];
    ck_assert_fails(snn_tune(NULL, &p, &r), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_tune(test_context(), &p, NULL), SNN_ERR_INVALID_ARG);
    p.runs = 0;
    ck_assert_fails(snn_tune(test_context(), &p, &r), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("runs");
    snn_tune_params_default(&p);
    snn_model_config bad = small_config(SNN_MODEL_SIMPLE);
    bad.T = 0;
    p.workload = &bad;
    ck_assert_fails(snn_tune(test_context(), &p, &r), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("workload");
    ck_assert_fails(snn_tune_stored(NULL, &r, &found), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_tune_stored(test_context(), NULL, &found), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_tune_stored(test_context(), &r, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_tune_forget(NULL, path, sizeof path), SNN_ERR_INVALID_ARG);
}
END_TEST

START_TEST(test_null_run) {
    snn_run *run = (snn_run *)1;
    snn_run_position pos;
    snn_safetensors *ck = NULL;
    ck_assert_int_eq(snn_run_steps_per_epoch(0, 4), 0);
    ck_assert_int_eq(snn_run_steps_per_epoch(100, 1), 100);
    ck_assert_int_eq(snn_run_steps_per_epoch(100, 0), 0);
    ck_assert_int_eq(snn_run_steps_per_epoch(100, 32), 4);
    ck_assert(snn_run_step_seed(1, 0) != snn_run_step_seed(1, 1) && snn_run_step_seed(1, 5) == snn_run_step_seed(1, 5));
    ck_assert_fails(snn_run_create(NULL, NULL, NULL, 4, 0), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_run_create(&run, NULL, NULL, 0, 0), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_run_create(&run, NULL, NULL, 4, 0), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_run_set_shard(NULL, 0, 1, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(run);
    snn_run_free(NULL);
    ck_assert_fails(snn_run_step(NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_run_next_epoch(NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_run_get_position(NULL, &pos), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_run_checkpoint(NULL, &ck), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_run_resume(NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_str_eq(snn_status_name(SNN_ERR_NUMERIC), "SNN_ERR_NUMERIC");
}
END_TEST

START_TEST(test_null_file) {
    snn_file *f = (snn_file *)1;
    ck_assert_fails(snn_file_begin(NULL, "x"), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_file_begin(&f, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(f);
    ck_assert_fails(snn_file_begin(&f, ""), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_file_commit(NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(snn_file_stream(NULL));
    snn_file_abort(NULL);
    ck_assert_int_eq(snn_file_remove_stale(NULL), 0);
    ck_assert_int_eq(snn_file_remove_stale(""), 0);
}
END_TEST

START_TEST(test_null_safetensors) {
    snn_safetensors *st = NULL;
    const float v = 1.0f;
    const int64_t shape[1] = {1};
    float out;
    ck_assert_fails(snn_safetensors_create(NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_safetensors_read(NULL, fixture_path("simple_direct_lyap.input.safetensors")),
                    SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_safetensors_read(&st, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(st);
    ck_assert_fails(snn_safetensors_write(NULL, tmp_path("x.safetensors")), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_safetensors_add(NULL, "x", SNN_F32, 1, shape, &v), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_safetensors_get_f32(NULL, "x", 1, shape, &out), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_safetensors_meta_set(NULL, "k", "v"), SNN_ERR_INVALID_ARG);

    ck_assert_snn_ok(snn_safetensors_create(&st));
    ck_assert_fails(snn_safetensors_write(st, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_safetensors_add(st, NULL, SNN_F32, 1, shape, &v), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_safetensors_get_f32(st, NULL, 1, shape, &out), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_safetensors_meta_set(st, NULL, "v"), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_safetensors_meta_set(st, "k", NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(snn_safetensors_find(st, NULL));
    ck_assert_ptr_null(snn_safetensors_meta_get(st, NULL));
    ck_assert_ptr_null(snn_safetensors_at(st, 0));
    ck_assert_ptr_null(snn_safetensors_meta_key(st, 0));
    snn_safetensors_free(st);

    /* Queries on NULL answer "nothing" rather than crash. */
    ck_assert_uint_eq(snn_safetensors_count(NULL), 0);
    ck_assert_uint_eq(snn_safetensors_meta_count(NULL), 0);
    ck_assert_ptr_null(snn_safetensors_at(NULL, 0));
    ck_assert_ptr_null(snn_safetensors_find(NULL, "x"));
    ck_assert_ptr_null(snn_safetensors_meta_get(NULL, "k"));
    ck_assert_ptr_null(snn_safetensors_meta_key(NULL, 0));
}
END_TEST

START_TEST(test_null_config) {
    snn_model_config cfg;
    snn_encoding e;
    ck_assert_fails(snn_model_config_default(NULL, "simple"), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_config_default(&cfg, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_encoding_parse(NULL, &e), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_encoding_parse("rate", NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_encoding_parse("morse", &e), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("morse");
    ck_assert_snn_ok(snn_encoding_parse("none", &e));
    ck_assert_int_eq(e, SNN_ENCODING_NONE);
}
END_TEST

/* The public structs keep their sizes (on LP64): a field added takes its bytes from
 * `reserved`, so programs built against an older header still allocate enough. These
 * are the sizes of 0.1.0 as first released with reserved bytes. */
START_TEST(test_struct_sizes) {
    if (sizeof(void *) != 8) return;
    ck_assert_uint_eq(sizeof(snn_context_params), 80);
    ck_assert_uint_eq(sizeof(snn_batch), 80);
    ck_assert_uint_eq(sizeof(snn_step_stats), 56);
    ck_assert_uint_eq(sizeof(snn_device_info), 1280);
    ck_assert_uint_eq(sizeof(snn_forward_params), 96);
    ck_assert_uint_eq(sizeof(snn_train_config), 136);
    ck_assert_uint_eq(sizeof(snn_model_config), 144);
    ck_assert_uint_eq(sizeof(snn_layer_desc), 100);
}
END_TEST

/* An extension's failure reads like snncl's own. */
START_TEST(test_report_error) {
    ck_assert_int_eq(snn_report_error(SNN_ERR_IO, "rank 1: lost"), SNN_ERR_IO);
    ck_assert_str_eq(snn_last_error(), "rank 1: lost");
    ck_assert_int_eq(snn_last_cl_error(), 0);
    ck_assert_int_eq(snn_report_error(SNN_ERR_INVALID_ARG, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_str_eq(snn_last_error(), "");
}
END_TEST

START_TEST(test_null_model_create_and_load) {
    snn_model_config cfg = small_config(SNN_MODEL_SIMPLE);
    snn_context *ctx = test_context();
    snn_model *m = NULL;
    snn_safetensors *st = small_model_tensors(SNN_MODEL_SIMPLE);
    const char *path = fixture_path("simple_direct_lyap.model.safetensors");

    ck_assert_fails(snn_model_create(NULL, ctx, &cfg, 1), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_create(&m, NULL, &cfg, 1), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(m);
    ck_assert_fails(snn_model_create(&m, ctx, NULL, 1), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(m);

    ck_assert_fails(snn_model_from_safetensors(NULL, ctx, st), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_from_safetensors(&m, NULL, st), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(m);
    ck_assert_fails(snn_model_from_safetensors(&m, ctx, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(m);

    ck_assert_fails(snn_model_load(NULL, ctx, path), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_load(&m, NULL, path), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(m);
    ck_assert_fails(snn_model_load(&m, ctx, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(m);

    /* from memory: the file's bytes give the model the file gives */
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static unsigned char bytes[1 << 20];
    const size_t n = fread(bytes, 1, sizeof bytes, f);
    ck_assert(n > 0 && n < sizeof bytes && feof(f));
    fclose(f);
    snn_model *from_file = NULL, *from_memory = NULL;
    ck_assert_snn_ok(snn_model_load(&from_file, ctx, path));
    ck_assert_snn_ok(snn_model_load_memory(&from_memory, ctx, "embedded model", bytes, n));
    snn_safetensors *a = NULL, *b = NULL;
    ck_assert_snn_ok(snn_model_to_safetensors(from_file, &a));
    ck_assert_snn_ok(snn_model_to_safetensors(from_memory, &b));
    ck_assert_uint_eq(snn_safetensors_count(a), snn_safetensors_count(b));
    for (size_t i = 0; i < snn_safetensors_count(a); i++) {
        const snn_tensor *ta = snn_safetensors_at(a, i), *tb = snn_safetensors_find(b, ta->name);
        ck_assert_ptr_nonnull(tb);
        ck_assert_uint_eq(ta->nbytes, tb->nbytes);
        ck_assert_mem_eq(ta->data, tb->data, ta->nbytes);
    }
    snn_safetensors_free(a);
    snn_safetensors_free(b);
    snn_model_free(from_file);
    snn_model_free(from_memory);
    ck_assert_fails(snn_model_load_memory(NULL, ctx, "x", bytes, n), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_load_memory(&m, NULL, "x", bytes, n), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_load_memory(&m, ctx, NULL, bytes, n), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_load_memory(&m, ctx, "x", NULL, n), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_load_memory(&m, ctx, "truncated blob", bytes, n / 2), SNN_ERR_FORMAT);
    ck_assert_error_mentions("truncated blob");
    ck_assert_ptr_null(m);
    snn_safetensors *none = NULL;
    ck_assert_fails(snn_safetensors_read_memory(&none, NULL, bytes, n), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(none);
    snn_safetensors_free(st);
}
END_TEST

START_TEST(test_null_model_queries) {
    snn_model_config cfg = small_config(SNN_MODEL_SIMPLE);
    snn_model *m = make_model(&cfg, 1);
    snn_safetensors *st = NULL;
    snn_model_config got;
    int ndim;
    int64_t shape[4];

    ck_assert_fails(snn_model_to_safetensors(NULL, &st), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(st);
    ck_assert_fails(snn_model_to_safetensors(m, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_save(NULL, tmp_path("m.safetensors")), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_save(m, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_get_config(NULL, &got), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_get_config(m, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_lif_shape(NULL, 0, 1, &ndim, shape), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_lif_shape(m, 0, 1, NULL, shape), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_lif_shape(m, 0, 1, &ndim, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_int_eq(snn_model_num_lif_layers(NULL), 0);
    ck_assert_int_eq(snn_model_num_lif_layers(m), 2);
    snn_model_free(m);
}
END_TEST

START_TEST(test_null_forward) {
    snn_model_config cfg = small_config(SNN_MODEL_SIMPLE);
    snn_model *m = make_model(&cfg, 1);
    float *x = make_input(&cfg, 2, 3);
    float logits[2 * 5], lyap = 0, per[2];
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    ck_assert_fails(snn_model_forward(NULL, x, 2, &fp, logits, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_forward(m, NULL, 2, &fp, logits, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_forward(m, x, 2, &fp, NULL, NULL, NULL), SNN_ERR_INVALID_ARG);
    snn_forward_params_default(NULL);

    /* NULL params means the defaults; NULL lyapunov outputs are allowed. */
    ck_assert_snn_ok(snn_model_forward(m, x, 2, NULL, logits, NULL, NULL));
    fp.lyapunov = 1;
    ck_assert_snn_ok(snn_model_forward(m, x, 2, &fp, logits, NULL, NULL));
    ck_assert_snn_ok(snn_model_forward(m, x, 2, &fp, logits, &lyap, NULL));
    ck_assert_snn_ok(snn_model_forward(m, x, 2, &fp, logits, NULL, per));
    ck_assert(isfinite(lyap) && isfinite(per[0]) && isfinite(per[1]));
    free(x);
    snn_model_free(m);
}
END_TEST

START_TEST(test_free_null) {
    snn_context_free(NULL);
    snn_model_free(NULL);
    snn_safetensors_free(NULL);
}
END_TEST

/* ----------------------------------------------------------------- devices -- */

START_TEST(test_context_bad_device) {
    snn_context *ctx = NULL;
    snn_context_params p;
    snn_device_info info;
    snn_context_params_default(&p);

    p.device = "99";
    ck_assert_fails(snn_context_create(&ctx, &p), SNN_ERR_NO_DEVICE);
    ck_assert_ptr_null(ctx);
    ck_assert_error_mentions("99");

    p.device = "no-such-device";
    ck_assert_fails(snn_context_create(&ctx, &p), SNN_ERR_NO_DEVICE);
    ck_assert_ptr_null(ctx);
    ck_assert_error_mentions("no-such-device");
    /* The message lists what there is. */
    ck_assert_snn_ok(snn_device_get_info(0, &info));
    ck_assert_error_mentions(info.name);

    /* $SNNCL_DEVICE is used when params name no device, and an explicit one wins. */
    ck_assert_int_eq(setenv("SNNCL_DEVICE", "no-such-device", 1), 0);
    ck_assert_fails(snn_context_create(&ctx, NULL), SNN_ERR_NO_DEVICE);
    ck_assert_ptr_null(ctx);
    p.device = "";
    ck_assert_fails(snn_context_create(&ctx, &p), SNN_ERR_NO_DEVICE);
    p.device = "0";
    ck_assert_snn_ok(snn_context_create(&ctx, &p));
    ck_assert_ptr_nonnull(ctx);
    ck_assert_snn_ok(snn_context_device_info(ctx, &info));
    ck_assert_int_eq(info.index, 0);
    snn_context_free(ctx);
    unsetenv("SNNCL_DEVICE");
}
END_TEST

/* ------------------------------------------------------------------ configs -- */

START_TEST(test_config_unknown_name) {
    snn_model_config cfg;
    ck_assert_fails(snn_model_config_default(&cfg, "resnet"), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("resnet");
    ck_assert_fails(snn_model_config_default(&cfg, ""), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_config_default(&cfg, "Simple"), SNN_ERR_INVALID_ARG);
    ck_assert_snn_ok(snn_model_config_default(&cfg, "vgg"));
    ck_assert_int_eq(cfg.kind, SNN_MODEL_VGG);
}
END_TEST

/* One invalid config per loop iteration: what to break, and a word the message must
 * contain. */
typedef struct bad_config {
    const char *what;
    snn_model_kind kind;
    void (*apply)(snn_model_config *cfg);
    const char *mentions;
} bad_config;

static void set_t0(snn_model_config *c) { c->T = 0; }
static void set_t_negative(snn_model_config *c) { c->T = -5; }
static void set_blocks0(snn_model_config *c) { c->num_blocks = 0; }
static void set_blocks9(snn_model_config *c) {
    c->num_blocks = 9;
    c->height = c->width = 1024;
}
static void set_vgg_blocks2(snn_model_config *c) { c->num_blocks = 2; }
static void set_channels0(snn_model_config *c) { c->channels[1] = 0; }
static void set_channels_negative(snn_model_config *c) { c->channels[0] = -4; }
static void set_too_small(snn_model_config *c) { c->height = 3; }      /* 2 poolings need 4 */
static void set_too_narrow(snn_model_config *c) { c->width = 7; }      /* vgg: 3 poolings need 8 */
static void set_dropout1(snn_model_config *c) { c->dropout = 1.0f; }
static void set_dropout_negative(snn_model_config *c) { c->dropout = -0.1f; }
static void set_beta_nan(snn_model_config *c) { c->beta = NAN; }
static void set_threshold_inf(snn_model_config *c) { c->threshold = INFINITY; }
static void set_gain_nan(snn_model_config *c) { c->encoding_gain = NAN; }
static void set_in_channels0(snn_model_config *c) { c->in_channels = 0; }
static void set_classes0(snn_model_config *c) { c->num_classes = 0; }
static void set_kind7(snn_model_config *c) { c->kind = (snn_model_kind)7; }
static void set_encoding7(snn_model_config *c) { c->encoding = (snn_encoding)7; }

static const bad_config bad_configs[] = {
    {"T = 0", SNN_MODEL_SIMPLE, set_t0, "T"},
    {"T < 0", SNN_MODEL_SIMPLE, set_t_negative, "T"},
    {"num_blocks 0", SNN_MODEL_SIMPLE, set_blocks0, "0"},
    {"num_blocks 9", SNN_MODEL_SIMPLE, set_blocks9, "9"},
    {"vgg with 2 blocks", SNN_MODEL_VGG, set_vgg_blocks2, "2"},
    {"channels 0", SNN_MODEL_SIMPLE, set_channels0, "channels"},
    {"channels < 0", SNN_MODEL_VGG, set_channels_negative, "channels"},
    {"input too small", SNN_MODEL_SIMPLE, set_too_small, "small"},
    {"vgg input too narrow", SNN_MODEL_VGG, set_too_narrow, "small"},
    {"dropout 1", SNN_MODEL_SIMPLE, set_dropout1, "dropout"},
    {"dropout < 0", SNN_MODEL_SIMPLE, set_dropout_negative, "dropout"},
    {"beta NaN", SNN_MODEL_SIMPLE, set_beta_nan, "beta"},
    {"threshold inf", SNN_MODEL_VGG, set_threshold_inf, "threshold"},
    {"gain NaN", SNN_MODEL_SIMPLE, set_gain_nan, "gain"},
    {"in_channels 0", SNN_MODEL_SIMPLE, set_in_channels0, "in_channels"},
    {"num_classes 0", SNN_MODEL_SIMPLE, set_classes0, "num_classes"},
    {"unknown kind", SNN_MODEL_SIMPLE, set_kind7, "7"},
    {"unknown encoding", SNN_MODEL_SIMPLE, set_encoding7, "encoding"},
};

START_TEST(test_model_create_bad_config) {
    const bad_config *b = &bad_configs[_i];
    snn_model_config cfg = small_config(b->kind);
    snn_model *m = NULL;
    b->apply(&cfg);
    plant_sentinel();
    snn_status st = snn_model_create(&m, test_context(), &cfg, 1);
    ck_assert_msg(st == SNN_ERR_INVALID_ARG, "%s: snn_model_create returned %s (%s)", b->what,
                  snn_status_name(st), snn_last_error());
    ck_assert_msg(m == NULL, "%s: a model was returned", b->what);
    ck_assert_msg(strstr(snn_last_error(), b->mentions) && !strstr(snn_last_error(), SENTINEL),
                  "%s: message \"%s\" does not mention \"%s\"", b->what, snn_last_error(), b->mentions);
}
END_TEST

/* ------------------------------------------------------------------ forward -- */

START_TEST(test_forward_bad_arguments) {
    snn_model_config cfg = small_config(SNN_MODEL_SIMPLE);
    snn_model *m = make_model(&cfg, 1);
    float *x = make_input(&cfg, 2, 3);
    float logits[2 * 5], before[2 * 5], lyap, per[2];
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    ck_assert_float_eq(fp.lyap_eps, 1e-4f);
    ck_assert_snn_ok(snn_model_forward(m, x, 2, &fp, before, NULL, NULL));

    ck_assert_fails(snn_model_forward(m, x, 0, &fp, logits, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("batch");
    ck_assert_fails(snn_model_forward(m, x, -3, &fp, logits, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_forward(m, NULL, 2, &fp, logits, NULL, NULL), SNN_ERR_INVALID_ARG);

    fp.lyapunov = 1;
    const float bad_eps[] = {0.0f, -0.0f, -1e-4f, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad_eps / sizeof bad_eps[0]; i++) {
        fp.lyap_eps = bad_eps[i];
        ck_assert_fails(snn_model_forward(m, x, 2, &fp, logits, &lyap, per), SNN_ERR_INVALID_ARG);
        ck_assert_error_mentions("eps");
    }
    fp.lyap_eps = 1e-4f;

    /* A perturbation array with one NULL layer. */
    {
        int ndim;
        int64_t shape[4];
        ck_assert_snn_ok(snn_model_lif_shape(m, 0, 2, &ndim, shape));
        size_t n = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
        float *p0 = calloc(n, sizeof *p0);
        ck_assert_ptr_nonnull(p0);
        for (size_t i = 0; i < n; i++) p0[i] = 1.0f;
        const float *layers[2] = {p0, NULL};
        fp.perturb = layers;
        ck_assert_fails(snn_model_forward(m, x, 2, &fp, logits, &lyap, per), SNN_ERR_INVALID_ARG);
        ck_assert_error_mentions("1");
        layers[0] = NULL;
        layers[1] = p0;
        ck_assert_fails(snn_model_forward(m, x, 2, &fp, logits, &lyap, per), SNN_ERR_INVALID_ARG);
        fp.perturb = NULL;
        free(p0);
    }

    /* A batch far too large for any device fails cleanly, without reading the input. */
    fp.lyapunov = 0;
    plant_sentinel();
    ck_assert_int_ne(snn_model_forward(m, x, 2147483647, &fp, logits, NULL, NULL), SNN_OK);
    ck_assert_msg(snn_last_error()[0] && !strstr(snn_last_error(), SENTINEL), "no message: \"%s\"",
                  snn_last_error());

    /* The failures left the model usable: the same call gives the same logits. */
    ck_assert_snn_ok(snn_model_forward(m, x, 2, &fp, logits, NULL, NULL));
    ck_assert_int_eq(memcmp(logits, before, sizeof logits), 0);
    free(x);
    snn_model_free(m);
}
END_TEST

/* FLOPs from the layer plan, by hand for simple [4, 8] on 2x8x8, T = 4, direct:
 * conv1 4*2*9*64 = 4608 multiply-adds once (direct), conv2 8*4*9*16 = 4608 per step
 * and trajectory, the readout 32*5 = 160 once; training adds the weight gradients
 * and the input gradients of every layer but the first. */
START_TEST(test_model_flops) {
    snn_model_config cfg = small_config(SNN_MODEL_SIMPLE);
    snn_model *m = make_model(&cfg, 1);
    double f = -1;
    ck_assert_fails(snn_model_flops(NULL, 0, 0, &f), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_flops(m, 0, 0, NULL), SNN_ERR_INVALID_ARG);
    double fl;
    ck_assert_fails(snn_model_lyapunov_floor(NULL, 1e-4f, &fl), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_lyapunov_floor(m, 1e-4f, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_lyapunov_floor(m, -1.0f, &fl), SNN_ERR_INVALID_ARG);
    ck_assert_snn_ok(snn_model_flops(m, 0, 0, &f));
    ck_assert_double_eq(f, 2.0 * (4608 + 4 * 4608 + 160));
    ck_assert_snn_ok(snn_model_flops(m, 1, 0, &f));
    ck_assert_double_eq(f, 2.0 * (4608 + 8 * 4608 + 160));
    ck_assert_snn_ok(snn_model_flops(m, 0, 1, &f));
    ck_assert_double_eq(f, 2.0 * ((4608 + 4 * 4608 + 160) + (4608 + 2 * 4 * 4608 + 2 * 160)));
    snn_model_free(m);
}
END_TEST

START_TEST(test_lif_shape_out_of_range) {
    snn_model_config cfg = small_config(SNN_MODEL_VGG);
    snn_model *m = make_model(&cfg, 1);
    int ndim = 0;
    int64_t shape[4];
    int n = snn_model_num_lif_layers(m);
    ck_assert_int_eq(n, 7);
    ck_assert_fails(snn_model_lif_shape(m, -1, 1, &ndim, shape), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("-1");
    ck_assert_fails(snn_model_lif_shape(m, n, 1, &ndim, shape), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("7");
    ck_assert_fails(snn_model_lif_shape(m, 0, 0, &ndim, shape), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_lif_shape(m, 0, -2, &ndim, shape), SNN_ERR_INVALID_ARG);

    ck_assert_snn_ok(snn_model_lif_shape(m, 0, 3, &ndim, shape));
    ck_assert_int_eq(ndim, 4);
    ck_assert_int_eq(shape[0], 3);
    ck_assert_int_eq(shape[1], 8);
    ck_assert_int_eq(shape[2], 8);
    ck_assert_int_eq(shape[3], 8);
    ck_assert_snn_ok(snn_model_lif_shape(m, 4, 3, &ndim, shape));
    ck_assert_int_eq(shape[1], 32);
    ck_assert_int_eq(shape[2], 2);
    ck_assert_snn_ok(snn_model_lif_shape(m, n - 1, 3, &ndim, shape));
    ck_assert_int_eq(ndim, 2);
    ck_assert_int_eq(shape[0], 3);
    ck_assert_int_eq(shape[1], 512);
    snn_model_free(m);
}
END_TEST

/* -------------------------------------------------------------- bad files -- */

START_TEST(test_load_missing_and_corrupt_files) {
    snn_context *ctx = test_context();
    snn_model *m = NULL;
    const char *path;

    path = tmp_path("does-not-exist.safetensors");
    ck_assert_fails(snn_model_load(&m, ctx, path), SNN_ERR_IO);
    ck_assert_ptr_null(m);
    ck_assert_error_mentions(path);

    ck_assert_fails(snn_model_load(&m, ctx, test_tmpdir()), SNN_ERR_IO);
    ck_assert_ptr_null(m);

    path = tmp_path("empty.safetensors");
    write_bytes(path, "", 0);
    ck_assert_fails(snn_model_load(&m, ctx, path), SNN_ERR_FORMAT);
    ck_assert_ptr_null(m);

    path = tmp_path("text.safetensors");
    {
        const char text[] = "this is not a safetensors file at all\n";
        write_bytes(path, text, sizeof text - 1);
    }
    ck_assert_fails(snn_model_load(&m, ctx, path), SNN_ERR_FORMAT);
    ck_assert_ptr_null(m);
    ck_assert_error_mentions(path);

    path = tmp_path("badjson.safetensors");
    {
        unsigned char buf[8 + 16] = {16, 0, 0, 0, 0, 0, 0, 0};
        memcpy(buf + 8, "{\"a\": [1, 2}   ", 16);
        write_bytes(path, buf, sizeof buf);
    }
    ck_assert_fails(snn_model_load(&m, ctx, path), SNN_ERR_FORMAT);
    ck_assert_error_mentions("JSON");
    ck_assert_ptr_null(m);

    /* A valid model file cut short at several places. */
    {
        snn_safetensors *st = small_model_tensors(SNN_MODEL_SIMPLE);
        char full[4096];
        size_t n;
        snprintf(full, sizeof full, "%s", tmp_path("full.safetensors"));
        ck_assert_snn_ok(snn_safetensors_write(st, full));
        snn_safetensors_free(st);
        unsigned char *bytes = read_bytes(full, &n);
        const size_t cuts[] = {4, 8, 40, n / 2, n - 1};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
            path = tmp_path("cut.safetensors");
            write_bytes(path, bytes, cuts[i]);
            plant_sentinel();
            snn_status s = snn_model_load(&m, ctx, path);
            ck_assert_msg(s == SNN_ERR_FORMAT, "cut at %zu of %zu: %s (%s)", cuts[i], n,
                          snn_status_name(s), snn_last_error());
            ck_assert_ptr_null(m);
            ck_assert_msg(!strstr(snn_last_error(), SENTINEL), "cut at %zu: no message", cuts[i]);
        }
        free(bytes);
        ck_assert_snn_ok(snn_model_load(&m, ctx, full));
        snn_model_free(m);
        m = NULL;
    }

    /* Tensors that are not a model at all. */
    {
        snn_safetensors *st = NULL;
        const float v = 1.0f;
        ck_assert_snn_ok(snn_safetensors_create(&st));
        ck_assert_snn_ok(snn_safetensors_add(st, "weights", SNN_F32, 0, NULL, &v));
        path = tmp_path("notamodel.safetensors");
        ck_assert_snn_ok(snn_safetensors_write(st, path));
        snn_safetensors_free(st);
        ck_assert_fails(snn_model_load(&m, ctx, path), SNN_ERR_FORMAT);
        ck_assert_ptr_null(m);
    }
}
END_TEST

static const char *const required_simple[] = {
    "blocks.0.conv.weight", "blocks.0.bn.weight", "blocks.1.bn.running_var", "blocks.1.lif.beta",
    "blocks.0.lif.threshold", "fc.weight", "fc.bias",
};
static const char *const required_vgg[] = {
    "blocks.0.0.weight", "blocks.2.1.running_mean", "lifs.3.threshold", "fc1.weight",
    "fc1.bias", "lif_fc.beta", "fc2.weight", "fc2.bias",
};

static void check_missing_tensor(snn_model_kind kind, const char *name) {
    snn_safetensors *full = small_model_tensors(kind);
    ck_assert_msg(snn_safetensors_find(full, name) != NULL, "the model has no tensor '%s'", name);
    snn_safetensors *st = copy_without(full, name);
    const char *path = tmp_path("missing.safetensors");
    snn_model *m = NULL;
    char quoted[128];
    ck_assert_snn_ok(snn_safetensors_write(st, path));
    plant_sentinel();
    snn_status s = snn_model_load(&m, test_context(), path);
    ck_assert_msg(s == SNN_ERR_NOT_FOUND, "without '%s': %s (%s)", name, snn_status_name(s),
                  snn_last_error());
    ck_assert_ptr_null(m);
    snprintf(quoted, sizeof quoted, "'%s'", name);
    ck_assert_error_mentions(quoted);
    /* The same through snn_model_from_safetensors. */
    plant_sentinel();
    ck_assert_snn_status(snn_model_from_safetensors(&m, test_context(), st), SNN_ERR_NOT_FOUND);
    ck_assert_error_mentions(quoted);
    ck_assert_ptr_null(m);
    snn_safetensors_free(st);
    snn_safetensors_free(full);
}

START_TEST(test_load_missing_tensor_simple) {
    check_missing_tensor(SNN_MODEL_SIMPLE, required_simple[_i]);
}
END_TEST

START_TEST(test_load_missing_tensor_vgg) {
    check_missing_tensor(SNN_MODEL_VGG, required_vgg[_i]);
}
END_TEST

/* Optional snnTorch/BatchNorm bookkeeping tensors may be absent. */
START_TEST(test_load_optional_tensors_absent) {
    snn_safetensors *full = small_model_tensors(SNN_MODEL_SIMPLE);
    snn_safetensors *a = copy_without(full, "blocks.0.bn.num_batches_tracked");
    snn_safetensors *b = copy_without(a, "blocks.1.lif.reset_mechanism_val");
    snn_safetensors *c = copy_without(b, "blocks.0.lif.graded_spikes_factor");
    snn_model *m = NULL;
    ck_assert_snn_ok(snn_model_from_safetensors(&m, test_context(), c));
    ck_assert_ptr_nonnull(m);
    snn_model_free(m);
    snn_safetensors_free(full);
    snn_safetensors_free(a);
    snn_safetensors_free(b);
    snn_safetensors_free(c);
}
END_TEST

/* A float count (num_batches_tracked) that has no int64 value is a format error, not
 * an undefined cast. */
START_TEST(test_load_count_out_of_range) {
    snn_safetensors *full = small_model_tensors(SNN_MODEL_SIMPLE);
    const float bad[] = {NAN, INFINITY, -INFINITY, 1e30f, -1e30f};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snn_safetensors *st = copy_without(full, "blocks.0.bn.num_batches_tracked");
        ck_assert_snn_ok(snn_safetensors_add(st, "blocks.0.bn.num_batches_tracked", SNN_F32, 0, NULL, &bad[i]));
        snn_model *m = NULL;
        plant_sentinel();
        ck_assert_snn_status(snn_model_from_safetensors(&m, test_context(), st), SNN_ERR_FORMAT);
        ck_assert_ptr_null(m);
        ck_assert_error_mentions("num_batches_tracked");
        snn_safetensors_free(st);
    }
    snn_safetensors_free(full);
}
END_TEST

/* Replaces tensor `name` by a float tensor of the given shape (values 0.5). */
static snn_safetensors *with_shape(const snn_safetensors *src, const char *name, int ndim,
                                   const int64_t *shape) {
    snn_safetensors *st = copy_without(src, NULL);
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    float *v = malloc((n ? n : 1) * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < n; i++) v[i] = 0.5f;
    ck_assert_snn_ok(snn_safetensors_add(st, name, SNN_F32, ndim, shape, v));
    free(v);
    return st;
}

START_TEST(test_load_wrong_shape) {
    snn_safetensors *full = small_model_tensors(SNN_MODEL_SIMPLE);
    struct {
        const char *name;
        int ndim;
        int64_t shape[4];
        const char *have, *want;
    } cases[] = {
        {"blocks.0.bn.weight", 1, {5}, "[5]", "[4]"},
        {"blocks.1.bn.running_mean", 2, {8, 1}, "[8, 1]", "[8]"},
        {"blocks.1.conv.weight", 4, {8, 3, 3, 3}, "[8, 3, 3, 3]", "[8, 4, 3, 3]"},
        {"fc.weight", 2, {5, 31}, "[5, 31]", "[5, 32]"},
        {"fc.bias", 1, {6}, "[6]", "[5]"},
        {"blocks.0.lif.beta", 1, {2}, "[2]", "[]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snn_safetensors *st = with_shape(full, cases[i].name, cases[i].ndim, cases[i].shape);
        const char *path = tmp_path("shape.safetensors");
        snn_model *m = NULL;
        ck_assert_snn_ok(snn_safetensors_write(st, path));
        plant_sentinel();
        snn_status s = snn_model_load(&m, test_context(), path);
        ck_assert_msg(s == SNN_ERR_SHAPE, "%s %s: %s (%s)", cases[i].name, cases[i].have,
                      snn_status_name(s), snn_last_error());
        ck_assert_ptr_null(m);
        ck_assert_error_mentions(cases[i].name);
        ck_assert_error_mentions(cases[i].have);
        ck_assert_error_mentions(cases[i].want);
        snn_safetensors_free(st);
    }
    snn_safetensors_free(full);
}
END_TEST

START_TEST(test_load_bad_metadata) {
    snn_safetensors *full = small_model_tensors(SNN_MODEL_SIMPLE);
    struct {
        const char *key, *value;
        snn_status want;
    } cases[] = {
        {"T", "0", SNN_ERR_FORMAT},         {"T", "-1", SNN_ERR_FORMAT},
        {"T", "4x", SNN_ERR_FORMAT},        {"height", "0", SNN_ERR_FORMAT},
        {"encoding", "morse", SNN_ERR_FORMAT}, {"dropout", "nan", SNN_ERR_FORMAT},
        {"num_classes", "6", SNN_ERR_SHAPE}, {"in_channels", "3", SNN_ERR_SHAPE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snn_safetensors *st = copy_without(full, NULL);
        snn_model *m = NULL;
        ck_assert_snn_ok(snn_safetensors_meta_set(st, cases[i].key, cases[i].value));
        plant_sentinel();
        snn_status s = snn_model_from_safetensors(&m, test_context(), st);
        ck_assert_msg(s == cases[i].want, "%s = %s: %s, wanted %s (%s)", cases[i].key, cases[i].value,
                      snn_status_name(s), snn_status_name(cases[i].want), snn_last_error());
        ck_assert_ptr_null(m);
        ck_assert_error_mentions(cases[i].key);
        snn_safetensors_free(st);
    }
    snn_safetensors_free(full);
}
END_TEST

/* A model file whose metadata describes a model snncl cannot build (an unknown model
 * name, a dropout of 1, an input too small for the poolings) is a malformed file
 * (SNN_ERR_FORMAT, as for T = 0), not a bad argument of the caller's. */
static const struct {
    const char *key, *value, *mentions;
} bad_file_configs[] = {
    {"model", "resnet", "resnet"},
    {"dropout", "1", "dropout"},
    {"height", "2", "small"},
};

START_TEST(test_load_invalid_config_in_file) {
    snn_safetensors *st = small_model_tensors(SNN_MODEL_SIMPLE);
    snn_model *m = NULL;
    ck_assert_snn_ok(snn_safetensors_meta_set(st, bad_file_configs[_i].key, bad_file_configs[_i].value));
    const char *path = tmp_path("badconfig.safetensors");
    ck_assert_snn_ok(snn_safetensors_write(st, path));
    snn_safetensors_free(st);
    plant_sentinel();
    snn_status s = snn_model_load(&m, test_context(), path);
    ck_assert_ptr_null(m);
    ck_assert_error_mentions(bad_file_configs[_i].mentions);
    ck_assert_error_mentions(path);
    ck_assert_msg(s == SNN_ERR_FORMAT, "metadata %s = %s: %s, wanted SNN_ERR_FORMAT (%s)",
                  bad_file_configs[_i].key, bad_file_configs[_i].value, snn_status_name(s),
                  snn_last_error());
}
END_TEST

START_TEST(test_save_to_missing_directory) {
    snn_model_config cfg = small_config(SNN_MODEL_SIMPLE);
    snn_model *m = make_model(&cfg, 1);
    const char *path = tmp_path("no-such-dir/m.safetensors");
    struct stat sb;
    ck_assert_fails(snn_model_save(m, path), SNN_ERR_IO);
    ck_assert_error_mentions("no-such-dir");
    ck_assert_int_ne(stat(tmp_path("no-such-dir"), &sb), 0);
    snn_model_free(m);
}
END_TEST

/* ------------------------------------------------------------- round trips -- */

static void check_round_trip(snn_model_kind kind, snn_encoding enc) {
    snn_model_config cfg = small_config(kind), got;
    cfg.encoding = enc;
    cfg.beta = 0.8f;
    cfg.threshold = 0.6f;
    cfg.encoding_gain = 0.75f;
    cfg.dropout = 0.25f;
    snn_model *a = make_model(&cfg, 1234), *b = NULL;
    const char *path = tmp_path("round.safetensors");
    snn_safetensors *sa = NULL, *sb = NULL;

    ck_assert_snn_ok(snn_model_save(a, path));
    ck_assert_snn_ok(snn_model_load(&b, test_context(), path));
    ck_assert_ptr_nonnull(b);
    ck_assert_snn_ok(snn_model_to_safetensors(a, &sa));
    ck_assert_snn_ok(snn_model_to_safetensors(b, &sb));
    assert_same_safetensors(sa, sb);
    assert_same_safetensors(sb, sa);
    ck_assert_str_eq(snn_safetensors_meta_get(sb, "model"), snn_model_kind_name(kind));
    ck_assert_str_eq(snn_safetensors_meta_get(sb, "encoding"), snn_encoding_name(enc));

    ck_assert_snn_ok(snn_model_get_config(b, &got));
    ck_assert_int_eq(got.kind, cfg.kind);
    ck_assert_int_eq(got.in_channels, cfg.in_channels);
    ck_assert_int_eq(got.height, cfg.height);
    ck_assert_int_eq(got.width, cfg.width);
    ck_assert_int_eq(got.num_classes, cfg.num_classes);
    ck_assert_int_eq(got.num_blocks, cfg.num_blocks);
    for (int i = 0; i < cfg.num_blocks; i++) ck_assert_int_eq(got.channels[i], cfg.channels[i]);
    ck_assert_int_eq(got.T, cfg.T);
    ck_assert_int_eq(got.encoding, cfg.encoding);
    ck_assert_float_eq(got.beta, cfg.beta);
    ck_assert_float_eq(got.threshold, cfg.threshold);
    ck_assert_float_eq(got.encoding_gain, cfg.encoding_gain);
    ck_assert_float_eq(got.dropout, cfg.dropout);
    ck_assert_int_eq(snn_model_num_lif_layers(b), snn_model_num_lif_layers(a));

    /* Same forward pass, bit for bit, with the estimate drawn from the same seed. */
    {
        const int B = 3;
        float *x = make_input(&cfg, B, 77);
        float la[3 * 5], lb[3 * 5], ma, mb, pa[3], pb[3];
        snn_forward_params fp;
        snn_forward_params_default(&fp);
        fp.lyapunov = 1;
        fp.seed = 99;
        ck_assert_snn_ok(snn_model_forward(a, x, B, &fp, la, &ma, pa));
        ck_assert_snn_ok(snn_model_forward(b, x, B, &fp, lb, &mb, pb));
        ck_assert_int_eq(memcmp(la, lb, sizeof la), 0);
        ck_assert_int_eq(memcmp(pa, pb, sizeof pa), 0);
        ck_assert_int_eq(memcmp(&ma, &mb, sizeof ma), 0);
        for (int i = 0; i < B * 5; i++) ck_assert(isfinite(la[i]));
        free(x);
    }
    snn_safetensors_free(sa);
    snn_safetensors_free(sb);
    snn_model_free(a);
    snn_model_free(b);
}

START_TEST(test_round_trip_simple) { check_round_trip(SNN_MODEL_SIMPLE, SNN_ENCODING_DIRECT); }
END_TEST

START_TEST(test_round_trip_simple_rate) { check_round_trip(SNN_MODEL_SIMPLE, SNN_ENCODING_RATE); }
END_TEST

START_TEST(test_round_trip_vgg) { check_round_trip(SNN_MODEL_VGG, SNN_ENCODING_NONE); }
END_TEST

/* A committed fixture model: load -> save -> load gives the same tensors. */
START_TEST(test_round_trip_fixture) {
    snn_model *a = NULL, *b = NULL;
    snn_safetensors *sa = NULL, *sb = NULL;
    const char *path = tmp_path("fixture.safetensors");
    ck_assert_snn_ok(snn_model_load(&a, test_context(), fixture_path("simple_none_rect_lyap.model.safetensors")));
    ck_assert_snn_ok(snn_model_save(a, path));
    ck_assert_snn_ok(snn_model_load(&b, test_context(), path));
    ck_assert_snn_ok(snn_model_to_safetensors(a, &sa));
    ck_assert_snn_ok(snn_model_to_safetensors(b, &sb));
    assert_same_safetensors(sa, sb);
    snn_safetensors_free(sa);
    snn_safetensors_free(sb);
    snn_model_free(a);
    snn_model_free(b);
}
END_TEST

/* ------------------------------------------------------------- determinism -- */

START_TEST(test_forward_same_seed_same_logits) {
    snn_model_config cfg = small_config(SNN_MODEL_SIMPLE);
    cfg.encoding = SNN_ENCODING_RATE;
    cfg.T = 16;
    cfg.threshold = 0.5f;
    snn_model *m = make_model(&cfg, 5);
    const int B = 4;
    float *x = make_input(&cfg, B, 8);
    float l1[4 * 5], l2[4 * 5], l3[4 * 5], m1, m2, p1[4], p2[4];
    snn_forward_params fp;
    for (size_t i = 0; i < input_count(&cfg, B); i++) x[i] *= 0.5f; /* firing rates in [0, 1] */
    snn_forward_params_default(&fp);
    fp.seed = 123;
    ck_assert_snn_ok(snn_model_forward(m, x, B, &fp, l1, NULL, NULL));
    ck_assert_snn_ok(snn_model_forward(m, x, B, &fp, l2, NULL, NULL));
    ck_assert_int_eq(memcmp(l1, l2, sizeof l1), 0);
    fp.seed = 124;
    ck_assert_snn_ok(snn_model_forward(m, x, B, &fp, l3, NULL, NULL));
    ck_assert_msg(memcmp(l1, l3, sizeof l1) != 0, "seeds 123 and 124 gave identical logits");

    /* With the estimate: the same seed gives the same everything. */
    fp.seed = 123;
    fp.lyapunov = 1;
    ck_assert_snn_ok(snn_model_forward(m, x, B, &fp, l1, &m1, p1));
    ck_assert_snn_ok(snn_model_forward(m, x, B, &fp, l2, &m2, p2));
    ck_assert_int_eq(memcmp(l1, l2, sizeof l1), 0);
    ck_assert_int_eq(memcmp(p1, p2, sizeof p1), 0);
    ck_assert_int_eq(memcmp(&m1, &m2, sizeof m1), 0);

    /* A second model with the same weights gives the same results too. */
    {
        snn_model *m2nd = make_model(&cfg, 5);
        float l4[4 * 5];
        fp.lyapunov = 0;
        ck_assert_snn_ok(snn_model_forward(m2nd, x, B, &fp, l4, NULL, NULL));
        ck_assert_snn_ok(snn_model_forward(m, x, B, &fp, l1, NULL, NULL));
        ck_assert_int_eq(memcmp(l1, l4, sizeof l1), 0);
        snn_model_free(m2nd);
    }
    free(x);
    snn_model_free(m);
}
END_TEST

START_TEST(test_create_same_seed_same_weights) {
    for (int k = 0; k < 2; k++) {
        snn_model_config cfg = small_config(k ? SNN_MODEL_VGG : SNN_MODEL_SIMPLE);
        snn_model *a = make_model(&cfg, 2024), *b = make_model(&cfg, 2024), *c = make_model(&cfg, 2025);
        snn_safetensors *sa = NULL, *sb = NULL, *sc = NULL;
        ck_assert_snn_ok(snn_model_to_safetensors(a, &sa));
        ck_assert_snn_ok(snn_model_to_safetensors(b, &sb));
        ck_assert_snn_ok(snn_model_to_safetensors(c, &sc));
        assert_same_safetensors(sa, sb);
        const char *w = k ? "blocks.0.0.weight" : "blocks.0.conv.weight";
        const char *fc = k ? "fc2.weight" : "fc.weight";
        const snn_tensor *wa = snn_safetensors_find(sa, w), *wc = snn_safetensors_find(sc, w);
        const snn_tensor *fa = snn_safetensors_find(sa, fc), *fcc = snn_safetensors_find(sc, fc);
        ck_assert_ptr_nonnull(wa);
        ck_assert_ptr_nonnull(fa);
        ck_assert_msg(memcmp(wa->data, wc->data, wa->nbytes) != 0, "init seeds 2024 and 2025 gave the same %s", w);
        ck_assert_msg(memcmp(fa->data, fcc->data, fa->nbytes) != 0, "init seeds 2024 and 2025 gave the same %s", fc);
        snn_safetensors_free(sa);
        snn_safetensors_free(sb);
        snn_safetensors_free(sc);
        snn_model_free(a);
        snn_model_free(b);
        snn_model_free(c);
    }
}
END_TEST

/* ------------------------------------------- every function, bad arguments -- */

/* Like ck_assert_fails, and the message names the function and the argument (or
 * field) that was wrong, so a caller can tell which of its values to fix. */
#define ck_assert_fails_naming(expr, want, fn, arg)                                       \
    do {                                                                                 \
        ck_assert_fails(expr, want);                                                     \
        ck_assert_msg(strstr(snn_last_error(), (fn)) && strstr(snn_last_error(), (arg)), \
                      "%s: message \"%s\" does not name %s and %s", #expr,              \
                      snn_last_error(), (fn), (arg));                                   \
    } while (0)

START_TEST(test_bad_context_memory) {
    size_t in_use = 0, peak = 0;
    snn_context *ctx = test_context();
    ck_assert_fails_naming(snn_context_memory(NULL, &in_use, &peak), SNN_ERR_INVALID_ARG, "snn_context_memory",
                           "ctx");
    ck_assert_fails_naming(snn_context_reset_peak(NULL), SNN_ERR_INVALID_ARG, "snn_context_reset_peak", "ctx");
    ck_assert_fails_naming(snn_context_device_info(NULL, NULL), SNN_ERR_INVALID_ARG, "snn_context_device_info",
                           "ctx");
    /* Either output may be NULL. */
    ck_assert_snn_ok(snn_context_memory(ctx, NULL, NULL));
    ck_assert_snn_ok(snn_context_memory(ctx, &in_use, NULL));
    ck_assert_snn_ok(snn_context_memory(ctx, NULL, &peak));
    ck_assert_snn_ok(snn_context_reset_peak(ctx));
    ck_assert_snn_ok(snn_context_memory(ctx, &in_use, &peak));
    ck_assert_uint_eq(in_use, peak);
    /* A log level outside the enum and a NULL callback are accepted (the default). */
    snn_set_log_callback(NULL, NULL, (snn_log_level)99);
    snn_set_log_callback(NULL, NULL, (snn_log_level)-5);
    snn_set_log_callback(NULL, NULL, SNN_LOG_WARN);
    ck_assert_fails_naming(snn_device_get_info(1 << 20, &(snn_device_info){0}), SNN_ERR_NO_DEVICE,
                           "snn_device_get_info", "index");
}
END_TEST

START_TEST(test_bad_parse_names) {
    snn_optimizer opt;
    snn_schedule sched;
    snn_dataset_kind kind;
    snn_encoding enc;
    snn_model_config cfg;
    ck_assert_str_eq(snn_optimizer_name((snn_optimizer)-1), "unknown");
    ck_assert_str_eq(snn_optimizer_name((snn_optimizer)2), "unknown");
    ck_assert_str_eq(snn_schedule_name((snn_schedule)3), "unknown");
    ck_assert_str_eq(snn_schedule_name((snn_schedule)-7), "unknown");
    ck_assert_str_eq(snn_dataset_kind_name((snn_dataset_kind)3), "unknown");
    ck_assert_ptr_null(snn_dataset_default_dir((snn_dataset_kind)-1));
    ck_assert_ptr_null(snn_dataset_default_dir(SNN_DATASET_MNIST));

    ck_assert_fails_naming(snn_optimizer_parse(NULL, &opt), SNN_ERR_INVALID_ARG, "snn_optimizer_parse", "name");
    ck_assert_fails_naming(snn_optimizer_parse("adam", NULL), SNN_ERR_INVALID_ARG, "snn_optimizer_parse", "out");
    ck_assert_fails_naming(snn_optimizer_parse("rmsprop", &opt), SNN_ERR_INVALID_ARG, "snn_optimizer_parse",
                           "rmsprop");
    ck_assert_fails_naming(snn_schedule_parse(NULL, &sched), SNN_ERR_INVALID_ARG, "snn_schedule_parse", "name");
    ck_assert_fails_naming(snn_schedule_parse("step", NULL), SNN_ERR_INVALID_ARG, "snn_schedule_parse", "out");
    ck_assert_fails_naming(snn_schedule_parse("linear", &sched), SNN_ERR_INVALID_ARG, "snn_schedule_parse",
                           "linear");
    ck_assert_fails_naming(snn_dataset_kind_parse(NULL, &kind), SNN_ERR_INVALID_ARG, "snn_dataset_kind_parse",
                           "name");
    ck_assert_fails_naming(snn_dataset_kind_parse("mnist", NULL), SNN_ERR_INVALID_ARG, "snn_dataset_kind_parse",
                           "out");
    ck_assert_fails_naming(snn_dataset_kind_parse("imagenet", &kind), SNN_ERR_INVALID_ARG,
                           "snn_dataset_kind_parse", "imagenet");
    ck_assert_fails_naming(snn_encoding_parse("morse", &enc), SNN_ERR_INVALID_ARG, "snn_encoding_parse", "morse");
    ck_assert_fails_naming(snn_model_config_default(&cfg, "resnet"), SNN_ERR_INVALID_ARG,
                           "snn_model_config_default", "resnet");
    ck_assert_fails_naming(snn_model_config_default(NULL, "vgg"), SNN_ERR_INVALID_ARG, "snn_model_config_default",
                           "cfg");
    snn_train_config_default(NULL);
}
END_TEST

/* A dataset of 3 images 1x4x4 with labels 0, 1, 9, written as IDX files. */
static snn_dataset *tiny_dataset(void) {
    unsigned char images[16 + 3 * 16] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 4};
    unsigned char labels[8 + 3] = {0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 9};
    for (size_t i = 16; i < sizeof images; i++) images[i] = (unsigned char)(i * 7);
    char ip[4096];
    snprintf(ip, sizeof ip, "%s", tmp_path("tiny-images-idx3-ubyte"));
    write_bytes(ip, images, sizeof images);
    const char *lp = tmp_path("tiny-labels-idx1-ubyte");
    write_bytes(lp, labels, sizeof labels);
    snn_dataset *ds = NULL;
    ck_assert_snn_ok(snn_dataset_load_idx(&ds, ip, lp));
    ck_assert_uint_eq(snn_dataset_size(ds), 3);
    return ds;
}

START_TEST(test_bad_dataset_loaders) {
    snn_dataset *ds = (snn_dataset *)&ds; /* loaders must set it to NULL on failure */
    const char *missing = tmp_path("no-such-dataset-dir");
    const char *paths[2] = {tmp_path("no-such-batch.bin"), NULL};
    ck_assert_fails_naming(snn_dataset_load(NULL, SNN_DATASET_MNIST, missing, 1), SNN_ERR_INVALID_ARG,
                           "snn_dataset_load", "out");
    ck_assert_fails_naming(snn_dataset_load(&ds, SNN_DATASET_MNIST, NULL, 1), SNN_ERR_INVALID_ARG,
                           "snn_dataset_load", "dir");
    ck_assert_ptr_null(ds);
    ck_assert_fails_naming(snn_dataset_load(&ds, SNN_DATASET_MNIST, "", 1), SNN_ERR_INVALID_ARG,
                           "snn_dataset_load", "dir");
    ck_assert_fails_naming(snn_dataset_load(&ds, (snn_dataset_kind)17, missing, 1), SNN_ERR_INVALID_ARG,
                           "snn_dataset_load", "17");
    ck_assert_fails(snn_dataset_load(&ds, SNN_DATASET_FASHION_MNIST, missing, 0), SNN_ERR_IO);
    ck_assert_error_mentions("no-such-dataset-dir");
    ck_assert_ptr_null(ds);

    ck_assert_fails_naming(snn_dataset_load_idx(NULL, missing, missing), SNN_ERR_INVALID_ARG,
                           "snn_dataset_load_idx", "out");
    ck_assert_fails_naming(snn_dataset_load_idx(&ds, NULL, missing), SNN_ERR_INVALID_ARG, "snn_dataset_load_idx",
                           "images_path");
    ck_assert_fails_naming(snn_dataset_load_idx(&ds, missing, NULL), SNN_ERR_INVALID_ARG, "snn_dataset_load_idx",
                           "labels_path");
    ck_assert_fails(snn_dataset_load_idx(&ds, missing, missing), SNN_ERR_IO);
    ck_assert_ptr_null(ds);

    ck_assert_fails_naming(snn_dataset_load_cifar10(NULL, paths, 1), SNN_ERR_INVALID_ARG,
                           "snn_dataset_load_cifar10", "out");
    ck_assert_fails_naming(snn_dataset_load_cifar10(&ds, NULL, 1), SNN_ERR_INVALID_ARG, "snn_dataset_load_cifar10",
                           "paths");
    ck_assert_fails_naming(snn_dataset_load_cifar10(&ds, paths, 0), SNN_ERR_INVALID_ARG,
                           "snn_dataset_load_cifar10", "count");
    ck_assert_fails_naming(snn_dataset_load_cifar10(&ds, paths, -3), SNN_ERR_INVALID_ARG,
                           "snn_dataset_load_cifar10", "count");
    ck_assert_fails_naming(snn_dataset_load_cifar10(&ds, paths, 2), SNN_ERR_INVALID_ARG,
                           "snn_dataset_load_cifar10", "paths[1]");
    ck_assert_fails(snn_dataset_load_cifar10(&ds, paths, 1), SNN_ERR_IO);
    ck_assert_ptr_null(ds);
    snn_dataset_free(NULL);
}
END_TEST

START_TEST(test_bad_dataset_queries) {
    snn_dataset *ds = tiny_dataset();
    int c, h, w;
    float mean[1], std[1], images[2 * 16];
    int64_t labels[2];
    uint32_t order[3], idx[2] = {0, 2};

    ck_assert_uint_eq(snn_dataset_size(NULL), 0);
    ck_assert_int_eq(snn_dataset_num_classes(NULL), 0);
    ck_assert_int_eq(snn_dataset_num_classes(ds), 10);
    ck_assert_fails_naming(snn_dataset_shape(NULL, &c, &h, &w), SNN_ERR_INVALID_ARG, "snn_dataset_shape", "ds");
    ck_assert_fails_naming(snn_dataset_shape(ds, NULL, &h, &w), SNN_ERR_INVALID_ARG, "snn_dataset_shape",
                           "channels");
    ck_assert_fails_naming(snn_dataset_shape(ds, &c, NULL, &w), SNN_ERR_INVALID_ARG, "snn_dataset_shape", "height");
    ck_assert_fails_naming(snn_dataset_shape(ds, &c, &h, NULL), SNN_ERR_INVALID_ARG, "snn_dataset_shape", "width");
    ck_assert_snn_ok(snn_dataset_shape(ds, &c, &h, &w));
    ck_assert_int_eq(c * 100 + h * 10 + w, 144);

    ck_assert_fails_naming(snn_dataset_truncate(NULL, 1), SNN_ERR_INVALID_ARG, "snn_dataset_truncate", "ds");
    ck_assert_fails_naming(snn_dataset_truncate(ds, 0), SNN_ERR_INVALID_ARG, "snn_dataset_truncate", "n");
    ck_assert_uint_eq(snn_dataset_size(ds), 3);

    ck_assert_fails_naming(snn_dataset_channel_stats(NULL, mean, std), SNN_ERR_INVALID_ARG,
                           "snn_dataset_channel_stats", "ds");
    ck_assert_fails_naming(snn_dataset_channel_stats(ds, NULL, std), SNN_ERR_INVALID_ARG,
                           "snn_dataset_channel_stats", "mean");
    ck_assert_fails_naming(snn_dataset_channel_stats(ds, mean, NULL), SNN_ERR_INVALID_ARG,
                           "snn_dataset_channel_stats", "std");

    ck_assert_snn_ok(snn_dataset_gather(ds, idx, 2, images, labels));
    const float good_mean[1] = {0.5f}, good_std[1] = {0.25f};
    const float bad_mean[][1] = {{NAN}, {INFINITY}}, bad_std[][1] = {{0.0f}, {-1.0f}, {NAN}, {INFINITY}, {1e-40f}};
    ck_assert_fails_naming(snn_dataset_set_normalization(NULL, good_mean, good_std), SNN_ERR_INVALID_ARG,
                           "snn_dataset_set_normalization", "ds");
    ck_assert_fails_naming(snn_dataset_set_normalization(ds, NULL, good_std), SNN_ERR_INVALID_ARG,
                           "snn_dataset_set_normalization", "mean");
    ck_assert_fails_naming(snn_dataset_set_normalization(ds, good_mean, NULL), SNN_ERR_INVALID_ARG,
                           "snn_dataset_set_normalization", "std");
    for (size_t i = 0; i < SNN_ARRAY_LEN_T(bad_mean); i++)
        ck_assert_fails_naming(snn_dataset_set_normalization(ds, bad_mean[i], good_std), SNN_ERR_INVALID_ARG,
                               "snn_dataset_set_normalization", "mean[0]");
    for (size_t i = 0; i < SNN_ARRAY_LEN_T(bad_std); i++)
        ck_assert_fails_naming(snn_dataset_set_normalization(ds, good_mean, bad_std[i]), SNN_ERR_INVALID_ARG,
                               "snn_dataset_set_normalization", "std[0]");
    /* The failures left the normalization alone. */
    {
        float again[2 * 16];
        int64_t again_labels[2];
        ck_assert_snn_ok(snn_dataset_gather(ds, idx, 2, again, again_labels));
        ck_assert_int_eq(memcmp(images, again, sizeof images), 0);
    }

    ck_assert_fails_naming(snn_dataset_order(NULL, 1, 0, order), SNN_ERR_INVALID_ARG, "snn_dataset_order", "ds");
    ck_assert_fails_naming(snn_dataset_order(ds, 1, 0, NULL), SNN_ERR_INVALID_ARG, "snn_dataset_order", "order");
    ck_assert_fails_naming(snn_dataset_order(ds, 1, (uint64_t)1 << 23, order), SNN_ERR_INVALID_ARG,
                           "snn_dataset_order", "epoch");

    const uint32_t outside[2] = {1, 3};
    ck_assert_fails_naming(snn_dataset_gather(NULL, idx, 2, images, labels), SNN_ERR_INVALID_ARG,
                           "snn_dataset_gather", "ds");
    ck_assert_fails_naming(snn_dataset_gather(ds, NULL, 2, images, labels), SNN_ERR_INVALID_ARG,
                           "snn_dataset_gather", "indices");
    ck_assert_fails_naming(snn_dataset_gather(ds, idx, 2, NULL, labels), SNN_ERR_INVALID_ARG,
                           "snn_dataset_gather", "images");
    ck_assert_fails_naming(snn_dataset_gather(ds, idx, 2, images, NULL), SNN_ERR_INVALID_ARG,
                           "snn_dataset_gather", "labels");
    ck_assert_fails_naming(snn_dataset_gather(ds, outside, 2, images, labels), SNN_ERR_INVALID_ARG,
                           "snn_dataset_gather", "indices[1]");
    ck_assert_fails_naming(snn_dataset_gather(ds, idx, SIZE_MAX, images, labels), SNN_ERR_INVALID_ARG,
                           "snn_dataset_gather", "count");
    snn_dataset_free(ds);
}
END_TEST

START_TEST(test_bad_record_spikes) {
    snn_model_config cfg = small_config(SNN_MODEL_SIMPLE);
    snn_model *m = make_model(&cfg, 1);
    float *x = make_input(&cfg, 2, 3);
    uint8_t *s0 = malloc(4 * 4 * 8 * 8), *s1 = malloc(4 * 8 * 4 * 4);
    uint8_t *spikes[2] = {s0, s1}, *half[2] = {s0, NULL};
    float logits[2 * 5];
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    ck_assert_ptr_nonnull(s0);
    ck_assert_ptr_nonnull(s1);
    ck_assert_fails_naming(snn_model_record_spikes(NULL, x, 2, 0, &fp, spikes, logits), SNN_ERR_INVALID_ARG,
                           "snn_model_record_spikes", "model");
    ck_assert_fails_naming(snn_model_record_spikes(m, NULL, 2, 0, &fp, spikes, logits), SNN_ERR_INVALID_ARG,
                           "snn_model_record_spikes", "input");
    ck_assert_fails_naming(snn_model_record_spikes(m, x, 2, 0, &fp, NULL, logits), SNN_ERR_INVALID_ARG,
                           "snn_model_record_spikes", "spikes");
    ck_assert_fails_naming(snn_model_record_spikes(m, x, 2, 0, &fp, half, logits), SNN_ERR_INVALID_ARG,
                           "snn_model_record_spikes", "spikes[1]");
    ck_assert_fails_naming(snn_model_record_spikes(m, x, 0, 0, &fp, spikes, logits), SNN_ERR_INVALID_ARG,
                           "snn_model_record_spikes", "batch");
    ck_assert_fails_naming(snn_model_record_spikes(m, x, 2, -1, &fp, spikes, logits), SNN_ERR_INVALID_ARG,
                           "snn_model_record_spikes", "sample");
    ck_assert_fails_naming(snn_model_record_spikes(m, x, 2, 2, &fp, spikes, logits), SNN_ERR_INVALID_ARG,
                           "snn_model_record_spikes", "sample");
    ck_assert_fails(snn_model_record_spikes(m, x, 2147483647, 0, &fp, spikes, logits), SNN_ERR_OUT_OF_MEMORY);
    /* The estimate's options are ignored (documented), even invalid ones; NULL logits too. */
    fp.lyapunov = 1;
    fp.lyap_eps = -1.0f;
    ck_assert_snn_ok(snn_model_record_spikes(m, x, 2, 1, &fp, spikes, NULL));
    ck_assert_snn_ok(snn_model_record_spikes(m, x, 2, 1, NULL, spikes, logits));
    free(s0);
    free(s1);
    free(x);
    snn_model_free(m);
}
END_TEST

START_TEST(test_bad_forward_names) {
    snn_model_config cfg = small_config(SNN_MODEL_SIMPLE);
    snn_model *m = make_model(&cfg, 1);
    float *x = make_input(&cfg, 2, 3);
    float logits[2 * 5];
    snn_forward_params fp;
    int ndim;
    int64_t shape[4];
    snn_forward_params_default(&fp);
    ck_assert_fails_naming(snn_model_forward(NULL, x, 2, &fp, logits, NULL, NULL), SNN_ERR_INVALID_ARG,
                           "snn_model_forward", "model");
    ck_assert_fails_naming(snn_model_forward(m, NULL, 2, &fp, logits, NULL, NULL), SNN_ERR_INVALID_ARG,
                           "snn_model_forward", "input");
    ck_assert_fails_naming(snn_model_forward(m, x, 2, &fp, NULL, NULL, NULL), SNN_ERR_INVALID_ARG,
                           "snn_model_forward", "logits");
    ck_assert_fails_naming(snn_model_forward(m, x, -1, &fp, logits, NULL, NULL), SNN_ERR_INVALID_ARG,
                           "snn_model_forward", "batch");
    fp.lyapunov = 1;
    fp.lyap_eps = NAN;
    ck_assert_fails_naming(snn_model_forward(m, x, 2, &fp, logits, NULL, NULL), SNN_ERR_INVALID_ARG,
                           "snn_model_forward", "lyap_eps");
    ck_assert_fails_naming(snn_model_lif_shape(m, 2, 1, &ndim, shape), SNN_ERR_INVALID_ARG, "snn_model_lif_shape",
                           "layer");
    ck_assert_fails_naming(snn_model_lif_shape(m, 0, 0, &ndim, shape), SNN_ERR_INVALID_ARG, "snn_model_lif_shape",
                           "batch");
    ck_assert_fails_naming(snn_model_lif_shape(m, 0, 1, NULL, shape), SNN_ERR_INVALID_ARG, "snn_model_lif_shape",
                           "ndim");
    ck_assert_fails_naming(snn_model_save(NULL, tmp_path("x.safetensors")), SNN_ERR_INVALID_ARG, "snn_model_save",
                           "model");
    ck_assert_fails_naming(snn_model_save(m, NULL), SNN_ERR_INVALID_ARG, "snn_model_save", "path");
    ck_assert_fails_naming(snn_model_load(NULL, test_context(), "x"), SNN_ERR_INVALID_ARG, "snn_model_load", "out");
    cfg.T = 0;
    {
        snn_model *bad = NULL;
        ck_assert_fails_naming(snn_model_create(&bad, test_context(), &cfg, 1), SNN_ERR_INVALID_ARG,
                               "snn_model_create", "T");
        ck_assert_ptr_null(bad);
    }
    free(x);
    snn_model_free(m);
}
END_TEST

/* A small simple model, a trainer with the regularizer, and a batch of 2 for it. */
typedef struct train_fixture {
    snn_model_config cfg;
    snn_model *model;
    snn_trainer *tr;
    float *input;
    int64_t labels[2];
    snn_batch batch;
} train_fixture;

static void train_fixture_init(train_fixture *f, snn_optimizer opt) {
    snn_train_config tc;
    f->cfg = small_config(SNN_MODEL_SIMPLE);
    f->model = make_model(&f->cfg, 7);
    snn_train_config_default(&tc);
    tc.schedule = SNN_SCHEDULE_CONSTANT;
    tc.optimizer = opt;
    ck_assert_snn_ok(snn_trainer_create(&f->tr, f->model, &tc));
    f->input = make_input(&f->cfg, 2, 9);
    f->labels[0] = 1;
    f->labels[1] = 4;
    memset(&f->batch, 0, sizeof f->batch);
    f->batch.input = f->input;
    f->batch.labels = f->labels;
    f->batch.size = 2;
    f->batch.seed = 3;
}

static void train_fixture_free(train_fixture *f) {
    snn_trainer_free(f->tr);
    snn_model_free(f->model);
    free(f->input);
}

/* One invalid trainer config per entry: what to break and a word the message names. */
typedef struct bad_train_config {
    void (*apply)(snn_train_config *c);
    const char *mentions;
} bad_train_config;

static void tc_lr0(snn_train_config *c) { c->lr = 0.0f; }
static void tc_lr_nan(snn_train_config *c) { c->lr = NAN; }
static void tc_beta1(snn_train_config *c) { c->beta1 = 1.0f; }
static void tc_beta2(snn_train_config *c) { c->beta2 = -0.5f; }
static void tc_adam_eps(snn_train_config *c) { c->adam_eps = 0.0f; }
static void tc_momentum(snn_train_config *c) {
    c->optimizer = SNN_OPTIM_SGD;
    c->momentum = 1.0f;
}
static void tc_decay(snn_train_config *c) { c->weight_decay = -1e-4f; }
static void tc_cosine(snn_train_config *c) {
    c->schedule = SNN_SCHEDULE_COSINE;
    c->total_steps = 0;
}
static void tc_step_size(snn_train_config *c) {
    c->schedule = SNN_SCHEDULE_STEP;
    c->step_size = -3;
}
static void tc_gamma(snn_train_config *c) { c->gamma = INFINITY; }
static void tc_clip(snn_train_config *c) { c->grad_clip = -1.0f; }
static void tc_lyap_weight(snn_train_config *c) { c->lyap_weight = NAN; }
static void tc_lyap_target(snn_train_config *c) { c->lyap_target = INFINITY; }
static void tc_lyap_eps(snn_train_config *c) { c->lyap_eps = 0.0f; }
static void tc_lyap_warmup(snn_train_config *c) { c->lyap_warmup = -2; }
static void tc_sync_batchnorm(snn_train_config *c) { c->sync_batchnorm = 2; }
static void tc_optimizer(snn_train_config *c) { c->optimizer = (snn_optimizer)5; }
static void tc_schedule(snn_train_config *c) { c->schedule = (snn_schedule)-1; }

static const bad_train_config bad_train_configs[] = {
    {tc_lr0, "lr"},           {tc_lr_nan, "lr"},         {tc_beta1, "beta1"},         {tc_beta2, "beta2"},
    {tc_adam_eps, "adam_eps"}, {tc_momentum, "momentum"}, {tc_decay, "weight_decay"},  {tc_cosine, "total_steps"},
    {tc_step_size, "step_size"}, {tc_gamma, "gamma"},     {tc_clip, "grad_clip"},      {tc_lyap_weight, "lyap_weight"},
    {tc_lyap_target, "lyap_target"}, {tc_lyap_eps, "lyap_eps"}, {tc_optimizer, "optimizer"},
    {tc_schedule, "schedule"}, {tc_lyap_warmup, "lyap_warmup"}, {tc_sync_batchnorm, "sync_batchnorm"},
};

START_TEST(test_bad_trainer_create) {
    snn_model_config cfg = small_config(SNN_MODEL_SIMPLE);
    snn_model *m = make_model(&cfg, 1);
    snn_trainer *tr = (snn_trainer *)&tr;
    snn_train_config tc;
    ck_assert_fails_naming(snn_trainer_create(NULL, m, NULL), SNN_ERR_INVALID_ARG, "snn_trainer_create", "out");
    ck_assert_fails_naming(snn_trainer_create(&tr, NULL, NULL), SNN_ERR_INVALID_ARG, "snn_trainer_create", "model");
    ck_assert_ptr_null(tr);
    for (size_t i = 0; i < SNN_ARRAY_LEN_T(bad_train_configs); i++) {
        snn_train_config_default(&tc);
        tc.schedule = SNN_SCHEDULE_CONSTANT;
        bad_train_configs[i].apply(&tc);
        tr = (snn_trainer *)&tr;
        ck_assert_fails_naming(snn_trainer_create(&tr, m, &tc), SNN_ERR_INVALID_ARG, "snn_trainer_create",
                               bad_train_configs[i].mentions);
        ck_assert_ptr_null(tr);
    }
    /* The cosine default needs total_steps: a NULL cfg means a constant schedule instead. */
    snn_train_config_default(&tc);
    ck_assert_fails_naming(snn_trainer_create(&tr, m, &tc), SNN_ERR_INVALID_ARG, "snn_trainer_create",
                           "total_steps");
    ck_assert_snn_ok(snn_trainer_create(&tr, m, NULL));
    snn_trainer_free(tr);
    snn_trainer_free(NULL);
    snn_model_free(m);
}
END_TEST

static void check_bad_batches(snn_status (*run)(snn_trainer *, const snn_batch *, snn_step_stats *),
                              const char *fn) {
    train_fixture f;
    snn_step_stats stats;
    train_fixture_init(&f, SNN_OPTIM_ADAM);
    snn_batch b = f.batch;
    ck_assert_fails_naming(run(NULL, &b, &stats), SNN_ERR_INVALID_ARG, fn, "tr");
    ck_assert_fails_naming(run(f.tr, NULL, &stats), SNN_ERR_INVALID_ARG, fn, "batch is NULL");
    b.input = NULL;
    ck_assert_fails_naming(run(f.tr, &b, &stats), SNN_ERR_INVALID_ARG, fn, "batch->input");
    b = f.batch;
    b.labels = NULL;
    ck_assert_fails_naming(run(f.tr, &b, &stats), SNN_ERR_INVALID_ARG, fn, "batch->labels");
    const int bad_sizes[] = {0, -4};
    for (size_t i = 0; i < SNN_ARRAY_LEN_T(bad_sizes); i++) {
        b = f.batch;
        b.size = bad_sizes[i];
        ck_assert_fails_naming(run(f.tr, &b, &stats), SNN_ERR_INVALID_ARG, fn, "batch->size");
    }
    const int64_t bad_labels[][2] = {{0, -1}, {5, 0}, {INT64_MIN, 0}, {0, INT64_MAX}};
    for (size_t i = 0; i < SNN_ARRAY_LEN_T(bad_labels); i++) {
        b = f.batch;
        b.labels = bad_labels[i];
        ck_assert_fails_naming(run(f.tr, &b, &stats), SNN_ERR_INVALID_ARG, fn,
                               bad_labels[i][0] != 0 ? "batch->labels[0]" : "batch->labels[1]");
    }
    {
        const float *layers[2] = {f.input, NULL};
        b = f.batch;
        b.perturb = layers;
        ck_assert_fails_naming(run(f.tr, &b, &stats), SNN_ERR_INVALID_ARG, fn, "batch->perturb[1]");
    }
    const int64_t bad_first[] = {-1, INT64_MIN, INT64_MAX, 4294967296LL};
    for (size_t i = 0; i < SNN_ARRAY_LEN_T(bad_first); i++) {
        b = f.batch;
        b.first = bad_first[i];
        ck_assert_fails_naming(run(f.tr, &b, &stats), SNN_ERR_INVALID_ARG, fn, "batch->first");
    }
    /* A size beyond any device fails before the (two) labels are read past their end. */
    b = f.batch;
    b.size = 2147483647;
    ck_assert_fails_naming(run(f.tr, &b, &stats), SNN_ERR_OUT_OF_MEMORY, fn, "batch->size");
    ck_assert_int_eq(snn_trainer_steps_done(f.tr), 0);
    /* Nothing was changed: the same batch still works, and stats may be NULL. */
    ck_assert_snn_ok(run(f.tr, &f.batch, NULL));
    /* A batch of one: accepted while BatchNorm sees more than one value per channel
     * (here 8x8 and 4x4 images), as in PyTorch. (Every valid simple or vgg
     * configuration pools each convolution's output, so none has a 1x1 convolution:
     * the refusal is for layer kinds to come.) */
    b = f.batch;
    b.size = 1;
    ck_assert_snn_ok(run(f.tr, &b, &stats));
    train_fixture_free(&f);
}

START_TEST(test_bad_trainer_step) {
    ck_assert_fails_naming(snn_trainer_step(NULL, NULL, NULL), SNN_ERR_INVALID_ARG, "snn_trainer_step", "tr");
    check_bad_batches(snn_trainer_step, "snn_trainer_step");
}
END_TEST

START_TEST(test_bad_trainer_gradients) {
    ck_assert_fails_naming(snn_trainer_gradients(NULL, NULL, NULL), SNN_ERR_INVALID_ARG, "snn_trainer_gradients",
                           "tr");
    check_bad_batches(snn_trainer_gradients, "snn_trainer_gradients");
}
END_TEST

START_TEST(test_bad_trainer_queries) {
    train_fixture f;
    const char *name;
    int ndim;
    int64_t shape[4];
    size_t count;
    float grad[4 * 2 * 3 * 3];
    train_fixture_init(&f, SNN_OPTIM_SGD);
    ck_assert_int_eq(snn_trainer_num_grads(NULL), 0);
    ck_assert_int_eq(snn_trainer_steps_done(NULL), 0);
    ck_assert_float_eq(snn_trainer_next_lr(NULL), 0.0f);
    const int n = snn_trainer_num_grads(f.tr);
    ck_assert_int_gt(n, 0);
    ck_assert_fails_naming(snn_trainer_grad_info(NULL, 0, &name, &ndim, shape, &count), SNN_ERR_INVALID_ARG,
                           "snn_trainer_grad_info", "tr");
    ck_assert_fails_naming(snn_trainer_grad_info(f.tr, -1, &name, &ndim, shape, &count), SNN_ERR_INVALID_ARG,
                           "snn_trainer_grad_info", "-1");
    ck_assert_fails_naming(snn_trainer_grad_info(f.tr, n, &name, &ndim, shape, &count), SNN_ERR_INVALID_ARG,
                           "snn_trainer_grad_info", "i =");
    ck_assert_snn_ok(snn_trainer_grad_info(f.tr, 0, NULL, NULL, NULL, NULL));
    ck_assert_snn_ok(snn_trainer_grad_info(f.tr, 0, &name, &ndim, shape, &count));
    ck_assert_uint_eq(count, SNN_ARRAY_LEN_T(grad));
    ck_assert_fails_naming(snn_trainer_read_grad(NULL, 0, grad), SNN_ERR_INVALID_ARG, "snn_trainer_read_grad", "tr");
    ck_assert_fails_naming(snn_trainer_read_grad(f.tr, n, grad), SNN_ERR_INVALID_ARG, "snn_trainer_read_grad", "i");
    ck_assert_fails_naming(snn_trainer_read_grad(f.tr, 0, NULL), SNN_ERR_INVALID_ARG, "snn_trainer_read_grad", "out");
    ck_assert_snn_ok(snn_trainer_read_grad(f.tr, 0, grad));
    ck_assert_fails_naming(snn_trainer_write_grad(NULL, 0, grad), SNN_ERR_INVALID_ARG, "snn_trainer_write_grad", "tr");
    ck_assert_fails_naming(snn_trainer_write_grad(f.tr, n, grad), SNN_ERR_INVALID_ARG, "snn_trainer_write_grad", "i");
    ck_assert_fails_naming(snn_trainer_write_grad(f.tr, 0, NULL), SNN_ERR_INVALID_ARG, "snn_trainer_write_grad", "in");
    /* the configuration back; the sum of synchronized BatchNorm */
    snn_train_config cfg;
    ck_assert_fails_naming(snn_trainer_get_config(NULL, &cfg), SNN_ERR_INVALID_ARG, "snn_trainer_get_config", "tr");
    ck_assert_fails_naming(snn_trainer_get_config(f.tr, NULL), SNN_ERR_INVALID_ARG, "snn_trainer_get_config", "cfg");
    ck_assert_snn_ok(snn_trainer_get_config(f.tr, &cfg));
    ck_assert_int_eq(cfg.sync_batchnorm, 0);
    ck_assert_fails_naming(snn_trainer_set_sum(NULL, NULL, NULL), SNN_ERR_INVALID_ARG, "snn_trainer_set_sum", "tr");
    ck_assert_snn_ok(snn_trainer_set_sum(f.tr, NULL, NULL));
    /* what is written is what is read */
    float doubled[SNN_ARRAY_LEN_T(grad)], back[SNN_ARRAY_LEN_T(grad)];
    for (size_t k = 0; k < SNN_ARRAY_LEN_T(grad); k++) doubled[k] = 2.0f * grad[k] + 1.0f;
    ck_assert_snn_ok(snn_trainer_write_grad(f.tr, 0, doubled));
    ck_assert_snn_ok(snn_trainer_read_grad(f.tr, 0, back));
    ck_assert_mem_eq(back, doubled, sizeof back);
    train_fixture_free(&f);
}
END_TEST

START_TEST(test_bad_trainer_state) {
    train_fixture f, g;
    snn_safetensors *st = NULL, *empty = NULL, *before = NULL, *after = NULL, *partial = NULL;
    train_fixture_init(&f, SNN_OPTIM_ADAM);
    train_fixture_init(&g, SNN_OPTIM_SGD);
    ck_assert_snn_ok(snn_trainer_step(f.tr, &f.batch, NULL));
    ck_assert_snn_ok(snn_safetensors_create(&st));
    ck_assert_snn_ok(snn_safetensors_create(&empty));
    ck_assert_fails_naming(snn_trainer_save_state(NULL, st), SNN_ERR_INVALID_ARG, "snn_trainer_save_state", "tr");
    ck_assert_fails_naming(snn_trainer_save_state(f.tr, NULL), SNN_ERR_INVALID_ARG, "snn_trainer_save_state", "st");
    ck_assert_snn_ok(snn_trainer_save_state(f.tr, st));
    ck_assert_fails_naming(snn_trainer_load_state(NULL, st), SNN_ERR_INVALID_ARG, "snn_trainer_load_state", "tr");
    ck_assert_fails_naming(snn_trainer_load_state(f.tr, NULL), SNN_ERR_INVALID_ARG, "snn_trainer_load_state", "st");
    ck_assert_fails_naming(snn_trainer_load_state(f.tr, empty), SNN_ERR_FORMAT, "snn_trainer_load_state",
                           "optim.steps");
    ck_assert_fails_naming(snn_trainer_load_state(g.tr, st), SNN_ERR_FORMAT, "snn_trainer_load_state", "adam");

    /* A state missing its last tensor is refused and changes nothing: not the step count,
     * not the tensors loaded before the missing one was found. */
    {
        const snn_tensor *last = snn_safetensors_at(st, snn_safetensors_count(st) - 1);
        partial = copy_without(st, last->name);
        ck_assert_snn_ok(snn_safetensors_meta_set(partial, "optim.steps", "41"));
        for (size_t i = 0; i < snn_safetensors_count(partial); i++) {
            const snn_tensor *t = snn_safetensors_at(partial, i);
            float *zeros = calloc(t->nbytes / sizeof(float) + 1, sizeof(float));
            ck_assert_ptr_nonnull(zeros);
            ck_assert_snn_ok(snn_safetensors_add(partial, t->name, SNN_F32, t->ndim, t->shape, zeros));
            free(zeros);
        }
        ck_assert_snn_ok(snn_safetensors_create(&before));
        ck_assert_snn_ok(snn_trainer_save_state(f.tr, before));
        ck_assert_fails(snn_trainer_load_state(f.tr, partial), SNN_ERR_NOT_FOUND);
        ck_assert_error_mentions(last->name);
        ck_assert_int_eq(snn_trainer_steps_done(f.tr), 1);
        ck_assert_snn_ok(snn_safetensors_create(&after));
        ck_assert_snn_ok(snn_trainer_save_state(f.tr, after));
        assert_same_safetensors(before, after);
    }
    ck_assert_snn_ok(snn_trainer_load_state(f.tr, st));
    snn_safetensors_free(st);
    snn_safetensors_free(empty);
    snn_safetensors_free(before);
    snn_safetensors_free(after);
    snn_safetensors_free(partial);
    train_fixture_free(&f);
    train_fixture_free(&g);
}
END_TEST

/* The API offers no way to mix contexts: a trainer takes its model's context, and models
 * take theirs at creation. What it does allow is two trainers on one model, each with its
 * own optimizer state; both work. */
START_TEST(test_two_trainers_one_model) {
    train_fixture f;
    snn_trainer *second = NULL;
    train_fixture_init(&f, SNN_OPTIM_ADAM);
    ck_assert_snn_ok(snn_trainer_create(&second, f.model, NULL));
    ck_assert_snn_ok(snn_trainer_step(f.tr, &f.batch, NULL));
    ck_assert_snn_ok(snn_trainer_step(second, &f.batch, NULL));
    snn_trainer_free(second);
    ck_assert_snn_ok(snn_trainer_step(f.tr, &f.batch, NULL));
    train_fixture_free(&f);
}
END_TEST

/* The structs that can grow have reserved bytes and an init that zeroes all of them;
 * NULL is fine. */
START_TEST(test_struct_inits) {
    snn_batch b;
    snn_step_stats st;
    snn_device_info di;
    memset(&b, 0xff, sizeof b);
    memset(&st, 0xff, sizeof st);
    memset(&di, 0xff, sizeof di);
    snn_batch_init(&b);
    snn_step_stats_init(&st);
    snn_device_info_init(&di);
    static const unsigned char zero[sizeof di];
    ck_assert_int_eq(memcmp(&b, zero, sizeof b), 0);
    ck_assert_int_eq(memcmp(&st, zero, sizeof st), 0);
    ck_assert_int_eq(memcmp(&di, zero, sizeof di), 0);
    ck_assert_uint_ge(sizeof b.reserved, 24);
    ck_assert_uint_ge(sizeof st.reserved, 32);
    ck_assert_uint_ge(sizeof di.reserved, 64);
    snn_batch_init(NULL);
    snn_step_stats_init(NULL);
    snn_device_info_init(NULL);
}
END_TEST

/* Every public function of the public headers is called in one of the test sources
 * (this file, and test_opencl.c for snncl_opencl.h), so a new function cannot arrive
 * without a bad-argument test. Both lists (':'-separated paths) come from the build
 * (tests/meson.build). */

/* The ':'-separated files of list, read and concatenated (NUL-terminated, malloc'd). */
static char *read_all(const char *list) {
    char *all = calloc(1, 1), paths[4096];
    size_t total = 0;
    ck_assert_ptr_nonnull(all);
    ck_assert_uint_lt(strlen(list), sizeof paths);
    strcpy(paths, list);
    for (char *save = NULL, *p = strtok_r(paths, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
        size_t n;
        char *text = (char *)read_bytes(p, &n);
        all = realloc(all, total + n + 2);
        ck_assert_ptr_nonnull(all);
        memcpy(all + total, text, n);
        total += n;
        all[total++] = '\n';
        all[total] = '\0';
        free(text);
    }
    return all;
}

START_TEST(test_every_public_function_covered) {
    const char *header_paths = getenv("SNNCL_PUBLIC_HEADER"), *source_paths = getenv("SNNCL_API_ERRORS_SOURCE");
    ck_assert_msg(header_paths && source_paths, "SNNCL_PUBLIC_HEADER and SNNCL_API_ERRORS_SOURCE must be set");
    char *header = read_all(header_paths), *self = read_all(source_paths);
    char missing[4096] = "";
    int functions = 0;
    for (const char *p = header; (p = strstr(p, "SNN_API ")) != NULL; p += 8) {
        const char *paren = strchr(p, '(');
        if (!paren || memchr(p, ';', (size_t)(paren - p)) || memchr(p, '\n', (size_t)(paren - p))) continue;
        const char *start = paren;
        while (start > p && (start[-1] == '_' || (start[-1] >= 'a' && start[-1] <= 'z') ||
                             (start[-1] >= '0' && start[-1] <= '9')))
            start--;
        char name[128], call[130];
        size_t len = (size_t)(paren - start);
        if (len == 0 || len >= sizeof name || strncmp(start, "snn_", 4) != 0) continue;
        memcpy(name, start, len);
        name[len] = '\0';
        functions++;
        snprintf(call, sizeof call, "%s(", name);
        /* Called (name followed by a parenthesis), not only named, outside this test. */
        int called = 0;
        for (const char *q = self; (q = strstr(q, call)) != NULL; q++)
            if (q == self || !(q[-1] == '_' || (q[-1] >= 'a' && q[-1] <= 'z'))) called = 1;
        if (!called && strlen(missing) + len + 3 < sizeof missing) {
            strcat(missing, " ");
            strcat(missing, name);
        }
    }
    ck_assert_msg(functions >= 73, "found only %d public functions in %s", functions, header_paths);
    ck_assert_msg(missing[0] == '\0', "public functions without a bad-argument test in %s:%s", source_paths,
                  missing);
    free(header);
    free(self);
}
END_TEST

/* Network descriptions: every call's NULL and out-of-range arguments (their semantics
 * are test_network.c's). */
START_TEST(test_bad_network_calls) {
    snn_network *net = (snn_network *)&net; /* overwritten with NULL on failure */
    snn_layer_desc d;
    ck_assert_str_eq(snn_layer_type_name((snn_layer_type)99), "unknown");
    ck_assert_str_eq(snn_layer_type_name(SNN_LAYER_MAXPOOL2D), "maxpool2d");
    ck_assert_fails(snn_layer_desc_default(NULL, SNN_LAYER_CONV2D), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_layer_desc_default(&d, (snn_layer_type)8), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_create(NULL, 1, 8, 8, 10, 4), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_create(&net, 0, 8, 8, 10, 4), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(net);
    ck_assert_fails(snn_network_create(&net, 1, 8, 0, 10, 4), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_create(&net, 1, 8, 8, 0, 4), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_create(&net, 1, 8, 8, 10, 0), SNN_ERR_INVALID_ARG);
    ck_assert_snn_ok(snn_network_create(&net, 1, 8, 8, 10, 4));
    ck_assert_fails(snn_network_set_encoding(NULL, SNN_ENCODING_DIRECT, 1.0f), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_set_encoding(net, (snn_encoding)7, 1.0f), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_set_encoding(net, SNN_ENCODING_RATE, NAN), SNN_ERR_INVALID_ARG);
    ck_assert_snn_ok(snn_layer_desc_default(&d, SNN_LAYER_CONV2D));
    ck_assert_fails(snn_network_add(NULL, SNN_NET_LAYERS, &d), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_add(net, SNN_NET_LAYERS, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_add(net, (snn_network_part)2, &d), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_add(net, SNN_NET_LAYERS, &d), SNN_ERR_INVALID_ARG); /* out_channels unset */
    ck_assert_error_mentions("layers[0].out_channels");
    ck_assert_fails(snn_network_conv2d(NULL, SNN_NET_LAYERS, 4, 3, 1, 1, 0), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_conv2d(net, SNN_NET_LAYERS, 1000000000, 3, 1, 1, 0), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_conv2d(net, SNN_NET_LAYERS, 4, 0, 1, 1, 0), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_conv2d(net, SNN_NET_LAYERS, 4, 3, 0, 1, 0), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_conv2d(net, SNN_NET_LAYERS, 4, 3, 1, -1, 0), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_batchnorm2d(NULL, SNN_NET_LAYERS), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_leaky(NULL, SNN_NET_LAYERS, 0.9f, 1.0f, SNN_SURROGATE_ATAN), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_leaky(net, SNN_NET_LAYERS, NAN, 1.0f, SNN_SURROGATE_ATAN), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_leaky(net, SNN_NET_LAYERS, 0.9f, 1.0f, (snn_surrogate)5), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_pool2d(NULL, SNN_NET_LAYERS, 1, 2), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_pool2d(net, SNN_NET_LAYERS, 1, -2), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_flatten(NULL, SNN_NET_LAYERS), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_flatten(net, (snn_network_part)-1), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_linear(NULL, SNN_NET_READOUT, 10), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_linear(net, SNN_NET_READOUT, 0), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_dropout(NULL, SNN_NET_READOUT, 0.2f), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_dropout(net, SNN_NET_READOUT, 1.0f), SNN_ERR_INVALID_ARG);
    ck_assert_int_eq(snn_network_num_layers(net, SNN_NET_LAYERS), 0);
    ck_assert_int_eq(snn_network_num_layers(NULL, SNN_NET_LAYERS), 0);
    ck_assert_fails(snn_network_check(NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_check(net), SNN_ERR_INVALID_ARG); /* no layers */
    ck_assert_fails(snn_network_layer(NULL, SNN_NET_LAYERS, 0, &d, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_layer(net, SNN_NET_LAYERS, 0, &d, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_input(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), SNN_ERR_INVALID_ARG);
    size_t need = 0;
    ck_assert_fails(snn_network_to_json(NULL, NULL, 0, &need), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_to_json(net, NULL, 0, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_to_json(net, NULL, 10, &need), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_to_json(net, NULL, 0, &need), SNN_ERR_INVALID_ARG); /* too small: needed set */
    ck_assert_uint_gt(need, 10);
    snn_network *other = (snn_network *)&other;
    ck_assert_fails(snn_network_parse(NULL, "{}"), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_parse(&other, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(other);
    ck_assert_fails(snn_network_parse(&other, "{\"input\": [1, 8, 8], \"num_classes\": 10, \"layers\": ["), SNN_ERR_INVALID_ARG);
    ck_assert_error_mentions("not valid JSON");
    ck_assert_fails(snn_network_load(NULL, "x.json"), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_load(&other, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_load(&other, tmp_path("no-such-network.json")), SNN_ERR_IO);
    ck_assert_error_mentions("no-such-network.json");
    snn_model_config cfg = small_config(SNN_MODEL_SIMPLE);
    ck_assert_fails(snn_network_preset(NULL, &cfg), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_network_preset(&other, NULL), SNN_ERR_INVALID_ARG);
    cfg.kind = SNN_MODEL_NETWORK;
    ck_assert_fails(snn_network_preset(&other, &cfg), SNN_ERR_INVALID_ARG);
    snn_model *model = NULL;
    ck_assert_fails(snn_model_create_network(NULL, test_context(), net, 1), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_create_network(&model, NULL, net, 1), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_create_network(&model, test_context(), NULL, 1), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_create_network(&model, test_context(), net, 1), SNN_ERR_INVALID_ARG); /* empty */
    ck_assert_ptr_null(model);
    ck_assert_fails(snn_model_create(&model, test_context(), &cfg, 1), SNN_ERR_INVALID_ARG); /* kind network */
    ck_assert_fails(snn_model_network(NULL, &other), SNN_ERR_INVALID_ARG);
    ck_assert_fails(snn_model_init(NULL, SNN_INIT_SEED, 1), SNN_ERR_INVALID_ARG);
    {
        snn_model_config simple = small_config(SNN_MODEL_SIMPLE);
        snn_model *sm;
        ck_assert_snn_ok(snn_model_create(&sm, test_context(), &simple, 1));
        ck_assert_fails(snn_model_init(sm, (snn_init_scheme)7, 1), SNN_ERR_INVALID_ARG);
        snn_model_free(sm);
    }
    ck_assert_fails(snn_model_network((snn_model *)&cfg, NULL), SNN_ERR_INVALID_ARG);
    snn_network_free(net);
    snn_network_free(NULL);
}
END_TEST

/* -------------------------------------------------------------------- suite -- */


/* A program that does not build reports SNN_ERR_BUILD with the compiler's log, and
 * leaves nothing behind (the context is NULL). */
static snn_log_level seen_level = SNN_LOG_DEBUG;
static int seen_count;
static void record_log(snn_log_level level, const char *message, void *user) {
    (void)message;
    (void)user;
    if (level < seen_level) seen_level = level;
    seen_count++;
}

START_TEST(test_context_build_failure_carries_log) {
    snn_context_params cp;
    snn_context_params_default(&cp);
    /* A macro that breaks the program: the build log names the offending token. */
    cp.build_options = "-Dsnn_group_sum=snncl_broken_build_token(";
    snn_set_log_callback(record_log, NULL, SNN_LOG_WARN);
    snn_context *ctx = (snn_context *)&cp;
    ck_assert_snn_status(snn_context_create(&ctx, &cp), SNN_ERR_BUILD);
    snn_set_log_callback(NULL, NULL, SNN_LOG_WARN);
    ck_assert_ptr_null(ctx);
    ck_assert_msg(strstr(snn_last_error(), "snncl_broken_build_token") != NULL, "no build log in: %s",
                  snn_last_error());
    ck_assert_msg(seen_count > 0 && seen_level == SNN_LOG_ERROR, "the failure was not logged as an error");
}
END_TEST

static Suite *api_errors_suite(void) {
    Suite *s = suite_create("api_errors");
    TCase *tc = tcase_create("null");
    tcase_add_test(tc, test_null_status_and_devices);
    tcase_add_test(tc, test_null_context);
    tcase_add_test(tc, test_null_file);
    tcase_add_test(tc, test_null_run);
    tcase_add_test(tc, test_null_tune);
    tcase_add_test(tc, test_null_safetensors);
    tcase_add_test(tc, test_null_config);
    tcase_add_test(tc, test_report_error);
    tcase_add_test(tc, test_struct_sizes);
    tcase_add_test(tc, test_null_model_create_and_load);
    tcase_add_test(tc, test_null_model_queries);
    tcase_add_test(tc, test_null_forward);
    tcase_add_test(tc, test_free_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("arguments");
    tcase_add_test(tc, test_context_bad_device);
    tcase_add_test(tc, test_context_build_failure_carries_log);
    tcase_add_test(tc, test_config_unknown_name);
    tcase_add_loop_test(tc, test_model_create_bad_config, 0,
                        (int)(sizeof bad_configs / sizeof bad_configs[0]));
    tcase_add_test(tc, test_forward_bad_arguments);
    tcase_add_test(tc, test_lif_shape_out_of_range);
    tcase_add_test(tc, test_model_flops);
    suite_add_tcase(s, tc);

    tc = tcase_create("every_function");
    tcase_add_test(tc, test_bad_context_memory);
    tcase_add_test(tc, test_bad_parse_names);
    tcase_add_test(tc, test_bad_dataset_loaders);
    tcase_add_test(tc, test_bad_dataset_queries);
    tcase_add_test(tc, test_bad_record_spikes);
    tcase_add_test(tc, test_bad_forward_names);
    tcase_add_test(tc, test_bad_trainer_create);
    tcase_add_test(tc, test_bad_trainer_step);
    tcase_add_test(tc, test_bad_trainer_gradients);
    tcase_add_test(tc, test_bad_trainer_queries);
    tcase_add_test(tc, test_bad_trainer_state);
    tcase_add_test(tc, test_two_trainers_one_model);
    tcase_add_test(tc, test_bad_network_calls);
    tcase_add_test(tc, test_every_public_function_covered);
    tcase_add_test(tc, test_struct_inits);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_add_test(tc, test_load_missing_and_corrupt_files);
    tcase_add_loop_test(tc, test_load_missing_tensor_simple, 0,
                        (int)(sizeof required_simple / sizeof required_simple[0]));
    tcase_add_loop_test(tc, test_load_missing_tensor_vgg, 0,
                        (int)(sizeof required_vgg / sizeof required_vgg[0]));
    tcase_add_test(tc, test_load_optional_tensors_absent);
    tcase_add_test(tc, test_load_count_out_of_range);
    tcase_add_test(tc, test_load_wrong_shape);
    tcase_add_test(tc, test_load_bad_metadata);
    tcase_add_loop_test(tc, test_load_invalid_config_in_file, 0,
                        (int)(sizeof bad_file_configs / sizeof bad_file_configs[0]));
    tcase_add_test(tc, test_save_to_missing_directory);
    suite_add_tcase(s, tc);

    tc = tcase_create("round_trip");
    tcase_add_test(tc, test_round_trip_simple);
    tcase_add_test(tc, test_round_trip_simple_rate);
    tcase_add_test(tc, test_round_trip_vgg);
    tcase_add_test(tc, test_round_trip_fixture);
    tcase_add_test(tc, test_forward_same_seed_same_logits);
    tcase_add_test(tc, test_create_same_seed_same_weights);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(api_errors_suite()); }
