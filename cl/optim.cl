/* Optimizer updates, as torch.optim does them (weight decay added to the gradient,
 * after clipping), one launch per parameter tensor. Gradient clipping by global norm:
 * each tensor's squared norm goes to norms[slot]; the update kernels scale the
 * gradient by min(1, max_norm / (sqrt(sum norms) + 1e-6)) (max_norm 0: no clipping). */

/* norms[slot] = sum of g^2 over one tensor; a single work-group. */
__kernel void snn_k_grad_sumsq(__global const float *g, const uint n, __global float *norms,
                         const uint slot, __local float *scratch) {
    const uint lid = get_local_id(0), wg = get_local_size(0);
    float acc = 0.0f;
    for (uint i = lid; i < n; i += wg) acc += g[i] * g[i];
    const float total = snn_group_sum(acc, scratch);
    if (lid == 0) norms[slot] = total;
}

inline float clip_factor(__global const float *norms, const uint count, const float max_norm) {
    if (max_norm <= 0.0f) return 1.0f;
    float total = 0.0f;
    for (uint i = 0; i < count; i++) total += norms[i];
    const float coef = max_norm / (sqrt(total) + 1e-6f);
    return coef < 1.0f ? coef : 1.0f;
}

/* Adam (not AdamW): bc1 = 1 - beta1^step, bc2_sqrt = sqrt(1 - beta2^step). */
__kernel void snn_k_adam_update(__global float *param, __global const float *grad, __global float *m,
                          __global float *v, const uint n, const float lr, const float beta1,
                          const float beta2, const float eps, const float weight_decay,
                          const float bc1, const float bc2_sqrt, __global const float *norms,
                          const uint num_norms, const float max_norm) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float g = grad[i] * clip_factor(norms, num_norms, max_norm) + weight_decay * param[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= (lr / bc1) * (mi / (sqrt(vi) / bc2_sqrt + eps));
}

/* SGD with momentum (dampening 0, not Nesterov); the first step starts the buffer at g. */
__kernel void snn_k_sgd_update(__global float *param, __global const float *grad, __global float *buf,
                         const uint n, const float lr, const float momentum,
                         const float weight_decay, const uint first, __global const float *norms,
                         const uint num_norms, const float max_norm) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    float g = grad[i] * clip_factor(norms, num_norms, max_norm) + weight_decay * param[i];
    if (momentum != 0.0f) {
        g = first ? g : momentum * buf[i] + g;
        buf[i] = g;
    }
    param[i] -= lr * g;
}
