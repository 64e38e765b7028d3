/* Tests of the per-device GEMM tuning (src/core/tune.h): the stored choice is what new
 * contexts use, bad or foreign files are ignored with the default kept, SNNCL_GEMM
 * still overrides, and a short measurement returns sane figures. Every test uses its
 * own cache directory ($SNNCL_CACHE_DIR) so a user's tuning never leaks in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "context.h"
#include "gemm.h"
#include "model.h"
#include "testutil.h"
#include "tune.h"

static void use_cache_dir(const char *name) {
    const char *dir = tmp_path(name);
    mkdir(dir, 0755);
    ck_assert_int_eq(setenv("SNNCL_CACHE_DIR", dir, 1), 0);
    unsetenv("SNNCL_GEMM");
    unsetenv("SNNCL_TUNING");
}

static snn_context *fresh_context(void) {
    snn_context *ctx = NULL;
    ck_assert_snn_ok(snn_context_create(&ctx, NULL));
    return ctx;
}

/* A tuning for the device that picks the implementation the device would not pick by
 * itself, so the test sees the file take effect. */
static snn_tuning opposite_tuning(const snn_context *ctx) {
    snn_tuning t;
    memset(&t, 0, sizeof t);
    t.impl = snn_gemm_default_impl(ctx) == SNN_GEMM_NATIVE ? SNN_GEMM_CLBLAST : SNN_GEMM_NATIVE;
    t.native_s = 1.0;
    t.clblast_default_s = t.clblast_tuned_s = 2.0;
    return t;
}

/* What snn_context_gemm_info says the choice came from. */
static void assert_reason(const snn_context *ctx, const char *want) {
    const char *impl = NULL, *reason = NULL;
    ck_assert_snn_ok(snn_context_gemm_info(ctx, &impl, &reason));
    ck_assert_str_eq(impl, snn_gemm_impl_name(snn_gemm_get_impl(ctx)));
    ck_assert_str_eq(reason, want);
}

START_TEST(test_stored_choice_applies) {
    use_cache_dir("stored");
    snn_context *ctx = fresh_context();
    const snn_gemm_impl def = snn_gemm_default_impl(ctx);
    ck_assert_int_eq(snn_gemm_get_impl(ctx), def); /* no file yet */
    assert_reason(ctx, "device-type default");
    snn_tuning t = opposite_tuning(ctx), back;
    char path[1200];
    ck_assert_snn_ok(snn_tune_save(ctx, &t, path, sizeof path));
    int found = 0;
    ck_assert_snn_ok(snn_tune_load(ctx, &back, &found));
    ck_assert_int_eq(found, 1);
    ck_assert_int_eq(back.impl, t.impl);
    ck_assert_int_eq(back.has_xgemm, 0);
    snn_context_free(ctx);

    ctx = fresh_context();
    ck_assert_int_eq(snn_gemm_get_impl(ctx), t.impl);
    assert_reason(ctx, "snncl tune");
    ck_assert_snn_ok(snn_gemm_set_impl(ctx, SNN_GEMM_NATIVE));
    ck_assert_snn_ok(snn_gemm_set_impl(ctx, SNN_GEMM_AUTO)); /* AUTO means the stored choice */
    ck_assert_int_eq(snn_gemm_get_impl(ctx), t.impl);
    snn_context_free(ctx);

    ck_assert_int_eq(setenv("SNNCL_TUNING", "0", 1), 0); /* ignored on request */
    ctx = fresh_context();
    ck_assert_int_eq(snn_gemm_get_impl(ctx), def);
    snn_context_free(ctx);
    unsetenv("SNNCL_TUNING");

    ck_assert_int_eq(setenv("SNNCL_GEMM", def == SNN_GEMM_NATIVE ? "native" : "clblast", 1), 0);
    ctx = fresh_context(); /* the environment overrides the file */
    ck_assert_int_eq(snn_gemm_get_impl(ctx), def);
    assert_reason(ctx, "SNNCL_GEMM");
    snn_context_free(ctx);
    ck_assert_int_eq(setenv("SNNCL_GEMM", "auto", 1), 0);
    ctx = fresh_context(); /* auto is no choice: the stored one stands */
    ck_assert_int_eq(snn_gemm_get_impl(ctx), t.impl);
    assert_reason(ctx, "snncl tune");
    snn_context_free(ctx);
    unsetenv("SNNCL_GEMM");
}
END_TEST

START_TEST(test_xgemm_round_trip) {
    use_cache_dir("xgemm");
    snn_context *ctx = fresh_context();
    snn_tuning t = opposite_tuning(ctx), back;
    /* A valid Xgemm set: 32x32 tiles, 8x8 threads, 4-wide vectors, no local memory. */
    const size_t p[SNN_XGEMM_PARAMS] = {0, 1, 32, 2, 8, 8, 32, 8, 8, 32, 0, 0, 0, 0, 4, 4};
    memcpy(t.xgemm, p, sizeof p);
    t.has_xgemm = 1;
    char path[1200];
    ck_assert_snn_ok(snn_tune_save(ctx, &t, path, sizeof path));
    int found = 0;
    ck_assert_snn_ok(snn_tune_load(ctx, &back, &found));
    ck_assert_int_eq(found, 1);
    ck_assert_int_eq(back.has_xgemm, 1);
    ck_assert_mem_eq(back.xgemm, p, sizeof p);
    snn_context_free(ctx);
    /* CLBlast's parameters are process-wide: applied only on request, and then the
     * stored choice stands; without them, the faster of native and CLBlast's own. */
    ctx = fresh_context();
    ck_assert_int_eq(snn_gemm_get_impl(ctx), t.native_s <= t.clblast_default_s ? SNN_GEMM_NATIVE : SNN_GEMM_CLBLAST);
    snn_context_free(ctx);
    snn_context_params cp;
    snn_context_params_default(&cp);
    cp.clblast_tuning = 1;
    ck_assert_snn_ok(snn_context_create(&ctx, &cp)); /* CLBlast accepts the parameters */
    ck_assert_int_eq(snn_gemm_get_impl(ctx), t.impl);
    snn_context_free(ctx);
}
END_TEST

/* Files that must be ignored: the context still opens with the default choice. */
static const char *const bad_files[] = {
    "",
    "not json",
    "[1, 2, 3]",
    "{\"gemm\": \"native\"}", /* no device identity */
    NULL,                     /* another device: filled in by the test */
    NULL,                     /* an unknown implementation: filled in by the test */
    NULL,                     /* an out-of-range Xgemm parameter: filled in by the test */
};

START_TEST(test_bad_files_ignored) {
    char name[32];
    snprintf(name, sizeof name, "bad%d", _i);
    use_cache_dir(name);
    snn_context *ctx = fresh_context();
    const snn_gemm_impl def = snn_gemm_default_impl(ctx);
    char path[1200], text[4096];
    ck_assert_snn_ok(snn_tune_path(ctx, path, sizeof path));
    const char *body = bad_files[_i];
    const snn_device_info *d = &ctx->info;
    if (_i == 4)
        snprintf(text, sizeof text,
                 "{\"snncl_version\": \"%s\", \"platform\": \"%s\", \"device\": \"another device\", \"driver\": "
                 "\"%s\", \"gemm\": \"%s\"}",
                 snn_version(), d->platform, d->driver_version, def == SNN_GEMM_NATIVE ? "clblast" : "native");
    else if (_i == 5)
        snprintf(text, sizeof text,
                 "{\"snncl_version\": \"%s\", \"platform\": \"%s\", \"device\": \"%s\", \"driver\": \"%s\", "
                 "\"gemm\": \"cublas\"}",
                 snn_version(), d->platform, d->name, d->driver_version);
    else if (_i == 6)
        snprintf(text, sizeof text,
                 "{\"snncl_version\": \"%s\", \"platform\": \"%s\", \"device\": \"%s\", \"driver\": \"%s\", "
                 "\"gemm\": \"%s\", \"xgemm\": {\"GEMMK\": -1}}",
                 snn_version(), d->platform, d->name, d->driver_version, def == SNN_GEMM_NATIVE ? "clblast" : "native");
    if (!body) body = text;
    write_bytes(path, body, strlen(body));
    snn_tuning t;
    int found = 1;
    ck_assert_int_eq(snn_tune_load(ctx, &t, &found), SNN_ERR_FORMAT);
    ck_assert_int_eq(found, 0);
    snn_context_free(ctx);
    ctx = fresh_context();
    ck_assert_int_eq(snn_gemm_get_impl(ctx), def);
    snn_context_free(ctx);
}
END_TEST

/* snn_context_params instead of the environment: gemm overrides SNNCL_GEMM,
 * ignore_environment reads none of it, tuning_dir says where the tuning is. */
START_TEST(test_context_params) {
    use_cache_dir("params");
    const char *dir = tmp_path("params");
    snn_context *ctx = fresh_context();
    const snn_gemm_impl def = snn_gemm_default_impl(ctx);
    const char *other = def == SNN_GEMM_NATIVE ? "clblast" : "native";
    snn_tuning t = opposite_tuning(ctx);
    char path[1200];
    ck_assert_snn_ok(snn_tune_save(ctx, &t, path, sizeof path));
    snn_context_free(ctx);

    snn_context_params cp;
    snn_context_params_default(&cp);
    cp.gemm = snn_gemm_impl_name(def);
    ck_assert_int_eq(setenv("SNNCL_GEMM", other, 1), 0);
    ck_assert_snn_ok(snn_context_create(&ctx, &cp)); /* the field wins over the file and SNNCL_GEMM */
    ck_assert_int_eq(snn_gemm_get_impl(ctx), def);
    assert_reason(ctx, "params->gemm");
    snn_context_free(ctx);

    snn_context_params_default(&cp);
    cp.ignore_environment = 1; /* neither SNNCL_GEMM nor the file in $SNNCL_CACHE_DIR */
    ck_assert_snn_ok(snn_context_create(&ctx, &cp));
    ck_assert_int_eq(snn_gemm_get_impl(ctx), def);
    assert_reason(ctx, "device-type default");
    snn_tune_result r;
    int found = 1;
    ck_assert_snn_status(snn_tune_stored(ctx, &r, &found), SNN_ERR_IO); /* no directory to look in */
    snn_context_free(ctx);
    cp.tuning_dir = dir; /* the file, named explicitly */
    ck_assert_snn_ok(snn_context_create(&ctx, &cp));
    ck_assert_int_eq(snn_gemm_get_impl(ctx), t.impl);
    assert_reason(ctx, "snncl tune");
    ck_assert_snn_ok(snn_tune_stored(ctx, &r, &found));
    ck_assert_int_eq(found, 1);
    ck_assert_str_eq(r.path, path);
    snn_context_free(ctx);
    unsetenv("SNNCL_GEMM");

    snn_context_params_default(&cp);
    cp.gemm = "cublas";
    ctx = (snn_context *)&cp; /* must be reset to NULL */
    ck_assert_snn_status(snn_context_create(&ctx, &cp), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(ctx);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), "params->gemm"));
    char long_dir[1100];
    memset(long_dir, 'd', sizeof long_dir - 1);
    long_dir[sizeof long_dir - 1] = '\0';
    snn_context_params_default(&cp);
    cp.tuning_dir = long_dir;
    ck_assert_snn_status(snn_context_create(&ctx, &cp), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), "tuning_dir"));
}
END_TEST

/* A short measurement without CLBlast candidates (each costs a CLBlast compile). */
START_TEST(test_measure) {
    use_cache_dir("measure");
    snn_context *ctx = fresh_context();
    const snn_gemm_impl before = snn_gemm_get_impl(ctx);
    snn_gemm_shape shapes[SNN_GEMM_MAX_SHAPES];
    snn_model_config cfg;
    size_t count;
    ck_assert_snn_ok(snn_model_config_default(&cfg, "simple"));
    ck_assert_snn_ok(snn_config_gemm_shapes(&cfg, 32, 256, shapes, SNN_GEMM_MAX_SHAPES, &count));
    snn_tune_options o = {0, 1, shapes, count, NULL, NULL};
    snn_tuning t;
    ck_assert_snn_ok(snn_tune_run(ctx, &o, &t));
    ck_assert(t.native_s > 0 && t.clblast_default_s > 0);
    ck_assert(t.clblast_tuned_s == t.clblast_default_s && !t.has_xgemm);
    ck_assert_int_eq(t.impl, t.native_s <= t.clblast_default_s ? SNN_GEMM_NATIVE : SNN_GEMM_CLBLAST);
    ck_assert_int_eq(snn_gemm_get_impl(ctx), before); /* the context keeps its choice */
    o.runs = 0;
    ck_assert_snn_status(snn_tune_run(ctx, &o, &t), SNN_ERR_INVALID_ARG);
    snn_context_free(ctx);
}
END_TEST

/* The tuner's products come from a workload's layer plan: the default simple model
 * gives its three convolutions' forward, weight and input gradients (none for the
 * first layer's input) and the readout's three; vgg adds its dense layer's. */
/* The public face: snn_tune measures (and with store, stores what a new context then
 * uses), snn_tune_stored reads it back, snn_tune_forget removes it. */
START_TEST(test_public_tune) {
    use_cache_dir("public");
    snn_context *ctx = fresh_context();
    snn_tune_params p;
    snn_tune_params_default(&p);
    p.candidates = 0;
    p.runs = 1;
    p.max_cols = 256;
    p.store = 0;
    snn_tune_result r, back;
    int found = 1;
    ck_assert_snn_ok(snn_tune(ctx, &p, &r));
    ck_assert(r.native_ms > 0 && r.clblast_default_ms > 0 && r.clblast_tuned_ms == r.clblast_default_ms);
    ck_assert_str_eq(r.gemm, r.native_ms <= r.clblast_default_ms ? "native" : "clblast");
    ck_assert_str_eq(r.xgemm, "");
    ck_assert_snn_ok(snn_tune_stored(ctx, &back, &found));
    ck_assert_int_eq(found, 0); /* store = 0 */
    ck_assert_str_eq(back.path, r.path);

    p.store = 1;
    snn_model_config vgg;
    ck_assert_snn_ok(snn_model_config_default(&vgg, "vgg"));
    vgg.height = vgg.width = 16;
    p.workload = &vgg;
    ck_assert_snn_ok(snn_tune(ctx, &p, &r));
    ck_assert_int_eq(access(r.path, F_OK), 0);
    ck_assert_snn_ok(snn_tune_stored(ctx, &back, &found));
    ck_assert_int_eq(found, 1);
    ck_assert_str_eq(back.gemm, r.gemm);
    snn_context_free(ctx);
    ctx = fresh_context(); /* a new context takes the stored choice */
    ck_assert_str_eq(snn_gemm_impl_name(snn_gemm_get_impl(ctx)), r.gemm);
    assert_reason(ctx, "snncl tune");
    char path[1200];
    ck_assert_snn_ok(snn_tune_forget(ctx, path, sizeof path));
    ck_assert_str_eq(path, r.path);
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_snn_ok(snn_tune_forget(ctx, NULL, 0)); /* nothing left to remove is fine */
    snn_context_free(ctx);
}
END_TEST

START_TEST(test_shapes) {
    static const char *const simple[] = {"conv1-forward", "conv2-forward", "conv3-forward", "conv1-wgrad",
                                         "conv2-wgrad",   "conv3-wgrad",   "conv2-igrad",   "conv3-igrad",
                                         "linear-forward", "linear-wgrad", "linear-igrad"};
    for (int kind = 0; kind < 2; kind++) {
        snn_model_config cfg;
        ck_assert_snn_ok(snn_model_config_default(&cfg, kind ? "vgg" : "simple"));
        snn_gemm_shape s[SNN_GEMM_MAX_SHAPES];
        size_t n;
        ck_assert_snn_ok(snn_config_gemm_shapes(&cfg, 32, 4096, s, SNN_GEMM_MAX_SHAPES, &n));
        ck_assert_uint_eq(n, (kind ? 7 + 7 + 6 + 3 : 11)); /* vgg: 6 convolutions and a dense layer */
        for (size_t i = 0; i < n; i++) {
            if (!kind) ck_assert_str_eq(s[i].name, simple[i]);
            ck_assert(s[i].m > 0 && s[i].n > 0 && s[i].k > 0);
            /* the column count of a convolution's product is whole images within the cap */
            if (strncmp(s[i].name, "conv", 4) == 0) ck_assert(s[i].n <= 4096 || s[i].k <= 4096);
        }
        /* the readout's forward product: (B, classes) from (B, features) */
        const snn_gemm_shape *r = &s[n - 3];
        ck_assert_uint_eq(r->m, 32);
        ck_assert_uint_eq(r->n, 10);
        ck_assert_uint_eq(r->k, kind ? 512 : 256 * 4 * 4);
        if (kind) ck_assert_str_eq(s[6].name, "dense7-forward");
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("tune");
    TCase *tc = tcase_create("tune");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_shapes);
    tcase_add_test(tc, test_stored_choice_applies);
    tcase_add_test(tc, test_xgemm_round_trip);
    tcase_add_test(tc, test_context_params);
    tcase_add_loop_test(tc, test_bad_files_ignored, 0, (int)(sizeof bad_files / sizeof bad_files[0]));
    tcase_add_test(tc, test_measure);
    tcase_add_test(tc, test_public_tune);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
