/* BatchNorm2d in training mode: statistics of each step's batch, per channel.
 * Activations are channel-major blocks: z (C, R, M) with R = trajectories x steps and
 * M = B*H*W elements per (channel, step); per-step tables are (R, C). */

/* The normalization of one (r, c) block from its statistics (the biased and the
 * unbiased variance): the tables the LIF layer and backward read. */
inline void snn_bn_tables(const uint k, const uint c, const float mu, const float var, const float var_unb,
                          __global const float *gamma, __global const float *beta, __global float *mean,
                          __global float *rstd, __global float *var_unbiased, __global float *scale,
                          __global float *shift) {
    const float rs = 1.0f / sqrt(var + 1e-5f);
    mean[k] = mu;
    rstd[k] = rs;
    var_unbiased[k] = var_unb;
    scale[k] = gamma[c] * rs;
    shift[k] = beta[c] - mu * gamma[c] * rs;
}

/* The mean and the sum of squared deviations of block (c, r) of z (C, R, M): two
 * passes (mean, then deviations), each a compensated sum (snn_ksum), for accuracy. */
inline float2 snn_bn_moments(__global const float *z, const uint R, const uint M, const uint c, const uint r,
                             __local float *scratch) {
    const uint lid = get_local_id(0), wg = get_local_size(0);
    __global const float *x = z + ((size_t)c * R + r) * M;
    float acc, sq;
    SNN_KSUM_STRIDED(acc, lid, wg, M, x[i]);
    const float mu = snn_group_sum(acc, scratch) / (float)M;
    SNN_KSUM_STRIDED(sq, lid, wg, M, (x[i] - mu) * (x[i] - mu));
    return (float2)(mu, snn_group_sum(sq, scratch));
}

/* One work-group per (c, r): mean, 1/sqrt(var + 1e-5) (biased variance), the unbiased
 * variance for the running estimate, and the affine y = scale*z + shift that feeds the
 * LIF layer. */
__kernel void snn_k_bn_stats(__global const float *z, const uint C, const uint R, const uint M,
                       __global const float *gamma, __global const float *beta,
                       __global float *mean, __global float *rstd, __global float *var_unbiased,
                       __global float *scale, __global float *shift, __local float *scratch) {
    const uint c = get_group_id(0) / R, r = get_group_id(0) % R;
    const float2 ms = snn_bn_moments(z, R, M, c, r, scratch);
    if (get_local_id(0) == 0)
        snn_bn_tables(r * C + c, c, ms.x, ms.y / (float)M, M > 1 ? ms.y / (float)(M - 1) : 0.0f, gamma, beta,
                      mean, rstd, var_unbiased, scale, shift);
}

/* Synchronized BatchNorm, in two halves around the host's sum over processes: first
 * each block's local moments into moments (R, C, 2) = (mean, sum of squared
 * deviations), one work-group per (c, r) ... */
__kernel void snn_k_bn_moments(__global const float *z, const uint C, const uint R, const uint M,
                               __global float *moments, __local float *scratch) {
    const uint c = get_group_id(0) / R, r = get_group_id(0) % R;
    const float2 ms = snn_bn_moments(z, R, M, c, r, scratch);
    if (get_local_id(0) == 0) {
        moments[((size_t)r * C + c) * 2] = ms.x;
        moments[((size_t)r * C + c) * 2 + 1] = ms.y;
    }
}

/* ... then the tables from the global batch's stats (R, C, 2) = (mean, biased
 * variance) over N values per block, one work-item per (r, c). */
__kernel void snn_k_bn_tables(__global const float *stats, const uint C, const uint R, const float N,
                              __global const float *gamma, __global const float *beta, __global float *mean,
                              __global float *rstd, __global float *var_unbiased, __global float *scale,
                              __global float *shift) {
    const uint k = get_global_id(0);
    if (k >= R * C) return;
    const float var = stats[2 * k + 1];
    snn_bn_tables(k, k % C, stats[2 * k], var, N > 1.0f ? var * (N / (N - 1.0f)) : 0.0f, gamma, beta, mean, rstd,
                  var_unbiased, scale, shift);
}

/* Running statistics moved once per BatchNorm call, in the seed's call order: for each
 * step t, the reference trajectory then the perturbed one (p < P). Tables are (Pz, Tz, C);
 * Pz = 1 or Tz = 1 when trajectories or steps share one input (and so one statistic). */
__kernel void snn_k_bn_running_update(__global const float *mean, __global const float *var_unbiased,
                                __global float *running_mean, __global float *running_var,
                                const uint C, const uint P, const uint T, const uint Pz,
                                const uint Tz, const float momentum) {
    const uint c = get_global_id(0);
    if (c >= C) return;
    float rm = running_mean[c], rv = running_var[c];
    for (uint t = 0; t < T; t++)
        for (uint p = 0; p < P; p++) {
            const uint k = ((Pz == 1 ? 0 : p) * Tz + (Tz == 1 ? 0 : t)) * C + c;
            rm = (1.0f - momentum) * rm + momentum * mean[k];
            rv = (1.0f - momentum) * rv + momentum * var_unbiased[k];
        }
    running_mean[c] = rm;
    running_var[c] = rv;
}

/* Backward of y = gamma * (z - mean) * rstd + beta with batch statistics, one work-group
 * per (c, p, t) block of g (C, P, T, M), in place: g = d loss / d y on entry,
 * d loss / d z on exit:
 *   dz = gamma * rstd * (g - mean(g) - xhat * mean(g * xhat)).
 * z and the tables may be shared across trajectories (Pz = 1) or steps (Tz = 1).
 * partial (P*T, C, 2) receives sum(g) and sum(g * xhat) for the parameter gradients.
 * With synchronized BatchNorm the two means are the global batch's: partial is summed
 * over the processes between snn_k_bn_backward_sums and snn_k_bn_backward_apply. */
#define SNN_BN_BLOCK                                                                    \
    const uint blk = get_group_id(0); /* (c, p, t) */                                   \
    const uint c = blk / (P * T), p = (blk / T) % P, t = blk % T;                       \
    const uint rz = (Pz == 1 ? 0 : p) * Tz + (Tz == 1 ? 0 : t);                         \
    const uint k = rz * C + c;                                                          \
    __global float *gb = g + (size_t)blk * M;                                           \
    __global const float *zb = z + ((size_t)c * Pz * Tz + rz) * M;                      \
    const float mu = mean[k], rs = rstd[k];                                             \
    const size_t o = ((size_t)(p * T + t) * C + c) * 2

/* sum(g) and sum(g * xhat) of this work-group's block, in every work-item. */
inline float2 snn_bn_grad_sums(__global const float *gb, __global const float *zb, const float mu,
                               const float rs, const uint M, __local float *scratch) {
    const uint lid = get_local_id(0), wg = get_local_size(0);
    float a1, a2;
    SNN_KSUM_STRIDED(a1, lid, wg, M, gb[i]);
    SNN_KSUM_STRIDED(a2, lid, wg, M, gb[i] * ((zb[i] - mu) * rs));
    const float s1 = snn_group_sum(a1, scratch);
    return (float2)(s1, snn_group_sum(a2, scratch));
}

inline void snn_bn_grad_apply(__global float *gb, __global const float *zb, const float mu, const float rs,
                              const float f, const float m1, const float m2, const uint M) {
    for (uint i = get_local_id(0); i < M; i += get_local_size(0)) gb[i] = f * (gb[i] - m1 - ((zb[i] - mu) * rs) * m2);
}

__kernel void snn_k_bn_backward(__global float *g, __global const float *z, __global const float *mean,
                          __global const float *rstd, __global const float *gamma, const uint C,
                          const uint P, const uint T, const uint Pz, const uint Tz, const uint M,
                          __global float *partial, __local float *scratch) {
    SNN_BN_BLOCK;
    const float2 s = snn_bn_grad_sums(gb, zb, mu, rs, M, scratch);
    snn_bn_grad_apply(gb, zb, mu, rs, gamma[c] * rs, s.x / (float)M, s.y / (float)M, M);
    if (get_local_id(0) == 0) {
        partial[o] = s.x;
        partial[o + 1] = s.y;
    }
}

__kernel void snn_k_bn_backward_sums(__global float *g, __global const float *z,
                                     __global const float *mean, __global const float *rstd, const uint C,
                                     const uint P, const uint T, const uint Pz, const uint Tz, const uint M,
                                     __global float *partial, __local float *scratch) {
    SNN_BN_BLOCK;
    const float2 s = snn_bn_grad_sums(gb, zb, mu, rs, M, scratch);
    if (get_local_id(0) == 0) {
        partial[o] = s.x;
        partial[o + 1] = s.y;
    }
}

/* means (P*T, C, 2): the two means to subtract, in this process's scale (the global
 * batch's, divided by this process's share of it). */
__kernel void snn_k_bn_backward_apply(__global float *g, __global const float *z, __global const float *mean,
                                      __global const float *rstd, __global const float *gamma, const uint C,
                                      const uint P, const uint T, const uint Pz, const uint Tz, const uint M,
                                      __global const float *means) {
    SNN_BN_BLOCK;
    snn_bn_grad_apply(gb, zb, mu, rs, gamma[c] * rs, means[o], means[o + 1], M);
}
#undef SNN_BN_BLOCK

/* d gamma[c] = sum over blocks of sum(g * xhat); d beta[c] = sum of sum(g). */
__kernel void snn_k_bn_param_grad(__global const float *partial, __global float *dgamma,
                            __global float *dbeta, const uint C, const uint R) {
    const uint c = get_global_id(0);
    if (c >= C) return;
    float s1 = 0.0f, s2 = 0.0f;
    for (uint r = 0; r < R; r++) {
        s1 += partial[((size_t)r * C + c) * 2];
        s2 += partial[((size_t)r * C + c) * 2 + 1];
    }
    dbeta[c] = s1;
    dgamma[c] = s2;
}

/* out (C, X) = sum over r < R of in (C, R, X): a gradient summed over the trajectories
 * or steps that shared one input. */
__kernel void snn_k_sum_blocks(__global const float *in, __global float *out, const uint C, const uint R,
                         const uint X) {
    const uint i = get_global_id(0);
    if (i >= C * X) return;
    const uint c = i / X, x = i % X;
    float acc = 0.0f;
    for (uint r = 0; r < R; r++) acc += in[((size_t)c * R + r) * X + x];
    out[i] = acc;
}
