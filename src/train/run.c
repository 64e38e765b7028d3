/* Training runs (snn_run): a trainer stepping through a dataset epoch by epoch, with
 * the position, the per-step seeds and the checkpoint format that make a run
 * resumable bit for bit. `snncl train` is a loop around this. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

struct snn_run {
    snn_trainer *tr;
    const snn_dataset *ds;
    int batch;
    uint64_t seed;
    snn_run_position pos;
    size_t images, image_floats;
    uint32_t *order; /* the epoch order_epoch's shuffle (order_epoch < 0: none yet) */
    int64_t order_epoch;
    float *x;
    int64_t *labels;
    /* snn_run_set_shard: this process's share of every batch, and how it steps */
    int rank, ranks;
    snn_run_step_fn step;
    void *user;
};

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t snn_run_step_seed(uint64_t seed, int64_t global_step) {
    return splitmix64(seed ^ splitmix64((uint64_t)global_step));
}

int snn_run_steps_per_epoch(size_t images, int batch) {
    if (batch < 1 || images < 1) return 0;
    const size_t b = (size_t)batch;
    /* Every image once; the last batch may be smaller, even one image (BatchNorm then
     * normalizes over its image alone, as PyTorch's DataLoader and BatchNorm do). */
    const size_t steps = (images + b - 1) / b;
    return steps > (size_t)INT32_MAX ? INT32_MAX : (int)steps;
}

snn_status snn_run_create(snn_run **out, snn_trainer *tr, const snn_dataset *train, int batch, uint64_t seed) {
    SNN_REQUIRE_ARG("snn_run_create", out);
    *out = NULL;
    SNN_REQUIRE_ARG("snn_run_create", tr);
    SNN_REQUIRE_ARG("snn_run_create", train);
    if (batch < 1) return snn_fail(SNN_ERR_INVALID_ARG, "snn_run_create: batch must be >= 1, got %d", batch);
    const size_t n = snn_dataset_size(train);
    if (n < 1) return snn_fail(SNN_ERR_INVALID_ARG, "snn_run_create: the dataset is empty");
    int C, H, W;
    SNN_TRY(snn_dataset_shape(train, &C, &H, &W));
    snn_model_config cfg = tr->model->cfg;
    if (cfg.in_channels != C || cfg.height != H || cfg.width != W)
        return snn_fail(SNN_ERR_SHAPE, "snn_run_create: the dataset's images are %dx%dx%d, the model takes %dx%dx%d", H,
                        W, C, cfg.height, cfg.width, cfg.in_channels);
    if (snn_dataset_num_classes(train) > cfg.num_classes)
        return snn_fail(SNN_ERR_SHAPE, "snn_run_create: the dataset has %d classes, the model %d",
                        snn_dataset_num_classes(train), cfg.num_classes);
    snn_run *r = calloc(1, sizeof *r);
    if (!r) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "snn_run_create");
    r->tr = tr;
    r->ds = train;
    r->batch = batch;
    r->seed = seed;
    r->images = n;
    r->image_floats = (size_t)C * (size_t)H * (size_t)W;
    r->order_epoch = -1;
    r->ranks = 1;
    r->order = malloc(n * sizeof *r->order);
    r->x = malloc((size_t)batch * r->image_floats * sizeof *r->x);
    r->labels = malloc((size_t)batch * sizeof *r->labels);
    if (!r->order || !r->x || !r->labels) {
        snn_run_free(r);
        return snn_fail(SNN_ERR_OUT_OF_MEMORY, "snn_run_create: batch buffers (%d images) and an order of %zu", batch,
                        n);
    }
    *out = r;
    return SNN_OK;
}

void snn_run_free(snn_run *run) {
    if (!run) return;
    free(run->order);
    free(run->x);
    free(run->labels);
    free(run);
}

snn_status snn_run_get_position(const snn_run *run, snn_run_position *pos) {
    SNN_REQUIRE_ARG("snn_run_get_position", run);
    SNN_REQUIRE_ARG("snn_run_get_position", pos);
    *pos = run->pos;
    return SNN_OK;
}

snn_status snn_run_step(snn_run *run, snn_step_stats *stats) {
    SNN_REQUIRE_ARG("snn_run_step", run);
    snn_run_position *p = &run->pos;
    const int steps = snn_run_steps_per_epoch(run->images, run->batch);
    if (p->step >= steps)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_run_step: epoch %d is complete (%d steps); call snn_run_next_epoch",
                        p->epoch, steps);
    if (run->order_epoch != p->epoch) {
        SNN_TRY(snn_dataset_order(run->ds, run->seed, (uint64_t)p->epoch, run->order));
        run->order_epoch = p->epoch;
    }
    const size_t B = (size_t)run->batch, first = (size_t)p->step * B;
    const size_t b = run->images - first < B ? run->images - first : B;
    /* this process's share [lo, hi) of the batch (all of it alone) */
    const size_t lo = b * (size_t)run->rank / (size_t)run->ranks, hi = b * (size_t)(run->rank + 1) / (size_t)run->ranks;
    if (hi > lo) SNN_TRY(snn_dataset_gather(run->ds, run->order + first + lo, hi - lo, run->x, run->labels));
    /* one seed for every rank: a share draws what its samples draw in the whole batch */
    const snn_batch batch = {.input = run->x, .labels = run->labels, .size = (int)(hi - lo),
                             .seed = snn_run_step_seed(run->seed, p->global_step), .first = (int64_t)lo};
    snn_step_stats s;
    if (run->step)
        SNN_TRY(run->step(run->user, run->tr, &batch, &s));
    else
        SNN_TRY(snn_trainer_step(run->tr, &batch, &s));
    p->step++;
    p->global_step++;
    p->loss += (double)s.loss * (double)b;
    p->cross_entropy += (double)s.cross_entropy * (double)b;
    p->lyapunov += (double)s.lyapunov * (double)b;
    p->correct += s.correct;
    p->seen += (int64_t)b;
    p->steps++;
    if (stats) *stats = s;
    return SNN_OK;
}

snn_status snn_run_set_shard(snn_run *run, int rank, int ranks, snn_run_step_fn step, void *user) {
    SNN_REQUIRE_ARG("snn_run_set_shard", run);
    if (ranks < 1 || rank < 0 || rank >= ranks)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_run_set_shard: rank %d of %d processes is out of range", rank, ranks);
    if (ranks > 1 && !step)
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "snn_run_set_shard: step is NULL: %d processes need a step that averages their shares", ranks);
    if (ranks > run->batch)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_run_set_shard: %d processes for batches of %d leave some without images",
                        ranks, run->batch);
    run->rank = rank;
    run->ranks = ranks;
    run->step = step;
    run->user = user;
    return SNN_OK;
}

snn_status snn_run_next_epoch(snn_run *run) {
    SNN_REQUIRE_ARG("snn_run_next_epoch", run);
    const int steps = snn_run_steps_per_epoch(run->images, run->batch);
    if (run->pos.step < steps)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_run_next_epoch: epoch %d has %d of its %d steps to go", run->pos.epoch,
                        steps - run->pos.step, steps);
    const int64_t global = run->pos.global_step;
    const int epoch = run->pos.epoch + 1;
    memset(&run->pos, 0, sizeof run->pos);
    run->pos.epoch = epoch;
    run->pos.global_step = global;
    return SNN_OK;
}

/* ---------------------------------------------------------------- checkpoints -- */

static snn_status meta_num(snn_safetensors *st, const char *key, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v);
    return snn_safetensors_meta_set(st, key, buf);
}

static int meta_double(const snn_safetensors *st, const char *key, double *out) {
    const char *v = snn_safetensors_meta_get(st, key);
    if (!v) return 0;
    char *end;
    *out = strtod(v, &end);
    return *v && !*end && isfinite(*out);
}

/* The name of a tensor holding inf or nan, or NULL. */
static const char *non_finite_tensor(const snn_safetensors *st) {
    for (size_t i = 0; i < snn_safetensors_count(st); i++) {
        const snn_tensor *t = snn_safetensors_at(st, i);
        if (t->dtype == SNN_F32) {
            const float *v = t->data;
            for (size_t k = 0; k < t->nbytes / sizeof *v; k++)
                if (!isfinite(v[k])) return t->name;
        } else if (t->dtype == SNN_F64) {
            const double *v = t->data;
            for (size_t k = 0; k < t->nbytes / sizeof *v; k++)
                if (!isfinite(v[k])) return t->name;
        }
    }
    return NULL;
}

snn_status snn_run_checkpoint(snn_run *run, snn_safetensors **out) {
    SNN_REQUIRE_ARG("snn_run_checkpoint", out);
    *out = NULL;
    SNN_REQUIRE_ARG("snn_run_checkpoint", run);
    snn_safetensors *st;
    SNN_TRY(snn_model_to_safetensors(run->tr->model, &st));
    const snn_run_position *p = &run->pos;
    snn_status s = snn_trainer_save_state(run->tr, st);
    if (s == SNN_OK) s = meta_num(st, "train.epoch", p->epoch);
    if (s == SNN_OK) s = meta_num(st, "train.step", p->step);
    if (s == SNN_OK) s = meta_num(st, "train.global_step", (double)p->global_step);
    if (s == SNN_OK) s = meta_num(st, "train.sum_loss", p->loss);
    if (s == SNN_OK) s = meta_num(st, "train.sum_ce", p->cross_entropy);
    if (s == SNN_OK) s = meta_num(st, "train.sum_lyap", p->lyapunov);
    if (s == SNN_OK) s = meta_num(st, "train.correct", (double)p->correct);
    if (s == SNN_OK) s = meta_num(st, "train.seen", (double)p->seen);
    if (s == SNN_OK) s = meta_num(st, "train.steps", (double)p->steps);
    if (s == SNN_OK) s = meta_num(st, "train.batch", run->batch);
    if (s == SNN_OK) {
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)run->seed);
        s = snn_safetensors_meta_set(st, "train.seed", seed);
    }
    const char *bad = s == SNN_OK ? non_finite_tensor(st) : NULL;
    if (bad) s = snn_fail(SNN_ERR_NUMERIC, "'%s' became inf or nan", bad);
    if (s != SNN_OK) {
        snn_safetensors_free(st);
        return s;
    }
    *out = st;
    return SNN_OK;
}

snn_status snn_run_resume(snn_run *run, const snn_safetensors *ckpt) {
    SNN_REQUIRE_ARG("snn_run_resume", run);
    SNN_REQUIRE_ARG("snn_run_resume", ckpt);
    double e, s, g, sl, sc, sy, c, n, k, v;
    if (!meta_double(ckpt, "train.epoch", &e) || !meta_double(ckpt, "train.step", &s) ||
        !meta_double(ckpt, "train.global_step", &g) || !meta_double(ckpt, "train.sum_loss", &sl) ||
        !meta_double(ckpt, "train.sum_ce", &sc) || !meta_double(ckpt, "train.sum_lyap", &sy) ||
        !meta_double(ckpt, "train.correct", &c) || !meta_double(ckpt, "train.seen", &n) ||
        !meta_double(ckpt, "train.steps", &k) || e < 0 || s < 0 || g < 0 || e > INT32_MAX || s > INT32_MAX)
        return snn_fail(SNN_ERR_FORMAT, "snn_run_resume: not a training checkpoint (train.* metadata missing or invalid)");
    /* Checkpoints from before these were stored resume under the run's own. */
    if (meta_double(ckpt, "train.batch", &v) && v != run->batch)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_run_resume: the checkpoint was made with batch %g, this run has %d", v,
                        run->batch);
    const char *seed = snn_safetensors_meta_get(ckpt, "train.seed");
    if (seed && strtoull(seed, NULL, 10) != run->seed)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_run_resume: the checkpoint was made with seed %s, this run has %llu",
                        seed, (unsigned long long)run->seed);
    const int steps = snn_run_steps_per_epoch(run->images, run->batch);
    if (s > steps)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_run_resume: the checkpoint is at step %g of an epoch of %d steps",
                        s, steps);
    SNN_TRY(snn_trainer_load_state(run->tr, ckpt));
    run->pos = (snn_run_position){(int)e, (int)s, (int64_t)g, sl, sc, sy, (int64_t)c, (int64_t)n, (int64_t)k};
    return SNN_OK;
}
