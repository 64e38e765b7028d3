/* Between channel-major activations (C, N, hw) and the rows (N, C*hw) of a dense layer. */

/* (C, N, hw) -> (N, C*hw): channel-major activations to rows of a dense layer. */
__kernel void snn_k_flatten_rows(__global const float *in, __global float *out, const uint C, const uint N,
                           const uint hw) {
    const uint i = get_global_id(0);
    if (i >= N * C * hw) return;
    const uint p = i % hw, c = (i / hw) % C, n = i / (hw * C);
    out[i] = in[((size_t)c * N + n) * hw + p];
}

/* (N, C*hw) -> (C, N, hw): the inverse of flatten_rows. */
__kernel void snn_k_unflatten_rows(__global const float *in, __global float *out, const uint C,
                             const uint N, const uint hw) {
    const uint i = get_global_id(0); /* over the output (C, N, hw) */
    if (i >= N * C * hw) return;
    const uint q = i % hw, n = (i / hw) % N, c = i / (hw * N);
    out[i] = in[((size_t)n * C + c) * hw + q];
}
