/* Both seed models against the seed itself (PyTorch + snnTorch in float64), from the
 * committed fixtures of tools/gen_fixtures.py, and the forward pass's internal
 * consistency: chunked time, rate and direct encoding against pre-encoded spikes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "rng.h"
#include "testutil.h"

#define LOGIT_REL_TOL 1e-4
#define LYAP_ABS_TOL 1e-4

typedef struct parity_case {
    snn_safetensors *model_file, *input_file, *perturb_file, *expected;
    snn_model *model;
    float *input, **perturb;
    int batch, pre_encoded, lyapunov, num_lifs;
    float eps;
} parity_case;

static float *tensor_f32(const snn_safetensors *st, const char *name, size_t *count) {
    const snn_tensor *t = snn_safetensors_find(st, name);
    ck_assert_msg(t != NULL, "tensor %s missing", name);
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    float *x = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(x);
    ck_assert_snn_ok(snn_safetensors_get_f32(st, name, t->ndim, t->shape, x));
    if (count) *count = n;
    return x;
}

static double *tensor_f64(const snn_safetensors *st, const char *name, size_t *count) {
    const snn_tensor *t = snn_safetensors_find(st, name);
    ck_assert_msg(t != NULL && t->dtype == SNN_F64, "F64 tensor %s missing", name);
    *count = t->nbytes / sizeof(double);
    double *x = malloc(t->nbytes);
    ck_assert_ptr_nonnull(x);
    memcpy(x, t->data, t->nbytes);
    return x;
}

static void case_open(parity_case *c, const char *name) {
    char path[256];
    memset(c, 0, sizeof *c);
    snprintf(path, sizeof path, "%s.model.safetensors", name);
    ck_assert_snn_ok(snn_safetensors_read(&c->model_file, fixture_path(path)));
    ck_assert_snn_ok(snn_model_from_safetensors(&c->model, test_context(), c->model_file));
    snprintf(path, sizeof path, "%s.input.safetensors", name);
    ck_assert_snn_ok(snn_safetensors_read(&c->input_file, fixture_path(path)));
    snprintf(path, sizeof path, "%s.expected.safetensors", name);
    ck_assert_snn_ok(snn_safetensors_read(&c->expected, fixture_path(path)));
    const snn_tensor *in = snn_safetensors_find(c->input_file, "input");
    ck_assert_ptr_nonnull(in);
    c->batch = (int)in->shape[0];
    c->pre_encoded = in->ndim == 5;
    c->input = tensor_f32(c->input_file, "input", NULL);
    const char *lyap = snn_safetensors_meta_get(c->expected, "lyapunov");
    c->lyapunov = lyap && strcmp(lyap, "1") == 0;
    c->num_lifs = snn_model_num_lif_layers(c->model);
    if (c->lyapunov) {
        c->eps = strtof(snn_safetensors_meta_get(c->expected, "lyap_eps"), NULL);
        snprintf(path, sizeof path, "%s.perturb.safetensors", name);
        ck_assert_snn_ok(snn_safetensors_read(&c->perturb_file, fixture_path(path)));
        c->perturb = calloc((size_t)c->num_lifs, sizeof(float *));
        for (int l = 0; l < c->num_lifs; l++) {
            char pname[32];
            snprintf(pname, sizeof pname, "perturb.%d", l);
            c->perturb[l] = tensor_f32(c->perturb_file, pname, NULL);
        }
    }
}

static void case_close(parity_case *c) {
    for (int l = 0; c->perturb && l < c->num_lifs; l++) free(c->perturb[l]);
    free(c->perturb);
    free(c->input);
    snn_model_free(c->model);
    snn_safetensors_free(c->model_file);
    snn_safetensors_free(c->input_file);
    snn_safetensors_free(c->perturb_file);
    snn_safetensors_free(c->expected);
}

/* Runs the case and returns logits (and the estimate) in fresh arrays. */
static float *case_run(parity_case *c, float *lyap_mean, float **lyap_ps) {
    snn_model_config cfg;
    ck_assert_snn_ok(snn_model_get_config(c->model, &cfg));
    float *logits = malloc((size_t)c->batch * (size_t)cfg.num_classes * sizeof(float));
    float *ps = malloc((size_t)c->batch * sizeof(float));
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.pre_encoded = c->pre_encoded;
    fp.lyapunov = c->lyapunov;
    if (c->lyapunov) {
        fp.lyap_eps = c->eps;
        fp.perturb = (const float *const *)c->perturb;
    }
    ck_assert_snn_ok(snn_model_forward(c->model, c->input, c->batch, &fp, logits, lyap_mean, ps));
    if (lyap_ps) *lyap_ps = ps;
    else free(ps);
    return logits;
}

static void check_case(const char *name) {
    parity_case c;
    case_open(&c, name);
    float lyap = 0, *ps = NULL, *logits = case_run(&c, &lyap, &ps);
    size_t n, at = 0;
    double *want = tensor_f64(c.expected, "logits", &n);
    double err = max_rel_err(logits, want, n, 1e-3, &at);
    ck_assert_msg(err <= LOGIT_REL_TOL, "%s: logits[%zu] = %.8g, seed %.8g (relative error %.3g)", name, at,
                  (double)logits[at], want[at], err);
    printf("%-24s logits rel err %.2e", name, err);
    free(want);
    if (c.lyapunov) {
        double *wl = tensor_f64(c.expected, "lyapunov", &n);
        double *wps = tensor_f64(c.expected, "lyapunov_per_sample", &n);
        ck_assert_uint_eq(n, (size_t)c.batch);
        double e = fabs((double)lyap - wl[0]);
        ck_assert_msg(e <= LYAP_ABS_TOL, "%s: lyapunov %.8g, seed %.8g", name, (double)lyap, wl[0]);
        for (size_t b = 0; b < n; b++) {
            double eb = fabs((double)ps[b] - wps[b]);
            ck_assert_msg(eb <= LYAP_ABS_TOL, "%s: lyapunov[%zu] %.8g, seed %.8g", name, b, (double)ps[b], wps[b]);
            if (eb > e) e = eb;
        }
        printf(", lyapunov %.6f abs err %.2e", (double)lyap, e);
        free(wl);
        free(wps);
    }
    printf("\n");
    free(logits);
    free(ps);
    case_close(&c);
}

#define PARITY_TEST(name) \
    START_TEST(test_parity_##name) { check_case(#name); } \
    END_TEST

PARITY_TEST(simple_direct_lyap)
PARITY_TEST(simple_none_rect_lyap)
PARITY_TEST(simple_direct_nolyap)
PARITY_TEST(simple_defaults_lyap)
PARITY_TEST(simple_eps_lyap)
PARITY_TEST(vgg_direct_lyap)
PARITY_TEST(vgg_none_nolyap)

/* Splitting time into chunks changes only buffer sizes, not results. */
static void check_chunking(const char *name) {
    parity_case c;
    case_open(&c, name);
    snn_model_config cfg;
    snn_model_get_config(c.model, &cfg);
    float ref_lyap, *ref_ps, *ref = case_run(&c, &ref_lyap, &ref_ps);
    size_t n = (size_t)c.batch * (size_t)cfg.num_classes;
    for (size_t chunk = 1; chunk <= 3; chunk++) {
        c.model->max_chunk_steps = chunk;
        float lyap, *ps, *logits = case_run(&c, &lyap, &ps);
        ck_assert_msg(max_abs_err_f(logits, ref, n, NULL) <= 1e-5, "%s: chunk %zu changes logits", name, chunk);
        if (c.lyapunov) {
            ck_assert_msg(fabsf(lyap - ref_lyap) <= 1e-5f, "%s: chunk %zu changes the estimate", name, chunk);
            ck_assert(max_abs_err_f(ps, ref_ps, (size_t)c.batch, NULL) <= 1e-5);
        }
        free(logits);
        free(ps);
    }
    free(ref);
    free(ref_ps);
    case_close(&c);
}

START_TEST(test_chunking_simple) { check_chunking("simple_none_rect_lyap"); }
END_TEST

START_TEST(test_chunking_vgg) { check_chunking("vgg_direct_lyap"); }
END_TEST

/* A model with encoding `enc` on images x, against the same model fed the spikes
 * that the encoding should produce, pre-encoded (B, T, C, H, W). */
static void check_encoding_matches_pre_encoded(const char *kind, snn_encoding enc, int lyapunov) {
    snn_model_config cfg;
    ck_assert_snn_ok(snn_model_config_default(&cfg, kind));
    cfg.height = cfg.width = 8;
    cfg.in_channels = 2;
    cfg.T = 6;
    cfg.encoding = enc;
    cfg.encoding_gain = 0.8f;
    if (cfg.kind == SNN_MODEL_SIMPLE) {
        cfg.num_blocks = 2;
        cfg.channels[0] = 6;
        cfg.channels[1] = 5;
    }
    snn_model *m;
    ck_assert_snn_ok(snn_model_create(&m, test_context(), &cfg, 11));
    const int B = 3;
    const size_t CHW = (size_t)cfg.in_channels * 64, T = (size_t)cfg.T;
    float *x = malloc((size_t)B * CHW * sizeof(float)), *spikes = malloc((size_t)B * T * CHW * sizeof(float));
    test_rng r;
    test_rng_seed(&r, 5);
    test_fill_uniform(&r, x, (size_t)B * CHW, -0.2f, 1.4f);
    const uint64_t seed = 0x123456789abcULL;
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++)
            for (size_t i = 0; i < CHW; i++) {
                size_t e = (size_t)b * CHW + i;
                float v = x[e];
                if (enc == SNN_ENCODING_RATE) {
                    /* The documented scheme of cl/encode.cl, from the host Philox. */
                    float p = fminf(fmaxf(v * cfg.encoding_gain, 0.0f), 1.0f);
                    uint64_t thr = (uint64_t)(p * 4294967296.0f);
                    uint32_t ctr[4] = {(uint32_t)(e >> 2), (uint32_t)t, 0, 0}, out[4];
                    snn_philox4x32_10(ctr, key, out);
                    v = (uint64_t)out[e & 3] < thr ? 1.0f : 0.0f;
                }
                spikes[((size_t)b * T + t) * CHW + i] = v;
            }
    float logits_a[3 * 10], logits_b[3 * 10], lyap_a = 0, lyap_b = 0;
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.seed = seed;
    fp.lyapunov = lyapunov;
    ck_assert_snn_ok(snn_model_forward(m, x, B, &fp, logits_a, &lyap_a, NULL));
    fp.pre_encoded = 1;
    ck_assert_snn_ok(snn_model_forward(m, spikes, B, &fp, logits_b, &lyap_b, NULL));
    double err = max_abs_err_f(logits_a, logits_b, (size_t)B * 10, NULL);
    ck_assert_msg(err <= 1e-5, "%s %s: encoded and pre-encoded logits differ by %g", kind, snn_encoding_name(enc), err);
    /* The perturbation is drawn from the seed, so the estimates agree too. */
    if (lyapunov) ck_assert_msg(fabsf(lyap_a - lyap_b) <= 1e-5f, "estimates %g vs %g", (double)lyap_a, (double)lyap_b);
    /* Not vacuous: the readout saw spikes (logits differ from the zero bias), or the
     * estimate, which follows every membrane, was compared. */
    double spread = 0;
    for (int i = 0; i < B * 10; i++) spread = fmax(spread, fabs((double)logits_a[i]));
    ck_assert_msg(spread > 1e-3 || (lyapunov && lyap_a != 0.0f), "the model produced no output at all");
    free(x);
    free(spikes);
    snn_model_free(m);
}

START_TEST(test_rate_equals_pre_encoded_simple) { check_encoding_matches_pre_encoded("simple", SNN_ENCODING_RATE, 1); }
END_TEST

START_TEST(test_direct_equals_pre_encoded_simple) { check_encoding_matches_pre_encoded("simple", SNN_ENCODING_DIRECT, 1); }
END_TEST

START_TEST(test_rate_equals_pre_encoded_vgg) { check_encoding_matches_pre_encoded("vgg", SNN_ENCODING_RATE, 1); }
END_TEST

/* The estimate without a given perturbation: reproducible from the seed, and
 * different seeds give (slightly) different estimates. */
START_TEST(test_drawn_perturbation) {
    parity_case c;
    case_open(&c, "simple_direct_lyap");
    free(c.perturb[0]);
    free(c.perturb[1]);
    free(c.perturb);
    c.perturb = NULL;
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.lyapunov = 1;
    float logits[3 * 10], a, b, d;
    fp.seed = 1;
    ck_assert_snn_ok(snn_model_forward(c.model, c.input, c.batch, &fp, logits, &a, NULL));
    ck_assert_snn_ok(snn_model_forward(c.model, c.input, c.batch, &fp, logits, &b, NULL));
    ck_assert_msg(a == b, "same seed, different estimates: %g vs %g", (double)a, (double)b);
    fp.seed = 2;
    ck_assert_snn_ok(snn_model_forward(c.model, c.input, c.batch, &fp, logits, &d, NULL));
    ck_assert_msg(a != d, "different seeds gave the same estimate %g", (double)a);
    ck_assert(isfinite(a) && isfinite(d));
    case_close(&c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("model_parity");
    TCase *tc = tcase_create("seed");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_parity_simple_direct_lyap);
    tcase_add_test(tc, test_parity_simple_none_rect_lyap);
    tcase_add_test(tc, test_parity_simple_direct_nolyap);
    tcase_add_test(tc, test_parity_simple_defaults_lyap);
    tcase_add_test(tc, test_parity_simple_eps_lyap);
    tcase_add_test(tc, test_parity_vgg_direct_lyap);
    tcase_add_test(tc, test_parity_vgg_none_nolyap);
    suite_add_tcase(s, tc);
    TCase *tc2 = tcase_create("consistency");
    tcase_set_timeout(tc2, 600);
    tcase_add_test(tc2, test_chunking_simple);
    tcase_add_test(tc2, test_chunking_vgg);
    tcase_add_test(tc2, test_rate_equals_pre_encoded_simple);
    tcase_add_test(tc2, test_direct_equals_pre_encoded_simple);
    tcase_add_test(tc2, test_rate_equals_pre_encoded_vgg);
    tcase_add_test(tc2, test_drawn_perturbation);
    suite_add_tcase(s, tc2);
    return run_suite(s);
}
