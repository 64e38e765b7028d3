/* The readout side: spike counts, flattening, and bias rows for the linear layers. */

/* sum[b, c*hw + p] += sum over t < T of in[c*gstride + (t*B + b)*hw + p]:
 * spikes of layout (C, T, B, hw) summed over time and flattened in (C, H, W) order. */
__kernel void spike_sum(__global const float *in, __global float *sum, const uint C, const uint T,
                        const uint B, const uint hw, const uint gstride) {
    const uint i = get_global_id(0); /* over B * C * hw */
    if (i >= B * C * hw) return;
    const uint p = i % hw, c = (i / hw) % C, b = i / (hw * C);
    __global const float *src = in + (size_t)c * gstride + (size_t)b * hw + p;
    float acc = 0.0f;
    for (uint t = 0; t < T; t++) acc += src[(size_t)t * B * hw];
    sum[i] += acc;
}

/* (C, N, hw) -> (N, C*hw): channel-major activations to rows of a dense layer. */
__kernel void flatten_rows(__global const float *in, __global float *out, const uint C, const uint N,
                           const uint hw) {
    const uint i = get_global_id(0);
    if (i >= N * C * hw) return;
    const uint p = i % hw, c = (i / hw) % C, n = i / (hw * C);
    out[i] = in[((size_t)c * N + n) * hw + p];
}

/* out[r, j] = bias[j]: the starting value of a GEMM with beta = 1. */
__kernel void bias_rows(__global float *out, __global const float *bias, const uint rows,
                        const uint cols) {
    const uint i = get_global_id(0);
    if (i >= rows * cols) return;
    out[i] = bias[i % cols];
}

/* out = x * mask / (1 - p) for the (rows, cols) spike sums: element i keeps its value
 * when word (i & 3) of philox((i >> 2, 0, SNN_STREAM_DROPOUT, 0), seed) is at least
 * p * 2^32. Linear in x, so the backward pass applies the same kernel to the gradient.
 * One work-item per Philox block: elements 4j .. 4j+3. */
__kernel void dropout(__global const float *x, __global float *out, const uint n, const float p,
                      const uint2 key) {
    const uint j = get_global_id(0);
    if (j >= (n + 3) / 4) return;
    const ulong threshold = convert_ulong_rtz(p * 4294967296.0f);
    const float scale = 1.0f / (1.0f - p);
    const uint4 r = philox4x32_10((uint4)(j, 0u, SNN_STREAM_DROPOUT, 0u), key);
    const uint words[4] = {r.x, r.y, r.z, r.w};
    for (uint k = 0; k < 4; k++) {
        const uint i = 4 * j + k;
        if (i < n) out[i] = (ulong)words[k] >= threshold ? x[i] * scale : 0.0f;
    }
}

/* The adjoint of spike_sum for both trajectories' layout (C, P, T, B, hw): the reference
 * trajectory's spikes at every step get the gradient of their sum, the perturbed
 * trajectory's (which do not reach the readout) get zero. */
__kernel void spike_sum_backward(__global const float *gsum, __global float *gup, const uint C,
                                 const uint P, const uint T, const uint B, const uint hw) {
    const uint i = get_global_id(0); /* over (C, P, T, B, hw) */
    if (i >= C * P * T * B * hw) return;
    const uint q = i % hw, b = (i / hw) % B, p = (i / (hw * B * T)) % P, c = i / (hw * B * T * P);
    gup[i] = p == 0 ? gsum[((size_t)b * C + c) * hw + q] : 0.0f;
}

/* (N, C*hw) -> (C, N, hw): the inverse of flatten_rows. */
__kernel void unflatten_rows(__global const float *in, __global float *out, const uint C,
                             const uint N, const uint hw) {
    const uint i = get_global_id(0); /* over the output (C, N, hw) */
    if (i >= N * C * hw) return;
    const uint q = i % hw, n = (i / hw) % N, c = i / (hw * N);
    out[i] = in[((size_t)n * C + c) * hw + q];
}

/* out[j] = sum over rows of in (rows, cols): a bias gradient. */
__kernel void column_sum(__global const float *in, __global float *out, const uint rows,
                         const uint cols) {
    const uint j = get_global_id(0);
    if (j >= cols) return;
    float acc = 0.0f;
    for (uint r = 0; r < rows; r++) acc += in[(size_t)r * cols + j];
    out[j] = acc;
}

/* Mean cross-entropy of logits (B, K) against labels, one work-item per sample:
 * loss[b] = logsumexp(logits[b]) - logits[b, y], correct[b] = (argmax == y, the first
 * maximum), and grad = (softmax - onehot) / B. */
__kernel void softmax_xent(__global const float *logits, __global const int *labels,
                           __global float *loss, __global float *correct, __global float *grad,
                           const uint B, const uint K) {
    const uint b = get_global_id(0);
    if (b >= B) return;
    __global const float *z = logits + (size_t)b * K;
    const int y = labels[b];
    uint arg = 0;
    float mx = z[0];
    for (uint k = 1; k < K; k++)
        if (z[k] > mx) {
            mx = z[k];
            arg = k;
        }
    float se = 0.0f;
    for (uint k = 0; k < K; k++) se += exp(z[k] - mx);
    const float lse = mx + log(se);
    loss[b] = lse - z[y];
    correct[b] = (int)arg == y ? 1.0f : 0.0f;
    for (uint k = 0; k < K; k++)
        grad[(size_t)b * K + k] = (exp(z[k] - lse) - ((int)k == y ? 1.0f : 0.0f)) / (float)B;
}
