/* Tests of the backward device operations of src/ops/ (and the optimizer steps) against
 * finite differences of plain-C float64 forward references, on small random data with
 * odd sizes.
 *
 * Every gradient is checked through a scalar loss L = sum_i w_i * out_i with random
 * weights w, so the op's upstream gradient is w and its result must equal the central
 * finite difference (L(x + h e_i) - L(x - h e_i)) / 2h, h = 1e-6, of the double
 * reference. Spiking layers replace the spike by the smooth fast-sigmoid antiderivative
 * f(x) = x / (1 + 25|x|), whose derivative is exactly the surrogate the kernels use;
 * the reset is a step function of the previous membrane, so its finite difference is
 * zero as long as no membrane is within h of the threshold: the data are drawn with a
 * margin around the threshold, and every perturbed evaluation checks that the margin
 * still holds (no reset, spike or kink changed sides).
 *
 * Tolerance of the finite-difference checks: max |device - reference| <= 1e-4 max
 * |reference|. The finite differences themselves are good to about 1e-9 (truncation
 * h^2 f''' / 6 with |f'''| <= 3750, rounding 1e-16 / h); the device works in float32
 * on float32 inputs: a few ulp (1e-7) per operation, accumulated over at most a few
 * dozen terms or steps, stays below 1e-5, while an indexing or formula error (a dropped
 * term, a wrong step, a wrong sign) shows up at the 1e-2 level or above.
 *
 * Output buffers are longer than the op's region and padded with a NaN sentinel
 * pattern that must survive; inputs carry the same padding, so an out-of-bounds read
 * turns into NaN in the result. The measured errors are printed. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "ops.h"
#include "rng.h"
#include "devbuf.h"
#include "testutil.h"

/* ----------------------------------------------------------------- helpers -- */

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static double *to_double(const float *x, size_t n) {
    double *d = host_alloc_d(n);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static float *to_float(const double *x, size_t n) {
    float *f = host_alloc(n);
    for (size_t i = 0; i < n; i++) f[i] = (float)x[i];
    return f;
}

/* n floats of h followed by pad sentinel floats. */
static cl_mem dev_const(snn_context *ctx, size_t n, float v) {
    float *h = host_alloc(n);
    for (size_t i = 0; i < n; i++) h[i] = v;
    cl_mem m = dev_upload(ctx, h, n);
    free(h);
    return m;
}

/* max |got - want| / max(max |want|, floor) <= tol. Prints and returns the measured
 * value; a reference that is all zero (below floor) is refused, since it would make the
 * check vacuous. */
static double check_scaled(const float *got, const double *want, size_t n, double floor, double tol,
                           const char *what) {
    double mag = 0, worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) mag = fmax(mag, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - want[i]);
        if (!(d <= worst)) {
            worst = isnan(d) ? INFINITY : d;
            at = i;
        }
    }
    expect_msg(n == 0 || mag > 0, "%s: the reference is all zero", what);
    const double rel = worst / fmax(mag, floor);
    printf("  %-64s max|err| %.2e / %.3g = %.2e (tol %.0e)\n", what, worst, fmax(mag, floor), rel, tol);
    expect_msg(rel <= tol, "%s: error %.3g (relative to %.3g) > %.3g at element %zu: got %.9g, expected %.9g",
               what, rel, fmax(mag, floor), tol, at, (double)got[at], want[at]);
    return rel;
}

/* Two evaluations of one inner product, <A x, y> and <x, A^T y>; scale: the larger sum
 * of |terms|, so the tolerance is relative to the size of the sums' roundoff. */
static double dot_abs(const float *a, const float *b, size_t n, double *abs_sum) {
    double s = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        s += (double)a[i] * b[i];
        m += fabs((double)a[i] * b[i]);
    }
    *abs_sum = m;
    return s;
}

static void check_adjoint(double lhs, double lhs_abs, double rhs, double rhs_abs, double tol,
                          const char *what) {
    const double scale = fmax(lhs_abs, rhs_abs), rel = fabs(lhs - rhs) / scale;
    printf("  %-64s <Ax,y> %.9g <x,A'y> %.9g rel %.2e (tol %.0e)\n", what, lhs, rhs, rel, tol);
    expect_msg(scale > 0 && rel <= tol, "%s: <Ax, y> = %.12g but <x, A^T y> = %.12g (relative %.3g > %.3g)", what,
               lhs, rhs, rel, tol);
}

/* SNNCL_TEST_SMALL=1 (tools/oclgrind.sh, where a simulator runs kernels 1000x slower):
 * smaller statistical samples and reductions; every kernel and code path still runs. */
static int small_mode(void) {
    const char *s = getenv("SNNCL_TEST_SMALL");
    return s && *s && strcmp(s, "0") != 0;
}

/* ------------------------------------------------------- finite differences -- */

/* The part of a scalar loss that depends on x[i] (all of it is fine), at x. */
typedef double (*loss_fn)(void *data, const double *x, size_t i);

#define FD_H 1e-6

/* grad[i] = central difference of f in x[i]; x is restored. */
static void finite_diff(loss_fn f, void *data, double *x, size_t n, double *grad) {
    for (size_t i = 0; i < n; i++) {
        const double x0 = x[i], xp = x0 + FD_H, xm = x0 - FD_H;
        x[i] = xp;
        const double lp = f(data, x, i);
        x[i] = xm;
        const double lm = f(data, x, i);
        x[i] = x0;
        grad[i] = (lp - lm) / (xp - xm);
    }
}

/* The smooth spike of a surrogate (SNN_LIF_SURROGATE_*, parameter p): an
 * antiderivative of the kernels' surrogate, so that its finite differences are what
 * they must compute (fast sigmoid x / (1 + p|x|); atan(pi/2 p x) / pi; sigmoid(p x)). */
static double smooth_spike(double x, unsigned kind, double p) {
    const double pi = 3.14159265358979323846;
    if (kind == SNN_LIF_SURROGATE_ATAN) return atan(pi / 2 * p * x) / pi;
    if (kind == SNN_LIF_SURROGATE_SIGMOID) return 1.0 / (1.0 + exp(-p * x));
    return x / (1.0 + p * fabs(x));
}

/* One step of the neuron of cl/lif.cl in double: the reset a step function of v. */
static double lif_next(double v, double cur, double beta, double thr, unsigned reset) {
    if (reset == SNN_LIF_RESET_ZERO) return beta * (v > thr ? 0.0 : v) + cur;
    if (reset == SNN_LIF_RESET_NONE) return beta * v + cur;
    return beta * v + cur - (v > thr ? thr : 0.0);
}

/* ------------------------------------------------------------ lif_backward -- */

typedef struct lif_case {
    size_t G, B, H, W, T;
    int pool;
    float beta, thr;
    unsigned reset, sg_kind; /* SNN_LIF_RESET_*, SNN_LIF_SURROGATE_* */
    float sg;
} lif_case;

#define SEED_LIF SNN_LIF_RESET_SUBTRACT, SNN_LIF_SURROGATE_FAST_SIGMOID, 25.0f /* the seed's neuron */
static const lif_case lif_cases[] = {
    {2, 2, 5, 7, 6, 0, 0.9f, 1.0f, SEED_LIF},   /* odd H, W, no pooling */
    {3, 2, 5, 7, 5, 1, 0.8f, 1.0f, SEED_LIF},   /* pooled with odd H, W: last row and column dropped */
    {2, 3, 4, 6, 4, 1, 0.95f, 0.7f, SEED_LIF},  /* pooled, even */
    {1, 3, 1, 13, 7, 0, 0.9f, 1.0f, SEED_LIF},  /* a dense layer (vgg's fc LIF: H = 1) */
    {2, 1, 3, 3, 3, 1, 0.5f, 1.25f, SEED_LIF},  /* one pooled output per channel */
    /* the other resets and surrogates (snnTorch's default neuron: atan, alpha 2) */
    {2, 2, 5, 7, 6, 0, 0.9f, 1.0f, SNN_LIF_RESET_ZERO, SNN_LIF_SURROGATE_ATAN, 2.0f},
    {3, 2, 5, 7, 5, 1, 0.8f, 0.6f, SNN_LIF_RESET_NONE, SNN_LIF_SURROGATE_SIGMOID, 25.0f},
    {1, 3, 1, 13, 7, 0, 0.7f, 1.0f, SNN_LIF_RESET_ZERO, SNN_LIF_SURROGATE_FAST_SIGMOID, 10.0f},
    {2, 3, 4, 6, 4, 1, 0.95f, 0.7f, SNN_LIF_RESET_SUBTRACT, SNN_LIF_SURROGATE_ATAN, 3.5f},
};

/* |mem - thr| of the data; a perturbed evaluation must keep at least half of it. */
#define LIF_MARGIN 1e-3

typedef struct lif_ref {
    const lif_case *lc;
    const float *w;     /* upstream gradient: (G, T, B, H, W), or pooled (G, T, B, H/2, W/2) */
    double *out;        /* scratch (G, T, M): f(mem - thr) */
    double *mem;        /* (G, T, M) membranes, or NULL */
    double margin;      /* min |mem - thr| of the last evaluation */
    double margin_min;  /* over all evaluations */
    size_t resets;
} lif_ref;

/* L of one LIF layer over all steps from currents cur (G, T, M), M = B*H*W:
 * mem[t] = lif_next(mem[t-1], cur[t]); the smooth spikes pooled 2x2 (floor) when the
 * case pools; dotted with w. */
static double lif_loss(void *data, const double *cur, size_t i) {
    (void)i;
    lif_ref *r = data;
    const lif_case *lc = r->lc;
    const size_t H = lc->H, W = lc->W, S = H * W, B = lc->B, M = B * S, T = lc->T, G = lc->G;
    const double beta = lc->beta, thr = lc->thr;
    r->margin = INFINITY;
    r->resets = 0;
    for (size_t g = 0; g < G; g++)
        for (size_t m = 0; m < M; m++) {
            double v = 0;
            for (size_t t = 0; t < T; t++) {
                const size_t k = (g * T + t) * M + m;
                r->resets += v > thr;
                v = lif_next(v, cur[k], beta, thr, lc->reset);
                r->margin = fmin(r->margin, fabs(v - thr));
                r->out[k] = smooth_spike(v - thr, lc->sg_kind, lc->sg);
                if (r->mem) r->mem[k] = v;
            }
        }
    r->margin_min = fmin(r->margin_min, r->margin);
    double L = 0;
    if (!lc->pool) {
        for (size_t k = 0; k < G * T * M; k++) L += r->w[k] * r->out[k];
        return L;
    }
    const size_t Ho = H / 2, Wo = W / 2;
    for (size_t g = 0; g < G; g++)
        for (size_t t = 0; t < T; t++)
            for (size_t b = 0; b < B; b++)
                for (size_t yo = 0; yo < Ho; yo++)
                    for (size_t xo = 0; xo < Wo; xo++) {
                        const double *o = r->out + (g * T + t) * M + b * S + 2 * yo * W + 2 * xo;
                        const double pooled = 0.25 * (o[0] + o[1] + o[W] + o[W + 1]);
                        L += r->w[((g * T + t) * B + b) * Ho * Wo + yo * Wo + xo] * pooled;
                    }
    return L;
}

/* Currents (G, T, M) drawn neuron by neuron so that every membrane stays LIF_MARGIN
 * away from the threshold; spikes (resets) are frequent. */
static void lif_make_currents(test_rng *r, const lif_case *lc, float *cur) {
    const size_t M = lc->B * lc->H * lc->W, T = lc->T;
    const double beta = lc->beta, thr = lc->thr;
    for (size_t g = 0; g < lc->G; g++)
        for (size_t m = 0; m < M; m++) {
            double v = 0;
            for (size_t t = 0; t < T; t++) {
                float c;
                double vn;
                int tries = 0;
                do {
                    c = test_rng_uniform(r, -0.4f * lc->thr, 1.2f * lc->thr);
                    vn = lif_next(v, c, beta, thr, lc->reset);
                    expect_msg(++tries < 1000, "cannot draw a current away from the threshold");
                } while (fabs(vn - thr) < LIF_MARGIN);
                cur[(g * T + t) * M + m] = c;
                v = vn;
            }
        }
}

START_TEST(test_lif_backward) {
    snn_context *ctx = test_context();
    const lif_case *lc = &lif_cases[_i];
    test_rng r;
    test_rng_seed(&r, 1001 + (uint64_t)_i);
    const size_t G = lc->G, B = lc->B, H = lc->H, W = lc->W, T = lc->T, S = H * W, M = B * S;
    const size_t Ho = H / 2, Wo = W / 2, n = G * T * M, n_up = lc->pool ? G * T * B * Ho * Wo : n, pad = 13;
    char what[160];
    snprintf(what, sizeof what, "lif_backward G=%zu B=%zu H=%zu W=%zu T=%zu pool=%d reset=%u surrogate=%u(%g)", G, B,
             H, W, T, lc->pool, lc->reset, lc->sg_kind, (double)lc->sg);

    float *cur = host_alloc(n);
    lif_make_currents(&r, lc, cur);
    float *w = random_array(&r, n_up, -1.0f, 1.0f);
    double *curd = to_double(cur, n), *mem = host_alloc_d(n), *out = host_alloc_d(n), *want = host_alloc_d(n);
    lif_ref ref = {lc, w, out, mem, 0, INFINITY, 0};
    lif_loss(&ref, curd, 0);
    expect_msg(ref.margin >= LIF_MARGIN, "data margin %g", ref.margin);
    expect_msg(ref.resets > 0, "%s: no spikes in the test data", what);
    ref.mem = NULL;
    finite_diff(lif_loss, &ref, curd, n, want);
    expect_msg(ref.margin_min >= 0.5 * LIF_MARGIN, "a finite difference moved a membrane to %g of the threshold",
               ref.margin_min);

    /* The op: recorded membranes in, d L / d cur out. */
    float *memf = to_float(mem, n);
    cl_mem buf = dev_upload_padded(ctx, memf, n, pad), gup = dev_upload_padded(ctx, w, n_up, pad);
    snn_lif_backward_args a = {0};
    a.buf = buf, a.gup = gup, a.beta = lc->beta, a.thr = lc->thr;
    a.reset = lc->reset, a.sg_kind = lc->sg_kind, a.sg = lc->sg;
    a.G = G, a.S = S, a.B = B, a.T = T, a.H = H, a.W = W, a.pool = lc->pool;
    ck_assert_snn_ok(snn_op_lif_backward(ctx, &a));
    float *got = dev_download(ctx, buf, n + pad);
    check_scaled(got, want, n, 0.0, 1e-4, what);
    assert_sentinel(got, n, n + pad, what);
    /* Neurons that floor pooling drops get no gradient at all. */
    if (lc->pool)
        for (size_t g = 0; g < G; g++)
            for (size_t t = 0; t < T; t++)
                for (size_t m = 0; m < M; m++) {
                    const size_t s = m % S;
                    if (s / W >= 2 * Ho || s % W >= 2 * Wo)
                        expect_msg(got[(g * T + t) * M + m] == 0.0f, "%s: dropped neuron %zu got gradient %g", what,
                                   m, (double)got[(g * T + t) * M + m]);
                }
    free(got);

    /* The forward op's record mode produces the membranes the backward expects. */
    cl_mem ind = dev_upload(ctx, cur, n), ones = dev_const(ctx, G, 1.0f), zeros = dev_const(ctx, G, 0.0f);
    cl_mem state = dev_const(ctx, G * M, 0.0f);
    cl_mem rec = dev_sentinel(ctx, n + pad);
    snn_lif_args f = {0};
    f.in = ind, f.gstride = T * M, f.tstride = M, f.scale = ones, f.shift = zeros;
    f.beta = lc->beta, f.thr = lc->thr, f.reset = lc->reset, f.mem = state, f.spk = rec, f.spk_gstride = T * M;
    f.G = G, f.S = S, f.B = B, f.T = T, f.record = 1;
    ck_assert_snn_ok(snn_op_lif_forward(ctx, &f));
    float *recorded = dev_download(ctx, rec, n + pad);
    snprintf(what, sizeof what, "lif_forward record G=%zu B=%zu H=%zu W=%zu T=%zu", G, B, H, W, T);
    /* float membranes after T <= 7 steps of O(1) values: a few ulp */
    check_scaled(recorded, mem, n, 0.0, 1e-5, what);
    assert_sentinel(recorded, n, n + pad, what);

    /* The fused op (forward recomputed from the currents) in both of its forms, per
     * step and summed over the steps, against the same reference. */
    const int saved_lane = ctx->lane_kernels;
    double *want_sum = host_alloc_d(G * M);
    for (size_t g = 0; g < G; g++)
        for (size_t t = 0; t < T; t++)
            for (size_t m = 0; m < M; m++) want_sum[g * M + m] += want[(g * T + t) * M + m];
    for (int lane = 0; lane < 2; lane++)
        for (int sum_t = 0; sum_t < 2; sum_t++) {
            ctx->lane_kernels = lane;
            const size_t n_out = sum_t ? G * M : n;
            cl_mem fo = dev_sentinel(ctx, n_out + pad);
            f.record = 0;
            ck_assert_snn_ok(snn_op_lif_backward_fused(ctx, &f, &a, fo, sum_t));
            float *gf = dev_download(ctx, fo, n_out + pad);
            snprintf(what, sizeof what, "lif_backward_fused%s%s G=%zu B=%zu H=%zu W=%zu T=%zu pool=%d",
                     lane ? " (lane)" : "", sum_t ? " sum_t" : "", G, B, H, W, T, lc->pool);
            check_scaled(gf, sum_t ? want_sum : want, n_out, 0.0, 1e-4, what);
            assert_sentinel(gf, n_out, n_out + pad, what);
            free(gf);
            snn_buffer_release(&fo);
        }
    ctx->lane_kernels = saved_lane;
    free(want_sum);

    free(recorded);
    free(memf);
    free(cur);
    free(w);
    free(curd);
    free(mem);
    free(out);
    free(want);
    cl_mem *bufs[] = {&buf, &gup, &ind, &ones, &zeros, &state, &rec};
    for (size_t k = 0; k < ARRAY_LEN(bufs); k++) snn_buffer_release(bufs[k]);
}
END_TEST

/* -------------------------------------------------- lif_lyapunov_backward -- */

typedef struct ly_case {
    size_t G, B, H, W, T;
    int pool, shared;   /* pooled output; both trajectories get the same currents */
    float beta, thr, eps;
    double c;           /* weight of the log-divergence term */
    double other;       /* other layers' squared divergence, in eps^2 (0: a single layer) */
    int expect_flips;   /* the trajectories must reset differently somewhere */
    unsigned reset, sg_kind; /* SNN_LIF_RESET_*, SNN_LIF_SURROGATE_* */
    float sg;
} ly_case;

static const ly_case ly_cases[] = {
    {2, 2, 2, 3, 5, 0, 0, 0.9f, 1.0f, 1e-2f, 0.05, 0.0, 0, SEED_LIF},
    {2, 2, 3, 5, 4, 1, 0, 0.85f, 1.0f, 1e-2f, 0.05, 0.0, 0, SEED_LIF},  /* pooled, odd H, W */
    {2, 3, 3, 3, 5, 0, 1, 0.9f, 1.0f, 1e-2f, 5e-3, 0.0, 0, SEED_LIF},   /* shared input: divergence of size eps */
    {2, 2, 3, 3, 6, 0, 1, 0.9f, 1.0f, 0.3f, 0.05, 0.0, 1, SEED_LIF},    /* large eps: resets differ */
    {3, 2, 11, 9, 3, 1, 0, 0.9f, 1.0f, 1e-2f, 0.05, 2.0, 0, SEED_LIF},  /* G*S = 297 > work-group; d != n */
    {1, 2, 1, 17, 6, 0, 0, 0.9f, 0.8f, 3e-2f, 0.0, 0.0, 0, SEED_LIF},   /* dense, no log term */
    /* reset to zero (the perturbed state decides its own reset) and the other surrogates */
    {2, 2, 3, 3, 6, 0, 1, 0.9f, 1.0f, 0.3f, 0.05, 0.0, 1, SNN_LIF_RESET_ZERO, SNN_LIF_SURROGATE_ATAN, 2.0f},
    {2, 2, 3, 5, 4, 1, 0, 0.85f, 1.0f, 1e-2f, 0.05, 1.0, 0, SNN_LIF_RESET_ZERO, SNN_LIF_SURROGATE_SIGMOID, 25.0f},
    {1, 2, 1, 17, 6, 0, 0, 0.8f, 0.8f, 3e-2f, 0.05, 0.0, 0, SNN_LIF_RESET_NONE, SNN_LIF_SURROGATE_ATAN, 2.0f},
};

#define LY_MARGIN 1e-4

typedef struct ly_ref {
    const ly_case *lc;
    const float *w;        /* upstream gradient (G, 2, T, B, Ho, Wo) or (G, 2, T, B, H, W) */
    const double *n0;      /* (G, M) initial perturbation direction (not scaled by eps) */
    const double *other;   /* (T, B) squared divergence of the other layers */
    double *st;            /* scratch: m, p, diff (G*S each) and smooth spikes (2, G, S) */
    double *rec;           /* (G, 2, T, M): m[t] and the raw diff[t], or NULL */
    double *sq;            /* (T, B) ||diff||^2, or NULL */
    size_t Tmax;           /* steps to run */
    double margin, margin_min;
    size_t flips;
} ly_ref;

/* Sample b's part of L: both trajectories of one layer from cur (G, 2, T, M):
 *   m[t] = lif_next(m[t-1], cm[t]),  u[t] = lif_next(p[t-1], cu[t]),   diff = u - m,
 *   n = sqrt(||diff||^2 + 1e-12),  p[t] = m[t] + eps diff / n   (m[-1] = 0, p[-1] = eps n0)
 *   L_b = sum w f(m - thr) + sum w f(u - thr) + c sum_t log(d / eps + 1e-12),
 *   d = sqrt(||diff||^2 + other + 1e-12). */
static double ly_sample_loss(ly_ref *r, const double *cur, size_t b) {
    const ly_case *lc = r->lc;
    const size_t G = lc->G, H = lc->H, W = lc->W, S = H * W, B = lc->B, M = B * S, T = lc->T, ns = G * S;
    const size_t Ho = H / 2, Wo = W / 2;
    const double beta = lc->beta, thr = lc->thr, eps = lc->eps;
    double *m = r->st, *p = m + ns, *df = p + ns, *fo = df + ns;
    for (size_t i = 0; i < ns; i++) {
        m[i] = 0;
        p[i] = eps * r->n0[(i / S) * M + b * S + i % S];
    }
    r->margin = INFINITY;
    double L = 0;
    for (size_t t = 0; t < r->Tmax; t++) {
        double acc = 0;
        for (size_t i = 0; i < ns; i++) {
            const size_t g = i / S, mi = b * S + i % S;
            const double cm = cur[((g * 2 + 0) * T + t) * M + mi], cu = cur[((g * 2 + 1) * T + t) * M + mi];
            r->flips += (m[i] > thr) != (p[i] > thr);
            const double mn = lif_next(m[i], cm, beta, thr, lc->reset), un = lif_next(p[i], cu, beta, thr, lc->reset);
            r->margin = fmin(r->margin, fmin(fabs(mn - thr), fabs(un - thr)));
            fo[i] = smooth_spike(mn - thr, lc->sg_kind, lc->sg);
            fo[ns + i] = smooth_spike(un - thr, lc->sg_kind, lc->sg);
            m[i] = mn;
            df[i] = un - mn;
            acc += df[i] * df[i];
            if (r->rec) {
                r->rec[((g * 2 + 0) * T + t) * M + mi] = mn;
                r->rec[((g * 2 + 1) * T + t) * M + mi] = df[i];
            }
        }
        for (size_t q = 0; q < 2; q++)
            for (size_t g = 0; g < G; g++) {
                const double *o = fo + q * ns + g * S;
                const size_t base = ((g * 2 + q) * T + t) * B + b;
                if (!lc->pool) {
                    for (size_t s = 0; s < S; s++) L += r->w[base * S + s] * o[s];
                    continue;
                }
                for (size_t yo = 0; yo < Ho; yo++)
                    for (size_t xo = 0; xo < Wo; xo++) {
                        const double *win = o + 2 * yo * W + 2 * xo;
                        L += r->w[base * Ho * Wo + yo * Wo + xo] * 0.25 * (win[0] + win[1] + win[W] + win[W + 1]);
                    }
            }
        const double nrm = sqrt(acc + 1e-12), d = sqrt(acc + r->other[t * B + b] + 1e-12);
        L += lc->c * log(d / eps + 1e-12);
        if (r->sq) r->sq[t * B + b] = acc;
        for (size_t i = 0; i < ns; i++) {
            p[i] = m[i] + eps * df[i] / nrm;
            r->margin = fmin(r->margin, fabs(p[i] - thr));
        }
    }
    r->margin_min = fmin(r->margin_min, r->margin);
    return L;
}

static double ly_loss(void *data, const double *cur, size_t i) {
    ly_ref *r = data;
    const size_t S = r->lc->H * r->lc->W, M = r->lc->B * S;
    return ly_sample_loss(r, cur, (i % M) / S);
}

START_TEST(test_lif_lyapunov_backward) {
    snn_context *ctx = test_context();
    const ly_case *lc = &ly_cases[_i];
    test_rng r;
    test_rng_seed(&r, 2001 + (uint64_t)_i);
    const size_t G = lc->G, B = lc->B, H = lc->H, W = lc->W, T = lc->T, S = H * W, M = B * S, ns = G * S;
    const size_t Ho = H / 2, Wo = W / 2, n = G * 2 * T * M, pad = 11;
    const size_t n_up = lc->pool ? G * 2 * T * B * Ho * Wo : n;
    const float eps = lc->eps;
    char what[200];
    snprintf(what, sizeof what,
             "lif_lyapunov_backward G=%zu B=%zu H=%zu W=%zu T=%zu pool=%d shared=%d eps=%g reset=%u surrogate=%u(%g)", G,
             B, H, W, T, lc->pool, lc->shared, (double)eps, lc->reset, lc->sg_kind, (double)lc->sg);

    float *n0f = host_alloc(G * M);
    for (size_t i = 0; i < G * M; i++) n0f[i] = test_rng_normal(&r);
    float *w = random_array(&r, n_up, -1.0f, 1.0f);
    double *n0 = to_double(n0f, G * M), *other = host_alloc_d(T * B);
    for (size_t i = 0; i < T * B; i++) other[i] = lc->other * (double)eps * eps * test_rng_uniform(&r, 0.5f, 2.0f);
    double *st = host_alloc_d(5 * ns), *curd = host_alloc_d(n), *rec = host_alloc_d(n), *sq = host_alloc_d(T * B);
    float *cur = host_alloc(n);
    ly_ref ref = {lc, w, n0, other, st, NULL, NULL, 0, 0, INFINITY, 0};

    /* Currents step by step, each (t, b) slice redrawn until every membrane (both
     * trajectories and the renormalized perturbed state) is LY_MARGIN from thr. */
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            int tries = 0;
            do {
                expect_msg(++tries < 1000, "cannot draw currents away from the threshold");
                for (size_t i = 0; i < ns; i++) {
                    const size_t g = i / S, mi = b * S + i % S;
                    const size_t km = ((g * 2 + 0) * T + t) * M + mi, ku = ((g * 2 + 1) * T + t) * M + mi;
                    cur[km] = test_rng_uniform(&r, -0.3f * lc->thr, lc->thr);
                    cur[ku] = lc->shared ? cur[km] : cur[km] + test_rng_uniform(&r, -0.03f, 0.03f);
                    curd[km] = cur[km];
                    curd[ku] = cur[ku];
                }
                ref.Tmax = t + 1;
                ly_sample_loss(&ref, curd, b);
            } while (ref.margin < LY_MARGIN);
        }
    ref.Tmax = T;
    ref.rec = rec;
    ref.sq = sq;
    ref.flips = 0;
    size_t resets = 0;
    for (size_t b = 0; b < B; b++) ly_sample_loss(&ref, curd, b);
    for (size_t g = 0; g < G; g++)
        for (size_t t = 0; t + 1 < T; t++)
            for (size_t m = 0; m < M; m++) resets += rec[((g * 2) * T + t) * M + m] > lc->thr;
    const size_t flips = ref.flips;
    expect_msg(resets > 0, "%s: no spikes in the test data", what);
    expect_msg(!lc->expect_flips || flips > 0, "%s: the trajectories never reset differently", what);
    ref.rec = NULL;
    ref.sq = NULL;
    ref.margin_min = INFINITY;
    double *want = host_alloc_d(n);
    finite_diff(ly_loss, &ref, curd, n, want);
    expect_msg(ref.margin_min >= 0.5 * LY_MARGIN, "a finite difference moved a membrane to %g of the threshold",
               ref.margin_min);

    /* The op's inputs: recorded m and raw diff; this layer's sq (layer 1 of 3, the
     * other layers' entries NaN sentinels); gdiv = c / ((d + 1e-12 eps) d). */
    const size_t L = 3, sq_off = T * B, sq_len = L * T * B + pad;
    float *sqh = sentinel_array(sq_len), *gdiv = host_alloc(T * B);
    for (size_t i = 0; i < T * B; i++) {
        sqh[sq_off + i] = (float)sq[i];
        const double d = sqrt(sq[i] + other[i] + 1e-12);
        gdiv[i] = (float)(lc->c / ((d + 1e-12 * eps) * d));
    }
    float *recf = to_float(rec, n);
    cl_mem buf = dev_upload_padded(ctx, recf, n, pad), gup = dev_upload_padded(ctx, w, n_up, pad);
    cl_mem carry = dev_sentinel(ctx, 2 * G * M + pad), sqd = dev_upload(ctx, sqh, sq_len);
    cl_mem gdivd = dev_upload_padded(ctx, gdiv, T * B, pad);
    snn_lif_backward_args a = {0};
    a.buf = buf, a.gup = gup, a.beta = lc->beta, a.thr = lc->thr;
    a.reset = lc->reset, a.sg_kind = lc->sg_kind, a.sg = lc->sg;
    a.G = G, a.S = S, a.B = B, a.T = T, a.H = H, a.W = W, a.pool = lc->pool;
    a.carry = carry, a.sq = sqd, a.sq_off = sq_off, a.gdiv = gdivd, a.eps = eps;
    ck_assert_snn_ok(snn_op_lif_lyapunov_backward(ctx, &a));
    float *got = dev_download(ctx, buf, n + pad), *cg = dev_download(ctx, carry, 2 * G * M + pad);
    check_scaled(got, want, n, 0.0, 1e-4, what);
    printf("    (data: %zu resets; %zu neuron-steps where the trajectories reset differently)\n", resets, flips);
    assert_sentinel(got, n, n + pad, what);
    assert_sentinel(cg, 2 * G * M, 2 * G * M + pad, "lif_lyapunov_backward carry");
    /* each trajectory's half on its own (the perturbed one is easy to get wrong by scale) */
    for (size_t q = 0; q < 2; q++) {
        float *gq = host_alloc(G * T * M);
        double *wq = host_alloc_d(G * T * M);
        for (size_t g = 0; g < G; g++) {
            memcpy(gq + g * T * M, got + (g * 2 + q) * T * M, T * M * sizeof(float));
            memcpy(wq + g * T * M, want + (g * 2 + q) * T * M, T * M * sizeof(double));
        }
        char w2[220];
        snprintf(w2, sizeof w2, "  trajectory %zu alone", q);
        check_scaled(gq, wq, G * T * M, 0.0, 1e-4, w2);
        free(gq);
        free(wq);
    }
    free(got);
    free(cg);

    /* The forward op's record mode gives the same m, raw diff and sq. */
    float *delta0 = host_alloc(G * M);
    for (size_t i = 0; i < G * M; i++) delta0[i] = (float)(eps * n0[i]);
    cl_mem ind = dev_upload(ctx, cur, n), ones = dev_const(ctx, G, 1.0f), zeros = dev_const(ctx, G, 0.0f);
    cl_mem state = dev_const(ctx, G * M, 0.0f), delta = dev_upload(ctx, delta0, G * M);
    cl_mem recd = dev_sentinel(ctx, n + pad), sq2 = dev_sentinel(ctx, sq_len);
    snn_lif_args f = {0};
    f.in = ind, f.gstride = 2 * T * M, f.tstride = M, f.p_off = T * M, f.scale = ones, f.shift = zeros;
    f.beta = lc->beta, f.thr = lc->thr, f.reset = lc->reset, f.eps = eps, f.mem = state, f.delta = delta, f.spk = recd;
    f.spk_gstride = 2 * T * M, f.G = G, f.S = S, f.B = B, f.T = T, f.sq = sq2, f.sq_off = sq_off, f.record = 1;
    ck_assert_snn_ok(snn_op_lif_lyapunov(ctx, &f));
    float *rg = dev_download(ctx, recd, n + pad), *sqg = dev_download(ctx, sq2, sq_len);
    for (size_t q = 0; q < 2; q++) {
        float *gq = host_alloc(G * T * M);
        double *wq = host_alloc_d(G * T * M);
        for (size_t g = 0; g < G; g++) {
            memcpy(gq + g * T * M, rg + (g * 2 + q) * T * M, T * M * sizeof(float));
            memcpy(wq + g * T * M, rec + (g * 2 + q) * T * M, T * M * sizeof(double));
        }
        /* membranes: a few ulp of O(1); diff: float rounding relative to its own size */
        check_scaled(gq, wq, G * T * M, 0.0, q ? 1e-4 : 1e-5,
                     q ? "lif_lyapunov record: raw diff" : "lif_lyapunov record: membranes");
        free(gq);
        free(wq);
    }
    assert_sentinel(rg, n, n + pad, "lif_lyapunov record");
    check_scaled(sqg + sq_off, sq, T * B, 0.0, 1e-4, "lif_lyapunov record: sq");

    free(rg);
    free(sqg);
    free(delta0);
    free(recf);
    free(sqh);
    free(gdiv);
    free(want);
    free(n0f);
    free(w);
    free(n0);
    free(other);
    free(st);
    free(curd);
    free(rec);
    free(sq);
    free(cur);
    cl_mem *bufs[] = {&buf, &gup, &carry, &sqd, &gdivd, &ind, &ones, &zeros, &state, &delta, &recd, &sq2};
    for (size_t k = 0; k < ARRAY_LEN(bufs); k++) snn_buffer_release(bufs[k]);
}
END_TEST

/* -------------------------------------------------------------- batchnorm -- */

typedef struct bn_case {
    size_t C, P, T, Pz, Tz, B, H, W;
} bn_case;

static const bn_case bn_cases[] = {
    {3, 1, 3, 1, 3, 2, 3, 5},   /* one trajectory */
    {2, 2, 3, 2, 3, 2, 3, 3},   /* both trajectories with their own z */
    {2, 2, 3, 1, 3, 3, 3, 1},   /* Pz = 1: the trajectories share z (first layer) */
    {2, 2, 3, 1, 1, 2, 5, 3},   /* Pz = Tz = 1: direct encoding's first layer */
    {3, 1, 4, 1, 1, 2, 3, 3},   /* Tz = 1, one trajectory */
    {2, 1, 2, 1, 2, 2, 17, 19}, /* M = 646: several passes of a work-group */
};

typedef struct bn_ref {
    const bn_case *bc;
    const float *w;      /* (C, P, T, M) upstream gradient */
    size_t M;
    int only_blk;        /* >= 0: the loss of that (c, p, t) block alone */
} bn_ref;

/* y = gamma (z - mean) rstd + beta on block (c, p, t) of z (C, Pz, Tz, M), batch
 * statistics of that z block (biased variance, eps 1e-5); x holds z, then gamma (C),
 * then beta (C). Returns sum w y over channel c (or over one block). */
static double bn_channel_loss(const bn_ref *r, const double *x, size_t c) {
    const bn_case *bc = r->bc;
    const size_t M = r->M, P = bc->P, T = bc->T, Pz = bc->Pz, Tz = bc->Tz, C = bc->C;
    const double *z = x, *gamma = x + C * Pz * Tz * M, *beta = gamma + C;
    double L = 0;
    for (size_t p = 0; p < P; p++)
        for (size_t t = 0; t < T; t++) {
            const size_t blk = (c * P + p) * T + t;
            if (r->only_blk >= 0 && blk != (size_t)r->only_blk) continue;
            const size_t rz = (Pz == 1 ? 0 : p) * Tz + (Tz == 1 ? 0 : t);
            const double *zb = z + (c * Pz * Tz + rz) * M;
            double mean = 0, var = 0;
            for (size_t i = 0; i < M; i++) mean += zb[i];
            mean /= (double)M;
            for (size_t i = 0; i < M; i++) var += (zb[i] - mean) * (zb[i] - mean);
            var /= (double)M;
            const double rstd = 1.0 / sqrt(var + 1e-5);
            for (size_t i = 0; i < M; i++) L += r->w[blk * M + i] * (gamma[c] * (zb[i] - mean) * rstd + beta[c]);
        }
    return L;
}

static double bn_loss(void *data, const double *x, size_t i) {
    const bn_ref *r = data;
    const bn_case *bc = r->bc;
    const size_t nz = bc->C * bc->Pz * bc->Tz * r->M;
    const size_t c = i < nz ? i / (bc->Pz * bc->Tz * r->M) : (i - nz) % bc->C;
    return bn_channel_loss(r, x, c);
}

START_TEST(test_bn_backward) {
    snn_context *ctx = test_context();
    const bn_case *bc = &bn_cases[_i];
    test_rng r;
    test_rng_seed(&r, 3001 + (uint64_t)_i);
    const size_t C = bc->C, P = bc->P, T = bc->T, Pz = bc->Pz, Tz = bc->Tz, M = bc->B * bc->H * bc->W;
    const size_t R = Pz * Tz, nz = C * R * M, ng = C * P * T * M, nx = nz + 2 * C, pad = 9;
    char what[120];
    snprintf(what, sizeof what, "C=%zu P=%zu T=%zu Pz=%zu Tz=%zu M=%zu", C, P, T, Pz, Tz, M);

    /* z: per-block offset and spread, so statistics differ from block to block */
    float *z = host_alloc(nz);
    for (size_t blk = 0; blk < C * R; blk++) {
        const float off = test_rng_uniform(&r, -1.0f, 1.0f), sc = test_rng_uniform(&r, 0.5f, 2.0f);
        for (size_t i = 0; i < M; i++) z[blk * M + i] = off + sc * test_rng_uniform(&r, -1.0f, 1.0f);
    }
    float *gamma = random_array(&r, C, 0.5f, 1.5f), *beta = random_array(&r, C, -0.5f, 0.5f);
    float *w = random_array(&r, ng, -1.0f, 1.0f);
    double *x = host_alloc_d(nx);
    for (size_t i = 0; i < nz; i++) x[i] = z[i];
    for (size_t c = 0; c < C; c++) x[nz + c] = gamma[c], x[nz + C + c] = beta[c];

    /* bn_stats against the reference statistics (tables (R, C)). */
    double *mean = host_alloc_d(R * C), *rstd = host_alloc_d(R * C), *varu = host_alloc_d(R * C);
    double *scale = host_alloc_d(R * C), *shift = host_alloc_d(R * C);
    double zmax = 0;
    for (size_t i = 0; i < nz; i++) zmax = fmax(zmax, fabs(x[i]));
    for (size_t c = 0; c < C; c++)
        for (size_t rz = 0; rz < R; rz++) {
            const double *zb = x + (c * R + rz) * M;
            double mu = 0, ss = 0;
            for (size_t i = 0; i < M; i++) mu += zb[i];
            mu /= (double)M;
            for (size_t i = 0; i < M; i++) ss += (zb[i] - mu) * (zb[i] - mu);
            const size_t k = rz * C + c;
            mean[k] = mu;
            rstd[k] = 1.0 / sqrt(ss / (double)M + 1e-5);
            varu[k] = M > 1 ? ss / (double)(M - 1) : 0.0;
            scale[k] = gamma[c] * rstd[k];
            shift[k] = beta[c] - mu * gamma[c] * rstd[k];
        }
    cl_mem zd = dev_upload_padded(ctx, z, nz, pad), gd = dev_upload(ctx, gamma, C), bd = dev_upload(ctx, beta, C);
    cl_mem tabs[5];
    for (int k = 0; k < 5; k++) tabs[k] = dev_sentinel(ctx, R * C + pad);
    ck_assert_snn_ok(snn_op_bn_stats(ctx, zd, C, R, M, gd, bd, tabs[0], tabs[1], tabs[2], tabs[3], tabs[4]));
    const double *want_tabs[5] = {mean, rstd, varu, scale, shift};
    const char *tab_names[5] = {"mean", "rstd", "var_unbiased", "scale", "shift"};
    /* Float sums over M <= 646 values: relative error well below 1e-5 of the data's
     * size (mean and shift floored at max |z|, the size their roundoff scales with). */
    float *stat[5];
    for (int k = 0; k < 5; k++) {
        stat[k] = dev_download(ctx, tabs[k], R * C + pad);
        char w2[256];
        snprintf(w2, sizeof w2, "bn_stats %s %s", tab_names[k], what);
        check_scaled(stat[k], want_tabs[k], R * C, (k == 0 || k == 4) ? zmax : 0.0, 1e-5, w2);
        assert_sentinel(stat[k], R * C, R * C + pad, w2);
    }

    /* bn_running_update: rm = 0.9 rm + 0.1 mean, rv likewise with the unbiased
     * variance, for t < T, p < P, from the device's own tables. */
    float *rm0 = random_array(&r, C, -0.5f, 0.5f), *rv0 = random_array(&r, C, 0.5f, 1.5f);
    cl_mem rmd = dev_upload_padded(ctx, rm0, C, pad), rvd = dev_upload_padded(ctx, rv0, C, pad);
    ck_assert_snn_ok(snn_op_bn_running_update(ctx, tabs[0], tabs[2], rmd, rvd, C, P, T, Pz, Tz, 0.1f));
    double *want_rm = host_alloc_d(C), *want_rv = host_alloc_d(C);
    for (size_t c = 0; c < C; c++) {
        double rm = rm0[c], rv = rv0[c];
        for (size_t t = 0; t < T; t++)
            for (size_t p = 0; p < P; p++) {
                const size_t k = ((Pz == 1 ? 0 : p) * Tz + (Tz == 1 ? 0 : t)) * C + c;
                rm = 0.9 * rm + 0.1 * (double)stat[0][k];
                rv = 0.9 * rv + 0.1 * (double)stat[2][k];
            }
        want_rm[c] = rm, want_rv[c] = rv;
    }
    float *grm = dev_download(ctx, rmd, C + pad), *grv = dev_download(ctx, rvd, C + pad);
    char w2[256];
    snprintf(w2, sizeof w2, "bn_running_update mean %s", what);
    check_scaled(grm, want_rm, C, 0.1, 1e-5, w2);
    assert_sentinel(grm, C, C + pad, w2);
    snprintf(w2, sizeof w2, "bn_running_update var %s", what);
    check_scaled(grv, want_rv, C, 0.1, 1e-5, w2);
    assert_sentinel(grv, C, C + pad, w2);

    /* bn_backward: per-block d L_blk / d z, dgamma and dbeta. */
    cl_mem g = dev_upload_padded(ctx, w, ng, pad), partial = dev_sentinel(ctx, 2 * P * T * C + pad);
    cl_mem dgamma = dev_sentinel(ctx, C + pad), dbeta = dev_sentinel(ctx, C + pad);
    ck_assert_snn_ok(snn_op_bn_backward(ctx, g, zd, tabs[0], tabs[1], gd, C, P, T, Pz, Tz, M, partial, dgamma,
                                        dbeta));
    float *got = dev_download(ctx, g, ng + pad);
    snprintf(w2, sizeof w2, "bn_backward dz %s", what);
    assert_sentinel(got, ng, ng + pad, w2);
    /* each block against the finite differences of its own loss in its z block */
    bn_ref ref = {bc, w, M, -1};
    double *want_blk = host_alloc_d(ng);
    for (size_t c = 0; c < C; c++)
        for (size_t p = 0; p < P; p++)
            for (size_t t = 0; t < T; t++) {
                const size_t blk = (c * P + p) * T + t, rz = (Pz == 1 ? 0 : p) * Tz + (Tz == 1 ? 0 : t);
                ref.only_blk = (int)blk;
                double *zb = x + (c * R + rz) * M;
                for (size_t i = 0; i < M; i++) {
                    const double x0 = zb[i], xp = x0 + FD_H, xm = x0 - FD_H;
                    zb[i] = xp;
                    const double lp = bn_channel_loss(&ref, x, c);
                    zb[i] = xm;
                    const double lm = bn_channel_loss(&ref, x, c);
                    zb[i] = x0;
                    want_blk[blk * M + i] = (lp - lm) / (xp - xm);
                }
            }
    check_scaled(got, want_blk, ng, 0.0, 1e-4, w2);
    /* the total gradient of the shared z, and of gamma and beta */
    ref.only_blk = -1;
    double *want = host_alloc_d(nx);
    finite_diff(bn_loss, &ref, x, nx, want);
    float *gg = dev_download(ctx, dgamma, C + pad), *gb = dev_download(ctx, dbeta, C + pad);
    snprintf(w2, sizeof w2, "bn_backward dgamma %s", what);
    check_scaled(gg, want + nz, C, 0.0, 1e-4, w2);
    assert_sentinel(gg, C, C + pad, w2);
    snprintf(w2, sizeof w2, "bn_backward dbeta %s", what);
    check_scaled(gb, want + nz + C, C, 0.0, 1e-4, w2);
    assert_sentinel(gb, C, C + pad, w2);
    float *part = dev_download(ctx, partial, 2 * P * T * C + pad);
    assert_sentinel(part, 2 * P * T * C, 2 * P * T * C + pad, "bn_backward partial");

    /* Synchronized BatchNorm's halves (one process: the sums over processes are the
     * identity). bn_moments: (mean, sum of squared deviations) per (r, c); bn_tables
     * from (mean, biased variance): the tables above. */
    cl_mem momd = dev_sentinel(ctx, 2 * R * C + pad);
    ck_assert_snn_ok(snn_op_bn_moments(ctx, zd, C, R, M, momd));
    float *mom = dev_download(ctx, momd, 2 * R * C + pad);
    double *want_mom = host_alloc_d(2 * R * C);
    float *stats = host_alloc(2 * R * C);
    for (size_t k = 0; k < R * C; k++) {
        want_mom[2 * k] = mean[k];
        want_mom[2 * k + 1] = varu[k] * (double)(M - 1);
        stats[2 * k] = (float)mean[k];
        stats[2 * k + 1] = (float)(want_mom[2 * k + 1] / (double)M);
    }
    snprintf(w2, sizeof w2, "bn_moments %s", what);
    check_scaled(mom, want_mom, 2 * R * C, zmax, 1e-5, w2);
    assert_sentinel(mom, 2 * R * C, 2 * R * C + pad, w2);
    cl_mem statd = dev_upload(ctx, stats, 2 * R * C), tabs2[5];
    for (int k = 0; k < 5; k++) tabs2[k] = dev_sentinel(ctx, R * C + pad);
    ck_assert_snn_ok(snn_op_bn_tables(ctx, statd, C, R, (double)M, gd, bd, tabs2[0], tabs2[1], tabs2[2], tabs2[3],
                                      tabs2[4]));
    for (int k = 0; k < 5; k++) {
        float *t2 = dev_download(ctx, tabs2[k], R * C + pad);
        snprintf(w2, sizeof w2, "bn_tables %s %s", tab_names[k], what);
        check_scaled(t2, want_tabs[k], R * C, (k == 0 || k == 4) ? zmax : 0.0, 1e-5, w2);
        assert_sentinel(t2, R * C, R * C + pad, w2);
        free(t2);
        snn_buffer_release(&tabs2[k]);
    }
    /* bn_backward_sums: bn_backward's partial; bn_backward_apply with the means
     * partial / M: bn_backward's dz, dgamma and dbeta */
    cl_mem g2 = dev_upload_padded(ctx, w, ng, pad), partial2 = dev_sentinel(ctx, 2 * P * T * C + pad);
    ck_assert_snn_ok(snn_op_bn_backward_sums(ctx, g2, zd, tabs[0], tabs[1], C, P, T, Pz, Tz, M, partial2));
    float *part2 = dev_download(ctx, partial2, 2 * P * T * C + pad);
    ck_assert_mem_eq(part2, part, (2 * P * T * C + pad) * sizeof(float));
    float *means = host_alloc(2 * P * T * C);
    for (size_t k = 0; k < 2 * P * T * C; k++) means[k] = part[k] / (float)M;
    cl_mem meansd = dev_upload(ctx, means, 2 * P * T * C);
    cl_mem dgamma2 = dev_sentinel(ctx, C + pad), dbeta2 = dev_sentinel(ctx, C + pad);
    ck_assert_snn_ok(snn_op_bn_backward_apply(ctx, g2, zd, tabs[0], tabs[1], gd, C, P, T, Pz, Tz, M, meansd,
                                              partial2, dgamma2, dbeta2));
    float *got2 = dev_download(ctx, g2, ng + pad), *gg2 = dev_download(ctx, dgamma2, C + pad),
          *gb2 = dev_download(ctx, dbeta2, C + pad);
    snprintf(w2, sizeof w2, "bn_backward_apply dz %s", what);
    check_scaled(got2, want_blk, ng, 0.0, 1e-4, w2);
    assert_sentinel(got2, ng, ng + pad, w2);
    check_scaled(gg2, want + nz, C, 0.0, 1e-4, "bn_backward_apply dgamma");
    check_scaled(gb2, want + nz + C, C, 0.0, 1e-4, "bn_backward_apply dbeta");
    assert_sentinel(gg2, C, C + pad, "bn_backward_apply dgamma");
    assert_sentinel(gb2, C, C + pad, "bn_backward_apply dbeta");
    free(mom);
    free(want_mom);
    free(stats);
    free(part2);
    free(means);
    free(got2);
    free(gg2);
    free(gb2);
    snn_buffer_release(&momd);
    snn_buffer_release(&statd);
    snn_buffer_release(&g2);
    snn_buffer_release(&partial2);
    snn_buffer_release(&meansd);
    snn_buffer_release(&dgamma2);
    snn_buffer_release(&dbeta2);
    if (R == P * T) {
        /* nothing shared: the blocks are the gradient of z */
        snprintf(w2, sizeof w2, "bn_backward total dz %s", what);
        check_scaled(got, want, nz, 0.0, 1e-4, w2);
    } else {
        /* shared z (Pz = 1): the blocks summed with sum_blocks, as backprop does */
        ck_assert(Pz == 1);
        cl_mem dz = dev_sentinel(ctx, nz + pad);
        ck_assert_snn_ok(snn_op_sum_blocks(ctx, g, dz, C, (P * T) / R, Tz * M));
        float *sum = dev_download(ctx, dz, nz + pad);
        snprintf(w2, sizeof w2, "bn_backward + sum_blocks total dz %s", what);
        check_scaled(sum, want, nz, 0.0, 1e-4, w2);
        assert_sentinel(sum, nz, nz + pad, w2);
        free(sum);
        snn_buffer_release(&dz);
    }

    free(part);
    free(gg);
    free(gb);
    free(got);
    free(want);
    free(want_blk);
    free(grm);
    free(grv);
    free(want_rm);
    free(want_rv);
    free(rm0);
    free(rv0);
    for (int k = 0; k < 5; k++) {
        free(stat[k]);
        snn_buffer_release(&tabs[k]);
    }
    free(mean);
    free(rstd);
    free(varu);
    free(scale);
    free(shift);
    free(z);
    free(gamma);
    free(beta);
    free(w);
    free(x);
    cl_mem *bufs[] = {&zd, &gd, &bd, &rmd, &rvd, &g, &partial, &dgamma, &dbeta};
    for (size_t k = 0; k < ARRAY_LEN(bufs); k++) snn_buffer_release(bufs[k]);
}
END_TEST

/* bn_stats with a single value per block: variance 0, the unbiased one defined as 0. */
START_TEST(test_bn_stats_single) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 3101);
    const size_t C = 2, R = 3, pad = 5;
    float *z = random_array(&r, C * R, -2.0f, 2.0f), *gamma = random_array(&r, C, 0.5f, 1.5f);
    float *beta = random_array(&r, C, -0.5f, 0.5f);
    cl_mem zd = dev_upload_padded(ctx, z, C * R, pad), gd = dev_upload(ctx, gamma, C), bd = dev_upload(ctx, beta, C);
    cl_mem tabs[5];
    for (int k = 0; k < 5; k++) tabs[k] = dev_sentinel(ctx, R * C + pad);
    ck_assert_snn_ok(snn_op_bn_stats(ctx, zd, C, R, 1, gd, bd, tabs[0], tabs[1], tabs[2], tabs[3], tabs[4]));
    float *h[5];
    for (int k = 0; k < 5; k++) {
        h[k] = dev_download(ctx, tabs[k], R * C + pad);
        assert_sentinel(h[k], R * C, R * C + pad, "bn_stats M=1");
    }
    for (size_t c = 0; c < C; c++)
        for (size_t rz = 0; rz < R; rz++) {
            const size_t k = rz * C + c;
            const double rs = 1.0 / sqrt(1e-5);
            expect_msg(h[0][k] == z[c * R + rz], "bn_stats M=1 mean %g, expected %g", (double)h[0][k],
                       (double)z[c * R + rz]);
            expect_msg(fabs(h[1][k] - rs) <= 1e-5 * rs, "bn_stats M=1 rstd %g, expected %g", (double)h[1][k], rs);
            expect_msg(h[2][k] == 0.0f, "bn_stats M=1 unbiased variance %g", (double)h[2][k]);
            expect_msg(fabs(h[4][k] - (beta[c] - z[c * R + rz] * gamma[c] * rs)) <= 1e-5 * rs * 2,
                       "bn_stats M=1 shift %g", (double)h[4][k]);
        }
    for (int k = 0; k < 5; k++) {
        free(h[k]);
        snn_buffer_release(&tabs[k]);
    }
    free(z);
    free(gamma);
    free(beta);
    snn_buffer_release(&zd);
    snn_buffer_release(&gd);
    snn_buffer_release(&bd);
}
END_TEST

/* ---------------------------------------------------------- pool2d (any) -- */

/* Pooling of any window and stride, average and max: the forward against a direct
 * reference; the average's backward by finite differences; max pooling's backward
 * routes each window's gradient to its first spike, read from recorded membranes (one
 * trajectory, and two: the perturbed planes hold raw differences). */
typedef struct pool_case {
    size_t P, H, W, K, stride;
    int max;
} pool_case;

static const pool_case pool_cases[] = {
    {6, 7, 9, 3, 2, 0}, {4, 8, 8, 2, 1, 0}, {8, 5, 7, 3, 3, 0},
    {6, 7, 9, 3, 2, 1}, {4, 8, 8, 2, 1, 1}, {8, 6, 6, 2, 2, 1},
};

static double pool_ref(const pool_case *pc, const double *x, size_t plane, size_t oy, size_t ox, size_t *arg) {
    const size_t Ho = (pc->H - pc->K) / pc->stride + 1, Wo = (pc->W - pc->K) / pc->stride + 1;
    (void)Ho;
    (void)Wo;
    double acc = pc->max ? -INFINITY : 0.0;
    for (size_t ky = 0; ky < pc->K; ky++)
        for (size_t kx = 0; kx < pc->K; kx++) {
            const size_t s = (oy * pc->stride + ky) * pc->W + ox * pc->stride + kx;
            const double v = x[plane * pc->H * pc->W + s];
            if (pc->max && v > acc) {
                acc = v;
                if (arg) *arg = s;
            }
            if (!pc->max) acc += v;
        }
    return pc->max ? acc : acc / (double)(pc->K * pc->K);
}

typedef struct pool_lossdata {
    const pool_case *pc;
    const float *w;
} pool_lossdata;

static double pool_loss(void *data, const double *x, size_t i) {
    (void)i;
    const pool_lossdata *d = data;
    const pool_case *pc = d->pc;
    const size_t Ho = (pc->H - pc->K) / pc->stride + 1, Wo = (pc->W - pc->K) / pc->stride + 1;
    double L = 0;
    for (size_t pl = 0; pl < pc->P; pl++)
        for (size_t oy = 0; oy < Ho; oy++)
            for (size_t ox = 0; ox < Wo; ox++) L += d->w[(pl * Ho + oy) * Wo + ox] * pool_ref(pc, x, pl, oy, ox, NULL);
    return L;
}

START_TEST(test_pool2d) {
    snn_context *ctx = test_context();
    const pool_case *pc = &pool_cases[_i];
    test_rng r;
    test_rng_seed(&r, 7001 + (uint64_t)_i);
    const size_t HW = pc->H * pc->W, Ho = (pc->H - pc->K) / pc->stride + 1, Wo = (pc->W - pc->K) / pc->stride + 1;
    const size_t n_in = pc->P * HW, n_out = pc->P * Ho * Wo, pad = 9;
    const snn_pool_geom g = {pc->K, pc->stride, Ho, Wo, pc->max};
    const float thr = 0.5f;
    char what[160];
    snprintf(what, sizeof what, "pool2d %s P=%zu %zux%zu K=%zu stride=%zu", pc->max ? "max" : "avg", pc->P, pc->H,
             pc->W, pc->K, pc->stride);
    /* membranes, traj = 2 layout: planes (traj, TB) with TB = P / 2; the perturbed half
     * holds small differences, some of which flip spikes */
    float *rec = random_array(&r, n_in, 0.0f, 1.0f);
    const size_t TB = pc->P / 2;
    for (size_t i = TB * HW; i < n_in; i++) rec[i] = test_rng_uniform(&r, -0.3f, 0.3f);
    for (int traj = 1; traj <= 2; traj++) {
        /* the pool's input: spikes (max) as the kernel reads them from rec, or rec itself (average) */
        double *x = host_alloc_d(n_in);
        for (size_t i = 0; i < n_in; i++) {
            const size_t pl = i / HW;
            double v = rec[i];
            if (traj == 2 && pl >= TB) v += rec[i - TB * HW];
            x[i] = pc->max ? (v > thr ? 1.0 : 0.0) : rec[i];
        }
        float *xf = host_alloc(n_in);
        for (size_t i = 0; i < n_in; i++) xf[i] = (float)x[i];
        float *w = random_array(&r, n_out, -1.0f, 1.0f);
        cl_mem xin = dev_upload_padded(ctx, xf, n_in, pad), out = dev_sentinel(ctx, n_out + pad);
        cl_mem gw = dev_upload_padded(ctx, w, n_out, pad), gin = dev_sentinel(ctx, n_in + pad);
        cl_mem recd = dev_upload_padded(ctx, rec, n_in, pad);
        ck_assert_snn_ok(snn_op_pool2d(ctx, xin, out, pc->P, pc->H, pc->W, &g));
        float *got = dev_download(ctx, out, n_out + pad);
        double *want = host_alloc_d(n_out);
        for (size_t pl = 0; pl < pc->P; pl++)
            for (size_t oy = 0; oy < Ho; oy++)
                for (size_t ox = 0; ox < Wo; ox++) want[(pl * Ho + oy) * Wo + ox] = pool_ref(pc, x, pl, oy, ox, NULL);
        check_scaled(got, want, n_out, 0.0, 1e-6, what);
        assert_sentinel(got, n_out, n_out + pad, what);
        ck_assert_snn_ok(snn_op_pool2d_backward(ctx, gw, gin, pc->P, pc->H, pc->W, &g, recd, thr, (size_t)traj, TB));
        float *gg = dev_download(ctx, gin, n_in + pad);
        double *wantg = host_alloc_d(n_in);
        if (!pc->max) {
            pool_lossdata d = {pc, w};
            finite_diff(pool_loss, &d, x, n_in, wantg);
        } else {
            /* each window's gradient to its first largest spike (row-major) */
            for (size_t pl = 0; pl < pc->P; pl++)
                for (size_t oy = 0; oy < Ho; oy++)
                    for (size_t ox = 0; ox < Wo; ox++) {
                        size_t arg = (oy * pc->stride) * pc->W + ox * pc->stride;
                        pool_ref(pc, x, pl, oy, ox, &arg);
                        wantg[pl * HW + arg] += w[(pl * Ho + oy) * Wo + ox];
                    }
        }
        char w2[200];
        snprintf(w2, sizeof w2, "%s backward traj=%d", what, traj);
        check_scaled(gg, wantg, n_in, 0.0, 1e-5, w2);
        assert_sentinel(gg, n_in, n_in + pad, w2);
        free(got);
        free(gg);
        free(want);
        free(wantg);
        free(x);
        free(xf);
        free(w);
        cl_mem *bufs[] = {&xin, &out, &gw, &gin, &recd};
        for (size_t k = 0; k < ARRAY_LEN(bufs); k++) snn_buffer_release(bufs[k]);
        if (!pc->max) break; /* the average reads no membranes */
    }
    free(rec);
}
END_TEST

/* ---------------------------------------------------------- conv2d (any) -- */

/* Convolutions of any square kernel, stride and padding (snn_op_conv2d_at and its
 * backward, im2col + GEMM), with odd sizes, against a double reference: the forward
 * exactly, the gradients by finite differences; one image per chunk and all at once. */
typedef struct conv2d_case {
    size_t C, N, H, W, Cout, K, stride, pad;
} conv2d_case;

static const conv2d_case conv2d_cases[] = {
    {2, 3, 9, 7, 3, 5, 1, 2}, /* 5x5, same size */
    {3, 2, 8, 9, 4, 3, 2, 1}, /* strided */
    {2, 2, 7, 7, 3, 1, 1, 0}, /* 1x1 */
    {1, 3, 6, 5, 2, 4, 2, 0}, /* even kernel, stride 2, no padding: the last column unread */
    {2, 2, 5, 5, 2, 3, 1, 3}, /* padding wider than the kernel reaches: zero border outputs */
    {3, 2, 6, 6, 2, 3, 1, 1}, /* the seed's 3x3: dispatched to the 3x3 paths */
};

typedef struct conv2d_ref {
    const conv2d_case *cc;
    const double *x, *wt;
    const float *wout;
    int wrt_weight;
    double *out; /* the forward, when not NULL */
} conv2d_ref;

static size_t conv2d_out(size_t n, const conv2d_case *cc) { return (n + 2 * cc->pad - cc->K) / cc->stride + 1; }

static double conv2d_loss_of(const conv2d_case *cc, const double *x, const double *wt, const float *wout,
                             double *outp) {
    const size_t C = cc->C, N = cc->N, H = cc->H, W = cc->W, K = cc->K, Ho = conv2d_out(H, cc), Wo = conv2d_out(W, cc);
    double L = 0;
    for (size_t co = 0; co < cc->Cout; co++)
        for (size_t n = 0; n < N; n++)
            for (size_t oy = 0; oy < Ho; oy++)
                for (size_t ox = 0; ox < Wo; ox++) {
                    double acc = 0;
                    for (size_t c = 0; c < C; c++)
                        for (size_t ky = 0; ky < K; ky++)
                            for (size_t kx = 0; kx < K; kx++) {
                                const long sy = (long)(oy * cc->stride + ky) - (long)cc->pad;
                                const long sx = (long)(ox * cc->stride + kx) - (long)cc->pad;
                                if (sy < 0 || sy >= (long)H || sx < 0 || sx >= (long)W) continue;
                                acc += wt[((co * C + c) * K + ky) * K + kx] * x[((c * N + n) * H + (size_t)sy) * W + (size_t)sx];
                            }
                    const size_t o = ((co * N + n) * Ho + oy) * Wo + ox;
                    if (outp) outp[o] = acc;
                    L += wout[o] * acc;
                }
    return L;
}

static double conv2d_loss(void *data, const double *v, size_t i) {
    (void)i;
    const conv2d_ref *r = data;
    return r->wrt_weight ? conv2d_loss_of(r->cc, r->x, v, r->wout, NULL) : conv2d_loss_of(r->cc, v, r->wt, r->wout, NULL);
}

START_TEST(test_conv2d_general) {
    snn_context *ctx = test_context();
    const conv2d_case *cc = &conv2d_cases[_i];
    test_rng r;
    test_rng_seed(&r, 4501 + (uint64_t)_i);
    const size_t C = cc->C, N = cc->N, H = cc->H, W = cc->W, Cout = cc->Cout, K = cc->K;
    const size_t Ho = conv2d_out(H, cc), Wo = conv2d_out(W, cc), pad = 13;
    const size_t n_in = C * N * H * W, n_w = Cout * C * K * K, n_out = Cout * N * Ho * Wo;
    const snn_conv_geom g = {C, H, W, Cout, K, cc->stride, cc->pad, Ho, Wo};
    float *x = random_array(&r, n_in, -1.0f, 1.0f), *wt = random_array(&r, n_w, -1.0f, 1.0f);
    float *wout = random_array(&r, n_out, -1.0f, 1.0f);
    double *xd = to_double(x, n_in), *wd = to_double(wt, n_w), *want_out = host_alloc_d(n_out);
    double *want_x = host_alloc_d(n_in), *want_w = host_alloc_d(n_w);
    conv2d_loss_of(cc, xd, wd, wout, want_out);
    conv2d_ref ref = {cc, xd, wd, wout, 0, NULL};
    finite_diff(conv2d_loss, &ref, xd, n_in, want_x);
    ref.wrt_weight = 1;
    finite_diff(conv2d_loss, &ref, wd, n_w, want_w);
    cl_mem xin = dev_upload_padded(ctx, x, n_in, pad), wdev = dev_upload_padded(ctx, wt, n_w, pad);
    cl_mem gout = dev_upload_padded(ctx, wout, n_out, pad);
    const size_t limits[] = {1, (size_t)1 << 26};
    for (size_t li = 0; li < ARRAY_LEN(limits); li++) {
        char what[200];
        snprintf(what, sizeof what, "conv2d C=%zu N=%zu %zux%zu Cout=%zu K=%zu stride=%zu pad=%zu limit=%zu", C, N, H,
                 W, Cout, K, cc->stride, cc->pad, limits[li]);
        snn_workspace ws = {.limit = limits[li]}, ws2 = {.limit = limits[li]};
        cl_mem out = dev_sentinel(ctx, n_out + pad), dweight = dev_sentinel(ctx, n_w + pad);
        cl_mem din = dev_sentinel(ctx, n_in + pad);
        ck_assert_snn_ok(snn_op_conv2d_at(ctx, (snn_images){xin, N, 0}, N, &g, wdev, (snn_images){out, N, 0}, &ws));
        ck_assert_snn_ok(snn_op_conv2d_backward_at(ctx, (snn_images){xin, N, 0}, N, &g, wdev,
                                                   (snn_images){gout, N, 0}, dweight, 0.0f, (snn_images){din, N, 0},
                                                   &ws, &ws2));
        float *go = dev_download(ctx, out, n_out + pad), *gw = dev_download(ctx, dweight, n_w + pad);
        float *gx = dev_download(ctx, din, n_in + pad);
        char w2[240];
        snprintf(w2, sizeof w2, "%s out", what);
        check_scaled(go, want_out, n_out, 0.0, 1e-5, w2);
        assert_sentinel(go, n_out, n_out + pad, w2);
        snprintf(w2, sizeof w2, "%s dW", what);
        check_scaled(gw, want_w, n_w, 0.0, 1e-4, w2);
        assert_sentinel(gw, n_w, n_w + pad, w2);
        snprintf(w2, sizeof w2, "%s dx", what);
        check_scaled(gx, want_x, n_in, 0.0, 1e-4, w2);
        assert_sentinel(gx, n_in, n_in + pad, w2);
        free(go);
        free(gw);
        free(gx);
        snn_workspace_release(&ws);
        snn_workspace_release(&ws2);
        snn_buffer_release(&out);
        snn_buffer_release(&dweight);
        snn_buffer_release(&din);
    }
    free(x);
    free(wt);
    free(wout);
    free(xd);
    free(wd);
    free(want_out);
    free(want_x);
    free(want_w);
    cl_mem *bufs[] = {&xin, &wdev, &gout};
    for (size_t k = 0; k < ARRAY_LEN(bufs); k++) snn_buffer_release(bufs[k]);
}
END_TEST

/* ------------------------------------------------------- conv3x3_backward -- */

typedef struct conv_case {
    size_t C, N, H, W, Cout;
} conv_case;

static const conv_case conv_cases[] = {
    {3, 3, 5, 7, 4}, {2, 4, 4, 3, 3}, {1, 2, 1, 9, 2}, {4, 3, 3, 3, 5}, {2, 5, 6, 5, 1},
};

typedef struct conv_ref {
    const conv_case *cc;
    const double *x, *wt;  /* whichever is not being differentiated */
    const float *wout;     /* (Cout, N, H, W) */
    int wrt_weight;
} conv_ref;

/* L = sum wout * conv3x3(x (C, N, H, W), wt (Cout, C, 3, 3)), stride 1, zero padding 1. */
static double conv_loss_of(const conv_case *cc, const double *x, const double *wt, const float *wout) {
    const size_t C = cc->C, N = cc->N, H = cc->H, W = cc->W;
    double L = 0;
    for (size_t co = 0; co < cc->Cout; co++)
        for (size_t n = 0; n < N; n++)
            for (size_t y = 0; y < H; y++)
                for (size_t xx = 0; xx < W; xx++) {
                    double acc = 0;
                    for (size_t c = 0; c < C; c++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                const long sy = (long)y + ky - 1, sx = (long)xx + kx - 1;
                                if (sy < 0 || sy >= (long)H || sx < 0 || sx >= (long)W) continue;
                                acc += wt[((co * C + c) * 3 + (size_t)ky) * 3 + (size_t)kx] *
                                       x[((c * N + n) * H + (size_t)sy) * W + (size_t)sx];
                            }
                    L += wout[((co * N + n) * H + y) * W + xx] * acc;
                }
    return L;
}

static double conv_loss(void *data, const double *v, size_t i) {
    (void)i;
    const conv_ref *r = data;
    return r->wrt_weight ? conv_loss_of(r->cc, r->x, v, r->wout) : conv_loss_of(r->cc, v, r->wt, r->wout);
}

START_TEST(test_conv3x3_backward) {
    snn_context *ctx = test_context();
    const conv_case *cc = &conv_cases[_i];
    test_rng r;
    test_rng_seed(&r, 4001 + (uint64_t)_i);
    const size_t C = cc->C, N = cc->N, H = cc->H, W = cc->W, Cout = cc->Cout;
    const size_t n_in = C * N * H * W, n_w = Cout * C * 9, n_out = Cout * N * H * W, pad = 17;
    const size_t per_image = C * 9 * H * W * sizeof(float);
    float *x = random_array(&r, n_in, -1.0f, 1.0f), *wt = random_array(&r, n_w, -1.0f, 1.0f);
    float *wout = random_array(&r, n_out, -1.0f, 1.0f);
    double *xd = to_double(x, n_in), *wd = to_double(wt, n_w);
    double *want_x = host_alloc_d(n_in), *want_w = host_alloc_d(n_w);
    conv_ref ref = {cc, xd, wd, wout, 0};
    finite_diff(conv_loss, &ref, xd, n_in, want_x);
    ref.wrt_weight = 1;
    finite_diff(conv_loss, &ref, wd, n_w, want_w);

    cl_mem xin = dev_upload_padded(ctx, x, n_in, pad), wdev = dev_upload_padded(ctx, wt, n_w, pad);
    cl_mem dout = dev_upload_padded(ctx, wout, n_out, pad);
    /* one image per chunk, two per chunk (a few KB: N = 3 -> 2 + 1), all at once */
    const size_t limits[] = {1, 2 * per_image + 7, (size_t)1 << 26};
    for (size_t li = 0; li < ARRAY_LEN(limits); li++)
        for (int with_din = 1; with_din >= 0; with_din--) {
            size_t chunk = limits[li] / per_image;
            if (chunk < 1) chunk = 1;
            if (chunk > N) chunk = N;
            const size_t allowed = chunk * per_image / sizeof(float), ws_len = allowed + 23;
            /* Workspaces handed over sentinel-filled with room beyond what the op may use. */
            snn_workspace ws = {.buf = {dev_sentinel(ctx, ws_len), ws_len * sizeof(float)}, .limit = limits[li]};
            snn_workspace ws2 = {.buf = {dev_sentinel(ctx, ws_len), ws_len * sizeof(float)}, .limit = limits[li]};
            /* outputs start as NaN everywhere: dweight's first chunk (beta = 0) and col2im
             * must not read them */
            cl_mem dweight = dev_sentinel(ctx, n_w + pad), din = with_din ? dev_sentinel(ctx, n_in + pad) : NULL;
            ck_assert_snn_ok(
                snn_op_conv3x3_backward(ctx, xin, C, N, H, W, wdev, Cout, dout, dweight, din, &ws, &ws2));
            char what[200];
            snprintf(what, sizeof what, "conv3x3_backward C=%zu N=%zu H=%zu W=%zu Cout=%zu chunk=%zu din=%d", C, N, H,
                     W, Cout, chunk, with_din);
            float *gw = dev_download(ctx, dweight, n_w + pad);
            char w2[240];
            snprintf(w2, sizeof w2, "%s dW", what);
            /* float sums of at most N*H*W*Cout = 150 products of O(1) values */
            check_scaled(gw, want_w, n_w, 0.0, 1e-4, w2);
            assert_sentinel(gw, n_w, n_w + pad, w2);
            free(gw);
            if (din) {
                float *gx = dev_download(ctx, din, n_in + pad);
                snprintf(w2, sizeof w2, "%s dx", what);
                check_scaled(gx, want_x, n_in, 0.0, 1e-4, w2);
                assert_sentinel(gx, n_in, n_in + pad, w2);
                free(gx);
            }
            expect_msg(ws.buf.cap == ws_len * sizeof(float) && ws2.buf.cap == ws_len * sizeof(float),
                       "%s: a workspace was reallocated", what);
            float *s1 = dev_download(ctx, ws.buf.mem, ws_len), *s2 = dev_download(ctx, ws2.buf.mem, ws_len);
            assert_sentinel(s1, allowed, ws_len, "conv3x3_backward workspace beyond the limit");
            assert_sentinel(s2, with_din ? allowed : 0, ws_len, "conv3x3_backward ws2 beyond the limit");
            free(s1);
            free(s2);
            snn_workspace_release(&ws);
            snn_workspace_release(&ws2);
            snn_buffer_release(&dweight);
            if (din) snn_buffer_release(&din);
        }
    free(x);
    free(wt);
    free(wout);
    free(xd);
    free(wd);
    free(want_x);
    free(want_w);
    snn_buffer_release(&xin);
    snn_buffer_release(&wdev);
    snn_buffer_release(&dout);
}
END_TEST

/* --------------------------------------------------------- linear_backward -- */

typedef struct linear_ref {
    size_t rows, fin, fout;
    const float *wout; /* (rows, fout) */
} linear_ref;

/* x = in (rows, fin), weight (fout, fin), bias (fout); L = sum wout * (in W^T + b). */
static double linear_loss(void *data, const double *x, size_t i) {
    (void)i;
    const linear_ref *r = data;
    const double *in = x, *wt = x + r->rows * r->fin, *bias = wt + r->fout * r->fin;
    double L = 0;
    for (size_t a = 0; a < r->rows; a++)
        for (size_t j = 0; j < r->fout; j++) {
            double acc = bias[j];
            for (size_t p = 0; p < r->fin; p++) acc += in[a * r->fin + p] * wt[j * r->fin + p];
            L += r->wout[a * r->fout + j] * acc;
        }
    return L;
}

START_TEST(test_linear_backward) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 5001);
    const struct { size_t rows, fin, fout; } cases[] = {{5, 37, 11}, {1, 13, 3}, {9, 100, 10}, {7, 1, 4}};
    for (size_t k = 0; k < ARRAY_LEN(cases); k++) {
        const size_t rows = cases[k].rows, fin = cases[k].fin, fout = cases[k].fout, pad = 8;
        const size_t ni = rows * fin, nw = fout * fin, nx = ni + nw + fout;
        float *in = random_array(&r, ni, -1.0f, 1.0f), *wt = random_array(&r, nw, -0.5f, 0.5f);
        float *bias = random_array(&r, fout, -1.0f, 1.0f), *wout = random_array(&r, rows * fout, -1.0f, 1.0f);
        double *x = host_alloc_d(nx), *want = host_alloc_d(nx);
        for (size_t i = 0; i < ni; i++) x[i] = in[i];
        for (size_t i = 0; i < nw; i++) x[ni + i] = wt[i];
        for (size_t i = 0; i < fout; i++) x[ni + nw + i] = bias[i];
        linear_ref ref = {rows, fin, fout, wout};
        finite_diff(linear_loss, &ref, x, nx, want);

        cl_mem ind = dev_upload_padded(ctx, in, ni, pad), wd = dev_upload_padded(ctx, wt, nw, pad);
        cl_mem dout = dev_upload_padded(ctx, wout, rows * fout, pad);
        char what[160];
        for (int with_din = 1; with_din >= 0; with_din--) {
            cl_mem dw = dev_sentinel(ctx, nw + pad), db = dev_sentinel(ctx, fout + pad);
            cl_mem di = with_din ? dev_sentinel(ctx, ni + pad) : NULL;
            ck_assert_snn_ok(snn_op_linear_backward(ctx, ind, rows, fin, wd, fout, dout, dw, db, di));
            float *gw = dev_download(ctx, dw, nw + pad), *gb = dev_download(ctx, db, fout + pad);
            /* float dot products of at most max(rows, fout) = 11 terms */
            snprintf(what, sizeof what, "linear_backward rows=%zu fin=%zu fout=%zu din=%d dW", rows, fin, fout,
                     with_din);
            check_scaled(gw, want + ni, nw, 0.0, 1e-4, what);
            assert_sentinel(gw, nw, nw + pad, what);
            snprintf(what, sizeof what, "linear_backward rows=%zu fin=%zu fout=%zu din=%d db", rows, fin, fout,
                     with_din);
            check_scaled(gb, want + ni + nw, fout, 0.0, 1e-4, what);
            assert_sentinel(gb, fout, fout + pad, what);
            if (di) {
                float *gi = dev_download(ctx, di, ni + pad);
                snprintf(what, sizeof what, "linear_backward rows=%zu fin=%zu fout=%zu dx", rows, fin, fout);
                check_scaled(gi, want, ni, 0.0, 1e-4, what);
                assert_sentinel(gi, ni, ni + pad, what);

                /* Adjoints against the forward op (zero bias): <x W^T, y> = <x, y W> = <W, y^T x>;
                 * <1 b^T, y> = <b, column sums of y>. */
                cl_mem zb = dev_const(ctx, fout, 0.0f), out = dev_sentinel(ctx, rows * fout + pad);
                ck_assert_snn_ok(snn_op_linear(ctx, ind, rows, fin, wd, zb, fout, out));
                float *fwd = dev_download(ctx, out, rows * fout + pad);
                double a1, a2, a3;
                const double lhs = dot_abs(fwd, wout, rows * fout, &a1);
                const double rx = dot_abs(in, gi, ni, &a2), rw = dot_abs(wt, gw, nw, &a3);
                snprintf(what, sizeof what, "linear adjoint (input) rows=%zu fin=%zu fout=%zu", rows, fin, fout);
                /* each side: float sums of <= 100 terms, |error| <= 100 * 2^-24 * sum |terms| */
                check_adjoint(lhs, a1, rx, a2, 1e-5, what);
                snprintf(what, sizeof what, "linear adjoint (weight) rows=%zu fin=%zu fout=%zu", rows, fin, fout);
                check_adjoint(lhs, a1, rw, a3, 1e-5, what);
                double sb = 0, sba = 0;
                for (size_t a = 0; a < rows; a++)
                    for (size_t j = 0; j < fout; j++) {
                        sb += (double)bias[j] * wout[a * fout + j];
                        sba += fabs((double)bias[j] * wout[a * fout + j]);
                    }
                double bb;
                const double rb = dot_abs(bias, gb, fout, &bb);
                snprintf(what, sizeof what, "linear adjoint (bias) rows=%zu fin=%zu fout=%zu", rows, fin, fout);
                check_adjoint(sb, sba, rb, bb, 1e-5, what);
                free(fwd);
                free(gi);
                snn_buffer_release(&zb);
                snn_buffer_release(&out);
                snn_buffer_release(&di);
            }
            free(gw);
            free(gb);
            snn_buffer_release(&dw);
            snn_buffer_release(&db);
        }
        free(in);
        free(wt);
        free(bias);
        free(wout);
        free(x);
        free(want);
        snn_buffer_release(&ind);
        snn_buffer_release(&wd);
        snn_buffer_release(&dout);
    }
}
END_TEST

/* ------------------------------------------------------------ softmax_xent -- */

typedef struct xent_ref {
    size_t B, K;
    const int *labels;
} xent_ref;

static double xent_row(const double *z, size_t K, int y) {
    double mx = z[0];
    for (size_t k = 1; k < K; k++) mx = fmax(mx, z[k]);
    double se = 0;
    for (size_t k = 0; k < K; k++) se += exp(z[k] - mx);
    return mx + log(se) - z[y];
}

/* mean over the batch of the cross-entropy */
static double xent_loss(void *data, const double *z, size_t i) {
    (void)i;
    const xent_ref *r = data;
    double L = 0;
    for (size_t b = 0; b < r->B; b++) L += xent_row(z + b * r->K, r->K, r->labels[b]);
    return L / (double)r->B;
}

START_TEST(test_softmax_xent) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 6001);
    const struct { size_t B, K; } cases[] = {{7, 10}, {1, 3}, {5, 1}, {12, 37}};
    for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
        const size_t B = cases[c].B, K = cases[c].K, n = B * K, pad = 6;
        float *z = random_array(&r, n, -3.0f, 3.0f);
        int *labels = malloc(B * sizeof *labels);
        ck_assert_ptr_nonnull(labels);
        for (size_t b = 0; b < B; b++) labels[b] = (int)(test_rng_u32(&r) % K);
        if (B >= 4 && K >= 5) {
            /* ties: the first maximum is the prediction */
            z[0 * K + 1] = z[0 * K + 4] = 5.0f, labels[0] = 4; /* not correct */
            z[1 * K + 1] = z[1 * K + 4] = 5.0f, labels[1] = 1; /* correct */
            /* large logits: no overflow */
            for (size_t k = 0; k < K; k++) z[2 * K + k] = test_rng_uniform(&r, -60.0f, 60.0f);
            z[3 * K + labels[3]] = 9.0f; /* a confident correct row */
        }
        double *zd = to_double(z, n), *want = host_alloc_d(n);
        xent_ref ref = {B, K, labels};
        finite_diff(xent_loss, &ref, zd, n, want);
        double *want_loss = host_alloc_d(B);
        float *want_correct = host_alloc(B);
        for (size_t b = 0; b < B; b++) {
            want_loss[b] = xent_row(zd + b * K, K, labels[b]);
            size_t arg = 0;
            for (size_t k = 1; k < K; k++)
                if (z[b * K + k] > z[b * K + arg]) arg = k;
            want_correct[b] = (int)arg == labels[b] ? 1.0f : 0.0f;
        }
        cl_mem zdev = dev_upload_padded(ctx, z, n, pad), lab;
        ck_assert_snn_ok(snn_buffer_create(ctx, (B + pad) * sizeof(cl_int), &lab));
        cl_int *labp = malloc((B + pad) * sizeof *labp);
        ck_assert_ptr_nonnull(labp);
        for (size_t b = 0; b < B + pad; b++) labp[b] = b < B ? labels[b] : -12345;
        ck_assert_snn_ok(snn_buffer_write(ctx, lab, 0, (B + pad) * sizeof(cl_int), labp));
        cl_mem loss = dev_sentinel(ctx, B + pad), correct = dev_sentinel(ctx, B + pad);
        cl_mem grad = dev_sentinel(ctx, n + pad);
        cl_mem bad;
        const cl_int zero = 0;
        ck_assert_snn_ok(snn_buffer_create(ctx, sizeof zero, &bad));
        ck_assert_snn_ok(snn_buffer_write(ctx, bad, 0, sizeof zero, &zero));
        ck_assert_snn_ok(snn_op_softmax_xent(ctx, zdev, lab, loss, correct, grad, B, K, bad));
        cl_int flag = -1;
        ck_assert_snn_ok(snn_buffer_read(ctx, bad, 0, sizeof flag, &flag));
        ck_assert_int_eq(flag, 0); /* every label in range */
        snn_buffer_release(&bad);
        float *gl = dev_download(ctx, loss, B + pad), *gc = dev_download(ctx, correct, B + pad);
        float *gg = dev_download(ctx, grad, n + pad);
        char what[160];
        snprintf(what, sizeof what, "softmax_xent B=%zu K=%zu grad", B, K);
        if (K > 1) {
            /* softmax of O(1) logits in float; the gradient is O(1/B) */
            check_scaled(gg, want, n, 0.0, 1e-4, what);
        } else {
            for (size_t i = 0; i < n; i++)
                expect_msg(gg[i] == 0.0f, "%s: K = 1 gives gradient %g", what, (double)gg[i]);
        }
        assert_sentinel(gg, n, n + pad, what);
        snprintf(what, sizeof what, "softmax_xent B=%zu K=%zu loss", B, K);
        /* log-sum-exp in float: a few ulp of max(|logit|) */
        size_t at = 0;
        double worst = 0;
        for (size_t b = 0; b < B; b++) {
            double zmax = 1;
            for (size_t k = 0; k < K; k++) zmax = fmax(zmax, fabs(zd[b * K + k]));
            const double e = fabs(gl[b] - want_loss[b]) / zmax;
            if (!(e <= worst)) worst = e, at = b;
        }
        printf("  %-64s max|err| / max(1, |logit|) %.2e (tol 1e-6)\n", what, worst);
        expect_msg(worst <= 1e-6, "%s: sample %zu loss %.9g, expected %.9g", what, at, (double)gl[at], want_loss[at]);
        assert_sentinel(gl, B, B + pad, what);
        snprintf(what, sizeof what, "softmax_xent B=%zu K=%zu correct", B, K);
        assert_bits_equal(gc, want_correct, B, what);
        assert_sentinel(gc, B, B + pad, what);
        free(gl);
        free(gc);
        free(gg);
        free(labp);
        free(z);
        free(labels);
        free(zd);
        free(want);
        free(want_loss);
        free(want_correct);
        cl_mem *bufs[] = {&zdev, &lab, &loss, &correct, &grad};
        for (size_t k = 0; k < ARRAY_LEN(bufs); k++) snn_buffer_release(bufs[k]);
    }
    /* Labels outside [0, K) (only labels left on the device can be): flagged, and their
     * samples left out (loss, correct, gradient 0); the others as before. */
    enum { BB = 4, KK = 3 };
    const float z[BB * KK] = {0.5f, -1.0f, 2.0f, 1.0f, 1.0f, 1.0f, -2.0f, 0.0f, 3.0f, 0.25f, 0.75f, -0.5f};
    const cl_int labels[BB] = {2, KK, -1, 0}, zero = 0;
    cl_mem zdev, lab, loss, correct, grad, bad;
    ck_assert_snn_ok(snn_buffer_create(ctx, sizeof z, &zdev));
    ck_assert_snn_ok(snn_buffer_write(ctx, zdev, 0, sizeof z, z));
    ck_assert_snn_ok(snn_buffer_create(ctx, sizeof labels, &lab));
    ck_assert_snn_ok(snn_buffer_write(ctx, lab, 0, sizeof labels, labels));
    ck_assert_snn_ok(snn_buffer_create(ctx, sizeof zero, &bad));
    ck_assert_snn_ok(snn_buffer_write(ctx, bad, 0, sizeof zero, &zero));
    loss = dev_sentinel(ctx, BB);
    correct = dev_sentinel(ctx, BB);
    grad = dev_sentinel(ctx, BB * KK);
    ck_assert_snn_ok(snn_op_softmax_xent(ctx, zdev, lab, loss, correct, grad, BB, KK, bad));
    float *gl = dev_download(ctx, loss, BB), *gc = dev_download(ctx, correct, BB), *gg = dev_download(ctx, grad, BB * KK);
    cl_int flag = 0;
    ck_assert_snn_ok(snn_buffer_read(ctx, bad, 0, sizeof flag, &flag));
    ck_assert_int_eq(flag, 1);
    double zd[BB * KK];
    for (size_t i = 0; i < BB * KK; i++) zd[i] = z[i];
    for (size_t b = 0; b < BB; b++) {
        const int out = labels[b] < 0 || labels[b] >= KK;
        const double want = out ? 0.0 : xent_row(zd + b * KK, KK, labels[b]);
        ck_assert_msg(fabs(gl[b] - want) <= 1e-6, "sample %zu: loss %g, expected %g", b, (double)gl[b], want);
        if (out) {
            ck_assert_msg(gc[b] == 0.0f, "sample %zu (label %d) counted correct", b, labels[b]);
            for (size_t k = 0; k < KK; k++)
                ck_assert_msg(gg[b * KK + k] == 0.0f, "sample %zu (label %d): gradient %g", b, labels[b],
                              (double)gg[b * KK + k]);
        }
    }
    ck_assert_msg(gc[0] == 1.0f && gc[3] == 0.0f, "correct: %g %g", (double)gc[0], (double)gc[3]);
    free(gl);
    free(gc);
    free(gg);
    cl_mem *bufs[] = {&zdev, &lab, &loss, &correct, &grad, &bad};
    for (size_t k = 0; k < ARRAY_LEN(bufs); k++) snn_buffer_release(bufs[k]);
}
END_TEST

/* ----------------------------------------------------------------- dropout -- */

/* Element i is kept when word (i & 3) of philox((i >> 2, 0, 2, 0), seed) >= p 2^32
 * (the rule of cl/dropout.cl, stream 2 = dropout). */
static int ref_dropout_keep(size_t i, float p, uint64_t seed) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t ctr[4] = {(uint32_t)(i >> 2), 0u, 2u, 0u};
    uint32_t w[4];
    snn_philox4x32_10(ctr, key, w);
    const float scaled = p * 4294967296.0f;
    return (uint64_t)w[i & 3] >= (uint64_t)scaled;
}

START_TEST(test_dropout) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 7001);
    const size_t n = small_mode() ? 10003 : 100003, pad = 7; /* not a multiple of 4 */
    const float ps[] = {0.2f, 0.5f, 0.3f, 0.0f};
    const uint64_t seeds[] = {0x1234567890abcdefull, 17, 0xffffffff00000001ull, 5};
    /* values bounded away from 0, both signs, so that a zero output means dropped */
    float *x = host_alloc(n), *g = host_alloc(n);
    for (size_t i = 0; i < n; i++) {
        x[i] = test_rng_uniform(&r, 0.5f, 1.5f) * ((test_rng_u32(&r) >> 31) ? 1.0f : -1.0f);
        g[i] = test_rng_uniform(&r, 0.5f, 1.5f) * ((test_rng_u32(&r) >> 31) ? 1.0f : -1.0f);
    }
    cl_mem xd = dev_upload_padded(ctx, x, n, pad), gd = dev_upload_padded(ctx, g, n, pad);
    float *prev_mask = NULL;
    for (size_t k = 0; k < ARRAY_LEN(ps); k++) {
        const float p = ps[k];
        const uint64_t seed = seeds[k];
        const float scale = 1.0f / (1.0f - p);
        cl_mem fo = dev_sentinel(ctx, n + pad), bo = dev_sentinel(ctx, n + pad);
        ck_assert_snn_ok(snn_op_dropout(ctx, xd, fo, n, p, seed, 0));
        ck_assert_snn_ok(snn_op_dropout(ctx, gd, bo, n, p, seed, 0));
        /* in place, as the backward pass runs it */
        cl_mem ip = dev_upload_padded(ctx, g, n, pad);
        ck_assert_snn_ok(snn_op_dropout(ctx, ip, ip, n, p, seed, 0));
        float *f = dev_download(ctx, fo, n + pad), *b = dev_download(ctx, bo, n + pad);
        float *bi = dev_download(ctx, ip, n + pad);
        char what[120];
        snprintf(what, sizeof what, "dropout p=%g seed=%llx", (double)p, (unsigned long long)seed);
        assert_sentinel(f, n, n + pad, what);
        assert_sentinel(b, n, n + pad, what);
        assert_sentinel(bi, n, n + pad, what);
        assert_bits_equal(bi, b, n, "dropout in place");
        size_t kept = 0, differ = 0;
        double worst = 0;
        float *mask = host_alloc(n);
        for (size_t i = 0; i < n; i++) {
            const int keep = ref_dropout_keep(i, p, seed);
            mask[i] = (float)keep;
            kept += (size_t)keep;
            expect_msg((f[i] != 0.0f) == keep && (b[i] != 0.0f) == keep,
                       "%s: element %zu forward %g backward %g, reference mask %d", what, i, (double)f[i],
                       (double)b[i], keep);
            if (keep) {
                /* x / (1 - p), to the rounding of one product and one quotient */
                worst = fmax(worst, fabs(f[i] - (double)x[i] * scale) / fabs((double)x[i] * scale));
                worst = fmax(worst, fabs(b[i] - (double)g[i] * scale) / fabs((double)g[i] * scale));
            }
            if (prev_mask) differ += prev_mask[i] != mask[i];
        }
        const double frac = (double)kept / (double)n, sigma = sqrt((double)p * (1.0 - p) / (double)n);
        printf("  %-64s kept %.5f (expected %.2f +- %.5f), value rel err %.2e\n", what, frac, 1.0 - p, sigma, worst);
        expect_msg(worst <= 3e-7, "%s: kept value off by %.3g relative", what, worst);
        expect_msg(fabs(frac - (1.0 - p)) <= 5.0 * sigma + 1e-12, "%s: kept fraction %g, expected %g", what, frac,
                   1.0 - p);
        if (p == 0.0f) expect_msg(kept == n, "%s: p = 0 dropped %zu", what, n - kept);
        if (prev_mask && p > 0.0f && ps[k - 1] > 0.0f)
            expect_msg(differ > n / 10, "%s: mask nearly equal to the previous seed's (%zu differ)", what, differ);
        /* a share of the rows from element 4001 on (off a Philox block's boundary): the
         * whole tensor's output there */
        const size_t e0 = 4001;
        cl_mem xs = dev_upload(ctx, x + e0, n - e0), so = dev_sentinel(ctx, n - e0 + pad);
        ck_assert_snn_ok(snn_op_dropout(ctx, xs, so, n - e0, p, seed, e0));
        float *share = dev_download(ctx, so, n - e0 + pad);
        assert_bits_equal(share, f + e0, n - e0, "dropout of a share");
        assert_sentinel(share, n - e0, n - e0 + pad, "dropout of a share");
        free(share);
        snn_buffer_release(&xs);
        snn_buffer_release(&so);
        free(prev_mask);
        prev_mask = mask;
        free(f);
        free(b);
        free(bi);
        snn_buffer_release(&fo);
        snn_buffer_release(&bo);
        snn_buffer_release(&ip);
    }
    free(prev_mask);
    free(x);
    free(g);
    snn_buffer_release(&xd);
    snn_buffer_release(&gd);
}
END_TEST

/* ------------------------------------------------------ spike_sum_backward -- */

START_TEST(test_spike_sum_backward) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 8001);
    const struct { size_t C, P, T, B, hw; } cases[] = {
        {3, 2, 4, 2, 5}, {1, 1, 3, 3, 7}, {2, 2, 1, 1, 1}, {4, 1, 2, 3, 9}};
    for (size_t k = 0; k < ARRAY_LEN(cases); k++) {
        const size_t C = cases[k].C, P = cases[k].P, T = cases[k].T, B = cases[k].B, hw = cases[k].hw;
        const size_t ns = B * C * hw, nu = C * P * T * B * hw, pad = 5;
        float *gs = random_array(&r, ns, -1.0f, 1.0f), *want = host_alloc(nu);
        for (size_t c = 0; c < C; c++)
            for (size_t p = 0; p < P; p++)
                for (size_t t = 0; t < T; t++)
                    for (size_t b = 0; b < B; b++)
                        for (size_t q = 0; q < hw; q++)
                            want[(((c * P + p) * T + t) * B + b) * hw + q] = p == 0 ? gs[(b * C + c) * hw + q] : 0.0f;
        cl_mem gsd = dev_upload_padded(ctx, gs, ns, pad), gup = dev_sentinel(ctx, nu + pad);
        ck_assert_snn_ok(snn_op_spike_sum_backward(ctx, gsd, gup, C, P, T, B, hw));
        float *got = dev_download(ctx, gup, nu + pad);
        char what[160];
        snprintf(what, sizeof what, "spike_sum_backward C=%zu P=%zu T=%zu B=%zu hw=%zu", C, P, T, B, hw);
        assert_bits_equal(got, want, nu, what);
        assert_sentinel(got, nu, nu + pad, what);

        /* Adjoint of spike_sum over the (C, P, T, B, hw) layout (channels P*T*B*hw apart,
         * trajectory 0 read): <spike_sum(x), y> = <x, spike_sum_backward(y)>. */
        float *xs = random_array(&r, nu, -1.0f, 1.0f);
        cl_mem xd = dev_upload_padded(ctx, xs, nu, pad), sum = dev_const(ctx, ns, 0.0f);
        ck_assert_snn_ok(snn_op_spike_sum(ctx, xd, sum, C, T, B, hw, P * T * B * hw));
        float *s = dev_download(ctx, sum, ns);
        double a1, a2;
        const double lhs = dot_abs(s, gs, ns, &a1), rhs = dot_abs(xs, got, nu, &a2);
        snprintf(what, sizeof what, "spike_sum adjoint C=%zu P=%zu T=%zu B=%zu hw=%zu", C, P, T, B, hw);
        /* float sums over T <= 4 steps */
        check_adjoint(lhs, a1, rhs, a2, 1e-6, what);
        free(s);
        free(xs);
        free(got);
        free(gs);
        free(want);
        snn_buffer_release(&xd);
        snn_buffer_release(&sum);
        snn_buffer_release(&gsd);
        snn_buffer_release(&gup);
    }
}
END_TEST

/* ---------------------------------------------------------- unflatten_rows -- */

START_TEST(test_unflatten_rows) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 8101);
    const struct { size_t C, N, hw; } cases[] = {{3, 5, 7}, {1, 3, 11}, {6, 1, 1}, {5, 7, 1}, {4, 6, 9}};
    for (size_t k = 0; k < ARRAY_LEN(cases); k++) {
        const size_t C = cases[k].C, N = cases[k].N, hw = cases[k].hw, n = C * N * hw, pad = 7;
        float *rows = random_array(&r, n, -1.0f, 1.0f), *want = host_alloc(n);
        for (size_t c = 0; c < C; c++)
            for (size_t i = 0; i < N; i++)
                for (size_t p = 0; p < hw; p++) want[(c * N + i) * hw + p] = rows[(i * C + c) * hw + p];
        cl_mem rd = dev_upload_padded(ctx, rows, n, pad), out = dev_sentinel(ctx, n + pad);
        ck_assert_snn_ok(snn_op_unflatten_rows(ctx, rd, out, C, N, hw));
        float *got = dev_download(ctx, out, n + pad);
        char what[120];
        snprintf(what, sizeof what, "unflatten_rows C=%zu N=%zu hw=%zu", C, N, hw);
        assert_bits_equal(got, want, n, what);
        assert_sentinel(got, n, n + pad, what);

        /* flatten_rows then unflatten_rows: the identity; and the adjoint identity
         * <flatten(x), y> = <x, unflatten(y)> (a permutation: the same products). */
        float *x = random_array(&r, n, -1.0f, 1.0f);
        cl_mem xd = dev_upload_padded(ctx, x, n, pad), fl = dev_sentinel(ctx, n + pad);
        cl_mem back = dev_sentinel(ctx, n + pad);
        ck_assert_snn_ok(snn_op_flatten_rows(ctx, xd, fl, C, N, hw));
        ck_assert_snn_ok(snn_op_unflatten_rows(ctx, fl, back, C, N, hw));
        float *f = dev_download(ctx, fl, n + pad), *bk = dev_download(ctx, back, n + pad);
        assert_bits_equal(bk, x, n, "unflatten_rows(flatten_rows(x))");
        assert_sentinel(bk, n, n + pad, "unflatten_rows(flatten_rows(x))");
        double a1, a2;
        const double lhs = dot_abs(f, rows, n, &a1), rhs = dot_abs(x, got, n, &a2);
        snprintf(what, sizeof what, "flatten_rows adjoint C=%zu N=%zu hw=%zu", C, N, hw);
        check_adjoint(lhs, a1, rhs, a2, 1e-12, what);
        free(f);
        free(bk);
        free(x);
        free(got);
        free(rows);
        free(want);
        cl_mem *bufs[] = {&rd, &out, &xd, &fl, &back};
        for (size_t i = 0; i < ARRAY_LEN(bufs); i++) snn_buffer_release(bufs[i]);
    }
}
END_TEST

/* -------------------------------------------------------------- sum_blocks -- */

START_TEST(test_sum_blocks) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 8201);
    const struct { size_t C, R, X; } cases[] = {{3, 4, 7}, {1, 1, 5}, {2, 6, 1}, {5, 2, 33}};
    for (size_t k = 0; k < ARRAY_LEN(cases); k++) {
        const size_t C = cases[k].C, R = cases[k].R, X = cases[k].X, ni = C * R * X, n = C * X, pad = 6;
        float *in = random_array(&r, ni, -1.0f, 1.0f), *want = host_alloc(n);
        for (size_t c = 0; c < C; c++)
            for (size_t x = 0; x < X; x++) {
                float acc = 0.0f; /* the same order in float: exact */
                for (size_t q = 0; q < R; q++) acc += in[(c * R + q) * X + x];
                want[c * X + x] = acc;
            }
        cl_mem ind = dev_upload_padded(ctx, in, ni, pad), out = dev_sentinel(ctx, n + pad);
        ck_assert_snn_ok(snn_op_sum_blocks(ctx, ind, out, C, R, X));
        float *got = dev_download(ctx, out, n + pad);
        char what[120];
        snprintf(what, sizeof what, "sum_blocks C=%zu R=%zu X=%zu", C, R, X);
        assert_bits_equal(got, want, n, what);
        assert_sentinel(got, n, n + pad, what);
        free(got);
        free(in);
        free(want);
        snn_buffer_release(&ind);
        snn_buffer_release(&out);
    }
}
END_TEST

/* -------------------------------------------------------------- optimizers -- */

static const size_t optim_sizes[] = {1, 37, 1000, 4099};
#define N_OPT (sizeof optim_sizes / sizeof optim_sizes[0])

START_TEST(test_grad_sumsq) {
    snn_context *ctx = test_context();
    test_rng r;
    test_rng_seed(&r, 9001);
    const size_t sizes[] = {1, 37, 255, 256, 257, 4099, 100003};
    const size_t slots = 9, pad = 4;
    for (size_t k = 0; k < ARRAY_LEN(sizes) - (small_mode() ? 1 : 0); k++) {
        const size_t n = sizes[k], slot = (k * 4) % slots;
        float *g = random_array(&r, n, -1.0f, 1.0f);
        double want = 0;
        for (size_t i = 0; i < n; i++) want += (double)g[i] * g[i];
        cl_mem gd = dev_upload_padded(ctx, g, n, pad), norms = dev_sentinel(ctx, slots + pad);
        ck_assert_snn_ok(snn_op_grad_sumsq(ctx, gd, n, norms, slot));
        float *got = dev_download(ctx, norms, slots + pad);
        char what[80];
        snprintf(what, sizeof what, "grad_sumsq n=%zu slot=%zu", n, slot);
        /* float tree sum of n squares: relative error ~ (n/256 + 8) 2^-24 */
        check_scaled(got + slot, &want, 1, 0.0, 1e-5, what);
        assert_sentinel(got, 0, slot, what);
        assert_sentinel(got, slot + 1, slots + pad, what);
        free(got);
        free(g);
        snn_buffer_release(&gd);
        snn_buffer_release(&norms);
    }
}
END_TEST

typedef struct optim_case {
    float max_norm, weight_decay, momentum;
} optim_case;

static const optim_case adam_cases[] = {
    {0.0f, 0.0f, 0.0f},   /* no clipping */
    {0.5f, 0.0f, 0.0f},   /* clipping on: the global norm is about 40 */
    {0.5f, 1e-2f, 0.0f},  /* clipping and weight decay */
    {1e6f, 1e-2f, 0.0f},  /* clipping enabled but not triggered (factor 1) */
};

/* The clip factor of torch.nn.utils.clip_grad_norm_ from the per-tensor squared norms. */
static double ref_clip(const double *sumsq, size_t count, double max_norm) {
    if (max_norm <= 0) return 1.0;
    double total = 0;
    for (size_t i = 0; i < count; i++) total += sumsq[i];
    const double coef = max_norm / (sqrt(total) + 1e-6);
    return coef < 1.0 ? coef : 1.0;
}

/* Per-tensor state for the optimizer tests: param, grad, m, v/buf. */
typedef struct opt_tensor {
    size_t n;
    float *param;
    cl_mem p, g, m, v;
} opt_tensor;

START_TEST(test_adam_update) {
    snn_context *ctx = test_context();
    const optim_case *oc = &adam_cases[_i];
    test_rng r;
    test_rng_seed(&r, 9101 + (uint64_t)_i);
    const size_t pad = 5;
    const float lr = 1e-2f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
    opt_tensor t[N_OPT];
    for (size_t k = 0; k < N_OPT; k++) {
        t[k].n = optim_sizes[k];
        t[k].param = random_array(&r, t[k].n, -0.1f, 0.1f);
        t[k].p = dev_upload_padded(ctx, t[k].param, t[k].n, pad);
        t[k].g = NULL;
        float *zero = host_alloc(t[k].n);
        memset(zero, 0, t[k].n * sizeof(float));
        t[k].m = dev_upload_padded(ctx, zero, t[k].n, pad); /* torch starts both moments at 0 */
        t[k].v = dev_upload_padded(ctx, zero, t[k].n, pad);
        free(zero);
    }
    cl_mem norms = dev_sentinel(ctx, N_OPT + pad);
    for (int step = 1; step <= 3; step++) {
        double sumsq[N_OPT];
        float *grads[N_OPT];
        for (size_t k = 0; k < N_OPT; k++) {
            const float s = (float)(k + 1);
            grads[k] = random_array(&r, t[k].n, -s, s);
            sumsq[k] = 0;
            for (size_t i = 0; i < t[k].n; i++) sumsq[k] += (double)grads[k][i] * grads[k][i];
            t[k].g = dev_upload_padded(ctx, grads[k], t[k].n, pad);
            ck_assert_snn_ok(snn_op_grad_sumsq(ctx, t[k].g, t[k].n, norms, k));
        }
        const double clip = ref_clip(sumsq, N_OPT, oc->max_norm);
        const double bc1 = 1.0 - pow(beta1, step), bc2_sqrt = sqrt(1.0 - pow(beta2, step));
        snn_optim_args a = {0};
        a.lr = lr, a.beta1 = beta1, a.beta2 = beta2, a.eps = eps, a.weight_decay = oc->weight_decay;
        a.bc1 = (float)bc1, a.bc2_sqrt = (float)bc2_sqrt, a.norms = norms, a.num_norms = N_OPT;
        a.max_norm = oc->max_norm;
        for (size_t k = 0; k < N_OPT; k++) {
            const size_t n = t[k].n;
            float *p0 = dev_download(ctx, t[k].p, n), *m0 = dev_download(ctx, t[k].m, n);
            float *v0 = dev_download(ctx, t[k].v, n);
            ck_assert_snn_ok(snn_op_adam_update(ctx, t[k].p, t[k].g, t[k].m, t[k].v, n, &a));
            float *p1 = dev_download(ctx, t[k].p, n + pad), *m1 = dev_download(ctx, t[k].m, n + pad);
            float *v1 = dev_download(ctx, t[k].v, n + pad);
            /* torch.optim.Adam (not AdamW): g = clip * grad + wd * param;
             * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
             * param -= lr / bc1 * m / (sqrt(v) / bc2_sqrt + eps) */
            double *wm = host_alloc_d(n), *wv = host_alloc_d(n), *wdp = host_alloc_d(n);
            float *dp = host_alloc(n);
            for (size_t i = 0; i < n; i++) {
                const double g = clip * grads[k][i] + (double)oc->weight_decay * p0[i];
                wm[i] = (double)beta1 * m0[i] + (1.0 - (double)beta1) * g;
                wv[i] = (double)beta2 * v0[i] + (1.0 - (double)beta2) * g * g;
                wdp[i] = -((double)lr / (double)a.bc1) * wm[i] / (sqrt(wv[i]) / (double)a.bc2_sqrt + (double)eps);
                dp[i] = (float)((double)p1[i] - (double)p0[i]); /* exact in double; 2^-24 in float */
            }
            char what[120];
            /* m, v: a few float roundings; the step: also the rounding of param (|p| < 0.2,
             * ulp 1.5e-8) against steps of about lr = 1e-2 */
            snprintf(what, sizeof what, "adam step %d n=%zu clip=%.4f wd=%g m", step, n, clip,
                     (double)oc->weight_decay);
            check_scaled(m1, wm, n, 0.0, 1e-5, what);
            assert_sentinel(m1, n, n + pad, what);
            snprintf(what, sizeof what, "adam step %d n=%zu clip=%.4f wd=%g v", step, n, clip,
                     (double)oc->weight_decay);
            check_scaled(v1, wv, n, 0.0, 1e-5, what);
            assert_sentinel(v1, n, n + pad, what);
            snprintf(what, sizeof what, "adam step %d n=%zu clip=%.4f wd=%g update", step, n, clip,
                     (double)oc->weight_decay);
            check_scaled(dp, wdp, n, 1e-2 * lr, 1e-4, what);
            assert_sentinel(p1, n, n + pad, what);
            free(p0);
            free(m0);
            free(v0);
            free(p1);
            free(m1);
            free(v1);
            free(wm);
            free(wv);
            free(wdp);
            free(dp);
        }
        float *nh = dev_download(ctx, norms, N_OPT + pad);
        check_scaled(nh, sumsq, N_OPT, 0.0, 1e-5, "grad_sumsq into the optimizer's slots");
        assert_sentinel(nh, N_OPT, N_OPT + pad, "norms");
        free(nh);
        for (size_t k = 0; k < N_OPT; k++) {
            free(grads[k]);
            snn_buffer_release(&t[k].g);
        }
    }
    for (size_t k = 0; k < N_OPT; k++) {
        free(t[k].param);
        snn_buffer_release(&t[k].p);
        snn_buffer_release(&t[k].m);
        snn_buffer_release(&t[k].v);
    }
    snn_buffer_release(&norms);
}
END_TEST

static const optim_case sgd_cases[] = {
    {0.0f, 0.0f, 0.9f},   /* momentum, no clipping */
    {0.5f, 5e-4f, 0.9f},  /* momentum, clipping, weight decay */
    {0.5f, 1e-2f, 0.0f},  /* plain SGD: the buffer is never touched */
    {0.0f, 0.0f, 0.0f},
};

START_TEST(test_sgd_update) {
    snn_context *ctx = test_context();
    const optim_case *oc = &sgd_cases[_i];
    test_rng r;
    test_rng_seed(&r, 9201 + (uint64_t)_i);
    const size_t pad = 5;
    const float lr = 0.1f;
    opt_tensor t[N_OPT];
    for (size_t k = 0; k < N_OPT; k++) {
        t[k].n = optim_sizes[k];
        t[k].param = random_array(&r, t[k].n, -0.1f, 0.1f);
        t[k].p = dev_upload_padded(ctx, t[k].param, t[k].n, pad);
        /* the momentum buffer starts as NaN: the first step must not read it */
        t[k].v = dev_sentinel(ctx, t[k].n + pad);
        t[k].m = NULL;
        t[k].g = NULL;
    }
    cl_mem norms = dev_sentinel(ctx, N_OPT + pad);
    for (int step = 1; step <= 3; step++) {
        double sumsq[N_OPT];
        float *grads[N_OPT];
        for (size_t k = 0; k < N_OPT; k++) {
            const float s = (float)(k + 1);
            grads[k] = random_array(&r, t[k].n, -s, s);
            sumsq[k] = 0;
            for (size_t i = 0; i < t[k].n; i++) sumsq[k] += (double)grads[k][i] * grads[k][i];
            t[k].g = dev_upload_padded(ctx, grads[k], t[k].n, pad);
            ck_assert_snn_ok(snn_op_grad_sumsq(ctx, t[k].g, t[k].n, norms, k));
        }
        const double clip = ref_clip(sumsq, N_OPT, oc->max_norm);
        snn_optim_args a = {0};
        a.lr = lr, a.momentum = oc->momentum, a.weight_decay = oc->weight_decay, a.first = step == 1;
        a.norms = norms, a.num_norms = N_OPT, a.max_norm = oc->max_norm;
        for (size_t k = 0; k < N_OPT; k++) {
            const size_t n = t[k].n;
            float *p0 = dev_download(ctx, t[k].p, n), *b0 = dev_download(ctx, t[k].v, n + pad);
            ck_assert_snn_ok(snn_op_sgd_update(ctx, t[k].p, t[k].g, t[k].v, n, &a));
            float *p1 = dev_download(ctx, t[k].p, n + pad), *b1 = dev_download(ctx, t[k].v, n + pad);
            /* torch.optim.SGD (dampening 0, not Nesterov): d = clip * grad + wd * param;
             * buf = d on the first step, momentum * buf + d after; param -= lr * buf
             * (with momentum 0: param -= lr * d and no buffer) */
            double *wb = host_alloc_d(n), *wdp = host_alloc_d(n);
            float *dp = host_alloc(n);
            for (size_t i = 0; i < n; i++) {
                double d = clip * grads[k][i] + (double)oc->weight_decay * p0[i];
                if (oc->momentum != 0.0f) d = step == 1 ? d : (double)oc->momentum * b0[i] + d;
                wb[i] = d;
                wdp[i] = -(double)lr * d;
                dp[i] = (float)((double)p1[i] - (double)p0[i]);
            }
            char what[120];
            snprintf(what, sizeof what, "sgd step %d n=%zu clip=%.4f wd=%g mom=%g update", step, n, clip,
                     (double)oc->weight_decay, (double)oc->momentum);
            /* the param's own rounding (|p| < 0.5: ulp/2 <= 3e-8) against steps of lr * clip *
             * O(1), floored at 1e-2 lr (a one-element tensor's clipped step can be 1e-5) */
            check_scaled(dp, wdp, n, 1e-2 * lr, 1e-4, what);
            assert_sentinel(p1, n, n + pad, what);
            if (oc->momentum != 0.0f) {
                snprintf(what, sizeof what, "sgd step %d n=%zu clip=%.4f mom=%g buffer", step, n, clip,
                         (double)oc->momentum);
                check_scaled(b1, wb, n, 0.0, 1e-5, what);
                assert_sentinel(b1, n, n + pad, what);
            } else {
                assert_sentinel(b1, 0, n + pad, "sgd without momentum: buffer");
            }
            free(p0);
            free(b0);
            free(p1);
            free(b1);
            free(wb);
            free(wdp);
            free(dp);
        }
        for (size_t k = 0; k < N_OPT; k++) {
            free(grads[k]);
            snn_buffer_release(&t[k].g);
        }
    }
    for (size_t k = 0; k < N_OPT; k++) {
        free(t[k].param);
        snn_buffer_release(&t[k].p);
        snn_buffer_release(&t[k].v);
    }
    snn_buffer_release(&norms);
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

static Suite *backward_suite(void) {
    Suite *s = suite_create("backward");
    tcase_add_loop_test(tcase(s, "lif_backward"), test_lif_backward, 0, (int)ARRAY_LEN(lif_cases));
    tcase_add_loop_test(tcase(s, "lif_lyapunov_backward"), test_lif_lyapunov_backward, 0, (int)ARRAY_LEN(ly_cases));
    TCase *tc = tcase(s, "batchnorm");
    tcase_add_loop_test(tc, test_bn_backward, 0, (int)ARRAY_LEN(bn_cases));
    tcase_add_test(tc, test_bn_stats_single);
    tcase_add_loop_test(gemm_tcase(s, "conv3x3_backward"), test_conv3x3_backward, 0, (int)ARRAY_LEN(conv_cases));
    tcase_add_loop_test(gemm_tcase(s, "conv2d_general"), test_conv2d_general, 0, (int)ARRAY_LEN(conv2d_cases));
    tcase_add_loop_test(tcase(s, "pool2d"), test_pool2d, 0, (int)ARRAY_LEN(pool_cases));
    tcase_add_test(gemm_tcase(s, "linear_backward"), test_linear_backward);
    tc = tcase(s, "readout");
    tcase_add_test(tc, test_softmax_xent);
    tcase_add_test(tc, test_dropout);
    tcase_add_test(tc, test_spike_sum_backward);
    tcase_add_test(tc, test_unflatten_rows);
    tcase_add_test(tc, test_sum_blocks);
    tc = tcase(s, "optim");
    tcase_add_test(tc, test_grad_sumsq);
    tcase_add_loop_test(tc, test_adam_update, 0, (int)ARRAY_LEN(adam_cases));
    tcase_add_loop_test(tc, test_sgd_update, 0, (int)ARRAY_LEN(sgd_cases));
    return s;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    return run_suite(backward_suite());
}
