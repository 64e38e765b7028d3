/* Accuracy of a model over a dataset (eval mode), shared by train and eval. */
#ifndef SNNCL_CLI_EVALUATE_H
#define SNNCL_CLI_EVALUATE_H

#include "snncl.h"

typedef struct cli_eval_result {
    size_t images, correct;
    double accuracy;
    double lyapunov; /* mean estimate over all images, when requested */
    double seconds;
} cli_eval_result;

/* Runs every image of ds in order, batch at a time. show_progress: draw a bar. */
snn_status cli_evaluate(snn_model *model, const snn_dataset *ds, int batch, uint64_t seed, int lyapunov,
                        float lyap_eps, int show_progress, cli_eval_result *out);

#endif
