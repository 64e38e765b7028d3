/* What the layer plan says beyond the passes themselves: the FLOPs of a forward pass
 * or a training step (snncl bench's GFLOP/s), the Lyapunov estimate's floor, and the
 * matrix products of a training step (the shapes snncl tune times). Each walks
 * model->layer, as the passes do. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model.h"
#include "tune.h"

/* Multiply-adds of layer l for one image of one step. */
static double layer_macs(const snn_layer *l) {
    const double taps = (double)(l->geom.K * l->geom.K);
    return l->kind == SNN_STAGE_CONV ? (double)l->cout * (double)l->cin * taps * (double)(l->H * l->W)
                                     : (double)l->cin * (double)l->cout;
}

snn_status snn_model_flops(const snn_model *m, int lyapunov, int training, double *flops) {
    SNN_REQUIRE_ARG("snn_model_flops", m);
    SNN_REQUIRE_ARG("snn_model_flops", flops);
    const double T = (double)m->cfg.T, P = lyapunov ? 2.0 : 1.0;
    double fwd = 0, bwd = 0;
    for (int i = 0; i < m->num_layers; i++) {
        /* The first layer's input is shared by both trajectories, and under direct
         * encoding by every step: it runs once per image or once per step. */
        const double reps = i == 0 ? (m->cfg.encoding == SNN_ENCODING_DIRECT ? 1.0 : T) : P * T;
        const double macs = layer_macs(&m->layer[i]) * reps;
        fwd += macs;
        bwd += i == 0 ? macs : 2.0 * macs; /* weight gradient; the input's except for the first layer */
    }
    const double readout = m->fc_w ? (double)m->readout * (double)m->cfg.num_classes : 0.0;
    fwd += readout;
    bwd += 2.0 * readout;
    *flops = 2.0 * (fwd + (training ? bwd : 0.0));
    return SNN_OK;
}

snn_status snn_model_lyapunov_floor(const snn_model *m, float lyap_eps, double *floor_out) {
    SNN_REQUIRE_ARG("snn_model_lyapunov_floor", m);
    SNN_REQUIRE_ARG("snn_model_lyapunov_floor", floor_out);
    if (!(lyap_eps > 0.0f) || !isfinite(lyap_eps))
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_lyapunov_floor: lyap_eps must be positive and finite, got %g",
                        (double)lyap_eps);
    if (m->num_layers > SNN_MAX_LAYERS) return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_lyapunov_floor: model");
    /* Where no spike flips, each layer's difference only decays by its beta. The
     * estimate's own steps (cl/lyapunov.cl, the per-layer renormalization of
     * cl/lif_lyapunov.cl, and the seed's 1e-12 guards) on the squared norms alone: the
     * initial perturbation is eps times N(0, 1) vectors, |n_l|^2 = N_l in expectation. */
    const double eps = (double)lyap_eps;
    double norm_sq[SNN_MAX_LAYERS];
    for (int l = 0; l < m->num_layers; l++)
        norm_sq[l] = eps * eps * (double)m->layer[l].G * (double)m->layer[l].S;
    double acc = 0.0;
    for (int t = 0; t < m->cfg.T; t++) {
        double total = 0.0;
        for (int l = 0; l < m->num_layers; l++) {
            const double b = snn_model_lif_beta(m, l), s = b * b * norm_sq[l];
            total += s;
            norm_sq[l] = eps * eps * s / (s + 1e-12); /* renormalized to eps */
        }
        acc += log(sqrt(total + 1e-12) / eps + 1e-12);
    }
    *floor_out = acc / (double)m->cfg.T;
    return SNN_OK;
}

/* Columns per product as src/ops/conv.c chunks them: whole images, im2col within 64 MiB. */
static size_t conv_cols(size_t K, size_t HW, size_t cap) {
    size_t images = ((size_t)64 << 20) / (K * HW * sizeof(float));
    if (images < 1) images = 1;
    size_t cols = images * HW;
    return cols < cap ? cols : (cap / HW ? cap / HW : 1) * HW;
}

/* Appends C[M,N] = op(A) op(B) (+ beta C) named "<what><layer>-<product>" if there is room. */
static size_t push(snn_gemm_shape *out, size_t n, size_t max, const char *what, int layer, const char *product,
                   int ta, int tb, size_t M, size_t N, size_t K, float beta) {
    if (n == max) return n;
    out[n] = (snn_gemm_shape){"", ta, tb, M, N, K, beta};
    if (layer > 0)
        snprintf(out[n].name, sizeof out[n].name, "%s%d-%s", what, layer, product);
    else
        snprintf(out[n].name, sizeof out[n].name, "%s-%s", what, product);
    return n + 1;
}

size_t snn_model_gemm_shapes(const snn_model *m, size_t batch, size_t max_cols, snn_gemm_shape *out, size_t max) {
    size_t n = 0;
    /* Every layer's forward product, then the weight gradients, then the input
     * gradients (none for the first layer), then the readout's three. Dense layers run
     * on (step, sample) rows. */
    static const char *const product[3] = {"forward", "wgrad", "igrad"};
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < m->num_layers; i++) {
            const snn_layer *l = &m->layer[i];
            if (pass == 2 && i == 0) continue;
            const char *pr = product[pass];
            if (l->kind == SNN_STAGE_CONV) {
                const size_t K = l->geom.K * l->geom.K * l->cin, C = conv_cols(K, l->H * l->W, max_cols);
                if (pass == 0) n = push(out, n, max, "conv", i + 1, pr, 0, 0, l->cout, C, K, 0.0f);
                if (pass == 1) n = push(out, n, max, "conv", i + 1, pr, 0, 1, l->cout, K, C, 1.0f);
                if (pass == 2) n = push(out, n, max, "conv", i + 1, pr, 1, 0, K, C, l->cout, 0.0f);
            } else {
                const size_t R = batch * (size_t)m->cfg.T;
                if (pass == 0) n = push(out, n, max, "dense", i + 1, pr, 0, 1, R, l->cout, l->cin, 1.0f);
                if (pass == 1) n = push(out, n, max, "dense", i + 1, pr, 1, 0, l->cout, l->cin, R, 0.0f);
                if (pass == 2) n = push(out, n, max, "dense", i + 1, pr, 0, 0, R, l->cin, l->cout, 0.0f);
            }
        }
    if (!m->fc_w) return n; /* no readout layer */
    const size_t K = (size_t)m->cfg.num_classes, F = m->readout;
    n = push(out, n, max, "linear", 0, "forward", 0, 1, batch, K, F, 1.0f);
    n = push(out, n, max, "linear", 0, "wgrad", 1, 0, K, F, batch, 0.0f);
    n = push(out, n, max, "linear", 0, "igrad", 0, 0, batch, F, K, 0.0f);
    return n;
}

snn_status snn_config_gemm_shapes(const snn_model_config *cfg, size_t batch, size_t max_cols, snn_gemm_shape *out,
                                  size_t max, size_t *count) {
    snn_model *m;
    SNN_TRY(snn_model_build(&m, NULL, cfg)); /* the plan only: no device needed */
    *count = snn_model_gemm_shapes(m, batch, max_cols, out, max);
    snn_model_free(m);
    return SNN_OK;
}
