/**
 * @file snncl_mpi.h
 * @brief Data-parallel training over MPI ranks (libsnncl_mpi; libsnncl itself has no MPI).
 *
 * Every rank of a communicator holds the same model on its own device and trains it
 * on its own share of each global batch: snn_mpi_step() computes the rank's
 * gradients, averages them over the ranks with one MPI_Allreduce (weighted by each
 * rank's batch size, so the average is the global batch's mean gradient), and applies
 * the same update everywhere, so the models stay equal. It is built only from public
 * calls (snn_trainer_gradients(), snn_trainer_read_grad(), snn_trainer_write_grad(),
 * snn_trainer_apply()), which a program with its own communication can use the same way.
 *
 * **Batch statistics.** BatchNorm normalizes each rank's share with that share's
 * statistics, and each rank moves its own running estimates, as PyTorch's
 * DistributedDataParallel does; the Lyapunov regularizer squares each rank's batch mean
 * of the estimate. With shares numbered by snn_batch::first and one seed everywhere
 * (the random draws are then the global batch's), N ranks equal one process up to
 * those statistics. With snn_train_config::sync_batchnorm set, snn_mpi_step() sums
 * them over `comm` inside the step (snn_trainer_set_sum() with an MPI_Allreduce): every
 * rank normalizes with the global batch's statistics, moves the same running
 * estimates and uses the global mean estimate, and N ranks equal one process up to
 * rounding.
 *
 * Link with `-lsnncl_mpi -lsnncl` and the MPI library (mpicc does the latter).
 */
#ifndef SNNCL_MPI_H
#define SNNCL_MPI_H

#include <mpi.h>

#include "snncl.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One data-parallel training step: every rank of `comm` calls it at the same step
 *  with its own share `batch` (shares may differ in size; an empty one, size 0,
 *  contributes nothing). It fits snn_run_set_shard() (snncl.h) through a wrapper
 *  that passes the communicator. `stats` (may be NULL)
 *  receives the global batch's figures, the same on every rank: cross-entropy,
 *  estimate and loss averaged over all samples, correct summed, the averaged
 *  gradient's norm, the learning rate used. When any rank fails before the update
 *  (a bad batch, a device error), every rank returns that rank's status, with
 *  snn_last_error() saying "rank R: ..." (R the first rank that failed on its own, not
 *  because another did), and no rank applies an update. */
SNN_API snn_status snn_mpi_step(snn_trainer *tr, MPI_Comm comm, const snn_batch *batch, snn_step_stats *stats);

#ifdef __cplusplus
}
#endif

#endif
