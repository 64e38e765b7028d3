/* The loss: softmax cross-entropy, correctness and the logits' gradient. */

/* Mean cross-entropy of logits (B, K) against labels, one work-item per sample:
 * loss[b] = logsumexp(logits[b]) - logits[b, y], correct[b] = (argmax == y, the first
 * maximum), and grad = (softmax - onehot) / B. A label outside [0, K) (possible
 * only for labels the caller left on the device) sets *bad_label to 1 and leaves the
 * sample out: loss, correct and its gradient row 0. */
__kernel void snn_k_softmax_xent(__global const float *logits, __global const int *labels,
                           __global float *loss, __global float *correct, __global float *grad,
                           const uint B, const uint K, __global int *bad_label) {
    const uint b = get_global_id(0);
    if (b >= B) return;
    __global const float *z = logits + (size_t)b * K;
    const int y = labels[b];
    if (y < 0 || y >= (int)K) {
        *bad_label = 1; /* every writer stores the same value */
        loss[b] = 0.0f;
        correct[b] = 0.0f;
        for (uint k = 0; k < K; k++) grad[(size_t)b * K + k] = 0.0f;
        return;
    }
    uint arg = 0;
    float mx = z[0];
    for (uint k = 1; k < K; k++)
        if (z[k] > mx) {
            mx = z[k];
            arg = k;
        }
    float se = 0.0f;
    for (uint k = 0; k < K; k++) se += exp(z[k] - mx);
    const float lse = mx + log(se);
    loss[b] = lse - z[y];
    correct[b] = (int)arg == y ? 1.0f : 0.0f;
    for (uint k = 0; k < K; k++)
        grad[(size_t)b * K + k] = (exp(z[k] - lse) - ((int)k == y ? 1.0f : 0.0f)) / (float)B;
}
