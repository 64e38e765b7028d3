/* Data-parallel training from the command line: `mpirun -np N snncl train ...`.
 * Built with MPI (libsnncl_mpi), snncl notices that mpirun started it (the launcher's
 * environment) and joins MPI_COMM_WORLD, one rank per process; otherwise, or started
 * alone, it is rank 0 of 1 and nothing here does anything. */
#ifndef SNNCL_CLI_PARALLEL_H
#define SNNCL_CLI_PARALLEL_H

#include "snncl.h"

typedef struct cli_parallel {
    int rank, ranks;
    int local_rank; /* among the ranks on this machine: which of its GPUs to take */
    int mpi;        /* MPI_Init was called */
} cli_parallel;

/* Joins the launcher's ranks, if any, and sends the standard output of every rank but
 * 0 to /dev/null; 0, or an exit status after saying why (an snncl built without MPI
 * refuses to run as N separate copies under mpirun). */
int cli_parallel_init(cli_parallel *p, const char *cmd);
/* Leaves MPI. After a failure (status not 0) it waits a few seconds for the other
 * ranks: if they all come (they saw the failure too) each leaves normally, and the
 * caller exits with its status; if not (they are waiting for this rank inside a step)
 * this rank ends every rank's process (MPI_Abort). A collective call otherwise. */
void cli_parallel_finish(const cli_parallel *p, int status);
/* Whether any rank's flag is set (a collective call: every rank at the same point). */
int cli_parallel_any(const cli_parallel *p, int flag);
/* Sums v[0..n) over the ranks, in place (a collective call; alone, nothing to do). */
void cli_parallel_sum(const cli_parallel *p, double *v, int n);
/* Of a --device value, this rank's: a comma-separated list is taken by local rank
 * (round robin); anything else as it is. buf holds the result. */
const char *cli_parallel_device(const cli_parallel *p, const char *device, char *buf, size_t len);
/* One training step on this rank's share of a batch, averaged over the ranks
 * (snn_mpi_step); alone, snn_trainer_step. */
snn_status cli_parallel_step(const cli_parallel *p, snn_trainer *tr, const snn_batch *share, snn_step_stats *stats);
/* Makes the run take this rank's share of every batch and average over the ranks. */
snn_status cli_parallel_attach(const cli_parallel *p, snn_run *run);

#endif
