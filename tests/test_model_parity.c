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

/* The eval forward's sparse perturbed convolutions and fused pooling of both
 * trajectories, against the dense unfused path that training takes: the same logits
 * (the reference trajectory does not change) and the estimate up to float rounding. */
static void check_sparse_matches_dense(snn_model *m, const float *x, int B, const snn_forward_params *fp,
                                       const char *what) {
    snn_model_config cfg;
    ck_assert_snn_ok(snn_model_get_config(m, &cfg));
    const size_t n = (size_t)B * (size_t)cfg.num_classes;
    float *la = malloc(n * sizeof(float)), *lb = malloc(n * sizeof(float));
    float *pa = malloc((size_t)B * sizeof(float)), *pb = malloc((size_t)B * sizeof(float));
    float a = 0, b = 0;
    m->dense_perturbed = 0;
    ck_assert_snn_ok(snn_model_forward(m, x, B, fp, la, &a, pa));
    m->dense_perturbed = 1;
    ck_assert_snn_ok(snn_model_forward(m, x, B, fp, lb, &b, pb));
    m->dense_perturbed = 0;
    ck_assert_msg(max_abs_err_f(la, lb, n, NULL) == 0.0, "%s: logits differ", what);
    const double e = max_abs_err_f(pa, pb, (size_t)B, NULL);
    ck_assert_msg(e <= 1e-5, "%s: estimates differ by %g (%g vs %g)", what, e, (double)a, (double)b);
    printf("%-24s sparse vs dense: lyapunov %.7f vs %.7f (per sample up to %.1e apart)\n", what, (double)a,
           (double)b, e);
    free(la);
    free(lb);
    free(pa);
    free(pb);
}

START_TEST(test_sparse_perturbed_fixtures) {
    const char *names[] = {"simple_direct_lyap", "simple_none_rect_lyap", "simple_defaults_lyap", "simple_eps_lyap",
                           "vgg_direct_lyap"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        parity_case c;
        case_open(&c, names[k]);
        snn_forward_params fp;
        snn_forward_params_default(&fp);
        fp.pre_encoded = c.pre_encoded;
        fp.lyapunov = 1;
        fp.lyap_eps = c.eps;
        fp.perturb = (const float *const *)c.perturb;
        check_sparse_matches_dense(c.model, c.input, c.batch, &fp, names[k]);
        case_close(&c);
    }
}
END_TEST

/* A random model large enough that the sparse path runs (and few pixels differ). */
START_TEST(test_sparse_perturbed_random) {
    snn_model_config cfg;
    ck_assert_snn_ok(snn_model_config_default(&cfg, "simple"));
    cfg.height = cfg.width = 16;
    cfg.in_channels = 3;
    cfg.T = 12;
    cfg.channels[0] = 8;
    cfg.channels[1] = 12;
    cfg.channels[2] = 16;
    snn_model *m;
    ck_assert_snn_ok(snn_model_create(&m, test_context(), &cfg, 5));
    const int B = 5;
    const size_t n = (size_t)B * 3 * 16 * 16;
    float *x = malloc(n * sizeof(float));
    test_rng r;
    test_rng_seed(&r, 77);
    test_fill_uniform(&r, x, n, 0.0f, 1.0f);
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.lyapunov = 1;
    fp.seed = 3;
    check_sparse_matches_dense(m, x, B, &fp, "random simple");
    ck_assert_msg(m->fwd.diff.idx.mem != NULL, "the sparse path did not run");
    m->max_chunk_steps = 5; /* chunks: the differences' maps are per chunk */
    check_sparse_matches_dense(m, x, B, &fp, "random simple, chunks");
    const snn_conv_diff *d = &m->fwd.diff;
    const size_t slots0 = d->total_slots;
    /* Some pixels differ: sparse differences computed. Whether a given eps flips a spike
     * depends on the model's float details, so the test raises eps until one does
     * (staying below the dense fallback). */
    static const float some[] = {1e-2f, 2e-2f, 4e-2f, 8e-2f};
    for (size_t i = 0; i < sizeof some / sizeof some[0] && d->total_slots == slots0; i++) {
        char what[64];
        snprintf(what, sizeof what, "random simple, eps %g", (double)some[i]);
        fp.lyap_eps = some[i];
        check_sparse_matches_dense(m, x, B, &fp, what);
    }
    ck_assert_msg(d->total_slots > slots0, "eps up to 8e-2: no pixel differs");
    const size_t dense1 = d->dense_calls;
    fp.lyap_eps = 0.3f; /* many pixels differ: the dense fallback */
    check_sparse_matches_dense(m, x, B, &fp, "random simple, eps 0.3");
    ck_assert_msg(d->dense_calls > dense1, "eps 0.3: no dense fallback");
    free(x);
    snn_model_free(m);
}
END_TEST

/* ------------------------------------------------------------ spike records -- */

/* Recorded spikes of every LIF layer for one sample, in fresh arrays (T x neurons). */
static uint8_t **record_sample(parity_case *c, int sample, float *logits) {
    snn_model_config cfg;
    ck_assert_snn_ok(snn_model_get_config(c->model, &cfg));
    uint8_t **spk = calloc((size_t)c->num_lifs, sizeof *spk);
    for (int l = 0; l < c->num_lifs; l++) {
        int ndim;
        int64_t shape[4];
        ck_assert_snn_ok(snn_model_lif_shape(c->model, l, 1, &ndim, shape));
        size_t n = (size_t)cfg.T;
        for (int d = 1; d < ndim; d++) n *= (size_t)shape[d];
        spk[l] = malloc(n);
        memset(spk[l], 0xAB, n); /* every byte must be overwritten with 0 or 1 */
    }
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.pre_encoded = c->pre_encoded;
    fp.lyapunov = 1; /* ignored: the reference trajectory is recorded */
    ck_assert_snn_ok(snn_model_record_spikes(c->model, c->input, c->batch, sample, &fp, spk, logits));
    return spk;
}

static void free_record(uint8_t **spk, int n) {
    for (int l = 0; l < n; l++) free(spk[l]);
    free(spk);
}

/* spikes (T, C, H, W) at step t, 2x2 average-pooled -> out (C, H/2, W/2). */
static void pool_step(const uint8_t *spk, size_t t, size_t C, size_t H, size_t W, double *out) {
    const size_t Ho = H / 2, Wo = W / 2, N = C * H * W;
    for (size_t ch = 0; ch < C; ch++)
        for (size_t y = 0; y < Ho; y++)
            for (size_t x = 0; x < Wo; x++) {
                const uint8_t *s = spk + t * N + ch * H * W;
                out[(ch * Ho + y) * Wo + x] =
                    0.25 * (s[2 * y * W + 2 * x] + s[2 * y * W + 2 * x + 1] + s[(2 * y + 1) * W + 2 * x] +
                            s[(2 * y + 1) * W + 2 * x + 1]);
            }
}

/* Every conv LIF layer of a simple model recomputed on the host in double from its
 * input (the sample's image or spikes for the first layer, the recorded spikes of
 * the layer before, pooled, for the others) and the recorded spikes of its own past
 * steps (the reset): each recorded spike must be v > threshold, except where v is
 * within 1e-4 of the threshold (float rounding). Returns the spikes compared. */
static size_t check_layers_on_host(parity_case *c, int sample, uint8_t **spk) {
    snn_model *m = c->model;
    const snn_model_config *cfg = &m->cfg;
    const size_t T = (size_t)cfg->T, CHW0 = (size_t)cfg->in_channels * (size_t)cfg->height * (size_t)cfg->width;
    size_t compared = 0, fired = 0;
    for (int i = 0; i < m->num_layers; i++) {
        const snn_layer *L = &m->layer[i];
        ck_assert_int_eq(L->kind, SNN_STAGE_CONV);
        const size_t Cin = L->cin, Co = L->cout, H = L->H, W = L->W, HW = H * W, N = Co * HW;
        const double beta = snn_model_lif_beta(m, i), thr = snn_model_lif_threshold(m, i);
        double *in = malloc(Cin * HW * sizeof(double)), *v = calloc(N, sizeof(double));
        for (size_t t = 0; t < T; t++) {
            if (i == 0) {
                const float *x = c->input + (size_t)sample * (c->pre_encoded ? T : 1) * CHW0 +
                                 (c->pre_encoded ? t * CHW0 : 0);
                for (size_t k = 0; k < CHW0; k++) in[k] = x[k];
            } else {
                const snn_layer *P = &m->layer[i - 1];
                ck_assert(P->pool && P->H / 2 == H && P->W / 2 == W);
                pool_step(spk[i - 1], t, P->cout, P->H, P->W, in);
            }
            for (size_t co = 0; co < Co; co++) {
                const double sc = L->bn_weight->host[co] / sqrt((double)L->bn_var->host[co] + 1e-5);
                const double sh = L->bn_bias->host[co] - L->bn_mean->host[co] * sc;
                for (size_t y = 0; y < H; y++)
                    for (size_t x = 0; x < W; x++) {
                        double acc = 0;
                        for (size_t ci = 0; ci < Cin; ci++)
                            for (int ky = 0; ky < 3; ky++)
                                for (int kx = 0; kx < 3; kx++) {
                                    long yy = (long)y + ky - 1, xx = (long)x + kx - 1;
                                    if (yy < 0 || xx < 0 || yy >= (long)H || xx >= (long)W) continue;
                                    acc += (double)L->weight->host[((co * Cin + ci) * 3 + (size_t)ky) * 3 + (size_t)kx] *
                                           in[(ci * H + (size_t)yy) * W + (size_t)xx];
                                }
                        const size_t n = co * HW + y * W + x;
                        const double reset = t > 0 && spk[i][(t - 1) * N + n] ? thr : 0.0;
                        v[n] = beta * v[n] + sc * acc + sh - reset;
                        const uint8_t got = spk[i][t * N + n];
                        ck_assert_msg(got <= 1, "layer %d: spike byte %u is neither 0 nor 1", i, got);
                        if (fabs(v[n] - thr) < 1e-4) continue;
                        ck_assert_msg(got == (v[n] > thr),
                                      "layer %d, sample %d, step %zu, neuron %zu: recorded %u, membrane %.6f vs "
                                      "threshold %.6f",
                                      i, sample, t, n, got, v[n], thr);
                        compared++;
                        fired += got;
                    }
            }
        }
        free(in);
        free(v);
    }
    ck_assert_msg(fired > 0 && fired < compared, "vacuous: %zu of %zu neuron-steps spiked", fired, compared);
    return compared;
}

/* The readout from the recorded last layer: spikes (pooled for simple) summed over
 * time through the last linear layer must give snn_model_forward's logits. */
static void check_readout(parity_case *c, uint8_t **spk, const float *want) {
    snn_model *m = c->model;
    const size_t T = (size_t)m->cfg.T, K = (size_t)m->cfg.num_classes, F = m->fc_w->shape[1];
    double *feat = calloc(F, sizeof(double)), *tmp = malloc(F * sizeof(double));
    const uint8_t *last = spk[m->num_layers - 1];
    const snn_layer *L = &m->layer[m->num_layers - 1];
    if (L->kind == SNN_STAGE_CONV) {
        ck_assert_uint_eq(L->cout * (L->H / 2) * (L->W / 2), F);
        for (size_t t = 0; t < T; t++) {
            pool_step(last, t, L->cout, L->H, L->W, tmp);
            for (size_t j = 0; j < F; j++) feat[j] += tmp[j];
        }
    } else {
        ck_assert_uint_eq(F, L->cout);
        for (size_t t = 0; t < T; t++)
            for (size_t j = 0; j < F; j++) feat[j] += last[t * F + j];
    }
    double scale = 1, err = 0;
    for (size_t k = 0; k < K; k++) scale = fmax(scale, fabs((double)want[k]));
    for (size_t k = 0; k < K; k++) {
        double z = m->fc_b->host[k];
        for (size_t j = 0; j < F; j++) z += (double)m->fc_w->host[k * F + j] * feat[j];
        err = fmax(err, fabs(z - (double)want[k]));
    }
    ck_assert_msg(err <= 1e-4 * scale, "readout of the recorded spikes differs from the logits by %g", err);
    free(feat);
    free(tmp);
}

static void check_record(const char *name, int host_layers) {
    parity_case c;
    case_open(&c, name);
    snn_model_config cfg;
    ck_assert_snn_ok(snn_model_get_config(c.model, &cfg));
    const size_t K = (size_t)cfg.num_classes, BK = (size_t)c.batch * K;
    float *logits = malloc(BK * sizeof(float)), *ref = malloc(BK * sizeof(float));
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.pre_encoded = c.pre_encoded;
    ck_assert_snn_ok(snn_model_forward(c.model, c.input, c.batch, &fp, ref, NULL, NULL));
    size_t compared = 0;
    for (int b = 0; b < c.batch; b++) {
        uint8_t **spk = record_sample(&c, b, logits);
        ck_assert_msg(max_abs_err_f(logits, ref, BK, NULL) <= 1e-6, "%s: recording changed the logits", name);
        check_readout(&c, spk, ref + (size_t)b * K);
        if (host_layers) compared += check_layers_on_host(&c, b, spk);
        /* Chunks of time change nothing. */
        c.model->max_chunk_steps = 2;
        uint8_t **again = record_sample(&c, b, NULL);
        c.model->max_chunk_steps = 0;
        for (int l = 0; l < c.num_lifs; l++) {
            int ndim;
            int64_t shape[4];
            ck_assert_snn_ok(snn_model_lif_shape(c.model, l, 1, &ndim, shape));
            size_t n = (size_t)cfg.T;
            for (int d = 1; d < ndim; d++) n *= (size_t)shape[d];
            ck_assert_msg(memcmp(spk[l], again[l], n) == 0, "%s: layer %d differs in chunks of 2 steps", name, l);
        }
        free_record(spk, c.num_lifs);
        free_record(again, c.num_lifs);
    }
    printf("%-24s spike record: readout matches, %zu neuron-steps checked on the host\n", name, compared);
    free(logits);
    free(ref);
    case_close(&c);
}

START_TEST(test_record_simple_direct) { check_record("simple_direct_lyap", 1); }
END_TEST

START_TEST(test_record_simple_pre_encoded) { check_record("simple_none_rect_lyap", 1); }
END_TEST

START_TEST(test_record_simple_rate) { check_record("simple_defaults_lyap", 0); }
END_TEST

START_TEST(test_record_vgg) { check_record("vgg_direct_lyap", 0); }
END_TEST

START_TEST(test_record_errors) {
    parity_case c;
    case_open(&c, "simple_direct_lyap");
    uint8_t **spk = record_sample(&c, 0, NULL);
    uint8_t *missing[2] = {spk[0], NULL};
    ck_assert_snn_status(snn_model_record_spikes(NULL, c.input, c.batch, 0, NULL, spk, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_model_record_spikes(c.model, NULL, c.batch, 0, NULL, spk, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_model_record_spikes(c.model, c.input, c.batch, 0, NULL, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_model_record_spikes(c.model, c.input, c.batch, 0, NULL, missing, NULL),
                         SNN_ERR_INVALID_ARG);
    ck_assert(strstr(snn_last_error(), "spikes[1]") != NULL);
    ck_assert_snn_status(snn_model_record_spikes(c.model, c.input, 0, 0, NULL, spk, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_model_record_spikes(c.model, c.input, c.batch, -1, NULL, spk, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_model_record_spikes(c.model, c.input, c.batch, c.batch, NULL, spk, NULL),
                         SNN_ERR_INVALID_ARG);
    ck_assert(strstr(snn_last_error(), "outside the batch") != NULL);
    /* params NULL means the defaults; and the model still works afterwards. */
    ck_assert_snn_ok(snn_model_record_spikes(c.model, c.input, c.batch, c.batch - 1, NULL, spk, NULL));
    free_record(spk, c.num_lifs);
    case_close(&c);
}
END_TEST

/* The estimate's floor (snn_model_lyapunov_floor): with a threshold no membrane
 * reaches, no spike flips, and with a perturbation of ones (|n_l|^2 = N_l exactly, the
 * expectation the floor assumes) every sample's estimate is the floor. For one beta
 * it is the closed form (ln(beta sqrt(N)) + (T-1)(ln beta + ln(L)/2)) / T. */
static void check_floor(const char *kind, float beta) {
    snn_model_config cfg;
    ck_assert_snn_ok(snn_model_config_default(&cfg, kind));
    cfg.in_channels = 2;
    cfg.height = cfg.width = 8;
    cfg.num_classes = 5;
    cfg.T = 6;
    cfg.beta = beta;
    cfg.threshold = 1e9f; /* no spikes at all */
    cfg.encoding = SNN_ENCODING_DIRECT;
    if (strcmp(kind, "simple") == 0) {
        cfg.num_blocks = 2;
        cfg.channels[0] = 4;
        cfg.channels[1] = 6;
    } else {
        cfg.channels[0] = 4;
        cfg.channels[1] = 6;
        cfg.channels[2] = 8;
    }
    snn_model *m;
    ck_assert_snn_ok(snn_model_create(&m, test_context(), &cfg, 5));
    const int B = 3, L = snn_model_num_lif_layers(m);
    float **perturb = calloc((size_t)L, sizeof *perturb);
    double N = 0;
    for (int l = 0; l < L; l++) {
        int ndim;
        int64_t shape[4];
        ck_assert_snn_ok(snn_model_lif_shape(m, l, B, &ndim, shape));
        size_t n = 1;
        for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
        N += (double)n / B;
        perturb[l] = malloc(n * sizeof(float));
        for (size_t k = 0; k < n; k++) perturb[l][k] = 1.0f;
    }
    double floor_value = -1;
    ck_assert_snn_ok(snn_model_lyapunov_floor(m, 1e-4f, &floor_value));
    /* the closed form, up to the 1e-12 guards (relative 1e-12 / (eps^2 beta^2) per step) */
    const double closed = (log(beta * sqrt(N)) + (cfg.T - 1) * (log(beta) + 0.5 * log((double)L))) / cfg.T;
    ck_assert_msg(fabs(floor_value - closed) < 2e-4, "%s: floor %.9f, closed form %.9f", kind, floor_value, closed);
    double big;
    ck_assert_snn_ok(snn_model_lyapunov_floor(m, 1e-1f, &big)); /* guards negligible at eps 0.1 */
    ck_assert_msg(fabs(big - closed) < 1e-9, "%s: floor at eps 0.1 %.12f, closed form %.12f", kind, big, closed);
    test_rng r;
    test_rng_seed(&r, 17);
    const size_t nx = (size_t)B * 2 * 64;
    float *x = malloc(nx * sizeof(float)), logits[3 * 5], lam[3], mean;
    test_fill_uniform(&r, x, nx, 0.0f, 1.0f);
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.lyapunov = 1;
    fp.perturb = (const float *const *)perturb;
    ck_assert_snn_ok(snn_model_forward(m, x, B, &fp, logits, &mean, lam));
    for (int b = 0; b < B; b++)
        ck_assert_msg(fabs(lam[b] - floor_value) < 2e-6, "%s sample %d: estimate %.7f, floor %.7f", kind, b,
                      (double)lam[b], floor_value);
    printf("%s, beta %.2f: floor %.6f, estimates %.6f %.6f %.6f\n", kind, (double)beta, floor_value, (double)lam[0],
           (double)lam[1], (double)lam[2]);
    for (int l = 0; l < L; l++) free(perturb[l]);
    free(perturb);
    free(x);
    double bad;
    ck_assert_snn_status(snn_model_lyapunov_floor(NULL, 1e-4f, &bad), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_model_lyapunov_floor(m, 0.0f, &bad), SNN_ERR_INVALID_ARG);
    snn_model_free(m);
}

START_TEST(test_floor_simple) { check_floor("simple", 0.9f); }
END_TEST
START_TEST(test_floor_vgg) { check_floor("vgg", 0.7f); }
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
    tcase_add_test(tc2, test_sparse_perturbed_fixtures);
    tcase_add_test(tc2, test_sparse_perturbed_random);
    tcase_add_test(tc2, test_floor_simple);
    tcase_add_test(tc2, test_floor_vgg);
    suite_add_tcase(s, tc2);
    TCase *tc3 = tcase_create("record");
    tcase_set_timeout(tc3, 600);
    tcase_add_test(tc3, test_record_simple_direct);
    tcase_add_test(tc3, test_record_simple_pre_encoded);
    tcase_add_test(tc3, test_record_simple_rate);
    tcase_add_test(tc3, test_record_vgg);
    tcase_add_test(tc3, test_record_errors);
    suite_add_tcase(s, tc3);
    return run_suite(s);
}
