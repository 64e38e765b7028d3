/* Tests of the device operations of src/ops/ (and the kernels of cl/ they launch)
 * against plain-C references written here, on random data with odd sizes.
 *
 * Every output buffer is allocated larger than the op needs and filled with a
 * sentinel pattern (quiet NaNs whose payload depends on the index); after the op the
 * whole buffer is read back and the padding (after the region, between groups where
 * an op takes strides, and before the region where it takes an offset) must still hold
 * the pattern. Inputs with gaps get the same NaN pattern in the gaps, so a kernel that
 * reads outside its region produces NaNs that the comparison catches. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "gemm.h"
#include "ops.h"
#include "rng.h"
#include "devbuf.h"
#include "testutil.h"

/* ----------------------------------------------------------------- helpers -- */

static void assert_close(const float *got, const double *want, size_t n, double floor, double tol,
                         const char *what) {
    size_t at = 0;
    double err = max_rel_err(got, want, n, floor, &at);
    expect_msg(err <= tol, "%s: relative error %.3g > %.3g at element %zu (got %.9g, expected %.9g)", what,
               err, tol, at, (double)got[at], want[at]);
}

/* SNNCL_TEST_SMALL=1 (tools/oclgrind.sh, where a simulator runs kernels 1000x slower):
 * smaller statistical samples and GEMMs. Every kernel and code path (odd sizes, vector
 * tails, partial work-groups, sliced reductions) still runs. */
static int small_mode(void) {
    const char *s = getenv("SNNCL_TEST_SMALL");
    return s && *s && strcmp(s, "0") != 0;
}

static size_t count_spikes(const float *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] != 0.0f;
    return k;
}

/* ------------------------------------------------------------------ philox -- */

typedef struct kat_vector {
    uint32_t ctr[4], key[2], out[4];
} kat_vector;

/* Random123 kat_vectors, "philox4x32 10" lines. */
static const kat_vector philox_kat[] = {
    {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
    {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
     {0xffffffffu, 0xffffffffu},
     {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
    {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
     {0xa4093822u, 0x299f31d0u},
     {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
};
#define N_KAT (sizeof philox_kat / sizeof philox_kat[0])

START_TEST(test_philox_host_kat) {
    for (size_t k = 0; k < N_KAT; k++) {
        uint32_t out[4];
        snn_philox4x32_10(philox_kat[k].ctr, philox_kat[k].key, out);
        for (int w = 0; w < 4; w++)
            expect_msg(out[w] == philox_kat[k].out[w],
                       "host philox vector %zu word %d: 0x%08x, expected 0x%08x", k, w, (unsigned)out[w],
                       (unsigned)philox_kat[k].out[w]);
    }
}
END_TEST

START_TEST(test_philox_device_kat) {
    snn_context *ctx = test_context();
    enum { NB = 7, PAD = 9 };
    const size_t words = NB * 4 + PAD;
    for (size_t k = 0; k < N_KAT; k++) {
        const kat_vector *v = &philox_kat[k];
        cl_mem out = dev_sentinel(ctx, words);
        cl_uint4 ctr;
        cl_uint2 key;
        for (int w = 0; w < 4; w++)
            ctr.s[w] = v->ctr[w];
        key.s[0] = v->key[0];
        key.s[1] = v->key[1];
        size_t global[1] = {NB};
        ck_assert_snn_ok(snn_launch(
            ctx, "snn_k_philox_blocks", 1, global, NULL,
            SNN_ARGS(SNN_ARG_MEM(out), ((snn_arg){sizeof ctr, &ctr}), ((snn_arg){sizeof key, &key}),
                     SNN_ARG_UINT(NB))));
        float *h = dev_download(ctx, out, words);
        for (uint32_t i = 0; i < NB; i++) {
            /* Block i uses ctr + (i, 0, 0, 0), per-component (wrapping, no carry). */
            uint32_t c[4] = {v->ctr[0] + i, v->ctr[1], v->ctr[2], v->ctr[3]}, want[4], got[4];
            if (i == 0)
                memcpy(want, v->out, sizeof want);
            else
                snn_philox4x32_10(c, v->key, want);
            memcpy(got, h + 4 * i, sizeof got);
            for (int w = 0; w < 4; w++)
                expect_msg(got[w] == want[w],
                           "device philox vector %zu block %u word %d: 0x%08x, expected 0x%08x", k,
                           (unsigned)i, w, (unsigned)got[w], (unsigned)want[w]);
        }
        assert_sentinel(h, NB * 4, words, "philox_blocks");
        free(h);
        snn_buffer_release(&out);
    }
}
END_TEST

/* ------------------------------------------------------------- encode_rate -- */

static float clamp01(float p) { return p < 0.0f ? 0.0f : p > 1.0f ? 1.0f : p; }

/* x (B, C, HW) -> out (C, T, B, HW), as documented in cl/encode.cl; e0: the index of
 * x's first element in the global batch. */
static void ref_encode_rate(const float *x, float *out, size_t B, size_t C, size_t HW, size_t T, size_t t0,
                            float gain, uint64_t seed, size_t e0) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (size_t e = 0; e < B * C * HW; e++) {
        const size_t b = e / (C * HW), c = (e / HW) % C, hw = e % HW, g = e0 + e;
        const float p = clamp01(x[e] * gain);
        const uint64_t threshold = (uint64_t)(p * 4294967296.0f);
        for (size_t t = 0; t < T; t++) {
            const uint32_t ctr[4] = {(uint32_t)(g >> 2), (uint32_t)(t0 + t), 0u, 0u};
            uint32_t r[4];
            snn_philox4x32_10(ctr, key, r);
            out[((c * T + t) * B + b) * HW + hw] = (uint64_t)r[g & 3] < threshold ? 1.0f : 0.0f;
        }
    }
}

/* Runs encode_rate into a fresh sentinel buffer; returns the whole buffer (n + pad). */
static float *run_encode_at(snn_context *ctx, cl_mem x, size_t B, size_t C, size_t HW, size_t T, size_t t0,
                            float gain, uint64_t seed, size_t pad, size_t e0) {
    const size_t n = C * T * B * HW;
    cl_mem out = dev_sentinel(ctx, n + pad);
    ck_assert_snn_ok(snn_op_encode_rate(ctx, x, out, B, C, HW, T, t0, gain, seed, e0));
    float *h = dev_download(ctx, out, n + pad);
    assert_sentinel(h, n, n + pad, "encode_rate");
    snn_buffer_release(&out);
    return h;
}
static float *run_encode(snn_context *ctx, cl_mem x, size_t B, size_t C, size_t HW, size_t T, size_t t0,
                         float gain, uint64_t seed, size_t pad) {
    return run_encode_at(ctx, x, B, C, HW, T, t0, gain, seed, pad, 0);
}

START_TEST(test_encode_rate_exact) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 11);
    const size_t B = 3, C = 3, HW = 5 * 7, T = 7, n = B * C * HW, pad = 13;
    const float gain = 0.8f;
    const uint64_t seed = 0x9e3779b97f4a7c15ull;
    float *x = random_array(&r, n, -0.5f, 1.5f);
    /* Edges: p = 0, p exactly 1, p above 1, p = 1/2, negative. */
    x[0] = 0.0f, x[1] = 1.0f / gain, x[2] = 1.4f, x[3] = 0.5f / gain, x[4] = -0.25f, x[n - 1] = 1.25f;
    cl_mem xd = dev_upload(ctx, x, n);

    float *full = run_encode(ctx, xd, B, C, HW, T, 0, gain, seed, pad);
    float *want = host_alloc(C * T * B * HW);
    ref_encode_rate(x, want, B, C, HW, T, 0, gain, seed, 0);
    assert_bits_equal(full, want, C * T * B * HW, "encode_rate (t0 = 0)");
    const size_t spikes = count_spikes(full, C * T * B * HW);
    expect_msg(spikes > C * T * B * HW / 5 && spikes < C * T * B * HW * 4 / 5, "implausible spike count %zu",
               spikes);

    /* A chunk of steps 3..6 equals the corresponding slice of the full run. */
    const size_t t0 = 3, Tc = 4;
    float *chunk = run_encode(ctx, xd, B, C, HW, Tc, t0, gain, seed, pad);
    ref_encode_rate(x, want, B, C, HW, Tc, t0, gain, seed, 0);
    assert_bits_equal(chunk, want, C * Tc * B * HW, "encode_rate (t0 = 3)");
    for (size_t c = 0; c < C; c++)
        for (size_t t = 0; t < Tc; t++)
            for (size_t b = 0; b < B; b++)
                for (size_t hw = 0; hw < HW; hw++)
                    expect_msg(chunk[((c * Tc + t) * B + b) * HW + hw] ==
                                   full[((c * T + t0 + t) * B + b) * HW + hw],
                               "chunk c=%zu t=%zu b=%zu hw=%zu differs from the full run", c, t, b, hw);
    free(chunk);

    /* A chunk far into the sequence. */
    chunk = run_encode(ctx, xd, B, C, HW, 2, 123457, gain, seed, pad);
    ref_encode_rate(x, want, B, C, HW, 2, 123457, gain, seed, 0);
    assert_bits_equal(chunk, want, C * 2 * B * HW, "encode_rate (t0 = 123457)");

    /* Shares of the batch (samples [0, 1) and [1, 3)): the second starts at element
     * C*HW = 105 of the global batch, not on a Philox block's boundary. Each share's
     * spikes are the full run's for its samples. */
    for (size_t first = 0; first < B; first++) {
        const size_t Bs = first == 0 ? 1 : B - 1, e0 = first * C * HW;
        if (first > 1) break;
        cl_mem xs = dev_upload(ctx, x + e0, Bs * C * HW);
        float *share = run_encode_at(ctx, xs, Bs, C, HW, T, 0, gain, seed, pad, e0);
        ref_encode_rate(x + e0, want, Bs, C, HW, T, 0, gain, seed, e0);
        assert_bits_equal(share, want, C * T * Bs * HW, "encode_rate (a share)");
        for (size_t c = 0; c < C; c++)
            for (size_t t = 0; t < T; t++)
                for (size_t b = 0; b < Bs; b++)
                    for (size_t hw = 0; hw < HW; hw++)
                        expect_msg(share[((c * T + t) * Bs + b) * HW + hw] ==
                                       full[((c * T + t) * B + first + b) * HW + hw],
                                   "share from %zu: c=%zu t=%zu b=%zu hw=%zu differs from the whole batch", first, c,
                                   t, b, hw);
        free(share);
        snn_buffer_release(&xs);
    }

    free(chunk);
    free(full);
    free(want);
    free(x);
    snn_buffer_release(&xd);
}
END_TEST

/* The threshold itself: for an element and step whose Philox word w is below 2^23,
 * p = w/2^32 and p = (w + 1/2)/2^32 are exact floats with p*2^32 truncating to w, so
 * the element must not spike (w < w is false), while p = (w + 1)/2^32 must. */
START_TEST(test_encode_rate_threshold) {
    snn_context *ctx = test_context();
    const size_t HW = 7;
    const uint64_t seed = 0x5eed0000c0de0001ull;
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    float x[7];
    for (size_t e = 0; e < HW; e++)
        x[e] = 0.5f;
    const size_t elements[] = {0, 1, 2, 3, 6};
    for (size_t k = 0; k < sizeof elements / sizeof elements[0]; k++) {
        const size_t e = elements[k];
        uint32_t t = 0, w = 0;
        for (;; t++) { /* about 2^9 tries */
            const uint32_t ctr[4] = {(uint32_t)(e >> 2), t, 0u, 0u};
            uint32_t rr[4];
            snn_philox4x32_10(ctr, key, rr);
            w = rr[e & 3];
            if (w > 0 && w < (1u << 23))
                break;
            expect_msg(t < 1000000, "no small Philox word found");
        }
        const double steps[3] = {0.0, 0.5, 1.0};
        for (int v = 0; v < 3; v++) {
            x[e] = (float)(((double)w + steps[v]) / 4294967296.0);
            expect_msg((double)x[e] * 4294967296.0 == (double)w + steps[v], "x is not exact");
            cl_mem xd = dev_upload(ctx, x, HW);
            float *s = run_encode(ctx, xd, 1, 1, HW, 1, t, 1.0f, seed, 3);
            const float want = v == 2 ? 1.0f : 0.0f;
            expect_msg(s[e] == want, "element %zu step %u word %u, x*2^32 = %u + %.1f: spike %g, expected %g",
                       e, (unsigned)t, (unsigned)w, (unsigned)w, steps[v], (double)s[e], (double)want);
            free(s);
            snn_buffer_release(&xd);
        }
        x[e] = 0.5f;
    }
}
END_TEST

START_TEST(test_encode_rate_statistics) {
    snn_context *ctx = test_context();
    const size_t HW = 101, T = small_mode() ? 60 : 400;
    float *x = host_alloc(HW);
    for (size_t i = 0; i < HW; i++)
        x[i] = (float)(-0.5 + 0.02 * (double)i); /* -0.5 .. 1.5 */
    cl_mem xd = dev_upload(ctx, x, HW);
    const float gains[] = {1.0f, 0.5f};
    for (size_t gi = 0; gi < 2; gi++) {
        const float gain = gains[gi];
        float *s = run_encode(ctx, xd, 1, 1, HW, T, 17, gain, 0x0123456789abcdefull, 5);
        for (size_t i = 0; i < HW; i++) {
            size_t count = 0;
            for (size_t t = 0; t < T; t++) {
                const float v = s[t * HW + i];
                expect_msg(v == 0.0f || v == 1.0f, "spike value %g is neither 0 nor 1", (double)v);
                count += v != 0.0f;
            }
            const double p = clamp01(x[i] * gain);
            if (p == 0.0)
                expect_msg(count == 0, "x=%g gain=%g (p = 0) spiked %zu times", (double)x[i], (double)gain,
                           count);
            else if (p == 1.0)
                expect_msg(count == T, "x=%g gain=%g (p = 1) spiked only %zu of %zu times", (double)x[i],
                           (double)gain, count, T);
            else {
                const double mean = (double)T * p, sigma = sqrt((double)T * p * (1.0 - p));
                expect_msg(fabs((double)count - mean) <= 5.0 * sigma + 1e-9,
                           "x=%g gain=%g: %zu spikes in %zu steps, expected %.1f +- %.1f (5 sigma)",
                           (double)x[i], (double)gain, count, T, mean, 5.0 * sigma);
            }
        }
        free(s);
    }
    free(x);
    snn_buffer_release(&xd);
}
END_TEST

START_TEST(test_encode_rate_seeds) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 12);
    const size_t B = 2, C = 3, HW = 37, T = 5, n = C * T * B * HW;
    float *x = random_array(&r, B * C * HW, 0.2f, 0.8f);
    cl_mem xd = dev_upload(ctx, x, B * C * HW);
    const uint64_t seed = 0x00000005deadbeefull;
    float *a = run_encode(ctx, xd, B, C, HW, T, 0, 1.0f, seed, 3);
    float *a2 = run_encode(ctx, xd, B, C, HW, T, 0, 1.0f, seed, 3);
    assert_bits_equal(a2, a, n, "encode_rate with the same seed");
    /* Seeds differing only in the low or only in the high 32 bits. */
    const uint64_t others[] = {seed ^ 1u, seed ^ (1ull << 40)};
    for (size_t k = 0; k < 2; k++) {
        float *b = run_encode(ctx, xd, B, C, HW, T, 0, 1.0f, others[k], 3);
        size_t differ = 0;
        for (size_t i = 0; i < n; i++)
            differ += a[i] != b[i];
        /* Expected fraction 2p(1-p) >= 0.32. */
        expect_msg(differ > n / 5, "seed %016llx vs %016llx: only %zu of %zu spikes differ",
                   (unsigned long long)seed, (unsigned long long)others[k], differ, n);
        free(b);
    }
    free(a);
    free(a2);
    free(x);
    snn_buffer_release(&xd);
}
END_TEST

/* ------------------------------------------------------- channel-major ops -- */

START_TEST(test_to_channel_major) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 21);
    const struct {
        size_t B, T_total, t0, T, C, HW;
    } cases[] = {{3, 9, 2, 5, 3, 13}, {2, 1, 0, 1, 5, 7}, {1, 4, 3, 1, 1, 9}, {4, 6, 0, 6, 2, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const size_t B = cases[k].B, Tt = cases[k].T_total, t0 = cases[k].t0, T = cases[k].T, C = cases[k].C,
                     HW = cases[k].HW;
        const size_t n_in = B * Tt * C * HW, n = C * T * B * HW, pad = 11;
        float *in = random_array(&r, n_in, -2.0f, 2.0f);
        cl_mem ind = dev_upload(ctx, in, n_in), out = dev_sentinel(ctx, n + pad);
        ck_assert_snn_ok(snn_op_to_channel_major(ctx, ind, out, B, Tt, t0, T, C, HW));
        float *got = dev_download(ctx, out, n + pad), *want = host_alloc(n);
        for (size_t c = 0; c < C; c++)
            for (size_t t = 0; t < T; t++)
                for (size_t b = 0; b < B; b++)
                    for (size_t hw = 0; hw < HW; hw++)
                        want[((c * T + t) * B + b) * HW + hw] = in[((b * Tt + t0 + t) * C + c) * HW + hw];
        assert_bits_equal(got, want, n, "to_channel_major");
        assert_sentinel(got, n, n + pad, "to_channel_major");
        free(got);
        free(want);
        free(in);
        snn_buffer_release(&ind);
        snn_buffer_release(&out);
    }
}
END_TEST

START_TEST(test_scale_to_channel_major) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 22);
    const struct {
        size_t B, C, HW;
        float scale;
    } cases[] = {{3, 5, 11, 0.37f}, {1, 3, 1, -2.5f}, {5, 1, 7, 1e-3f}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const size_t B = cases[k].B, C = cases[k].C, HW = cases[k].HW, n = B * C * HW, pad = 7;
        const float scale = cases[k].scale;
        float *in = random_array(&r, n, -3.0f, 3.0f);
        cl_mem ind = dev_upload(ctx, in, n), out = dev_sentinel(ctx, n + pad);
        ck_assert_snn_ok(snn_op_scale_to_channel_major(ctx, ind, out, B, C, HW, scale));
        float *got = dev_download(ctx, out, n + pad), *want = host_alloc(n);
        for (size_t b = 0; b < B; b++)
            for (size_t c = 0; c < C; c++)
                for (size_t hw = 0; hw < HW; hw++)
                    want[(c * B + b) * HW + hw] = scale * in[(b * C + c) * HW + hw];
        assert_bits_equal(got, want, n, "scale_to_channel_major");
        assert_sentinel(got, n, n + pad, "scale_to_channel_major");
        free(got);
        free(want);
        free(in);
        snn_buffer_release(&ind);
        snn_buffer_release(&out);
    }
}
END_TEST

/* The unit normal of element e (of a (B, C, HW) tensor), per cl/perturb.cl, in double
 * from the same float uniforms. */
static double ref_normal(uint64_t seed, unsigned layer, size_t e) { /* e: in the global batch */
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t ctr[4] = {(uint32_t)(e >> 2), layer, 1u /* SNN_STREAM_NORMAL */, 0u};
    uint32_t r[4];
    snn_philox4x32_10(ctr, key, r);
    const size_t k = e & 3;
    const uint32_t a = k < 2 ? r[0] : r[2], bw = k < 2 ? r[1] : r[3];
    const float u1 = ((float)(a >> 8) + 1.0f) * (1.0f / 16777217.0f);
    const float u2 = (float)(bw >> 8) * (1.0f / 16777216.0f);
    const float ang = 6.283185307179586f * u2;
    const double rad = sqrt(-2.0 * log((double)u1));
    return (k & 1) ? rad * sin((double)ang) : rad * cos((double)ang);
}

static float *run_normal_at(snn_context *ctx, size_t B, size_t C, size_t HW, unsigned layer, float scale,
                            uint64_t seed, size_t pad, size_t e0) {
    const size_t n = B * C * HW;
    cl_mem out = dev_sentinel(ctx, n + pad);
    ck_assert_snn_ok(snn_op_normal(ctx, out, B, C, HW, layer, scale, seed, e0));
    float *h = dev_download(ctx, out, n + pad);
    assert_sentinel(h, n, n + pad, "normal_channel_major");
    snn_buffer_release(&out);
    return h;
}
static float *run_normal(snn_context *ctx, size_t B, size_t C, size_t HW, unsigned layer, float scale,
                         uint64_t seed, size_t pad) {
    return run_normal_at(ctx, B, C, HW, layer, scale, seed, pad, 0);
}

START_TEST(test_normal_channel_major) {
    snn_context *ctx = test_context();
    /* 100135 samples (2135 small); the moment checks scale with n */
    const size_t B = 5, C = 7, HW = small_mode() ? 61 : 2861, n = B * C * HW, pad = 9;
    const uint64_t seed = 0xfeedface00c0ffeeull;
    const unsigned layer = 2;
    float *u = run_normal(ctx, B, C, HW, layer, 1.0f, seed, pad);

    /* Values and layout against the reference (not bit-identical: log, sin, cos). */
    double *want = host_alloc_d(n);
    for (size_t b = 0; b < B; b++)
        for (size_t c = 0; c < C; c++)
            for (size_t hw = 0; hw < HW; hw++)
                want[(c * B + b) * HW + hw] = ref_normal(seed, layer, (b * C + c) * HW + hw);
    assert_close(u, want, n, 1.0, 1e-4, "normal_channel_major against the Box-Muller reference");

    /* Moments: mean 0 and variance 1 within 5 standard errors; P(|z| < 1). */
    double sum = 0, sum2 = 0;
    size_t inside = 0;
    for (size_t i = 0; i < n; i++) {
        expect_msg(isfinite(u[i]), "normal value %zu is not finite", i);
        sum += u[i];
        sum2 += (double)u[i] * u[i];
        inside += fabs(u[i]) < 1.0f;
    }
    const double mean = sum / (double)n, var = sum2 / (double)n - mean * mean;
    expect_msg(fabs(mean) < 5.0 / sqrt((double)n), "mean %g of %zu normals", mean, n);
    expect_msg(fabs(var - 1.0) < 5.0 * sqrt(2.0 / (double)n), "variance %g of %zu normals", var, n);
    const double p1 = 0.6826894921370859, frac = (double)inside / (double)n;
    expect_msg(fabs(frac - p1) < 5.0 * sqrt(p1 * (1 - p1) / (double)n), "P(|z| < 1) = %g", frac);

    /* Same seed and layer: identical. */
    float *u2 = run_normal(ctx, B, C, HW, layer, 1.0f, seed, pad);
    assert_bits_equal(u2, u, n, "normal_channel_major with the same seed");

    /* A share of the last B - 2 samples (from element 2*C*HW, off a Philox block's
     * boundary when C*HW is odd): the whole batch's values for them. */
    {
        const size_t first = 2, Bs = B - first;
        float *share = run_normal_at(ctx, Bs, C, HW, layer, 1.0f, seed, pad, first * C * HW);
        for (size_t c = 0; c < C; c++)
            for (size_t b = 0; b < Bs; b++)
                for (size_t hw = 0; hw < HW; hw++)
                    expect_msg(share[(c * Bs + b) * HW + hw] == u[(c * B + first + b) * HW + hw],
                               "normal share c=%zu b=%zu hw=%zu differs from the whole batch", c, b, hw);
        free(share);
    }
    free(u2);

    /* Another layer, or a seed differing only in its high word: different values. */
    const struct {
        unsigned layer;
        uint64_t seed;
    } other[] = {{layer + 1, seed}, {0, seed}, {layer, seed ^ (1ull << 33)}};
    for (size_t k = 0; k < 3; k++) {
        float *v = run_normal(ctx, B, C, HW, other[k].layer, 1.0f, other[k].seed, pad);
        size_t same = 0;
        for (size_t i = 0; i < n; i++)
            same += bits_of(v[i]) == bits_of(u[i]);
        expect_msg(same < n / 100, "layer %u seed %016llx: %zu of %zu values equal those of layer %u",
                   other[k].layer, (unsigned long long)other[k].seed, same, n, layer);
        free(v);
    }

    /* The scale multiplies the same normals. */
    const float scale = 0.3f;
    float *s = run_normal(ctx, B, C, HW, layer, scale, seed, pad);
    for (size_t i = 0; i < n; i++)
        expect_msg(bits_of(s[i]) == bits_of(scale * u[i]), "scaled normal %zu is %.9g, expected %.9g", i,
                   (double)s[i], (double)(scale * u[i]));
    free(s);
    free(want);
    free(u);
}
END_TEST

/* ----------------------------------------------------------------- conv3x3 -- */

/* out (Cout, N, H, W) = conv3x3(in (C, N, H, W), w (Cout, C, 3, 3)), stride 1, pad 1. */
static void ref_conv3x3(const float *in, const float *w, double *out, size_t C, size_t N, size_t H, size_t W,
                        size_t Cout) {
    for (size_t co = 0; co < Cout; co++)
        for (size_t n = 0; n < N; n++)
            for (size_t y = 0; y < H; y++)
                for (size_t x = 0; x < W; x++) {
                    double acc = 0;
                    for (size_t c = 0; c < C; c++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                const long sy = (long)y + ky - 1, sx = (long)x + kx - 1;
                                if (sy < 0 || sy >= (long)H || sx < 0 || sx >= (long)W)
                                    continue;
                                acc += (double)w[((co * C + c) * 3 + (size_t)ky) * 3 + (size_t)kx] *
                                       in[((c * N + n) * H + (size_t)sy) * W + (size_t)sx];
                            }
                    out[((co * N + n) * H + y) * W + x] = acc;
                }
}

START_TEST(test_conv3x3) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 31);
    const struct {
        size_t C, N, H, W, Cout;
    } shapes[] = {
        {1, 3, 5, 7, 4}, {5, 3, 5, 7, 6}, {3, 4, 6, 3, 5},
        {2, 3, 1, 9, 3}, {4, 5, 7, 5, 1}, {7, 2, 11, 13, 9},
    };
    /* One workspace kept across shapes (grows on demand), small limit. */
    snn_workspace shared = {.limit = 4096};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const size_t C = shapes[k].C, N = shapes[k].N, H = shapes[k].H, W = shapes[k].W,
                     Cout = shapes[k].Cout;
        const size_t n_in = C * N * H * W, n_w = Cout * C * 9, n = Cout * N * H * W, pad = 17;
        const size_t per_image = C * 9 * H * W * sizeof(float);
        float *in = random_array(&r, n_in, -1.0f, 1.0f), *w = random_array(&r, n_w, -1.0f, 1.0f);
        double *want = host_alloc_d(n);
        ref_conv3x3(in, w, want, C, N, H, W, Cout);
        cl_mem ind = dev_upload(ctx, in, n_in), wd = dev_upload(ctx, w, n_w);
        /* chunk of 1 image, a few KB, 2 images (N = 3: chunks 2 + 1), everything at once */
        const size_t limits[] = {1, 4096, 2 * per_image, (size_t)1 << 26, 0};
        for (size_t li = 0; li < sizeof limits / sizeof limits[0]; li++) {
            snn_workspace own = {.limit = limits[li]};
            snn_workspace *ws = limits[li] ? &own : &shared;
            /* A small limit: hand the op a sentinel-filled workspace with room beyond
             * max(limit, one image), which it must not touch. */
            const size_t allowed = (limits[li] > per_image ? limits[li] : per_image) / sizeof(float);
            const size_t ws_len = allowed + 23;
            if (limits[li] && limits[li] < ((size_t)1 << 20)) {
                own.buf.mem = dev_sentinel(ctx, ws_len);
                own.buf.cap = ws_len * sizeof(float);
            }
            cl_mem out = dev_sentinel(ctx, n + pad);
            ck_assert_snn_ok(snn_op_conv3x3(ctx, ind, C, N, H, W, wd, Cout, out, ws));
            float *got = dev_download(ctx, out, n + pad);
            char what[160];
            snprintf(what, sizeof what, "conv3x3 C=%zu N=%zu H=%zu W=%zu Cout=%zu limit=%zu", C, N, H, W,
                     Cout, ws->limit);
            assert_close(got, want, n, 1.0, 1e-4, what);
            assert_sentinel(got, n, n + pad, what);
            free(got);
            if (own.buf.mem && own.buf.cap == ws_len * sizeof(float)) {
                float *scratch = dev_download(ctx, own.buf.mem, ws_len);
                assert_sentinel(scratch, allowed, ws_len, "conv3x3 workspace beyond the limit");
                free(scratch);
            }
            snn_buffer_release(&out);
            if (ws == &own)
                snn_workspace_release(&own);
        }
        free(in);
        free(w);
        free(want);
        snn_buffer_release(&ind);
        snn_buffer_release(&wd);
    }
    snn_workspace_release(&shared);
}
END_TEST

/* ------------------------------------------------------ sparse convolutions -- */

/* Pooled spikes at a density: 0 with probability 1 - density, else 1/4 .. 1. */
static float *pooled_spikes(test_rng *r, size_t n, float density) {
    float *x = host_alloc(n);
    for (size_t i = 0; i < n; i++)
        x[i] = test_rng_uniform(r, 0.0f, 1.0f) < density ? (float)(1 + test_rng_u32(r) % 4) / 4.0f : 0.0f;
    return x;
}

/* dw (Cout, C, 3, 3) = sum over pixels of dout (Cout, N, H, W) times the input under
 * each tap; din (C, N, H, W) = the adjoint of the convolution applied to dout. */
static void ref_conv3x3_grads(const float *in, const float *w, const float *dout, double *dw, double *din, size_t C,
                              size_t N, size_t H, size_t W, size_t Cout) {
    for (size_t co = 0; co < Cout; co++)
        for (size_t n = 0; n < N; n++)
            for (size_t y = 0; y < H; y++)
                for (size_t x = 0; x < W; x++) {
                    const double g = dout[((co * N + n) * H + y) * W + x];
                    for (size_t c = 0; c < C; c++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                const long sy = (long)y + ky - 1, sx = (long)x + kx - 1;
                                if (sy < 0 || sy >= (long)H || sx < 0 || sx >= (long)W) continue;
                                const size_t wi = ((co * C + c) * 3 + (size_t)ky) * 3 + (size_t)kx;
                                const size_t xi = ((c * N + n) * H + (size_t)sy) * W + (size_t)sx;
                                dw[wi] += g * in[xi];
                                din[xi] += g * w[wi];
                            }
                }
}

/* The sparse path of snn_op_conv3x3 and snn_op_conv3x3_backward (both kernel forms)
 * against plain references on pooled spikes at densities 0, low and 1; at a threshold
 * of 0 the same inputs must take the dense path, and agree too. */
START_TEST(test_conv3x3_sparse) {
    snn_context *ctx = test_context();
    const float saved_density = ctx->sparse_density;
    const int saved_lane = ctx->lane_kernels;
    test_rng r;
    test_rng_seed(&r, 77);
    const struct {
        size_t C, N, H, W, Cout;
    } shapes[] = {{5, 3, 5, 7, 6}, {3, 4, 1, 9, 9}, {16, 2, 6, 6, 70}, {9, 3, 4, 5, 1}};
    const float densities[] = {0.0f, 0.05f, 1.0f};
    const size_t num_shapes = small_mode() ? 2 : SNN_ARRAY_LEN(shapes); /* the simulator: odd sizes only */
    for (size_t k = 0; k < num_shapes; k++)
        for (size_t d = 0; d < SNN_ARRAY_LEN(densities); d++)
            for (int mode = 0; mode < 3; mode++) { /* vector kernels, lane kernels, dense */
                const size_t C = shapes[k].C, N = shapes[k].N, H = shapes[k].H, W = shapes[k].W,
                             Cout = shapes[k].Cout, pad = 17;
                const size_t n_in = C * N * H * W, n_w = Cout * C * 9, n_out = Cout * N * H * W;
                float *in = pooled_spikes(&r, n_in, densities[d]);
                float *w = random_array(&r, n_w, -1.0f, 1.0f), *dout = random_array(&r, n_out, -1.0f, 1.0f);
                double *want = host_alloc_d(n_out), *want_dw = host_alloc_d(n_w), *want_din = host_alloc_d(n_in);
                ref_conv3x3(in, w, want, C, N, H, W, Cout);
                ref_conv3x3_grads(in, w, dout, want_dw, want_din, C, N, H, W, Cout);
                ctx->sparse_density = mode == 2 ? 0.0f : 1.0f;
                ctx->lane_kernels = mode == 1;
                cl_mem ind = dev_upload(ctx, in, n_in), wd = dev_upload(ctx, w, n_w), gd = dev_upload(ctx, dout, n_out);
                cl_mem out = dev_sentinel(ctx, n_out + pad), dw = dev_sentinel(ctx, n_w + pad);
                cl_mem din = dev_sentinel(ctx, n_in + pad);
                /* two images per chunk: the weight gradient adds chunks up */
                snn_workspace ws = {.limit = 2 * C * 9 * H * W * sizeof(float)}, ws2 = ws;
                ck_assert_snn_ok(snn_op_conv3x3(ctx, ind, C, N, H, W, wd, Cout, out, &ws));
                ck_assert_snn_ok(snn_op_conv3x3_backward(ctx, ind, C, N, H, W, wd, Cout, gd, dw, din, &ws, &ws2));
                char what[200];
                snprintf(what, sizeof what, "conv3x3 %s C=%zu N=%zu H=%zu W=%zu Cout=%zu density=%.2f",
                         mode == 0 ? "sparse" : mode == 1 ? "sparse lane" : "dense", C, N, H, W, Cout,
                         (double)densities[d]);
                const unsigned long chunks = 2 * ((N + 1) / 2); /* forward and backward */
                expect_msg(mode == 2 ? ws.sparse.dense_chunks == chunks && ws.sparse.sparse_chunks == 0
                                     : ws.sparse.sparse_chunks == chunks && ws.sparse.dense_chunks == 0,
                           "%s: %lu sparse and %lu dense chunks", what, ws.sparse.sparse_chunks,
                           ws.sparse.dense_chunks);
                float *got = dev_download(ctx, out, n_out + pad), *gdw = dev_download(ctx, dw, n_w + pad);
                float *gdin = dev_download(ctx, din, n_in + pad);
                char w2[240];
                /* sums of at most C*9 (forward) or N*H*W (weight) products of O(1) values */
                snprintf(w2, sizeof w2, "%s out", what);
                assert_close(got, want, n_out, 1.0, 1e-5, w2);
                assert_sentinel(got, n_out, n_out + pad, w2);
                snprintf(w2, sizeof w2, "%s dW", what);
                assert_close(gdw, want_dw, n_w, 1.0, 1e-5, w2);
                assert_sentinel(gdw, n_w, n_w + pad, w2);
                snprintf(w2, sizeof w2, "%s dx", what);
                assert_close(gdin, want_din, n_in, 1.0, 1e-5, w2);
                assert_sentinel(gdin, n_in, n_in + pad, w2);
                free(got);
                free(gdw);
                free(gdin);
                snn_workspace_release(&ws);
                snn_workspace_release(&ws2);
                cl_mem *bufs[] = {&ind, &wd, &gd, &out, &dw, &din};
                for (size_t b = 0; b < SNN_ARRAY_LEN(bufs); b++) snn_buffer_release(bufs[b]);
                free(in);
                free(w);
                free(dout);
                free(want);
                free(want_dw);
                free(want_din);
            }
    ctx->sparse_density = saved_density;
    ctx->lane_kernels = saved_lane;
}
END_TEST

/* The weight gradient of the convolution of a difference of two trajectories' inputs
 * (training with the estimate), both kernel forms, against the plain reference on the
 * difference; a dense difference is refused, leaving the gradient untouched. Every
 * device buffer is made once, at its largest size, before anything runs: Oclgrind's
 * uninitialized-value plugin misreads buffers that reuse a released one's memory
 * (tools/oclgrind.sh, defect 2). */
START_TEST(test_conv3x3_wgrad_diff) {
    snn_context *ctx = test_context();
    const float saved_density = ctx->sparse_density;
    const int saved_lane = ctx->lane_kernels;
    test_rng r;
    test_rng_seed(&r, 78);
    const struct {
        size_t C, N, H, W, Cout;
    } shapes[] = {{5, 3, 5, 7, 6}, {16, 2, 6, 6, 70}};
    const size_t pad = 17, max_img = 16 * 2 * 36, max_w = 70 * 16 * 9, max_out = 70 * 2 * 36;
    const size_t max_chunk = 2; /* images per chunk: the workspace limit below */
    cl_mem xd = dev_sentinel(ctx, 2 * max_img), gd = dev_sentinel(ctx, max_out), dw = dev_sentinel(ctx, max_w + pad);
    snn_workspace ws = {.limit = 0};
    ck_assert_snn_ok(snn_dbuf_reserve(ctx, &ws.sparse.part, max_chunk * 36 * sizeof(cl_uint)));
    ck_assert_snn_ok(snn_dbuf_reserve(ctx, &ws.sparse.trans, max_chunk * 36 * 72 * sizeof(float)));
    for (size_t k = 0; k < SNN_ARRAY_LEN(shapes); k++)
        for (int mode = 0; mode < 4; mode++) { /* vector, lane, vector accumulating, a dense difference */
            const size_t C = shapes[k].C, N = shapes[k].N, H = shapes[k].H, W = shapes[k].W, Cout = shapes[k].Cout;
            const size_t HW = H * W, n_img = C * N * HW, n_w = Cout * C * 9, n_out = Cout * N * HW;
            /* (C, 2, N, H, W): the reference images, then the perturbed ones */
            float *ref = pooled_spikes(&r, n_img, 0.3f), *x = host_alloc(2 * n_img), *diff = host_alloc(n_img);
            for (size_t c = 0; c < C; c++)
                for (size_t i = 0; i < N * HW; i++) {
                    const float a = ref[c * N * HW + i];
                    const int flip = mode == 3 || test_rng_uniform(&r, 0.0f, 1.0f) < 0.03f;
                    const float b = flip ? (float)(test_rng_u32(&r) % 5) / 4.0f : a;
                    x[(c * 2) * N * HW + i] = a;
                    x[(c * 2 + 1) * N * HW + i] = b;
                    diff[c * N * HW + i] = b - a;
                }
            float *w = random_array(&r, n_w, -1.0f, 1.0f), *dout = random_array(&r, n_out, -1.0f, 1.0f);
            float *start = sentinel_array(n_w + pad);
            const int accumulate = mode == 2;
            if (accumulate) test_fill_uniform(&r, start, n_w, -1.0f, 1.0f);
            double *want = host_alloc_d(n_w), *unused = host_alloc_d(n_img);
            ref_conv3x3_grads(diff, w, dout, want, unused, C, N, H, W, Cout);
            if (accumulate)
                for (size_t i = 0; i < n_w; i++) want[i] += start[i];
            ctx->sparse_density = 0.25f;
            ctx->lane_kernels = mode == 1;
            ws.limit = max_chunk * C * 9 * HW * sizeof(float);
            ck_assert_snn_ok(snn_buffer_write(ctx, xd, 0, 2 * n_img * sizeof(float), x));
            ck_assert_snn_ok(snn_buffer_write(ctx, gd, 0, n_out * sizeof(float), dout));
            ck_assert_snn_ok(snn_buffer_write(ctx, dw, 0, (n_w + pad) * sizeof(float), start));
            int dense = -1;
            ck_assert_snn_ok(snn_op_conv3x3_wgrad_diff(ctx, (snn_images){xd, 2 * N, 0}, N, C, N, H, W, Cout,
                                                       (snn_images){gd, N, 0}, dw, accumulate ? 1.0f : 0.0f, &ws,
                                                       &dense));
            char what[200];
            snprintf(what, sizeof what, "conv3x3_wgrad_diff mode %d C=%zu N=%zu H=%zu W=%zu Cout=%zu", mode, C, N, H,
                     W, Cout);
            float *got = dev_download(ctx, dw, n_w + pad);
            if (mode == 3) {
                expect_msg(dense == 1, "%s: a dense difference was not refused", what);
                assert_sentinel(got, 0, n_w + pad, what);
            } else {
                expect_msg(dense == 0, "%s: refused a sparse difference", what);
                assert_close(got, want, n_w, 1.0, 1e-5, what);
                assert_sentinel(got, n_w, n_w + pad, what);
            }
            free(got);
            free(ref);
            free(x);
            free(diff);
            free(w);
            free(dout);
            free(start);
            free(want);
            free(unused);
        }
    expect_msg(ws.sparse.trans.cap == max_chunk * 36 * 72 * sizeof(float), "the transposed gradient's buffer grew");
    snn_workspace_release(&ws);
    snn_buffer_release(&xd);
    snn_buffer_release(&gd);
    snn_buffer_release(&dw);
    ctx->sparse_density = saved_density;
    ctx->lane_kernels = saved_lane;
}
END_TEST

/* --------------------------------------------------------------------- LIF -- */

/* Host views of the buffers an snn_lif_args names. */
typedef struct lif_host {
    const float *in, *scale, *shift;
    float *mem, *delta, *spk;
    double *sq;         /* indexed like the device buffer, sq_off included */
    int mode;           /* contraction, below */
    size_t reset_flips; /* lyapunov: steps where exactly one trajectory resets */
} lif_host;

/* OpenCL C lets the compiler contract a*b + c into one fused multiply-add
 * (FP_CONTRACT is ON by default and cl/ does not turn it off), and PoCL on an FMA
 * CPU does so, so `beta*v + (a*x + c) - reset` may be evaluated with the inner, the
 * outer, both or neither product fused. The references below follow one mode at a
 * time; the device has to match one of them bit for bit (membranes and spikes).
 * FINDING (reported, not a test failure): on PoCL the kernels match CONTRACT_BOTH,
 * not the unfused CONTRACT_NONE that the source reads as. */
enum { CONTRACT_NONE, CONTRACT_INNER, CONTRACT_OUTER, CONTRACT_BOTH, N_CONTRACT };
static const char *const contract_names[] = {"unfused", "inner fma", "outer fma", "both fma"};

static float lif_update(int mode, float beta, float v, float a, float x, float c, float reset) {
    const float cur = mode == CONTRACT_INNER || mode == CONTRACT_BOTH ? fmaf(a, x, c) : a * x + c;
    const float leak = mode == CONTRACT_OUTER || mode == CONTRACT_BOTH ? fmaf(beta, v, cur) : beta * v + cur;
    return leak - reset;
}

/* beta*d + a*dx - dreset; clang fuses the left product first. */
static float delta_update(int mode, float beta, float d, float a, float dx, float dreset) {
    const float ad = a * dx;
    const float leak = mode == CONTRACT_OUTER || mode == CONTRACT_BOTH ? fmaf(beta, d, ad) : beta * d + ad;
    return leak - dreset;
}

static void ref_lif_forward(const snn_lif_args *a, lif_host *h) {
    const size_t M = a->B * a->S;
    for (size_t g = 0; g < a->G; g++)
        for (size_t m = 0; m < M; m++) {
            const float sc = h->scale[g], sh = h->shift[g];
            float v = h->mem[g * M + m];
            for (size_t t = 0; t < a->T; t++) {
                const float x = h->in[a->in_off + g * a->gstride + t * a->tstride + m];
                const float reset = v > a->thr ? a->thr : 0.0f;
                v = lif_update(h->mode, a->beta, v, sc, x, sh, reset);
                h->spk[g * a->spk_gstride + t * M + m] = v > a->thr ? 1.0f : 0.0f;
            }
            h->mem[g * M + m] = v;
        }
}

static void ref_lif_lyapunov(const snn_lif_args *a, lif_host *h) {
    const size_t M = a->B * a->S, n = a->G * a->S, S = a->S;
    for (size_t t = 0; t < a->T; t++)
        for (size_t b = 0; b < a->B; b++) {
            double acc = 0;
            for (size_t i = 0; i < n; i++) {
                const size_t g = i / S, m = b * S + i % S, state = g * M + m;
                const size_t src = a->in_off + g * a->gstride + t * a->tstride + m;
                const float x = h->in[src], xp = h->in[src + a->p_off], sc = h->scale[g];
                const float v = h->mem[state], d = h->delta[state];
                const float reset = v > a->thr ? a->thr : 0.0f;
                const float reset_p = v + d > a->thr ? a->thr : 0.0f;
                h->reset_flips += reset_p != reset;
                const float v_new = lif_update(h->mode, a->beta, v, sc, x, h->shift[g], reset);
                const float d_new = delta_update(h->mode, a->beta, d, sc, xp - x, reset_p - reset);
                h->mem[state] = v_new;
                h->delta[state] = d_new;
                const size_t out = g * a->spk_gstride + t * M + m;
                h->spk[out] = v_new > a->thr ? 1.0f : 0.0f;
                h->spk[out + a->T * M] = v_new + d_new > a->thr ? 1.0f : 0.0f;
                acc += (double)d_new * d_new;
            }
            const float renorm = a->eps / sqrtf((float)acc + 1e-12f);
            for (size_t i = 0; i < n; i++)
                h->delta[(i / S) * M + b * S + i % S] *= renorm;
            h->sq[a->sq_off + (a->t0 + t) * a->B + b] = acc;
        }
}

/* Runs the reference (forward, or lyapunov when h->delta is set) from mem0/delta0 in
 * each contraction mode until its membranes equal the device's `mem` bit for bit, and
 * leaves that mode's results in h (spk and sq sentinel-initialized). Fails, showing the
 * unfused reference's first difference, when no mode matches. */
static int run_lif_reference(const snn_lif_args *a, lif_host *h, const float *mem0, const float *delta0,
                             size_t spk_len, size_t sq_len, const float *mem, const char *what) {
    const size_t n = a->G * a->B * a->S;
    for (int mode = 0; mode <= N_CONTRACT; mode++) {
        h->mode = mode < N_CONTRACT ? mode : CONTRACT_NONE;
        memcpy(h->mem, mem0, n * sizeof(float));
        if (h->delta && delta0)
            memcpy(h->delta, delta0, n * sizeof(float));
        h->reset_flips = 0;
        fill_sentinel(h->spk, 0, spk_len);
        if (h->sq)
            for (size_t i = 0; i < sq_len; i++)
                h->sq[i] = NAN;
        if (h->delta)
            ref_lif_lyapunov(a, h);
        else
            ref_lif_forward(a, h);
        if (mode < N_CONTRACT && memcmp(h->mem, mem, n * sizeof(float)) == 0)
            return mode;
    }
    char msg[200];
    snprintf(msg, sizeof msg, "%s (no contraction mode matches; the %s reference is shown)", what,
             contract_names[CONTRACT_NONE]);
    assert_bits_equal(mem, h->mem, n, msg); /* fails */
    return -1;
}

/* Input (NaN sentinel everywhere, random values at the positions a step range reads). */
static float *lif_input(test_rng *r, size_t len, size_t in_off, size_t gstride, size_t tstride, size_t G,
                        size_t M, size_t T) {
    float *in = sentinel_array(len);
    for (size_t g = 0; g < G; g++)
        for (size_t t = 0; t < (tstride ? T : 1); t++)
            for (size_t m = 0; m < M; m++)
                in[in_off + g * gstride + t * tstride + m] = test_rng_uniform(r, -0.5f, 1.5f);
    return in;
}

/* Checks spikes of layout spk[g*sg + t*M + m] (t < T), gaps and tail being sentinel. */
static void check_spikes(const float *got, const float *want, size_t len, size_t G, size_t sg, size_t TM,
                         const char *what) {
    for (size_t g = 0; g < G; g++) {
        for (size_t i = g * sg; i < g * sg + TM; i++)
            expect_msg(got[i] == want[i], "%s: spike %zu (group %zu, offset %zu) is %g, expected %g", what, i,
                       g, i - g * sg, (double)got[i], (double)want[i]);
        assert_sentinel(got, g * sg + TM, g + 1 < G ? (g + 1) * sg : g * sg + TM, what);
    }
    assert_sentinel(got, (G - 1) * sg + TM, len, what);
}

START_TEST(test_lif_forward) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 41);
    const size_t G = 3, B = 2, S = 13, M = B * S, T = 7, pad = 6;
    const size_t in_off = 5, tstride = M + 3, gstride = T * tstride + 7;
    const size_t in_len = in_off + (G - 1) * gstride + (T - 1) * tstride + M + 11;
    float *in = lif_input(&r, in_len, in_off, gstride, tstride, G, M, T);
    float *scale = random_array(&r, G, 0.5f, 1.5f), *shift = random_array(&r, G, -0.2f, 0.3f);
    float *mem0 = sentinel_array(G * M + pad);
    test_fill_uniform(&r, mem0, G * M, -0.5f, 1.5f);                      /* some start above threshold */
    mem0[0] = 0.9f, mem0[1] = nextafterf(0.9f, 2.0f), mem0[M + 2] = 0.9f; /* at and just above thr */
    cl_mem ind = dev_upload(ctx, in, in_len), scd = dev_upload(ctx, scale, G),
           shd = dev_upload(ctx, shift, G);

    snn_lif_args a = {0};
    a.in = ind, a.in_off = in_off, a.gstride = gstride, a.tstride = tstride;
    a.scale = scd, a.shift = shd, a.beta = 0.83f, a.thr = 0.9f;
    a.G = G, a.S = S, a.B = B, a.T = T, a.t0 = 0;

    /* One call over all 7 steps, groups spk_gstride apart with gaps. */
    const size_t sg = T * M + 4, spk_len = (G - 1) * sg + T * M + 9;
    cl_mem memd = dev_upload(ctx, mem0, G * M + pad), spkd = dev_sentinel(ctx, spk_len);
    a.mem = memd, a.spk = spkd, a.spk_gstride = sg;
    ck_assert_snn_ok(snn_op_lif_forward(ctx, &a));
    float *spk = dev_download(ctx, spkd, spk_len), *mem = dev_download(ctx, memd, G * M + pad);

    float *want_spk = sentinel_array(spk_len), *want_mem = host_alloc(G * M);
    lif_host h = {in, scale, shift, want_mem, NULL, want_spk, NULL, 0, 0};
    const int mode = run_lif_reference(&a, &h, mem0, NULL, spk_len, 0, mem, "lif_forward membranes");
    expect_msg(mode >= 0, "no contraction mode matches");
    check_spikes(spk, want_spk, spk_len, G, sg, T * M, "lif_forward spikes");
    assert_sentinel(mem, G * M, G * M + pad, "lif_forward membranes");
    const size_t nspk = count_spikes(want_spk, (G - 1) * sg + T * M);
    expect_msg(nspk > G * T * M / 10 && nspk < G * T * M * 9 / 10, "implausible spike count %zu", nspk);

    /* The same steps in two chunks (3 + 4) with the state carried in mem. */
    cl_mem mem2d = dev_upload(ctx, mem0, G * M + pad);
    const size_t Tc[2] = {3, 4};
    size_t t_start = 0;
    for (int c = 0; c < 2; c++) {
        const size_t sgc = Tc[c] * M + 1 + (size_t)c, len = (G - 1) * sgc + Tc[c] * M + 5;
        cl_mem cd = dev_sentinel(ctx, len);
        snn_lif_args ac = a;
        ac.in_off = in_off + t_start * tstride, ac.T = Tc[c], ac.t0 = t_start;
        ac.mem = mem2d, ac.spk = cd, ac.spk_gstride = sgc;
        ck_assert_snn_ok(snn_op_lif_forward(ctx, &ac));
        float *got = dev_download(ctx, cd, len), *slice = sentinel_array(len);
        for (size_t g = 0; g < G; g++)
            for (size_t t = 0; t < Tc[c]; t++)
                memcpy(slice + g * sgc + t * M, spk + g * sg + (t_start + t) * M, M * sizeof(float));
        check_spikes(got, slice, len, G, sgc, Tc[c] * M, "lif_forward chunk spikes");
        free(got);
        free(slice);
        snn_buffer_release(&cd);
        t_start += Tc[c];
    }
    float *mem2 = dev_download(ctx, mem2d, G * M + pad);
    assert_bits_equal(mem2, mem, G * M, "lif_forward membranes after two chunks");
    assert_sentinel(mem2, G * M, G * M + pad, "lif_forward membranes after two chunks");
    free(mem2);
    snn_buffer_release(&mem2d);

    free(spk);
    free(mem);
    free(want_spk);
    free(want_mem);
    free(in);
    free(mem0);
    free(scale);
    free(shift);
    snn_buffer_release(&ind);
    snn_buffer_release(&scd);
    snn_buffer_release(&shd);
    snn_buffer_release(&memd);
    snn_buffer_release(&spkd);
}
END_TEST

/* tstride = 0: one input repeated at every step (direct encoding). */
START_TEST(test_lif_forward_repeat) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 42);
    const size_t G = 2, B = 3, S = 5, M = B * S, T = 5, pad = 3;
    const size_t in_off = 3, gstride = M + 2, in_len = in_off + (G - 1) * gstride + M + 4;
    float *in = lif_input(&r, in_len, in_off, gstride, 0, G, M, T);
    float *scale = random_array(&r, G, 0.2f, 0.6f), *shift = random_array(&r, G, -0.1f, 0.2f);
    float *mem0 = sentinel_array(G * M + pad);
    test_fill_uniform(&r, mem0, G * M, 0.0f, 1.0f);
    mem0[0] = 1.0f, mem0[M + 1] = nextafterf(1.0f, 2.0f); /* at and just above thr */
    const size_t sg = T * M, spk_len = G * sg + 7;
    cl_mem ind = dev_upload(ctx, in, in_len), scd = dev_upload(ctx, scale, G),
           shd = dev_upload(ctx, shift, G);
    cl_mem memd = dev_upload(ctx, mem0, G * M + pad), spkd = dev_sentinel(ctx, spk_len);
    snn_lif_args a = {0};
    a.in = ind, a.in_off = in_off, a.gstride = gstride, a.tstride = 0;
    a.scale = scd, a.shift = shd, a.beta = 0.95f, a.thr = 1.0f;
    a.mem = memd, a.spk = spkd, a.spk_gstride = sg;
    a.G = G, a.S = S, a.B = B, a.T = T;
    ck_assert_snn_ok(snn_op_lif_forward(ctx, &a));
    float *spk = dev_download(ctx, spkd, spk_len), *mem = dev_download(ctx, memd, G * M + pad);
    float *want_spk = sentinel_array(spk_len), *want_mem = host_alloc(G * M);
    lif_host h = {in, scale, shift, want_mem, NULL, want_spk, NULL, 0, 0};
    const int mode =
        run_lif_reference(&a, &h, mem0, NULL, spk_len, 0, mem, "lif_forward (tstride 0) membranes");
    expect_msg(mode >= 0, "no contraction mode matches");
    check_spikes(spk, want_spk, spk_len, G, sg, T * M, "lif_forward (tstride 0) spikes");
    assert_sentinel(mem, G * M, G * M + pad, "lif_forward (tstride 0) membranes");
    expect_msg(count_spikes(want_spk, G * sg) > 0, "no spikes at all");
    free(spk);
    free(mem);
    free(want_spk);
    free(want_mem);
    free(in);
    free(mem0);
    free(scale);
    free(shift);
    snn_buffer_release(&ind);
    snn_buffer_release(&scd);
    snn_buffer_release(&shd);
    snn_buffer_release(&memd);
    snn_buffer_release(&spkd);
}
END_TEST

/* ------------------------------------------------------------ lif_lyapunov -- */

static const struct lyap_case {
    size_t G, S, B;
    int perturbed_input; /* p_off > 0 */
    float eps;
    int expect_reset_flips;
} lyap_cases[] = {
    /* G*S = 303: more than one pass of a work-group, not a multiple of its size */
    {3, 101, 3, 0, 1e-3f, 0},
    {3, 101, 3, 1, 1e-3f, 0},
    /* G*S = 14: most work-items idle */
    {2, 7, 4, 1, 1e-2f, 1},
    /* G*S = 257 */
    {1, 257, 2, 0, 1e-4f, 0},
    /* a large eps: the trajectories often reset differently */
    {2, 9, 3, 1, 0.5f, 1},
};

START_TEST(test_lif_lyapunov) {
    snn_context *ctx = test_context();
    const struct lyap_case *lc = &lyap_cases[_i];
    test_rng r;
    test_rng_seed(&r, 51 + (uint64_t)_i);
    const size_t G = lc->G, S = lc->S, B = lc->B, M = B * S, T = 7, pad = 5;
    const size_t in_off = 4, tstride = M + 5, gstride = T * tstride + 3;
    const size_t ref_len = in_off + (G - 1) * gstride + (T - 1) * tstride + M;
    const size_t p_off = lc->perturbed_input ? ref_len + 6 : 0, in_len = ref_len + p_off + 2;
    float *in = lif_input(&r, in_len, in_off, gstride, tstride, G, M, T);
    if (p_off)
        for (size_t i = 0; i < ref_len; i++)
            if (!is_sentinel(in, i))
                in[i + p_off] = in[i] + test_rng_uniform(&r, -0.05f, 0.05f);
    float *scale = random_array(&r, G, 0.5f, 1.5f), *shift = random_array(&r, G, -0.2f, 0.3f);
    const size_t sl = G * M + pad; /* state buffers with a sentinel tail */
    float *mem0 = sentinel_array(sl), *delta0 = sentinel_array(sl);
    test_fill_uniform(&r, mem0, G * M, -0.5f, 1.5f);
    test_fill_uniform(&r, delta0, G * M, -lc->eps, lc->eps);
    mem0[0] = 0.9f, mem0[1] = nextafterf(0.9f, 2.0f); /* at and just above thr */
    delta0[0] = 0.0f, delta0[1] = -lc->eps;           /* perturbed: at thr, below */
    const size_t sq_off = 5, sq_len = sq_off + T * B + 6;

    cl_mem ind = dev_upload(ctx, in, in_len), scd = dev_upload(ctx, scale, G),
           shd = dev_upload(ctx, shift, G);
    snn_lif_args a = {0};
    a.in = ind, a.in_off = in_off, a.gstride = gstride, a.tstride = tstride, a.p_off = p_off;
    a.scale = scd, a.shift = shd, a.beta = 0.83f, a.thr = 0.9f, a.eps = lc->eps;
    a.G = G, a.S = S, a.B = B, a.T = T, a.t0 = 0, a.sq_off = sq_off;

    /* One call over all steps. */
    const size_t sg = 2 * T * M + 3, spk_len = (G - 1) * sg + 2 * T * M + 7;
    cl_mem memd = dev_upload(ctx, mem0, sl), deltad = dev_upload(ctx, delta0, sl);
    cl_mem spkd = dev_sentinel(ctx, spk_len), sqd = dev_sentinel(ctx, sq_len);
    a.mem = memd, a.delta = deltad, a.spk = spkd, a.spk_gstride = sg, a.sq = sqd;
    ck_assert_snn_ok(snn_op_lif_lyapunov(ctx, &a));
    float *spk = dev_download(ctx, spkd, spk_len), *mem = dev_download(ctx, memd, sl);
    float *delta = dev_download(ctx, deltad, sl), *sq = dev_download(ctx, sqd, sq_len);

    float *want_spk = sentinel_array(spk_len), *want_mem = host_alloc(sl), *want_delta = host_alloc(sl);
    double *want_sq = host_alloc_d(sq_len);
    lif_host h = {in, scale, shift, want_mem, want_delta, want_spk, want_sq, 0, 0};
    const int mode = run_lif_reference(&a, &h, mem0, delta0, spk_len, sq_len, mem, "lif_lyapunov membranes");
    expect_msg(mode >= 0, "no contraction mode matches");

    /* Both trajectories' spikes, exactly (the perturbed ones depend on delta, which is
     * only close; a flip would need mem + delta within an ulp of the threshold). */
    check_spikes(spk, want_spk, spk_len, G, sg, 2 * T * M, "lif_lyapunov spikes");
    size_t flips = 0; /* make sure the perturbed trajectory is not trivially the reference */
    for (size_t g = 0; g < G; g++)
        for (size_t i = 0; i < T * M; i++)
            flips += want_spk[g * sg + i] != want_spk[g * sg + T * M + i];
    expect_msg(!lc->perturbed_input || flips > 0, "perturbed trajectory never differs from the reference");
    expect_msg(!lc->expect_reset_flips || h.reset_flips > 0, "the trajectories never reset differently");
    assert_sentinel(mem, G * M, sl, "lif_lyapunov membranes");
    double *want_delta_d = host_alloc_d(G * M);
    for (size_t i = 0; i < G * M; i++)
        want_delta_d[i] = want_delta[i];
    /* delta has norm eps per sample: floor the relative error at eps / sqrt(G*S). */
    assert_close(delta, want_delta_d, G * M, lc->eps / sqrt((double)(G * S)), 1e-4, "lif_lyapunov delta");
    assert_sentinel(delta, G * M, sl, "lif_lyapunov delta");
    assert_sentinel(sq, 0, sq_off, "lif_lyapunov sq (before sq_off)");
    assert_close(sq + sq_off, want_sq + sq_off, T * B, 1e-30, 1e-5, "lif_lyapunov sq");
    assert_sentinel(sq, sq_off + T * B, sq_len, "lif_lyapunov sq (after)");
    for (size_t i = sq_off; i < sq_off + T * B; i++)
        expect_msg(sq[i] > 0.0f, "sq[%zu] = %g", i, (double)sq[i]);

    /* The same steps in two chunks (3 + 4): bit-identical to the single call. */
    cl_mem mem2d = dev_upload(ctx, mem0, sl), delta2d = dev_upload(ctx, delta0, sl),
           sq2d = dev_sentinel(ctx, sq_len);
    const size_t Tc[2] = {3, 4};
    size_t t_start = 0;
    for (int c = 0; c < 2; c++) {
        const size_t sgc = 2 * Tc[c] * M + 2, len = (G - 1) * sgc + 2 * Tc[c] * M + 4;
        cl_mem cd = dev_sentinel(ctx, len);
        snn_lif_args ac = a;
        ac.in_off = in_off + t_start * tstride, ac.T = Tc[c], ac.t0 = t_start;
        ac.mem = mem2d, ac.delta = delta2d, ac.spk = cd, ac.spk_gstride = sgc, ac.sq = sq2d;
        ck_assert_snn_ok(snn_op_lif_lyapunov(ctx, &ac));
        float *got = dev_download(ctx, cd, len), *slice = sentinel_array(len);
        for (size_t g = 0; g < G; g++)
            for (size_t t = 0; t < Tc[c]; t++) {
                memcpy(slice + g * sgc + t * M, spk + g * sg + (t_start + t) * M, M * sizeof(float));
                memcpy(slice + g * sgc + (Tc[c] + t) * M, spk + g * sg + (T + t_start + t) * M,
                       M * sizeof(float));
            }
        check_spikes(got, slice, len, G, sgc, 2 * Tc[c] * M, "lif_lyapunov chunk spikes");
        free(got);
        free(slice);
        snn_buffer_release(&cd);
        t_start += Tc[c];
    }
    float *mem2 = dev_download(ctx, mem2d, sl), *delta2 = dev_download(ctx, delta2d, sl);
    float *sq2 = dev_download(ctx, sq2d, sq_len);
    assert_bits_equal(mem2, mem, sl, "lif_lyapunov membranes after two chunks");
    assert_bits_equal(delta2, delta, sl, "lif_lyapunov delta after two chunks");
    assert_bits_equal(sq2, sq, sq_len, "lif_lyapunov sq after two chunks");

    free(mem2);
    free(delta2);
    free(sq2);
    free(want_delta_d);
    free(spk);
    free(mem);
    free(delta);
    free(sq);
    free(want_spk);
    free(want_mem);
    free(want_delta);
    free(want_sq);
    free(in);
    free(scale);
    free(shift);
    free(mem0);
    free(delta0);
    cl_mem *bufs[] = {&ind, &scd, &shd, &memd, &deltad, &spkd, &sqd, &mem2d, &delta2d, &sq2d};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        snn_buffer_release(bufs[i]);
}
END_TEST

/* ------------------------------------------------------------- conv3x3_diff -- */

/* A random pooled spike value (0, 1/4, .. 1): differences of two are exact. */
static float spike_value(test_rng *r) { return 0.25f * (float)(test_rng_u32(r) % 5); }

static const struct diff_case {
    size_t C, N, H, W, Cout;
    int dense; /* differences at most pixels */
} diff_cases[] = {
    {3, 4, 5, 7, 6, 0},
    {5, 3, 1, 6, 4, 0}, /* one row: windows cut at the top and bottom */
    {2, 2, 6, 1, 3, 0}, /* one column */
    {4, 3, 4, 4, 5, 1},
};

START_TEST(test_conv3x3_diff) {
    snn_context *ctx = test_context();
    const struct diff_case *dc = &diff_cases[_i];
    test_rng r;
    test_rng_seed(&r, 91 + (uint64_t)_i);
    const size_t C = dc->C, N = dc->N, H = dc->H, W = dc->W, Cout = dc->Cout, HW = H * W, NP = N * HW;
    const size_t K = C * 9, cstride = 2 * N + 1, p_off = N; /* image 2N of each channel is a gap */
    const size_t in_len = C * cstride * HW;
    float *in = sentinel_array(in_len);
    for (size_t c = 0; c < C; c++)
        for (size_t i = 0; i < NP; i++) {
            const size_t j = c * cstride * HW + i;
            in[j] = in[j + p_off * HW] = spike_value(&r);
        }
    /* Differences: every corner of image 0, an edge of the last image, a few random. */
    float *diff = host_alloc(C * NP);
    const size_t last = (N - 1) * HW;
    size_t at[] = {0, W - 1, (H - 1) * W, HW - 1, last + (H - 1) * W + W / 2, 0, 0, 0};
    for (size_t k = 5; k < 8; k++) at[k] = test_rng_u32(&r) % NP;
    for (size_t k = 0; k < (dc->dense ? NP : 8); k++) {
        const size_t i = dc->dense ? k : at[k], c = test_rng_u32(&r) % C;
        if (dc->dense && test_rng_u32(&r) % 3 == 0) continue;
        float *xp = &in[c * cstride * HW + p_off * HW + i];
        *xp = *xp == 1.0f ? 0.0f : *xp + 0.25f;
    }
    for (size_t c = 0; c < C; c++)
        for (size_t i = 0; i < NP; i++) {
            const size_t j = c * cstride * HW + i;
            diff[c * NP + i] = in[j + p_off * HW] - in[j];
        }
    float *w = random_array(&r, Cout * K, -1.0f, 1.0f);
    /* Reference: output pixels with a difference in their window, and conv(xp - x). */
    int *marked = calloc(NP, sizeof(int));
    double *want = host_alloc_d(Cout * NP);
    size_t expect_slots = 0;
    for (size_t i = 0; i < NP; i++) {
        const size_t n = i / HW;
        const int y = (int)(i % HW / W), x = (int)(i % W);
        for (size_t c = 0; c < C; c++)
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++) {
                    const int sy = y + ky - 1, sx = x + kx - 1;
                    if (sy < 0 || sy >= (int)H || sx < 0 || sx >= (int)W) continue;
                    const float d = diff[c * NP + n * HW + (size_t)sy * W + (size_t)sx];
                    marked[i] |= d != 0.0f;
                    for (size_t co = 0; co < Cout; co++)
                        want[co * NP + i] += (double)w[co * K + c * 9 + (size_t)(ky * 3 + kx)] * d;
                }
        expect_slots += marked[i] != 0;
    }
    ck_assert_msg(dc->dense ? expect_slots > NP / 16 : expect_slots > 0 && expect_slots < NP,
                  "case %d: %zu of %zu pixels marked", _i, expect_slots, NP);

    cl_mem ind = dev_upload(ctx, in, in_len), wd = dev_upload(ctx, w, Cout * K);
    snn_conv_diff d = {0};
    /* The same sizes in every case, none growing: Oclgrind's uninitialized-value
     * tracking misreads a buffer that reuses a smaller released one's slot. */
    const size_t big = (size_t)1 << 16;
    snn_dbuf *bufs[] = {&d.idx, &d.mark, &d.count, &d.list, &d.nnz, &d.ent, &d.val, &d.dx};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++) ck_assert_snn_ok(snn_dbuf_reserve(ctx, bufs[k], big));
    int dense = -1;
    if (!dc->dense) {
        /* Plenty of slots, then exactly enough (largest first: buffers that grow
         * confuse Oclgrind's uninitialized-value tracking, tools/oclgrind.sh). */
        const size_t caps[2] = {NP, expect_slots};
        for (int k = 0; k < 2; k++) {
            ck_assert_snn_ok(snn_op_conv3x3_diff(ctx, ind, C, cstride, p_off, N, H, W, wd, Cout, caps[k], 0, &d, &dense));
            ck_assert_int_eq(dense, 0);
            ck_assert_uint_eq(d.slots, expect_slots);
            float *idxf = dev_download(ctx, d.idx.mem, NP + N), *dx = dev_download(ctx, d.dx.mem, Cout * d.slots);
            int *idx = malloc((NP + N) * sizeof(int)), *seen = calloc(d.slots, sizeof(int));
            memcpy(idx, idxf, (NP + N) * sizeof(int));
            for (size_t n = 0; n < N; n++) {
                int any = 0;
                for (size_t i = n * HW; i < (n + 1) * HW; i++) any |= marked[i];
                expect_msg(idx[NP + n] == any, "case %d: image %zu flagged %d, has slots %d", _i, n, idx[NP + n], any);
            }
            for (size_t i = 0; i < NP; i++) {
                expect_msg((idx[i] >= 0) == (marked[i] != 0), "case %d: pixel %zu slot %d, marked %d", _i, i,
                           idx[i], marked[i]);
                if (idx[i] < 0) {
                    for (size_t co = 0; co < Cout; co++)
                        expect_msg(want[co * NP + i] == 0.0, "case %d: unmarked pixel %zu has a difference", _i, i);
                    continue;
                }
                expect_msg((size_t)idx[i] < d.slots && !seen[idx[i]], "case %d: slot %d reused", _i, idx[i]);
                seen[idx[i]] = 1;
                for (size_t co = 0; co < Cout; co++) {
                    const double g = dx[co * d.slots + (size_t)idx[i]], e = want[co * NP + i];
                    expect_msg(fabs(g - e) <= 1e-5 * (fabs(e) + 1.0), "case %d: dx[%zu] pixel %zu: %.9g, expected %.9g",
                               _i, co, i, g, e);
                }
            }
            free(idxf);
            free(dx);
            free(idx);
            free(seen);
        }
    } else {
        /* The dense case at the forward's threshold. */
        ck_assert_snn_ok(snn_op_conv3x3_diff(ctx, ind, C, cstride, p_off, N, H, W, wd, Cout, NP / 16, 0, &d, &dense));
        ck_assert_int_eq(dense, 1);
    }
    /* One slot too few: dense, nothing computed. */
    ck_assert_snn_ok(snn_op_conv3x3_diff(ctx, ind, C, cstride, p_off, N, H, W, wd, Cout, expect_slots - 1, 0, &d, &dense));
    ck_assert_int_eq(dense, 1);
    snn_conv_diff_release(&d);
    snn_buffer_release(&ind);
    snn_buffer_release(&wd);
    free(in);
    free(diff);
    free(w);
    free(marked);
    free(want);
}
END_TEST

/* lif_lyapunov with the perturbed input as a sparse difference, and fused with the
 * 2x2 pooling (sparse and dense), against lif_lyapunov on the input pair and
 * avgpool2x2: the same membranes and spikes bit for bit; delta and the divergence
 * up to the order of the divergence's sum. */
START_TEST(test_lif_lyapunov_sparse_pool) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 95 + (uint64_t)_i);
    const size_t G = 3, B = 3, H = _i ? 2 : 4, W = _i ? 2 : 6, S = H * W, M = B * S, T = 8, Q = S / 4;
    const size_t tstride = M, gstride = 2 * T * M, p_off = T * M, in_len = G * gstride;
    float *in = host_alloc(in_len);
    /* Multiples of 1/64: xp - x is exact, so the sparse difference is the same number. */
    for (size_t g = 0; g < G; g++)
        for (size_t i = 0; i < T * M; i++) {
            const float x = (float)((int)(test_rng_u32(&r) % 129) - 32) / 64.0f;
            in[g * gstride + i] = x;
            in[g * gstride + p_off + i] = test_rng_u32(&r) % 4 == 0 ? x + (float)((int)(test_rng_u32(&r) % 9) - 4) / 64.0f : x;
        }
    /* Slots: pixels where any group differs, plus one that does not (dx = 0). */
    int *dmap = calloc(T * M + T * B, sizeof(int)); /* then a flag per image (t, b) */
    size_t slots = 0;
    for (size_t i = 0; i < T * M; i++) {
        int any = i == 3;
        for (size_t g = 0; g < G; g++) any |= in[g * gstride + p_off + i] != in[g * gstride + i];
        dmap[i] = any ? (int)slots++ : -1;
        dmap[T * M + i / S] |= any;
    }
    for (size_t n = 0; n < T * B; n += 4) dmap[T * M + n] = 1; /* flagged without a slot */
    float *dx = host_alloc(G * slots);
    for (size_t i = 0; i < T * M; i++)
        for (size_t g = 0; dmap[i] >= 0 && g < G; g++)
            dx[g * slots + (size_t)dmap[i]] = in[g * gstride + p_off + i] - in[g * gstride + i];
    float *scale = random_array(&r, G, 0.5f, 1.5f), *shift = random_array(&r, G, -0.2f, 0.3f);
    float *mem0 = random_array(&r, G * M, -0.5f, 1.5f), *delta0 = random_array(&r, G * M, -1e-2f, 1e-2f);
    const size_t sq_len = T * B;

    cl_mem ind = dev_upload(ctx, in, in_len), scd = dev_upload(ctx, scale, G), shd = dev_upload(ctx, shift, G);
    cl_mem dmapd = dev_upload(ctx, (const float *)dmap, T * M + T * B), dxd = dev_upload(ctx, dx, G * slots);
    snn_lif_args a = {0};
    a.in = ind, a.gstride = gstride, a.tstride = tstride, a.p_off = p_off;
    a.scale = scd, a.shift = shd, a.beta = 0.83f, a.thr = 0.9f, a.eps = 1e-2f;
    a.G = G, a.S = S, a.B = B, a.T = T;
    /* 0: dense unfused (the reference), 1: sparse unfused, 2: sparse pooled, 3: dense pooled */
    float *mem[4], *delta[4], *sq[4], *spk[4], *mark[4] = {0};
    const size_t NQ = T * B * Q;
    const size_t spk_gs = 2 * T * M, pool_gs = 2 * T * B * Q + 3, pool_len = G * pool_gs;
    for (int v = 0; v < 4; v++) {
        cl_mem memd = dev_upload(ctx, mem0, G * M), deltad = dev_upload(ctx, delta0, G * M);
        cl_mem sqd = dev_sentinel(ctx, sq_len), spkd = dev_sentinel(ctx, v < 2 ? G * spk_gs : pool_len);
        snn_lif_args av = a;
        av.mem = memd, av.delta = deltad, av.sq = sqd, av.spk = spkd;
        av.spk_gstride = v < 2 ? spk_gs : pool_gs;
        if (v == 1 || v == 2) av.dmap = dmapd, av.dx = dxd, av.dx_gstride = slots, av.p_off = 0;
        float *zero = calloc(NQ, sizeof(float));
        cl_mem markd = dev_upload(ctx, zero, NQ);
        free(zero);
        if (v >= 2) av.mark = markd;
        if (v < 2)
            ck_assert_snn_ok(snn_op_lif_lyapunov(ctx, &av));
        else
            ck_assert_snn_ok(snn_op_lif_lyapunov_pool(ctx, &av, H, W));
        mem[v] = dev_download(ctx, memd, G * M);
        delta[v] = dev_download(ctx, deltad, G * M);
        sq[v] = dev_download(ctx, sqd, sq_len);
        spk[v] = dev_download(ctx, spkd, v < 2 ? G * spk_gs : pool_len);
        mark[v] = dev_download(ctx, markd, NQ);
        snn_buffer_release(&markd);
        snn_buffer_release(&memd);
        snn_buffer_release(&deltad);
        snn_buffer_release(&sqd);
        snn_buffer_release(&spkd);
    }
    size_t flips = 0;
    for (size_t i = 0; i < G * spk_gs; i++) flips += spk[0][i] != spk[0][i % spk_gs < T * M ? i + T * M : i - T * M];
    expect_msg(flips > 0, "the trajectories' spikes never differ");
    assert_bits_equal(mem[1], mem[0], G * M, "sparse lif_lyapunov membranes");
    assert_bits_equal(delta[1], delta[0], G * M, "sparse lif_lyapunov delta");
    assert_bits_equal(sq[1], sq[0], sq_len, "sparse lif_lyapunov sq");
    assert_bits_equal(spk[1], spk[0], G * spk_gs, "sparse lif_lyapunov spikes");
    /* The reference's spikes pooled: (G, 2, T, B, Q) with pool_gs between groups. */
    float *want = sentinel_array(pool_len);
    for (size_t g = 0; g < G; g++)
        for (size_t n = 0; n < 2 * T * B; n++)
            for (size_t q = 0; q < Q; q++) {
                const float *s = spk[0] + g * spk_gs + n * S + 2 * (q / (W / 2)) * W + 2 * (q % (W / 2));
                want[g * pool_gs + n * Q + q] = 0.25f * ((s[0] + s[1]) + (s[W] + s[W + 1]));
            }
    double *dref = host_alloc_d(G * M), *sref = host_alloc_d(sq_len);
    for (size_t i = 0; i < G * M; i++) dref[i] = delta[0][i];
    for (size_t i = 0; i < sq_len; i++) sref[i] = sq[0][i];
    for (int v = 2; v < 4; v++) {
        const char *what = v == 2 ? "lif_lyapunov_pool (sparse)" : "lif_lyapunov_pool (dense)";
        assert_bits_equal(mem[v], mem[0], G * M, what);
        assert_bits_equal(spk[v], want, pool_len, what); /* gaps included */
        assert_close(delta[v], dref, G * M, 1e-2 / sqrt((double)(G * S)), 1e-5, what);
        assert_close(sq[v], sref, sq_len, 1e-30, 1e-5, what);
        size_t marked = 0;
        for (size_t n = 0; n < NQ; n++) {
            uint32_t want_mark = 0, got;
            for (size_t g = 0; g < G; g++) want_mark |= want[g * pool_gs + n] != want[g * pool_gs + T * B * Q + n];
            memcpy(&got, &mark[v][n], sizeof got);
            expect_msg(got == want_mark, "%s: mark %zu is %u, expected %u", what, n, (unsigned)got, (unsigned)want_mark);
            marked += want_mark;
        }
        expect_msg(marked > 0, "%s: no pooled pixel differs", what);
    }
    for (int v = 0; v < 2; v++) /* not written without a->mark */
        for (size_t n = 0; n < NQ; n++) expect_msg(mark[v][n] == 0.0f, "mark %zu written by lif_lyapunov", n);
    for (int v = 0; v < 4; v++) {
        free(mem[v]);
        free(delta[v]);
        free(sq[v]);
        free(spk[v]);
        free(mark[v]);
    }
    free(want);
    free(dref);
    free(sref);
    free(in);
    free(dmap);
    free(dx);
    free(scale);
    free(shift);
    free(mem0);
    free(delta0);
    cl_mem *bufs[] = {&ind, &scd, &shd, &dmapd, &dxd};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) snn_buffer_release(bufs[i]);
}
END_TEST

/* -------------------------------------------------------------- avgpool2x2 -- */

START_TEST(test_avgpool2x2) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 61);
    const struct {
        size_t P, H, W;
    } cases[] = {{5, 7, 9}, {3, 6, 4}, {4, 3, 2}, {2, 1, 5}, {2, 5, 1}, {1, 11, 11}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const size_t P = cases[k].P, H = cases[k].H, W = cases[k].W, Ho = H / 2, Wo = W / 2;
        const size_t n_in = P * H * W, n = P * Ho * Wo, pad = 9;
        float *in = random_array(&r, n_in, -2.0f, 2.0f), *want = host_alloc(n);
        for (size_t p = 0; p < P; p++)
            for (size_t y = 0; y < Ho; y++)
                for (size_t x = 0; x < Wo; x++) {
                    const float *s = in + (p * H + 2 * y) * W + 2 * x;
                    want[(p * Ho + y) * Wo + x] = 0.25f * ((s[0] + s[1]) + (s[W] + s[W + 1]));
                }
        cl_mem ind = dev_upload(ctx, in, n_in), out = dev_sentinel(ctx, n + pad);
        ck_assert_snn_ok(snn_op_avgpool2x2(ctx, ind, out, P, H, W));
        float *got = dev_download(ctx, out, n + pad);
        char what[96];
        snprintf(what, sizeof what, "avgpool2x2 P=%zu H=%zu W=%zu", P, H, W);
        assert_bits_equal(got, want, n, what);
        assert_sentinel(got, n, n + pad, what);
        free(got);
        free(want);
        free(in);
        snn_buffer_release(&ind);
        snn_buffer_release(&out);
    }
}
END_TEST

/* --------------------------------------------------------------- spike_sum -- */

START_TEST(test_spike_sum) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 71);
    const struct { size_t C, T, B, hw, gap; } cases[] = {{3, 5, 2, 7, 6}, {1, 1, 3, 5, 0}, {5, 3, 1, 1, 2}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const size_t C = cases[k].C, T = cases[k].T, B = cases[k].B, hw = cases[k].hw;
        const size_t gstride = T * B * hw + cases[k].gap, in_len = (C - 1) * gstride + T * B * hw + 3;
        const size_t n = B * C * hw, pad = 5;
        /* Spikes in their region, NaN sentinel in the gaps between channels. */
        float *in = sentinel_array(in_len);
        for (size_t c = 0; c < C; c++)
            for (size_t i = 0; i < T * B * hw; i++)
                in[c * gstride + i] = (test_rng_u32(&r) >> 31) ? 1.0f : 0.0f;
        float *want = host_alloc(n);
        for (size_t b = 0; b < B; b++)
            for (size_t c = 0; c < C; c++)
                for (size_t p = 0; p < hw; p++) {
                    float acc = 0.0f;
                    for (size_t t = 0; t < T; t++)
                        acc += in[c * gstride + (t * B + b) * hw + p];
                    want[(b * C + c) * hw + p] = acc;
                }
        cl_mem ind = dev_upload(ctx, in, in_len);

        /* From zero: once gives the counts, twice doubles them. */
        float *init = sentinel_array(n + pad);
        for (size_t i = 0; i < n; i++)
            init[i] = 0.0f;
        cl_mem sum = dev_upload(ctx, init, n + pad);
        ck_assert_snn_ok(snn_op_spike_sum(ctx, ind, sum, C, T, B, hw, gstride));
        float *got = dev_download(ctx, sum, n + pad);
        assert_bits_equal(got, want, n, "spike_sum (once)");
        assert_sentinel(got, n, n + pad, "spike_sum (once)");
        free(got);
        ck_assert_snn_ok(snn_op_spike_sum(ctx, ind, sum, C, T, B, hw, gstride));
        got = dev_download(ctx, sum, n + pad);
        for (size_t i = 0; i < n; i++)
            expect_msg(got[i] == 2.0f * want[i], "spike_sum (twice): element %zu is %g, expected %g", i,
                       (double)got[i], 2.0 * want[i]);
        assert_sentinel(got, n, n + pad, "spike_sum (twice)");
        free(got);
        snn_buffer_release(&sum);

        /* From nonzero values: adds to them. */
        test_fill_uniform(&r, init, n, -3.0f, 3.0f);
        sum = dev_upload(ctx, init, n + pad);
        ck_assert_snn_ok(snn_op_spike_sum(ctx, ind, sum, C, T, B, hw, gstride));
        got = dev_download(ctx, sum, n + pad);
        for (size_t i = 0; i < n; i++)
            init[i] += want[i];
        assert_bits_equal(got, init, n, "spike_sum (onto nonzero)");
        assert_sentinel(got, n, n + pad, "spike_sum (onto nonzero)");
        free(got);
        snn_buffer_release(&sum);

        expect_msg(count_spikes(want, n) > 0, "no spikes in the test data");
        free(init);
        free(want);
        free(in);
        snn_buffer_release(&ind);
    }
}
END_TEST

/* ------------------------------------------------------------ flatten_rows -- */

START_TEST(test_flatten_rows) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 81);
    const struct { size_t C, N, hw; } cases[] = {{3, 5, 7}, {1, 3, 11}, {6, 1, 1}, {5, 7, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const size_t C = cases[k].C, N = cases[k].N, hw = cases[k].hw, n = C * N * hw, pad = 7;
        float *in = random_array(&r, n, -1.0f, 1.0f), *want = host_alloc(n);
        for (size_t c = 0; c < C; c++)
            for (size_t i = 0; i < N; i++)
                for (size_t p = 0; p < hw; p++)
                    want[(i * C + c) * hw + p] = in[(c * N + i) * hw + p];
        cl_mem ind = dev_upload(ctx, in, n), out = dev_sentinel(ctx, n + pad);
        ck_assert_snn_ok(snn_op_flatten_rows(ctx, ind, out, C, N, hw));
        float *got = dev_download(ctx, out, n + pad);
        assert_bits_equal(got, want, n, "flatten_rows");
        assert_sentinel(got, n, n + pad, "flatten_rows");
        free(got);
        free(want);
        free(in);
        snn_buffer_release(&ind);
        snn_buffer_release(&out);
    }
}
END_TEST

/* ------------------------------------------------------------------ linear -- */

START_TEST(test_linear) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 91);
    const struct { size_t rows, fin, fout; } cases[] = {{5, 37, 11}, {1, 13, 3}, {9, 100, 10}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const size_t rows = cases[k].rows, fin = cases[k].fin, fout = cases[k].fout, n = rows * fout, pad = 8;
        float *in = random_array(&r, rows * fin, -1.0f, 1.0f), *w = random_array(&r, fout * fin, -0.5f, 0.5f);
        float *bias = random_array(&r, fout, -1.0f, 1.0f);
        double *want = host_alloc_d(n);
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < fout; j++) {
                double acc = bias[j];
                for (size_t p = 0; p < fin; p++)
                    acc += (double)in[i * fin + p] * w[j * fin + p];
                want[i * fout + j] = acc;
            }
        cl_mem ind = dev_upload(ctx, in, rows * fin), wd = dev_upload(ctx, w, fout * fin);
        cl_mem bd = dev_upload(ctx, bias, fout), out = dev_sentinel(ctx, n + pad);
        ck_assert_snn_ok(snn_op_linear(ctx, ind, rows, fin, wd, bd, fout, out));
        float *got = dev_download(ctx, out, n + pad);
        char what[96];
        snprintf(what, sizeof what, "linear rows=%zu fin=%zu fout=%zu", rows, fin, fout);
        assert_close(got, want, n, 1.0, 1e-4, what);
        assert_sentinel(got, n, n + pad, what);
        free(got);
        free(want);
        free(in);
        free(w);
        free(bias);
        snn_buffer_release(&ind);
        snn_buffer_release(&wd);
        snn_buffer_release(&bd);
        snn_buffer_release(&out);
    }
}
END_TEST

/* --------------------------------------------------------- lyapunov_finish -- */

START_TEST(test_lyapunov_finish) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 101);
    const struct {
        size_t L, T, B;
        float eps;
    } cases[] = {{3, 7, 5, 1e-3f}, {1, 11, 3, 1e-2f}, {4, 1, 1, 1e-4f}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const size_t L = cases[k].L, T = cases[k].T, B = cases[k].B, n_sq = L * T * B, pad = 6;
        const float eps = cases[k].eps;
        float *sq = host_alloc(n_sq);
        for (size_t i = 0; i < n_sq; i++)
            sq[i] = (float)((double)eps * eps * exp(test_rng_uniform(&r, -6.0f, 6.0f)) / (double)L);
        if (T > 1)
            for (size_t l = 0; l < L; l++)
                sq[(l * T + 1) * B + 0] = 0.0f; /* no divergence at one step */
        double *want = host_alloc_d(B);
        for (size_t b = 0; b < B; b++) {
            double acc = 0;
            for (size_t t = 0; t < T; t++) {
                double total = 0;
                for (size_t l = 0; l < L; l++)
                    total += sq[(l * T + t) * B + b];
                acc += log(sqrt(total + 1e-12) / eps + 1e-12);
            }
            want[b] = acc / (double)T;
        }
        cl_mem sqd = dev_upload(ctx, sq, n_sq), out = dev_sentinel(ctx, B + pad);
        ck_assert_snn_ok(snn_op_lyapunov_finish(ctx, sqd, out, L, T, B, eps));
        float *got = dev_download(ctx, out, B + pad);
        assert_close(got, want, B, 1.0, 1e-5, "lyapunov_finish");
        assert_sentinel(got, B, B + pad, "lyapunov_finish");
        free(got);
        free(want);
        free(sq);
        snn_buffer_release(&sqd);
        snn_buffer_release(&out);
    }
}
END_TEST

/* -------------------------------------------------------------------- gemm -- */

/* One snn_gemm call: C[c_off + i*ldc + j] = alpha * op(A) op(B) + beta * C, with
 * leading dimensions pad_ld above the minimum (0: exactly the minimum). */
typedef struct gemm_case {
    int ta, tb;
    size_t m, n, k;
    float alpha, beta;
    size_t a_off, b_off, c_off, pad_ld;
    int exact; /* small integers: every product and sum is exact, so C must be too */
} gemm_case;

static float gemm_value(test_rng *r, int exact) {
    return exact ? (float)((int)(test_rng_u32(r) % 5u) - 2) : test_rng_uniform(r, -1.0f, 1.0f);
}

/* Element (i, j) of a rows x cols operand stored at off with leading dimension ld. */
static size_t at(size_t off, size_t ld, size_t i, size_t j) { return off + i * ld + j; }

/* Runs one case on the context's current implementation against a double-precision
 * reference. The operands' padding (before the offset, the leading-dimension gaps, a
 * tail) holds the NaN sentinel pattern, so reading it shows up as NaN in C; C's padding
 * must still hold it afterwards. With beta = 0 the region of C starts as NaN, which must
 * not leak into the result. Returns C's region (m x n, dense) for further checks.
 *
 * Tolerance: |got - want| <= 1e-5 sqrt(K) (|alpha| sum_p |a_ip b_pj| + |beta c_ij|).
 * Any summation order in float is within (K + 2) 2^-24 of that scale (the classical
 * bound), which 1e-5 sqrt(K) exceeds for every K <= 28000; one missing or doubled term
 * is about 1/K of it, so small K catches indexing errors, and exact cases (small
 * integers) must match bit for bit at any K. */
static float *check_gemm(snn_context *ctx, test_rng *r, const gemm_case *gc) {
    const int ta = gc->ta, tb = gc->tb;
    const size_t m = gc->m, n = gc->n, k = gc->k;
    const size_t a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
    const size_t lda = a_cols + gc->pad_ld, ldb = b_cols + (gc->pad_ld ? gc->pad_ld + 1 : 0),
                 ldc = n + (gc->pad_ld ? gc->pad_ld + 2 : 0);
    const size_t a_len = gc->a_off + a_rows * lda + 3, b_len = gc->b_off + b_rows * ldb + 5,
                 c_len = gc->c_off + m * ldc + 7;
    float *A = sentinel_array(a_len), *B = sentinel_array(b_len), *C = sentinel_array(c_len);
    for (size_t i = 0; i < a_rows; i++)
        for (size_t j = 0; j < a_cols; j++) A[at(gc->a_off, lda, i, j)] = gemm_value(r, gc->exact);
    for (size_t i = 0; i < b_rows; i++)
        for (size_t j = 0; j < b_cols; j++) B[at(gc->b_off, ldb, i, j)] = gemm_value(r, gc->exact);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            C[at(gc->c_off, ldc, i, j)] = gc->beta == 0.0f ? NAN : gemm_value(r, gc->exact);
    double *want = host_alloc_d(m * n), *scale = host_alloc_d(m * n);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double acc = 0, mag = 0;
            for (size_t p = 0; p < k; p++) {
                const double av = A[ta ? at(gc->a_off, lda, p, i) : at(gc->a_off, lda, i, p)];
                const double bv = B[tb ? at(gc->b_off, ldb, j, p) : at(gc->b_off, ldb, p, j)];
                acc += av * bv;
                mag += fabs(av * bv);
            }
            const double cv = gc->beta == 0.0f ? 0.0 : (double)gc->beta * C[at(gc->c_off, ldc, i, j)];
            want[i * n + j] = gc->alpha * acc + cv;
            scale[i * n + j] = fabs((double)gc->alpha) * mag + fabs(cv);
        }
    cl_mem ad = dev_upload(ctx, A, a_len), bd = dev_upload(ctx, B, b_len), cd = dev_upload(ctx, C, c_len);
    ck_assert_snn_ok(snn_gemm(ctx, ta, tb, m, n, k, gc->alpha, ad, gc->a_off, lda, bd, gc->b_off, ldb,
                              gc->beta, cd, gc->c_off, ldc));
    float *got = dev_download(ctx, cd, c_len), *region = host_alloc(m * n);
    for (size_t i = 0; i < m; i++) memcpy(region + i * n, got + at(gc->c_off, ldc, i, 0), n * sizeof(float));
    char what[160];
    snprintf(what, sizeof what, "gemm %s ta=%d tb=%d m=%zu n=%zu k=%zu alpha=%g beta=%g",
             snn_gemm_impl_name(snn_gemm_get_impl(ctx)), ta, tb, m, n, k, (double)gc->alpha,
             (double)gc->beta);
    const double tol = gc->exact ? 0.0 : 1e-5 * sqrt((double)(k ? k : 1));
    for (size_t e = 0; e < m * n; e++) {
        const double err = fabs((double)region[e] - want[e]);
        expect_msg(err <= tol * scale[e], "%s: C[%zu][%zu] is %.9g, expected %.9g (error %.3g, bound %.3g)",
                   what, e / n, e % n, (double)region[e], want[e], err, tol * scale[e]);
    }
    assert_sentinel(got, 0, gc->c_off, what);
    for (size_t i = 0; i < m; i++) {
        const size_t gap_end = i + 1 < m ? at(gc->c_off, ldc, i + 1, 0) : c_len;
        assert_sentinel(got, at(gc->c_off, ldc, i, n), gap_end, what);
    }
    free(got);
    free(want);
    free(scale);
    free(A);
    free(B);
    free(C);
    snn_buffer_release(&ad);
    snn_buffer_release(&bd);
    snn_buffer_release(&cd);
    return region;
}

static const snn_gemm_impl gemm_impls[] = {SNN_GEMM_CLBLAST, SNN_GEMM_NATIVE};

/* Every case on both implementations (forced, whatever the device's default). */
START_TEST(test_gemm) {
    snn_context *ctx = test_context();
    /* SNNCL_GEMM=native (tools/oclgrind.sh) checks our kernels only, not CLBlast's. */
    const char *only = getenv("SNNCL_GEMM");
    if (only && strcmp(only, "native") == 0 && gemm_impls[_i] != SNN_GEMM_NATIVE) return;
    ck_assert_snn_ok(snn_gemm_set_impl(ctx, gemm_impls[_i]));
    test_rng r;
    test_rng_seed(&r, 111);
    /* Shapes around the native blocking (8 rows x 32 columns; 2 x 8 dot products over
     * float16 steps; reduction blocks of 64 and 512), primes, 1, and conv-like K. */
    static const size_t shapes[][3] = {
        {1, 1, 1},    {7, 9, 13},    {8, 32, 16},  {9, 33, 17}, {37, 50, 9},  {16, 31, 27},
        {3, 131, 65}, {67, 45, 129}, {29, 23, 300}, {1, 19, 31}, {23, 1, 7}, {17, 65, 600},
    };
    const float alphas[] = {1.0f, 0.7f, -1.3f};
    const float betas[] = {0.0f, 1.0f, -0.4f};
    size_t count = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++) {
            gemm_case gc = {t >> 1, t & 1, shapes[s][0], shapes[s][1], shapes[s][2], alphas[count % 3],
                            betas[(count / 3 + t) % 3], count % 5, (count * 3) % 7, count % 4,
                            count % 3 ? 2 : 0, 0};
            free(check_gemm(ctx, &r, &gc));
            count++;
        }
    /* Larger: CLBlast's indirect (padded, tiled) kernel; several native work-groups. */
    const gemm_case big[] = {
        {0, 1, 133, 257, 191, -1.3f, 0.5f, 11, 2, 9, 3, 0},
        {1, 0, 150, 70, 64, 1.0f, 0.0f, 1, 0, 2, 1, 0},
        {0, 0, 64, 300, 576, 1.0f, 0.0f, 0, 5, 3, 0, 0},
        {1, 1, 45, 77, 101, 0.5f, 1.0f, 4, 1, 0, 2, 0},
        /* long reductions, exactly: blocks, slices of gemm_dot (small C), tails */
        {0, 1, 5, 3, 9001, 1.0f, 1.0f, 3, 1, 2, 1, 1},
        {0, 1, 21, 19, 4133, 1.0f, 0.0f, 0, 7, 1, 0, 1},
        {0, 0, 13, 40, 1000, 1.0f, 0.5f, 2, 0, 5, 4, 1},
        {1, 0, 19, 35, 777, 1.0f, 0.0f, 0, 3, 0, 1, 1},
        /* no reduction: C = beta * C */
        {0, 0, 5, 40, 0, 1.0f, 0.5f, 0, 0, 3, 2, 0},
        {1, 1, 5, 40, 0, 1.0f, 0.0f, 0, 0, 3, 2, 0},
    };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        /* small: a sliced (k = 9001), a partial-strip and the k = 0 cases remain */
        if (small_mode() && big[i].m * big[i].n * big[i].k > 600000) continue;
        free(check_gemm(ctx, &r, &big[i]));
    }
    ck_assert_snn_ok(snn_gemm_set_impl(ctx, SNN_GEMM_AUTO));
}
END_TEST

/* The native path gives the same bits every time (fixed summation order, also with the
 * reduction split into slices), and the default choice is stable. */
START_TEST(test_gemm_deterministic) {
    snn_context *ctx = test_context();
    const snn_gemm_impl first = snn_gemm_default_impl(ctx);
    ck_assert_int_eq(snn_gemm_default_impl(ctx), first);
    ck_assert_snn_ok(snn_gemm_set_impl(ctx, SNN_GEMM_NATIVE));
    ck_assert_int_eq(snn_gemm_get_impl(ctx), SNN_GEMM_NATIVE);
    const gemm_case cases[] = {
        {0, 1, 6, 5, 12345, 0.9f, 0.0f, 1, 2, 3, 1, 0}, /* sliced reduction */
        {0, 0, 40, 70, 333, 1.1f, 0.0f, 0, 0, 0, 0, 0},
        {1, 0, 40, 70, 333, 1.1f, 0.0f, 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gemm_case gc = cases[i];
        if (small_mode() && gc.k == 333) gc.k = 70; /* still two reduction blocks */
        test_rng r1, r2;
        test_rng_seed(&r1, 5 + i);
        test_rng_seed(&r2, 5 + i);
        float *c1 = check_gemm(ctx, &r1, &gc), *c2 = check_gemm(ctx, &r2, &gc);
        assert_bits_equal(c2, c1, gc.m * gc.n, "gemm run to run");
        free(c1);
        free(c2);
    }
    ck_assert_snn_status(snn_gemm_set_impl(ctx, (snn_gemm_impl)7), SNN_ERR_INVALID_ARG);
    ck_assert_snn_ok(snn_gemm_set_impl(ctx, SNN_GEMM_AUTO));
    ck_assert_int_eq(snn_gemm_get_impl(ctx), first);
}
END_TEST

/* ------------------------------------------------------------------- suite -- */

static TCase *tcase(Suite *s, const char *name) {
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);
    return tc;
}

/* Test cases whose results go through snncl's GEMM (cl/gemm.cl) carry the tag "gemm":
 * tools/oclgrind.sh leaves them out of its uninitialized-value pass (CK_EXCLUDE_TAGS),
 * where Oclgrind 21.10 misreports the GEMM kernels and everything downstream of them. */
static TCase *gemm_tcase(Suite *s, const char *name) {
    TCase *tc = tcase(s, name);
    tcase_set_tags(tc, "gemm");
    return tc;
}

static Suite *kernels_suite(void) {
    Suite *s = suite_create("kernels");
    TCase *tc = tcase(s, "philox");
    tcase_add_test(tc, test_philox_host_kat);
    tcase_add_test(tc, test_philox_device_kat);

    tc = tcase(s, "encode_rate");
    tcase_add_test(tc, test_encode_rate_exact);
    tcase_add_test(tc, test_encode_rate_threshold);
    tcase_add_test(tc, test_encode_rate_statistics);
    tcase_add_test(tc, test_encode_rate_seeds);

    tcase_add_test(tcase(s, "to_channel_major"), test_to_channel_major);
    tcase_add_test(tcase(s, "scale_to_channel_major"), test_scale_to_channel_major);
    tcase_add_test(tcase(s, "normal_channel_major"), test_normal_channel_major);
    tcase_add_test(gemm_tcase(s, "conv3x3"), test_conv3x3);
    tcase_add_test(gemm_tcase(s, "conv3x3_sparse"), test_conv3x3_sparse);
    tcase_add_test(tcase(s, "conv3x3_wgrad_diff"), test_conv3x3_wgrad_diff);

    tc = tcase(s, "lif_forward");
    tcase_add_test(tc, test_lif_forward);
    tcase_add_test(tc, test_lif_forward_repeat);

    tcase_add_loop_test(tcase(s, "lif_lyapunov"), test_lif_lyapunov, 0,
                        (int)(sizeof lyap_cases / sizeof lyap_cases[0]));
    tcase_add_loop_test(tcase(s, "conv3x3_diff"), test_conv3x3_diff, 0,
                        (int)(sizeof diff_cases / sizeof diff_cases[0]));
    tcase_add_loop_test(tcase(s, "lif_lyapunov_sparse_pool"), test_lif_lyapunov_sparse_pool, 0, 2);
    tcase_add_test(tcase(s, "avgpool2x2"), test_avgpool2x2);
    tcase_add_test(tcase(s, "spike_sum"), test_spike_sum);
    tcase_add_test(tcase(s, "flatten_rows"), test_flatten_rows);
    tcase_add_test(gemm_tcase(s, "linear"), test_linear);
    tcase_add_test(tcase(s, "lyapunov_finish"), test_lyapunov_finish);
    tc = gemm_tcase(s, "gemm");
    tcase_add_loop_test(tc, test_gemm, 0, (int)(sizeof gemm_impls / sizeof gemm_impls[0]));
    tcase_add_test(tc, test_gemm_deterministic);
    return s;
}

int main(void) { return run_suite(kernels_suite()); }
