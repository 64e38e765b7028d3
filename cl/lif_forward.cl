/* Leaky integrate-and-fire over a chunk of time steps (the neuron of cl/lif.cl).
 * Neurons are (g, m): g a channel (or 0 for a dense layer), m runs over batch and
 * space. The input current is affine in the convolution output (BatchNorm):
 *   cur[t] = scale[k] * in[in_off + g*gstride + t*tstride + m] + shift[k],
 *   k = g + t*aff_tstride (+ aff_pstride for the perturbed trajectory)
 * so eval mode (folded running statistics) passes zero affine strides and training
 * (per-step batch statistics) passes the strides of its (P, T, C) tables.
 * tstride = 0 repeats one input at every step. Membranes persist in `mem` between
 * chunks; spikes go to spk[g*spk_gstride + t*M + m].
 * The _record variant writes the membrane mem[t] instead of the spike: the backward
 * pass recomputes the trajectory this way instead of storing it during the forward. */
#define LIF_FORWARD_ARGS                                                                      \
    __global const float *in, const uint in_off, const uint gstride, const uint tstride,       \
        __global const float *scale, __global const float *shift, const uint aff_tstride,     \
        const float beta, const float thr, const uint reset, __global float *mem,             \
        __global float *spk, const uint spk_gstride, const uint G, const uint M, const uint T
#define LIF_FORWARD_PASS \
    in, in_off, gstride, tstride, scale, shift, aff_tstride, beta, thr, reset, mem, spk, spk_gstride, G, M, T

inline void lif_forward(LIF_FORWARD_ARGS, const uint record) {
    const uint m = get_global_id(0), g = get_global_id(1);
    if (m >= M || g >= G) return;
    __global const float *x = in + in_off + (size_t)g * gstride + m;
    __global float *s = spk + (size_t)g * spk_gstride + m;
    float v = mem[(size_t)g * M + m];
    for (uint t = 0; t < T; t++) {
        const uint k = g + t * aff_tstride;
        v = lif_step(v, scale[k] * x[(size_t)t * tstride] + shift[k], beta, thr, reset);
        s[(size_t)t * M] = record ? v : (v > thr ? 1.0f : 0.0f);
    }
    mem[(size_t)g * M + m] = v;
}

__kernel void snn_k_lif_forward(LIF_FORWARD_ARGS) { lif_forward(LIF_FORWARD_PASS, 0); }
__kernel void snn_k_lif_forward_record(LIF_FORWARD_ARGS) { lif_forward(LIF_FORWARD_PASS, 1); }

/* lif_forward fused with the 2x2 average pooling that follows it (one trajectory):
 * one work-item per pooled output q = (b, yo, xo) of group g runs its window's four
 * neurons and writes the mean of their spikes to out[g*out_gstride + t*B*Ho*Wo + q],
 * so the full-resolution spikes never reach memory. Neurons that floor pooling drops
 * (the last row or column of an odd size) are not computed: nothing reads them. */
__kernel void snn_k_lif_forward_pool(__global const float *in, const uint in_off, const uint gstride,
                               const uint tstride, __global const float *scale,
                               __global const float *shift, const uint aff_tstride,
                               const float beta, const float thr, const uint reset, __global float *mem,
                               __global float *out, const uint out_gstride, const uint G,
                               const uint B, const uint H, const uint W, const uint T) {
    const uint q = get_global_id(0), g = get_global_id(1);
    const uint Ho = H / 2, Wo = W / 2, Q = B * Ho * Wo;
    if (q >= Q || g >= G) return;
    const uint b = q / (Ho * Wo), yo = (q / Wo) % Ho, xo = q % Wo;
    const uint m0 = (b * H + 2 * yo) * W + 2 * xo;
    const uint idx[4] = {m0, m0 + 1, m0 + W, m0 + W + 1};
    __global float *state = mem + (size_t)g * B * H * W;
    __global const float *x = in + in_off + (size_t)g * gstride;
    float v[4];
    for (int k = 0; k < 4; k++) v[k] = state[idx[k]];
    for (uint t = 0; t < T; t++) {
        const uint a = g + t * aff_tstride;
        const float sc = scale[a], sh = shift[a];
        __global const float *xt = x + (size_t)t * tstride;
        float spikes = 0.0f;
        for (int k = 0; k < 4; k++) {
            v[k] = lif_step(v[k], sc * xt[idx[k]] + sh, beta, thr, reset);
            spikes += v[k] > thr ? 1.0f : 0.0f;
        }
        out[(size_t)g * out_gstride + (size_t)t * Q + q] = 0.25f * spikes;
    }
    for (int k = 0; k < 4; k++) state[idx[k]] = v[k];
}
