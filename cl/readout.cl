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
