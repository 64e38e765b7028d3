/* The bias of a linear layer: its rows before the GEMM (beta = 1), its gradient. */

/* out[r, j] = bias[j]: the starting value of a GEMM with beta = 1. */
__kernel void snn_k_bias_rows(__global float *out, __global const float *bias, const uint rows,
                        const uint cols) {
    const uint i = get_global_id(0);
    if (i >= rows * cols) return;
    out[i] = bias[i % cols];
}

/* out[j] = sum over rows of in (rows, cols): a bias gradient. */
__kernel void snn_k_column_sum(__global const float *in, __global float *out, const uint rows,
                         const uint cols) {
    const uint j = get_global_id(0);
    if (j >= cols) return;
    float acc = 0.0f;
    for (uint r = 0; r < rows; r++) acc += in[(size_t)r * cols + j];
    out[j] = acc;
}
