/* The Benettin estimate from per-layer squared divergences sq (L, T, B):
 *   d[t,b] = sqrt(sum_l sq[l,t,b] + 1e-12);  lambda[b] = mean_t log(d[t,b]/eps + 1e-12) */
__kernel void lyapunov_finish(__global const float *sq, __global float *lambda, const uint L,
                              const uint T, const uint B, const float eps) {
    const uint b = get_global_id(0);
    if (b >= B) return;
    float acc = 0.0f;
    for (uint t = 0; t < T; t++) {
        float total = 0.0f;
        for (uint l = 0; l < L; l++) total += sq[((size_t)l * T + t) * B + b];
        acc += log(sqrt(total + 1e-12f) / eps + 1e-12f);
    }
    lambda[b] = acc / (float)T;
}
