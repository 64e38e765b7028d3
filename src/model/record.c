/* Spike records: which neurons of every LIF layer fired at every step, for one sample
 * of an eval-mode forward pass (for raster plots and inspection). The forward pass is
 * snn_model_forward's own (forward.c), with a tap that copies the sample's spikes out
 * after each LIF layer of each chunk of steps. */
#include <stdlib.h>

#include "model.h"

snn_status snn_model_record_spikes(snn_model *m, const float *input, int batch, int sample,
                                   const snn_forward_params *params, uint8_t *const *spikes, float *logits) {
    if (!m) return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_record_spikes: model is NULL");
    SNN_REQUIRE_ARG("snn_model_record_spikes", input);
    SNN_REQUIRE_ARG("snn_model_record_spikes", spikes);
    if (batch < 1)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_record_spikes: batch must be >= 1, got %d", batch);
    if (sample < 0 || sample >= batch)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_record_spikes: sample %d is outside the batch [0, %d)",
                        sample, batch);
    for (int l = 0; l < m->num_layers; l++)
        if (!spikes[l])
            return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_record_spikes: spikes[%d] (LIF layer %d) is NULL", l, l);
    snn_forward_params fp;
    if (params)
        fp = *params;
    else
        snn_forward_params_default(&fp);
    /* The estimate's perturbed trajectory never changes the reference spikes. */
    fp.lyapunov = 0;
    fp.perturb = NULL;

    const size_t K = (size_t)m->cfg.num_classes;
    float *scratch = NULL;
    if (!logits) {
        scratch = malloc((size_t)batch * K * sizeof(float));
        if (!scratch) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "snn_model_record_spikes: logits (%d x %zu)", batch, K);
        logits = scratch;
    }
    const snn_spike_tap tap = {sample, spikes};
    snn_status st = snn_model_forward_run(m, input, batch, &fp, logits, NULL, NULL, &tap);
    free(scratch);
    return st;
}
