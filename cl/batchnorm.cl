/* BatchNorm2d in training mode: statistics of each step's batch, per channel.
 * Activations are channel-major blocks: z (C, R, M) with R = trajectories x steps and
 * M = B*H*W elements per (channel, step); per-step tables are (R, C). */

/* One work-group per (c, r): mean, 1/sqrt(var + 1e-5) (biased variance), the unbiased
 * variance for the running estimate, and the affine y = scale*z + shift that feeds the
 * LIF layer. Two passes over the block (mean, then squared deviations), each a
 * compensated sum (snn_ksum), for accuracy. */
__kernel void snn_k_bn_stats(__global const float *z, const uint C, const uint R, const uint M,
                       __global const float *gamma, __global const float *beta,
                       __global float *mean, __global float *rstd, __global float *var_unbiased,
                       __global float *scale, __global float *shift, __local float *scratch) {
    const uint c = get_group_id(0) / R, r = get_group_id(0) % R;
    const uint lid = get_local_id(0), wg = get_local_size(0);
    __global const float *x = z + ((size_t)c * R + r) * M;
    float acc, sq;
    SNN_KSUM_STRIDED(acc, lid, wg, M, x[i]);
    const float mu = snn_group_sum(acc, scratch) / (float)M;
    SNN_KSUM_STRIDED(sq, lid, wg, M, (x[i] - mu) * (x[i] - mu));
    const float ss = snn_group_sum(sq, scratch);
    if (lid == 0) {
        const float var = ss / (float)M;
        const float rs = 1.0f / sqrt(var + 1e-5f);
        const uint k = r * C + c;
        mean[k] = mu;
        rstd[k] = rs;
        var_unbiased[k] = M > 1 ? ss / (float)(M - 1) : 0.0f;
        scale[k] = gamma[c] * rs;
        shift[k] = beta[c] - mu * gamma[c] * rs;
    }
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
 * partial (P*T, C, 2) receives sum(g) and sum(g * xhat) for the parameter gradients. */
__kernel void snn_k_bn_backward(__global float *g, __global const float *z, __global const float *mean,
                          __global const float *rstd, __global const float *gamma, const uint C,
                          const uint P, const uint T, const uint Pz, const uint Tz, const uint M,
                          __global float *partial, __local float *scratch) {
    const uint blk = get_group_id(0); /* (c, p, t) */
    const uint c = blk / (P * T), p = (blk / T) % P, t = blk % T;
    const uint lid = get_local_id(0), wg = get_local_size(0);
    const uint rz = (Pz == 1 ? 0 : p) * Tz + (Tz == 1 ? 0 : t);
    const uint k = rz * C + c;
    __global float *gb = g + (size_t)blk * M;
    __global const float *zb = z + ((size_t)c * Pz * Tz + rz) * M;
    const float mu = mean[k], rs = rstd[k];
    float a1, a2;
    SNN_KSUM_STRIDED(a1, lid, wg, M, gb[i]);
    SNN_KSUM_STRIDED(a2, lid, wg, M, gb[i] * ((zb[i] - mu) * rs));
    const float s1 = snn_group_sum(a1, scratch);
    const float s2 = snn_group_sum(a2, scratch);
    const float m1 = s1 / (float)M, m2 = s2 / (float)M, f = gamma[c] * rs;
    for (uint i = lid; i < M; i += wg) gb[i] = f * (gb[i] - m1 - ((zb[i] - mu) * rs) * m2);
    if (lid == 0) {
        const size_t o = ((size_t)(p * T + t) * C + c) * 2;
        partial[o] = s1;
        partial[o + 1] = s2;
    }
}

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
