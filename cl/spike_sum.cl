/* The readout's input: spikes summed over time (and the adjoint, for backward). */

/* sum[b, c*hw + p] += sum over t < T of in[c*gstride + (t*B + b)*hw + p]:
 * spikes of layout (C, T, B, hw) summed over time and flattened in (C, H, W) order. */
__kernel void snn_k_spike_sum(__global const float *in, __global float *sum, const uint C, const uint T,
                        const uint B, const uint hw, const uint gstride) {
    const uint i = get_global_id(0); /* over B * C * hw */
    if (i >= B * C * hw) return;
    const uint p = i % hw, c = (i / hw) % C, b = i / (hw * C);
    __global const float *src = in + (size_t)c * gstride + (size_t)b * hw + p;
    float acc = 0.0f;
    for (uint t = 0; t < T; t++) acc += src[(size_t)t * B * hw];
    sum[i] += acc;
}

/* The adjoint of spike_sum for both trajectories' layout (C, P, T, B, hw): the reference
 * trajectory's spikes at every step get the gradient of their sum, the perturbed
 * trajectory's (which do not reach the readout) get zero. */
__kernel void snn_k_spike_sum_backward(__global const float *gsum, __global float *gup, const uint C,
                                 const uint P, const uint T, const uint B, const uint hw) {
    const uint i = get_global_id(0); /* over (C, P, T, B, hw) */
    if (i >= C * P * T * B * hw) return;
    const uint q = i % hw, b = (i / hw) % B, p = (i / (hw * B * T)) % P, c = i / (hw * B * T * P);
    gup[i] = p == 0 ? gsum[((size_t)b * C + c) * hw + q] : 0.0f;
}
