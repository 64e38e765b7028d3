/* The Benettin estimate from per-layer squared divergences sq (L, T, B):
 *   d[t,b] = sqrt(sum_l sq[l,t,b] + 1e-12);  lambda[b] = mean_t log(d[t,b]/eps + 1e-12) */
__kernel void snn_k_lyapunov_finish(__global const float *sq, __global float *lambda, const uint L,
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

/* The regularizer's gradient with respect to each step's divergence. With
 * lambda = mean_b lambda[b] and loss term w * (lambda - target)^2:
 *   gdiv[t,b] = d loss / d diff  per unit diff = 2 w (lambda - target) / (B T)
 *               / ((d + 1e-12 eps) d),   d = sqrt(sum_l sq[l,t,b] + 1e-12)
 * (d log(d/eps + 1e-12) / d diff = diff / ((d + 1e-12 eps) d)). out[0] = lambda.
 * With `given` the batch mean is given_mean instead: the global batch's, when this
 * batch is a share of it (synchronized statistics), while B stays the share's (its
 * gradient is that of its own mean loss).
 * A single work-item: the batch mean couples every sample, and B*T*L is small. */
__kernel void snn_k_lyapunov_grad(__global const float *sq, __global const float *lambda,
                            __global float *gdiv, __global float *out, const uint L, const uint T,
                            const uint B, const float eps, const float weight,
                            const float target, const int given, const float given_mean) {
    if (get_global_id(0) != 0) return;
    float mean = 0.0f;
    for (uint b = 0; b < B; b++) mean += lambda[b];
    mean = given ? given_mean : mean / (float)B;
    out[0] = mean;
    const float coef = 2.0f * weight * (mean - target) / ((float)B * (float)T);
    for (uint t = 0; t < T; t++)
        for (uint b = 0; b < B; b++) {
            float total = 0.0f;
            for (uint l = 0; l < L; l++) total += sq[((size_t)l * T + t) * B + b];
            const float d = sqrt(total + 1e-12f);
            gdiv[(size_t)t * B + b] = coef / ((d + 1e-12f * eps) * d);
        }
}
