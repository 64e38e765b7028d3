/* Reading a batch (input, labels, perturbation) from safetensors files for the
 * commands that take one (infer, grad). */
#ifndef SNNCL_CLI_BATCH_IO_H
#define SNNCL_CLI_BATCH_IO_H

#include "snncl.h"

typedef struct cli_batch {
    snn_safetensors *input_file, *labels_file, *perturb_file;
    float *x;               /* (B,C,H,W) or (B,T,C,H,W) */
    int batch, pre_encoded;
    int64_t *labels;        /* (B) */
    float **perturb;        /* one array per LIF layer, or NULL */
    int num_lifs;
} cli_batch;

void cli_batch_free(cli_batch *b);
/* Opens the device (NULL: $SNNCL_DEVICE or 0) and loads a model; on failure reports it
 * and returns SNN_ERR_* with *ctx and *model freed and NULL. */
snn_status cli_open_model(const char *device, const char *model_path, snn_context **ctx, snn_model **model);
/* The same with the model run over T steps instead of its file's (T <= 0: the file's). */
snn_status cli_open_model_T(const char *device, const char *model_path, int T, snn_context **ctx,
                            snn_model **model);
/* Tensor 'input' of path, checked against the model. Prints its own message for a
 * missing tensor or a wrong shape (and returns that status). */
snn_status cli_read_input(const char *cmd, cli_batch *b, const char *path, const snn_model_config *cfg);
/* Tensor 'labels', int64 (B,), each in [0, classes). Prints its own message. */
snn_status cli_read_labels(const char *cmd, cli_batch *b, const char *path, int num_classes);
/* perturb.0 .. perturb.L-1, each of the LIF layer's membrane shape. */
snn_status cli_read_perturb(cli_batch *b, const char *path, const snn_model *model);

#endif
