/* snn_mpi_step: gradients of the rank's share, one MPI_Allreduce of all of them in a
 * flat buffer (each weighted by the share's size), the mean written back and applied.
 * Only public calls of libsnncl: this is what a program with its own communication
 * would write. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snncl_mpi.h"

/* Whether every rank succeeded so far: if not, all learn the status and message of
 * the first rank that failed on its own (not only because another did, through
 * synchronized BatchNorm: `echo`), so that no rank waits in a collective the others
 * left. */
static snn_status agree(MPI_Comm comm, int rank, snn_status mine, int echo) {
    int in[2] = {mine == SNN_OK ? 0 : echo ? 1 : 2, rank}, out[2];
    /* the largest "failed" flag, the lowest rank holding it */
    if (MPI_Allreduce(in, out, 1, MPI_2INT, MPI_MAXLOC, comm) != MPI_SUCCESS)
        return snn_report_error(SNN_ERR_IO, "snn_mpi_step: MPI_Allreduce failed");
    if (!out[0]) return SNN_OK;
    char msg[1024];
    int status = (int)mine;
    if (rank == out[1]) snprintf(msg, sizeof msg, "rank %d: %s", rank, snn_last_error());
    if (MPI_Bcast(msg, sizeof msg, MPI_CHAR, out[1], comm) != MPI_SUCCESS ||
        MPI_Bcast(&status, 1, MPI_INT, out[1], comm) != MPI_SUCCESS)
        return snn_report_error(SNN_ERR_IO, "snn_mpi_step: MPI_Bcast failed");
    msg[sizeof msg - 1] = '\0';
    return snn_report_error((snn_status)status, msg);
}

/* Every trainable tensor's gradient between the trainer and `flat`, one after the
 * other in the trainer's order: read into flat, or (to_trainer) written from it. */
static snn_status move_grads(snn_trainer *tr, float *flat, int to_trainer) {
    snn_status st = SNN_OK;
    for (int i = 0, n = snn_trainer_num_grads(tr); st == SNN_OK && i < n; i++) {
        size_t count = 0;
        st = snn_trainer_grad_info(tr, i, NULL, NULL, NULL, &count);
        if (st == SNN_OK) st = to_trainer ? snn_trainer_write_grad(tr, i, flat) : snn_trainer_read_grad(tr, i, flat);
        flat += count;
    }
    return st;
}

/* Synchronized BatchNorm's sum over the ranks (snn_trainer_set_sum), for one step. */
typedef struct rank_sum {
    MPI_Comm comm;
    int echo; /* a sum showed another rank's failure */
} rank_sum;

static snn_status sum_over_ranks(void *user, double *values, size_t n) {
    rank_sum *r = user;
    const double mine = values[0];
    if (n > INT_MAX) return snn_report_error(SNN_ERR_INVALID_ARG, "snn_mpi_step: too many values to sum");
    if (MPI_Allreduce(MPI_IN_PLACE, values, (int)n, MPI_DOUBLE, MPI_SUM, r->comm) != MPI_SUCCESS)
        return snn_report_error(SNN_ERR_IO, "snn_mpi_step: MPI_Allreduce of the synchronized statistics failed");
    if (mine == 0.0 && values[0] > 0.0) r->echo = 1; /* another rank failed while this one had not */
    return SNN_OK;
}

snn_status snn_mpi_step(snn_trainer *tr, MPI_Comm comm, const snn_batch *batch, snn_step_stats *stats) {
    if (comm == MPI_COMM_NULL) return snn_report_error(SNN_ERR_INVALID_ARG, "snn_mpi_step: comm is MPI_COMM_NULL");
    int rank = 0;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS)
        return snn_report_error(SNN_ERR_INVALID_ARG, "snn_mpi_step: comm is not a communicator");
    /* local checks and gradients; any failure is every rank's */
    snn_status st = SNN_OK;
    if (!tr) st = snn_report_error(SNN_ERR_INVALID_ARG, "snn_mpi_step: tr is NULL");
    else if (!batch) st = snn_report_error(SNN_ERR_INVALID_ARG, "snn_mpi_step: batch is NULL");
    const int n_grads = snn_trainer_num_grads(tr);
    size_t total = 0;
    for (int i = 0; st == SNN_OK && i < n_grads; i++) {
        size_t count = 0;
        st = snn_trainer_grad_info(tr, i, NULL, NULL, NULL, &count);
        total += count;
    }
    float *flat = NULL;
    if (st == SNN_OK && !(flat = malloc((total ? total : 1) * sizeof *flat)))
        st = snn_report_error(SNN_ERR_OUT_OF_MEMORY, "snn_mpi_step: gradient buffer");
    snn_step_stats local;
    snn_step_stats_init(&local);
    if (st == SNN_OK && batch->size < 0)
        st = snn_report_error(SNN_ERR_INVALID_ARG, "snn_mpi_step: batch->size is negative");
    /* With synchronized BatchNorm the trainer sums over the ranks inside its step, so
     * every rank steps, an empty share too, and a failing one still makes the sums. */
    snn_train_config cfg;
    rank_sum sync = {comm, 0};
    const int synced = tr && snn_trainer_get_config(tr, &cfg) == SNN_OK && cfg.sync_batchnorm;
    if (synced && st == SNN_OK) st = snn_trainer_set_sum(tr, sum_over_ranks, &sync);
    const int empty = st == SNN_OK && batch->size == 0; /* a share at the end of an epoch */
    if (empty) memset(flat, 0, total * sizeof *flat);
    if (synced && st != SNN_OK) {
        /* the sums only, flagged as failed (a step on no batch fails), and this error kept */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", snn_last_error());
        if (snn_trainer_set_sum(tr, sum_over_ranks, &sync) == SNN_OK) snn_trainer_gradients(tr, NULL, NULL);
        snn_report_error(st, msg);
    } else if (st == SNN_OK && (!empty || synced)) {
        st = snn_trainer_gradients(tr, batch, &local);
    }
    if (synced) snn_trainer_set_sum(tr, NULL, NULL);
    if (st == SNN_OK && !empty) st = move_grads(tr, flat, 0);
    if ((st = agree(comm, rank, st, sync.echo)) != SNN_OK) {
        free(flat);
        return st;
    }

    /* sum over ranks of (share size x mean gradient over the share), then / global size */
    const float b = (float)batch->size;
    for (size_t k = 0; k < total; k++) flat[k] *= b;
    double sums[5] = {(double)batch->size, (double)batch->size * local.cross_entropy, (double)local.correct,
                      (double)batch->size * local.lyapunov, (double)batch->size * local.loss};
    if (MPI_Allreduce(MPI_IN_PLACE, flat, (int)total, MPI_FLOAT, MPI_SUM, comm) != MPI_SUCCESS ||
        MPI_Allreduce(MPI_IN_PLACE, sums, 5, MPI_DOUBLE, MPI_SUM, comm) != MPI_SUCCESS) {
        free(flat);
        return snn_report_error(SNN_ERR_IO, "snn_mpi_step: MPI_Allreduce failed");
    }
    const float global = (float)sums[0];
    double sq = 0;
    for (size_t k = 0; k < total; k++) {
        flat[k] /= global;
        sq += (double)flat[k] * flat[k];
    }
    st = move_grads(tr, flat, 1);
    free(flat);
    const float lr = snn_trainer_next_lr(tr);
    if (st == SNN_OK) st = snn_trainer_apply(tr);
    if ((st = agree(comm, rank, st, 0)) != SNN_OK) return st;
    if (stats) {
        snn_step_stats_init(stats);
        stats->cross_entropy = (float)(sums[1] / sums[0]);
        stats->correct = (int)sums[2];
        stats->lyapunov = (float)(sums[3] / sums[0]);
        stats->loss = (float)(sums[4] / sums[0]);
        stats->lr = lr;
        stats->grad_norm = (float)sqrt(sq);
    }
    return SNN_OK;
}
