/* The leaky integrate-and-fire neuron of snnTorch's Leaky (reset_delay true: a spike
 * resets the membrane at the next step), in one place for every LIF kernel, so that
 * the forward pass, the estimate's two trajectories and the backward pass's
 * recomputation give the same membranes bit for bit:
 *   fired  = mem[t-1] > thr
 *   mem[t] = beta*mem[t-1] + cur[t] - fired*thr     reset SNN_LIF_RESET_SUBTRACT
 *            beta*(fired ? 0 : mem[t-1]) + cur[t]   reset SNN_LIF_RESET_ZERO
 *            beta*mem[t-1] + cur[t]                 reset SNN_LIF_RESET_NONE
 *   spk[t] = mem[t] > thr
 * (beta clamped to [0, 1] by the host). No gradient flows through `fired`: snnTorch
 * detaches the reset, so d mem[t] / d mem[t-1] is lif_decay(mem[t-1]). */

inline float lif_step(const float v, const float cur, const float beta, const float thr, const uint reset) {
    if (reset == SNN_LIF_RESET_ZERO) return beta * (v > thr ? 0.0f : v) + cur;
    if (reset == SNN_LIF_RESET_NONE) return beta * v + cur;
    return beta * v + cur - (v > thr ? thr : 0.0f);
}

inline float8 lif_step8(const float8 v, const float8 cur, const float beta, const float thr, const uint reset) {
    const int8 fired = v > (float8)(thr);
    if (reset == SNN_LIF_RESET_ZERO) return beta * select(v, (float8)(0.0f), fired) + cur;
    if (reset == SNN_LIF_RESET_NONE) return beta * v + cur;
    return beta * v + cur - select((float8)(0.0f), (float8)(thr), fired);
}

/* d mem[t+1] / d mem[t] with the reset detached. */
inline float lif_decay(const float v, const float beta, const float thr, const uint reset) {
    return reset == SNN_LIF_RESET_ZERO && v > thr ? 0.0f : beta;
}

inline float8 lif_decay8(const float8 v, const float beta, const float thr, const uint reset) {
    if (reset != SNN_LIF_RESET_ZERO) return (float8)(beta);
    return select((float8)(beta), (float8)(0.0f), v > (float8)(thr));
}

/* The perturbed trajectory's next difference d' = mem_p[t] - mem[t] from the reference
 * membrane v = mem[t-1] and d = mem_p[t-1] - mem[t-1], without the input currents'
 * difference (the caller adds it): exact where mem_p is never formed. */
inline float lif_step_delta(const float v, const float d, const float beta, const float thr, const uint reset) {
    const int fired = v > thr, fired_p = v + d > thr;
    if (reset == SNN_LIF_RESET_ZERO) {
        /* beta * (kept_p - kept), with d itself where neither or both reset: (v + d) - v
         * would lose d's digits to v's size */
        if (fired == fired_p) return fired ? 0.0f : beta * d;
        return fired ? beta * (v + d) : -beta * v;
    }
    if (reset == SNN_LIF_RESET_NONE) return beta * d;
    return beta * d - ((fired_p ? thr : 0.0f) - (fired ? thr : 0.0f));
}

/* d spk / d mem: snnTorch's surrogates (snntorch/surrogate.py) at x = mem - thr, with
 * their parameter p (atan's alpha, the sigmoids' slope). */
inline float lif_surrogate(const float v, const float thr, const uint kind, const float p) {
    const float x = v - thr;
    if (kind == SNN_LIF_SURROGATE_ATAN) {
        const float u = (M_PI_F / 2.0f) * p * x;
        return p / 2.0f / (1.0f + u * u);
    }
    if (kind == SNN_LIF_SURROGATE_SIGMOID) {
        const float s = 1.0f / (1.0f + exp(-p * x)); /* p e / (e + 1)^2 = p s (1 - s), e = exp(-p x) */
        return p * s * (1.0f - s);
    }
    const float s = 1.0f + p * fabs(x);
    return 1.0f / (s * s);
}

inline float8 lif_surrogate8(const float8 v, const float thr, const uint kind, const float p) {
    const float8 x = v - thr;
    if (kind == SNN_LIF_SURROGATE_ATAN) {
        const float8 u = (M_PI_F / 2.0f) * p * x;
        return p / 2.0f / (1.0f + u * u);
    }
    if (kind == SNN_LIF_SURROGATE_SIGMOID) {
        const float8 s = 1.0f / (1.0f + exp(-p * x));
        return p * s * (1.0f - s);
    }
    const float8 s = 1.0f + p * fabs(x);
    return 1.0f / (s * s);
}
