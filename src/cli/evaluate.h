/* Accuracy of a model over a dataset (eval mode), shared by train and eval. */
#ifndef SNNCL_CLI_EVALUATE_H
#define SNNCL_CLI_EVALUATE_H

#include <signal.h>

#include "parallel.h"
#include "snncl.h"

typedef struct cli_eval_result {
    size_t images, correct;
    double accuracy;
    double lyapunov; /* mean estimate over all images, when requested */
    double seconds;
    int interrupted; /* *stop became non-zero: the figures cover only part of ds */
} cli_eval_result;

/* Runs every image of ds in order, batch at a time. noise > 0 adds noise * N(0, 1) to
 * every pixel (after the dataset's normalization, before encoding; not clipped), drawn
 * from `seed` and the image's index, so runs repeat. show_progress: draw a bar. stop
 * (NULL: none) is looked at between batches, so a signal handler can end the run early.
 * par (NULL: alone): the ranks share the batches round robin, each batch exactly as one
 * process runs it, and every rank gets the totals (a collective call). */
snn_status cli_evaluate(snn_model *model, const snn_dataset *ds, int batch, uint64_t seed, int lyapunov,
                        float lyap_eps, float noise, int show_progress, volatile sig_atomic_t *stop,
                        const cli_parallel *par, cli_eval_result *out);

#endif
