/* See parallel.h. With SNNCL_HAVE_MPI the steps go through snn_mpi_step (libsnncl_mpi). */
#include "parallel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if SNNCL_HAVE_MPI
#include "snncl_mpi.h"

/* For cli_parallel_finish's meeting alone, so that it can never be matched with a
 * collective call another rank is still in on MPI_COMM_WORLD. */
static MPI_Comm finish_comm = MPI_COMM_NULL;
/* How long a failing rank waits for the others at the end before ending them all. */
enum { FINISH_WAIT_MS = 5000 };
#endif

/* The launcher's world size and local rank, from its environment (Open MPI's, or a
 * PMI's as MPICH and Slurm set), or 0 and 0 when not launched by one. */
static int env_int(const char *const *names) {
    for (; *names; names++) {
        const char *v = getenv(*names);
        if (v && *v) return atoi(v);
    }
    return 0;
}
static const char *const world_size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", NULL};
#if SNNCL_HAVE_MPI /* read only where MPI starts */
static const char *const local_rank_vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK", NULL};
#endif

int cli_parallel_init(cli_parallel *p, const char *cmd) {
    memset(p, 0, sizeof *p);
    p->ranks = 1;
    const int world = env_int(world_size_vars);
    if (world <= 1) return 0;
#if SNNCL_HAVE_MPI
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS) {
        fprintf(stderr, "snncl %s: MPI_Init failed\n", cmd);
        return 1;
    }
    p->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &p->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &p->ranks);
    MPI_Comm_dup(MPI_COMM_WORLD, &finish_comm);
    p->local_rank = env_int(local_rank_vars);
    if (p->rank != 0 && !freopen("/dev/null", "w", stdout)) { /* rank 0 alone prints */
        fprintf(stderr, "snncl %s: rank %d: cannot silence its output\n", cmd, p->rank);
        cli_parallel_finish(p, 1);
        return 1;
    }
    return 0;
#else
    fprintf(stderr,
            "snncl %s: started as one of %d processes, but this snncl was built without MPI (libsnncl_mpi): each would "
            "train alone and write the same files; rebuild with Open MPI installed (tools/setup-debian.sh)\n",
            cmd, world);
    return 2;
#endif
}

#if SNNCL_HAVE_MPI
/* Whether every rank reached cli_parallel_finish within FINISH_WAIT_MS. */
static int all_ranks_finish(void) {
    MPI_Request req;
    if (MPI_Ibarrier(finish_comm, &req) != MPI_SUCCESS) return 0;
    const struct timespec tick = {0, 10 * 1000 * 1000};
    for (int waited = 0; waited <= FINISH_WAIT_MS; waited += 10) {
        int done = 0;
        if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return 0;
        if (done) return 1;
        nanosleep(&tick, NULL);
    }
    return 0;
}
#endif

void cli_parallel_finish(const cli_parallel *p, int status) {
#if SNNCL_HAVE_MPI
    if (!p->mpi) return;
    /* A failure every rank saw (a usage error, one agreed on during training) ends each
     * of them here: all leave MPI normally and mpirun passes the exit status on. Only a
     * rank whose peers never come, still waiting for it inside a step, ends them all,
     * and only one rank at a time: Open MPI 4.1's mpirun can crash when several call
     * MPI_Abort at once. */
    if (status != 0 && p->ranks > 1 && !all_ranks_finish()) {
        fprintf(stderr, "snncl: rank %d of %d ends the run (exit status %d)\n", p->rank, p->ranks, status);
        fflush(NULL);
        MPI_Abort(MPI_COMM_WORLD, status);
    }
    /* a rank that succeeded meets a failing one there, which then leaves normally too */
    if (status == 0 && p->ranks > 1) MPI_Barrier(finish_comm);
    MPI_Comm_free(&finish_comm);
    MPI_Finalize();
#else
    (void)p;
    (void)status;
#endif
}

int cli_parallel_any(const cli_parallel *p, int flag) {
#if SNNCL_HAVE_MPI
    if (p && p->ranks > 1) {
        int any = 0;
        MPI_Allreduce(&flag, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        return any;
    }
#else
    (void)p;
#endif
    return flag;
}

void cli_parallel_sum(const cli_parallel *p, double *v, int n) {
#if SNNCL_HAVE_MPI
    if (p && p->ranks > 1) MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#else
    (void)p;
    (void)v;
    (void)n;
#endif
}

const char *cli_parallel_device(const cli_parallel *p, const char *device, char *buf, size_t len) {
    if (!device || !strchr(device, ',')) return device;
    int count = 1;
    for (const char *c = device; *c; c++) count += *c == ',';
    int pick = p->local_rank % count;
    const char *start = device;
    while (pick-- > 0) start = strchr(start, ',') + 1;
    const char *end = strchr(start, ',');
    const size_t n = end ? (size_t)(end - start) : strlen(start);
    snprintf(buf, len, "%.*s", (int)(n < len ? n : len - 1), start);
    return buf;
}

#if SNNCL_HAVE_MPI
static snn_status mpi_step(void *user, snn_trainer *tr, const snn_batch *share, snn_step_stats *stats) {
    (void)user;
    return snn_mpi_step(tr, MPI_COMM_WORLD, share, stats);
}
#endif

snn_status cli_parallel_step(const cli_parallel *p, snn_trainer *tr, const snn_batch *share, snn_step_stats *stats) {
#if SNNCL_HAVE_MPI
    if (p && p->ranks > 1) return snn_mpi_step(tr, MPI_COMM_WORLD, share, stats);
#else
    (void)p;
#endif
    return snn_trainer_step(tr, share, stats);
}

snn_status cli_parallel_attach(const cli_parallel *p, snn_run *run) {
    if (p->ranks == 1) return SNN_OK;
#if SNNCL_HAVE_MPI
    return snn_run_set_shard(run, p->rank, p->ranks, mpi_step, NULL);
#else
    (void)run;
    return SNN_ERR_UNSUPPORTED;
#endif
}
