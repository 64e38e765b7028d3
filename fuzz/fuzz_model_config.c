/* libFuzzer target for reading a model's configuration from a model file: the
 * safetensors reader, then the metadata and tensor shapes that
 * snn_model_config_from_safetensors() (src/model/config.c) turns into a config, then
 * its validation. Host only: building the model itself needs a device. */
#include "fuzz_util.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    snn_safetensors *st = NULL;
    snn_model_config cfg;
    if (snn_safetensors_read_memory(&st, "fuzz-model", data, size) != SNN_OK) return 0;
    if (snn_model_config_from_safetensors(st, &cfg) == SNN_OK) {
        FUZZ_CHECK(cfg.kind == SNN_MODEL_SIMPLE || cfg.kind == SNN_MODEL_VGG);
        FUZZ_CHECK(cfg.height >= 1 && cfg.height <= 16384 && cfg.width >= 1 && cfg.width <= 16384);
        FUZZ_CHECK(cfg.num_blocks >= 1 && cfg.num_blocks <= SNN_MAX_BLOCKS);
        for (int i = 0; i < cfg.num_blocks; i++) FUZZ_CHECK(cfg.channels[i] >= 1);
        if (snn_model_config_check(&cfg) != SNN_OK) FUZZ_CHECK(snn_last_error()[0] != '\0');
    } else {
        FUZZ_CHECK(snn_last_error()[0] != '\0');
    }
    snn_safetensors_free(st);
    return 0;
}
