/* Dropout before the readout, with snncl's counter-based Philox mask. */

/* out = x * mask / (1 - p) for the (rows, cols) spike sums: element i keeps its value
 * when word (g & 3) of philox((g >> 2, 0, SNN_STREAM_DROPOUT, 0), seed) is at least
 * p * 2^32, g = e0 + i its index in the global batch these rows are a share of (e0 =
 * 0 alone). Linear in x, so the backward pass applies the same kernel to the
 * gradient. One work-item per Philox block (snn_block_first, encode.cl). */
__kernel void snn_k_dropout(__global const float *x, __global float *out, const uint n, const float p,
                      const uint2 key, const uint e0) {
    const uint j = get_global_id(0);
    const uint lo = e0 & 3u, k0 = snn_block_first(j, e0);
    if (4u * j + k0 - lo >= n) return;
    const ulong threshold = convert_ulong_rtz(p * 4294967296.0f);
    const float scale = 1.0f / (1.0f - p);
    const uint4 r = philox4x32_10((uint4)(j + (e0 >> 2), 0u, SNN_STREAM_DROPOUT, 0u), key);
    const uint words[4] = {r.x, r.y, r.z, r.w};
    for (uint k = k0; k < 4u; k++) {
        const uint i = 4u * j + k - lo;
        if (i < n) out[i] = (ulong)words[k] >= threshold ? x[i] * scale : 0.0f;
    }
}
