/* snncl train: trains a model on a dataset, with progress, per-epoch metrics,
 * atomic checkpoints and exact resumption. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "evaluate.h"
#include "parallel.h"
#include "plot.h"
#include "progress.h"
#include "snncl.h"

/* Every option that shapes the run; a checkpoint stores them all as metadata
 * "cli.<name>" so --resume continues with the same settings. */
typedef struct train_opts {
    const char *model, *net, *init, *init_scheme, *channels, *encoding, *data, *data_dir, *out, *checkpoint, *resume, *device, *json, *plot;
    const char *lyap_target_text; /* a number, or "floor", "floor+D", "floor-D" (lyap_target resolves it) */
    const char *optimizer, *schedule;
    int T, epochs, batch, eval_batch, limit, test_limit, checkpoint_every, max_steps, no_eval, quiet, sync_bn;
    float beta, threshold, gain, dropout, lyap_weight, lyap_target, lyap_eps;
    float lr, beta1, beta2, adam_eps, momentum, weight_decay, gamma, clip;
    int step_size, lyap_warmup;
    uint64_t seed;
} train_opts;

typedef struct train_run {
    train_opts o;
    cli_option *opts;
    size_t nopts;
    snn_context *ctx;
    snn_model *model;
    snn_trainer *tr;
    snn_run *run; /* the position (epoch, step, sums), the batches and their seeds */
    double lyap_floor; /* the estimate's floor for this model and --lyap-eps */
    snn_dataset *train, *test;
    snn_safetensors *resume;
    char ckpt_path[4096];
    const char *last_ckpt; /* the newest checkpoint on disk for this run (NULL: none yet) */
    cli_parallel par;      /* under mpirun: this rank of the run's processes */
    int writer;            /* this process prints and writes the files (rank 0) */
    /* --plot: the figures of every epoch so far (hist[e] is epoch e + 1), and a note
     * for the figure when a resumed run could not recover earlier epochs. */
    plot_epoch *hist;
    int hist_len;
    char plot_note[256];
} train_run;

static int steps_per_epoch(const train_run *r) {
    return snn_run_steps_per_epoch(snn_dataset_size(r->train), r->o.batch);
}

/* The run's position (see snn_run_position). */
static snn_run_position where(const train_run *r) {
    snn_run_position p;
    memset(&p, 0, sizeof p);
    if (r->run) snn_run_get_position(r->run, &p);
    return p;
}

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) {
    stop_signal = sig;
    /* A second signal takes the default action, so the user can force-quit a slow save;
     * the atomic write keeps the previous checkpoint whole even then. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

static void catch_stop_signals(void) {
    const int sigs[] = {SIGINT, SIGTERM};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa;
        /* A signal ignored by whoever started us (nohup, a background job) stays ignored. */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART; /* blocking calls (ours, PoCL's) carry on; the loops poll the flag */
        sigaction(sigs[i], &sa, NULL);
    }
    /* Past a file size limit (ulimit -f) a write then fails with EFBIG, reported like any
     * other failed write, instead of SIGXFSZ killing the run. */
    signal(SIGXFSZ, SIG_IGN);
}

/* Fails early, before any training, when PATH's directory takes no new files (missing,
 * read-only, no permission), instead of at the first checkpoint. */
static int check_writable(const char *path) {
    snn_file *f = NULL;
    if (snn_file_begin(&f, path) != SNN_OK) {
        fprintf(stderr, "snncl train: cannot write %s: %s\n", path, snn_last_error());
        return 1;
    }
    snn_file_abort(f);
    return 0;
}

/* What is on disk to go back to, for the messages of a run that stops on a failure. */
static void fallback_note(const train_run *r, char *buf, size_t len) {
    if (r->last_ckpt)
        snprintf(buf, len, "the last checkpoint, %s, is intact; resume with --resume %s", r->last_ckpt, r->last_ckpt);
    else
        snprintf(buf, len, "no checkpoint had been written yet");
}

/* The first floating-point tensor of st holding an inf or nan, or NULL. */
/* The run's checkpoint (snn_run_checkpoint) with every option as "cli.<name>". */
static snn_status build_checkpoint(train_run *r, snn_safetensors **out) {
    snn_safetensors *st;
    snn_status s = snn_run_checkpoint(r->run, &st);
    if (s != SNN_OK) return s;
    char key[96], val[4096];
    for (size_t i = 0; i < r->nopts && s == SNN_OK; i++) {
        snprintf(key, sizeof key, "cli.%s", r->opts[i].name);
        cli_format(&r->opts[i], val, sizeof val);
        s = snn_safetensors_meta_set(st, key, val);
    }
    if (s != SNN_OK) {
        snn_safetensors_free(st);
        return s;
    }
    *out = st;
    return SNN_OK;
}

/* Writes the checkpoint of the current position; returns 0, or 1 after saying why not.
 * The write is atomic (temporary file, fsync, rename), so on any failure the previous
 * checkpoint stays as it was. A model that has gone non-finite is never written
 * (snn_run_checkpoint refuses it): the step's loss can still be finite when its
 * update overflows the parameters. */
static int save_checkpoint(train_run *r) {
    if (!r->writer) return 0; /* rank 0's to write */
    snn_safetensors *st = NULL;
    char note[8400];
    const snn_run_position p = where(r);
    snn_status s = build_checkpoint(r, &st);
    if (s == SNN_ERR_NUMERIC) {
        fallback_note(r, note, sizeof note);
        fprintf(stderr,
                "snncl train: %s at epoch %d step %d; stopping without writing a checkpoint (%s); try a smaller "
                "--lr or --clip.\n",
                snn_last_error(), p.epoch + 1, p.step, note);
        return 1;
    }
    if (s != SNN_OK) {
        cli_report("preparing the checkpoint", s);
        return 1;
    }
    s = snn_safetensors_write(st, r->ckpt_path);
    snn_safetensors_free(st);
    if (s != SNN_OK) {
        cli_report("writing the checkpoint", s);
        fallback_note(r, note, sizeof note);
        fprintf(stderr, "snncl train: stopping at epoch %d step %d; %s.\n", p.epoch + 1, p.step, note);
        return 1;
    }
    r->last_ckpt = r->ckpt_path;
    return 0;
}

/* After SIGINT or SIGTERM: checkpoints the current position and returns 128 + the
 * signal's number, the shell's convention for a run ended by that signal. */
static int stop_on_signal(train_run *r, const char *during) {
    const int sig = stop_signal ? (int)stop_signal : SIGTERM; /* another rank's signal */
    const char *name = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
    fflush(stdout);
    fprintf(stderr, "snncl: %s received; saving a checkpoint (a second signal quits at once)\n", name);
    if (save_checkpoint(r) != 0) return 1;
    const snn_run_position p = where(r);
    fprintf(stderr, "snncl: interrupted by %s at epoch %d step %d%s; checkpoint saved to %s; resume with --resume %s\n",
            name, p.epoch + 1, p.step, during, r->ckpt_path, r->ckpt_path);
    return 128 + sig;
}

/* Restores the options not given on the command line from a checkpoint (the position
 * and the optimizer state come back in make_trainer, through snn_run_resume). */
static int restore_from_checkpoint(train_run *r) {
    snn_status st = snn_safetensors_read(&r->resume, r->o.resume);
    if (st != SNN_OK) return cli_report("reading the checkpoint", st);
    char err[512], key[96];
    for (size_t i = 0; i < r->nopts; i++) {
        cli_option *o = &r->opts[i];
        if (o->seen || !strcmp(o->name, "resume") || !strcmp(o->name, "device") || !strcmp(o->name, "quiet") ||
            !strcmp(o->name, "max-steps"))
            continue;
        snprintf(key, sizeof key, "cli.%s", o->name);
        const char *v = snn_safetensors_meta_get(r->resume, key);
        if (!v) continue;
        if (o->kind == CLI_STRING && !*v) {
            *(const char **)o->dest = NULL;
            continue;
        }
        if (cli_set(o, v, err, sizeof err) != CLI_OK) {
            fprintf(stderr, "snncl train: checkpoint %s: %s\n", r->o.resume, err);
            return 1;
        }
    }
    return 0;
}

static int parse_channels(const char *text, snn_model_config *cfg) {
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 4096 || n == SNN_MAX_BLOCKS || (*end && *end != ',')) return -1;
        cfg->channels[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (n == 0) return -1;
    cfg->num_blocks = n;
    return 0;
}

/* --net: the description states the architecture, so the options that would state it
 * again are refused rather than silently ignored. */
static int make_network_model(train_run *r) {
    static const char *const architecture[] = {"model", "channels", "T", "beta", "threshold", "encoding",
                                               "encoding-gain", "dropout"};
    for (size_t i = 0; i < r->nopts; i++)
        for (size_t k = 0; k < sizeof architecture / sizeof architecture[0]; k++)
            if (r->opts[i].seen && strcmp(r->opts[i].name, architecture[k]) == 0) {
                fprintf(stderr, "snncl train: --%s does not apply with --net: the description states it\n",
                        architecture[k]);
                return 2;
            }
    snn_network *net;
    snn_status st = snn_network_load(&net, r->o.net);
    if (st != SNN_OK) return cli_report("reading --net", st);
    st = snn_model_create_network(&r->model, r->ctx, net, r->o.seed);
    snn_network_free(net);
    if (st != SNN_OK) return cli_report("creating the model", st);
    return 0;
}

static int make_preset_model(train_run *r);

static int make_model(train_run *r) {
    snn_status st;
    if (r->resume) {
        if ((st = snn_model_from_safetensors(&r->model, r->ctx, r->resume)) != SNN_OK)
            return cli_report("loading the checkpoint's model", st);
        return 0;
    }
    if (r->o.init) {
        if ((st = snn_model_load(&r->model, r->ctx, r->o.init)) != SNN_OK) return cli_report("loading --init", st);
        return 0;
    }
    snn_init_scheme scheme;
    int rc = cli_init_scheme("train", r->o.init_scheme, &scheme);
    if (rc == 0) rc = r->o.net ? make_network_model(r) : make_preset_model(r);
    if (rc == 0 && scheme != SNN_INIT_SEED && (st = snn_model_init(r->model, scheme, r->o.seed)) != SNN_OK)
        return cli_report("initializing the model", st);
    return rc;
}

/* --model simple|vgg with the architecture options. */
static int make_preset_model(train_run *r) {
    snn_status st;
    snn_model_config cfg;
    if (snn_model_config_default(&cfg, r->o.model) != SNN_OK) {
        fprintf(stderr, "snncl train: --model must be simple or vgg, got '%s'\n", r->o.model);
        return 2;
    }
    int C, H, W;
    snn_dataset_shape(r->train, &C, &H, &W);
    cfg.in_channels = C;
    cfg.height = H;
    cfg.width = W;
    cfg.num_classes = snn_dataset_num_classes(r->train);
    if (r->o.channels) {
        if (cfg.kind != SNN_MODEL_SIMPLE) {
            fprintf(stderr, "snncl train: --channels applies to the simple model only\n");
            return 2;
        }
        if (parse_channels(r->o.channels, &cfg) != 0) {
            fprintf(stderr, "snncl train: --channels must be 1 to %d positive numbers separated by commas, got '%s'\n",
                    SNN_MAX_BLOCKS, r->o.channels);
            return 2;
        }
    }
    cfg.T = r->o.T;
    cfg.beta = r->o.beta;
    cfg.threshold = r->o.threshold;
    cfg.encoding_gain = r->o.gain;
    if (r->o.dropout >= 0.0f) cfg.dropout = r->o.dropout;
    if (snn_encoding_parse(r->o.encoding, &cfg.encoding) != SNN_OK || cfg.encoding == SNN_ENCODING_NONE) {
        fprintf(stderr, "snncl train: --encoding must be rate or direct, got '%s'\n", r->o.encoding);
        return 2;
    }
    if ((st = snn_model_create(&r->model, r->ctx, &cfg, r->o.seed)) != SNN_OK) {
        if (st == SNN_ERR_INVALID_ARG) {
            fprintf(stderr, "snncl train: %s\n", snn_last_error());
            return 2;
        }
        return cli_report("creating the model", st);
    }
    return 0;
}

/* --lyap-target: a number, or relative to the estimate's floor for this model and
 * --lyap-eps ("floor", "floor+0.1", "floor-0.05"), into r->o.lyap_target. */
static int resolve_lyap_target(train_run *r) {
    /* NULL: a checkpoint that stored the option empty */
    const char *text = r->o.lyap_target_text ? r->o.lyap_target_text : "";
    const int relative = strncmp(text, "floor", 5) == 0;
    const char *num = relative ? text + 5 : text;
    char *end = (char *)num;
    const double offset = *num ? strtod(num, &end) : 0.0;
    /* a number; or floor, optionally followed by a signed number */
    const int well_formed = relative ? !*num || ((*num == '+' || *num == '-') && end != num && !*end)
                                     : *num && end != num && !*end;
    if (!well_formed || !isfinite(offset)) {
        fprintf(stderr, "snncl train: --lyap-target must be a number, floor, floor+D or floor-D, got '%s'\n", text);
        return 1;
    }
    const double base = relative ? r->lyap_floor : 0.0;
    r->o.lyap_target = (float)(base + offset);
    if (relative) printf("lyapunov target: %.6f (the estimate's floor %.6f %+g)\n", (double)r->o.lyap_target, base, offset);
    return 0;
}

static int make_trainer(train_run *r) {
    snn_train_config tc;
    snn_train_config_default(&tc);
    if (snn_optimizer_parse(r->o.optimizer, &tc.optimizer) != SNN_OK ||
        snn_schedule_parse(r->o.schedule, &tc.schedule) != SNN_OK) {
        fprintf(stderr, "snncl train: %s\n", snn_last_error());
        return 2;
    }
    tc.lr = r->o.lr;
    tc.beta1 = r->o.beta1;
    tc.beta2 = r->o.beta2;
    tc.adam_eps = r->o.adam_eps;
    tc.momentum = r->o.momentum;
    tc.weight_decay = r->o.weight_decay;
    tc.total_steps = (int64_t)r->o.epochs * steps_per_epoch(r);
    tc.step_size = r->o.step_size;
    tc.gamma = r->o.gamma;
    tc.grad_clip = r->o.clip;
    tc.lyap_weight = r->o.lyap_weight;
    snn_status fs = snn_model_lyapunov_floor(r->model, r->o.lyap_eps, &r->lyap_floor);
    if (fs == SNN_ERR_INVALID_ARG) {
        fprintf(stderr, "snncl train: --lyap-eps: %s\n", snn_last_error());
        return 2;
    }
    if (fs != SNN_OK) return cli_report("the estimate's floor", fs);
    if (resolve_lyap_target(r) != 0) return 2;
    tc.lyap_target = r->o.lyap_target;
    tc.lyap_eps = r->o.lyap_eps;
    tc.lyap_warmup = r->o.lyap_warmup;
    tc.sync_batchnorm = r->o.sync_bn;
    if (tc.total_steps < 1) tc.total_steps = 1;
    snn_status st = snn_trainer_create(&r->tr, r->model, &tc);
    if (st == SNN_ERR_INVALID_ARG) {
        fprintf(stderr, "snncl train: %s\n", snn_last_error());
        return 2;
    }
    if (st != SNN_OK) return cli_report("setting up training", st);
    if ((st = snn_run_create(&r->run, r->tr, r->train, r->o.batch, r->o.seed)) != SNN_OK)
        return cli_report("setting up training", st);
    if ((st = cli_parallel_attach(&r->par, r->run)) != SNN_OK) return cli_report("sharing the batches", st);
    if (r->resume && (st = snn_run_resume(r->run, r->resume)) != SNN_OK) {
        fprintf(stderr, "snncl train: %s: %s\n", r->o.resume, snn_last_error());
        return 1;
    }
    return 0;
}

static void print_config(const train_run *r) {
    snn_model_config cfg;
    snn_model_get_config(r->model, &cfg);
    snn_device_info dev;
    snn_context_device_info(r->ctx, &dev);
    printf("device: %s (%s)\n", dev.name, dev.platform);
    printf("model: %s", snn_model_kind_name(cfg.kind));
    if (cfg.kind == SNN_MODEL_NETWORK)
        printf(" of %d spiking layers (snncl describe --model %s: its layers; beta and threshold of the first)",
               snn_model_num_lif_layers(r->model), r->o.out);
    if (cfg.kind == SNN_MODEL_SIMPLE) {
        printf(" channels ");
        for (int i = 0; i < cfg.num_blocks; i++) printf("%s%d", i ? "," : "", cfg.channels[i]);
    }
    printf(", %dx%dx%d, T=%d, %s encoding, beta %g, threshold %g, dropout %g\n", cfg.in_channels, cfg.height,
           cfg.width, cfg.T, snn_encoding_name(cfg.encoding), (double)cfg.beta, (double)cfg.threshold,
           (double)cfg.dropout);
    printf("training: %s, %zu images, %d epochs of %d steps, batch %d, %s lr %g (%s), lyap_weight %g\n",
           r->o.data, snn_dataset_size(r->train), r->o.epochs, steps_per_epoch(r), r->o.batch, r->o.optimizer,
           (double)r->o.lr, r->o.schedule, (double)r->o.lyap_weight);
    if (r->par.ranks > 1)
        printf("data-parallel: %d ranks, each a share of every batch (BatchNorm statistics %s) and of the "
               "evaluation; rank 0 writes the files\n",
               r->par.ranks, r->o.sync_bn ? "of the global batch: --sync-bn" : "per rank");
    if (r->resume)
        printf("resuming from %s at epoch %d, step %d\n", r->o.resume, where(r).epoch + 1, where(r).step);
    fflush(stdout);
}

static double peak_mb(const train_run *r) {
    size_t peak = 0;
    snn_context_memory(r->ctx, NULL, &peak);
    return (double)peak / (1024.0 * 1024.0);
}

/* run_epoch's result when --max-steps ends the run early (not an error). */
#define STOPPED (-1)

/* One epoch from the run's step on. Returns 0, STOPPED, or the exit status of a failure. */
static int run_epoch(train_run *r, double *seconds) {
    const size_t n = snn_dataset_size(r->train), B = (size_t)r->o.batch;
    const int steps = steps_per_epoch(r);
    snn_run_position p = where(r);
    char label[32];
    snprintf(label, sizeof label, "epoch %d/%d", p.epoch + 1, r->o.epochs);
    cli_progress prog;
    cli_progress_start(&prog, label, n, !r->o.quiet);
    const double t0 = cli_now();
    snn_status st;
    for (; p.step < steps; p = where(r)) {
        if (cli_parallel_any(&r->par, stop_signal != 0)) { /* every rank stops at the same step */
            cli_progress_end(&prog);
            return stop_on_signal(r, "");
        }
        snn_step_stats s;
        if ((st = snn_run_step(r->run, &s)) != SNN_OK) {
            cli_progress_end(&prog);
            return cli_report("training step", st);
        }
        p = where(r);
        if (!isfinite(s.loss)) {
            cli_progress_end(&prog);
            char note[8400];
            fallback_note(r, note, sizeof note);
            fprintf(stderr,
                    "snncl train: the loss became %g at epoch %d step %d; stopping (%s); try a smaller --lr or "
                    "--clip.\n",
                    (double)s.loss, p.epoch + 1, p.step, note);
            return 1;
        }
        const size_t done_images = p.step == steps ? n : (size_t)p.step * B;
        char extra[96];
        const double seen = (double)p.seen;
        int len = snprintf(extra, sizeof extra, "loss %.4f  acc %.4f", p.loss / seen, (double)p.correct / seen);
        if (r->o.lyap_weight > 0.0f)
            snprintf(extra + len, sizeof extra - (size_t)len, "  lyap %.4f", p.lyapunov / seen);
        cli_progress_update(&prog, done_images, extra);
        if (r->o.max_steps > 0 && p.global_step >= r->o.max_steps && p.step < steps) {
            cli_progress_end(&prog);
            if (save_checkpoint(r) != 0) return 1;
            printf("stopped after %d steps at epoch %d step %d; resume with --resume %s\n", r->o.max_steps,
                   p.epoch + 1, p.step, r->ckpt_path);
            return STOPPED;
        }
        if (r->o.checkpoint_every > 0 && p.global_step % r->o.checkpoint_every == 0 && p.step < steps &&
            save_checkpoint(r) != 0) {
            cli_progress_end(&prog);
            return 1;
        }
    }
    cli_progress_end(&prog);
    *seconds = cli_now() - t0;
    return 0;
}

static double json_num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* A resumed run: the figures of the epochs done before the checkpoint, from the --json
 * lines (the last line of each epoch wins); what stays unknown is named in the note. */
static void plot_history_from_json(train_run *r) {
    FILE *f = r->o.json ? fopen(r->o.json, "r") : NULL;
    if (f) {
        char line[4096];
        while (fgets(line, sizeof line, f)) {
            cJSON *o = cJSON_Parse(line);
            double e = json_num(o, "epoch");
            if (o && e >= 1 && e <= where(r).epoch && e == floor(e)) {
                plot_epoch *p = &r->hist[(int)e - 1];
                *p = (plot_epoch){1, json_num(o, "loss"), json_num(o, "cross_entropy"), json_num(o, "train_accuracy"),
                                  json_num(o, "lyapunov"), json_num(o, "test_accuracy")};
                p->known = isfinite(p->loss) && isfinite(p->train_accuracy);
            }
            cJSON_Delete(o);
        }
        fclose(f);
    }
    /* "epochs 1-3, 5 are missing ...": runs of unknown epochs before the checkpoint. */
    char list[128] = "";
    int len = 0, missing = 0;
    const int epoch = where(r).epoch;
    for (int e = 0; e < epoch && e < r->hist_len; e++) {
        if (r->hist[e].known) continue;
        int end = e;
        while (end + 1 < epoch && end + 1 < r->hist_len && !r->hist[end + 1].known) end++;
        if (len < (int)sizeof list)
            len += end > e ? snprintf(list + len, sizeof list - (size_t)len, "%s%d-%d", missing ? ", " : "", e + 1,
                                      end + 1)
                           : snprintf(list + len, sizeof list - (size_t)len, "%s%d", missing ? ", " : "", e + 1);
        missing += end - e + 1;
        e = end;
    }
    if (missing) {
        const char *them = missing > 1 ? "them" : "it";
        char why[96];
        if (r->o.json) snprintf(why, sizeof why, "no line for %s in the --json file", them);
        else snprintf(why, sizeof why, "no --json file to read %s from", them);
        snprintf(r->plot_note, sizeof r->plot_note, "Resumed from %s: epoch%s %s ran before and %s not shown (%s).",
                 r->o.resume, missing > 1 ? "s" : "", list, missing > 1 ? "are" : "is", why);
    }
}

static int draw_plot(train_run *r) {
    snn_model_config cfg;
    snn_model_get_config(r->model, &cfg);
    char title[256], subtitle[512], arch[128] = "";
    if (cfg.kind == SNN_MODEL_NETWORK) snprintf(arch, sizeof arch, " of %d spiking layers", snn_model_num_lif_layers(r->model));
    if (cfg.kind == SNN_MODEL_SIMPLE) {
        int len = snprintf(arch, sizeof arch, " channels ");
        for (int i = 0; i < cfg.num_blocks && len < (int)sizeof arch; i++)
            len += snprintf(arch + len, sizeof arch - (size_t)len, "%s%d", i ? "," : "", cfg.channels[i]);
    }
    snprintf(title, sizeof title, "snncl train: %s%s on %s (%zu training images)", snn_model_kind_name(cfg.kind),
             arch, r->o.data, snn_dataset_size(r->train));
    int len = snprintf(subtitle, sizeof subtitle,
                       "%dx%dx%d, T = %d, %s encoding, beta %g, threshold %g, dropout %g; %s lr %g (%s), batch %d, "
                       "lyap_weight %g",
                       cfg.in_channels, cfg.height, cfg.width, cfg.T, snn_encoding_name(cfg.encoding), (double)cfg.beta,
                       (double)cfg.threshold, (double)cfg.dropout, r->o.optimizer, (double)r->o.lr, r->o.schedule,
                       r->o.batch, (double)r->o.lyap_weight);
    if (r->o.lyap_weight > 0.0f && len < (int)sizeof subtitle)
        len += snprintf(subtitle + len, sizeof subtitle - (size_t)len, " (target %g)", (double)r->o.lyap_target);
    if (len < (int)sizeof subtitle)
        snprintf(subtitle + len, sizeof subtitle - (size_t)len, ", seed %llu%s", (unsigned long long)r->o.seed,
                 r->o.no_eval ? ", no test evaluation" : "");
    plot_training d = {title, subtitle, r->plot_note[0] ? r->plot_note : NULL, r->hist_len, r->hist,
                       r->o.lyap_weight > 0.0f, (double)r->o.lyap_target};
    char err[512];
    if (plot_training_write(r->o.plot, &d, err, sizeof err) != 0) {
        fprintf(stderr, "snncl train: --plot: %s\n", err);
        return 1;
    }
    return 0;
}

/* Allocates the per-epoch records, recovers a resumed run's earlier epochs and draws
 * the figure once before training, so a bad --plot path fails before any work. */
static int start_plot(train_run *r) {
    if (!r->o.plot) return 0;
    const int epoch = where(r).epoch;
    r->hist_len = r->o.epochs > epoch ? r->o.epochs : epoch;
    if (r->hist_len < 1) r->hist_len = 1;
    r->hist = calloc((size_t)r->hist_len, sizeof *r->hist);
    if (!r->hist) {
        fprintf(stderr, "snncl train: out of memory\n");
        return 1;
    }
    if (epoch > 0) plot_history_from_json(r);
    if (r->plot_note[0]) printf("--plot: %s\n", r->plot_note);
    return draw_plot(r);
}

static int train(train_run *r) {
    snn_status st;
    cli_eval_result ev = {0};
    int have_eval = 0;
    if (where(r).epoch >= r->o.epochs) printf("the checkpoint has finished all %d epochs\n", r->o.epochs);
    while (where(r).epoch < r->o.epochs) {
        double seconds = 0;
        const int64_t seen_before = where(r).seen;
        int rc = run_epoch(r, &seconds);
        if (rc == STOPPED) return 0;
        if (rc) return rc;
        const snn_run_position s = where(r);
        const double imgs = (double)(s.seen - seen_before);
        const double seen = s.seen ? (double)s.seen : 1.0;
        printf("epoch %d/%d: loss %.4f  cross-entropy %.4f  train acc %.4f", s.epoch + 1, r->o.epochs,
               s.loss / seen, s.cross_entropy / seen, (double)s.correct / seen);
        if (r->o.lyap_weight > 0.0f) printf("  lyapunov %.4f", s.lyapunov / seen);
        printf("  (%.1f s, %.0f images/s)\n", seconds, seconds > 0 ? imgs / seconds : 0.0);
        fflush(stdout);
        have_eval = 0;
        if (!r->o.no_eval) {
            if ((st = cli_evaluate(r->model, r->test, r->o.eval_batch, r->o.seed, 0, r->o.lyap_eps, 0.0f, !r->o.quiet,
                                   &stop_signal, &r->par, &ev)) != SNN_OK)
                return cli_report("evaluating", st);
            /* The position stays "every step of the epoch done": a resumed run evaluates
             * again and finishes the epoch. */
            if (ev.interrupted) return stop_on_signal(r, " (evaluating)");
            have_eval = 1;
            printf("epoch %d/%d: test acc %.4f (%zu images, %.1f s)\n", s.epoch + 1, r->o.epochs, ev.accuracy,
                   ev.images, ev.seconds);
            fflush(stdout);
        }
        if (r->o.json) {
            FILE *f = fopen(r->o.json, "a");
            if (!f) {
                fprintf(stderr, "snncl train: cannot open %s for writing\n", r->o.json);
                return 1;
            }
            fprintf(f,
                    "{\"epoch\": %d, \"steps\": %lld, \"images\": %lld, \"loss\": %.6f, \"cross_entropy\": %.6f, "
                    "\"train_accuracy\": %.6f, \"lyapunov\": %.6f, \"lyapunov_floor\": %.6f, \"lr\": %.6g, "
                    "\"seconds\": %.3f, "
                    "\"images_per_s\": %.1f, \"peak_device_mb\": %.1f",
                    s.epoch + 1, (long long)s.steps, (long long)s.seen, s.loss / seen, s.cross_entropy / seen,
                    (double)s.correct / seen, s.lyapunov / seen, r->lyap_floor, (double)snn_trainer_next_lr(r->tr), seconds, seconds > 0 ? imgs / seconds : 0.0,
                    peak_mb(r));
            if (have_eval) fprintf(f, ", \"test_accuracy\": %.6f", ev.accuracy);
            fprintf(f, "}\n");
            if (fclose(f) != 0) {
                fprintf(stderr, "snncl train: writing %s failed\n", r->o.json);
                return 1;
            }
        }
        if (r->hist && s.epoch < r->hist_len)
            r->hist[s.epoch] = (plot_epoch){1, s.loss / seen, s.cross_entropy / seen, (double)s.correct / seen,
                                            s.lyapunov / seen, have_eval ? ev.accuracy : NAN};
        if ((st = snn_run_next_epoch(r->run)) != SNN_OK) return cli_report("training", st);
        /* The checkpoint first: it refuses a non-finite model, which --out must not get either. */
        if (save_checkpoint(r) != 0) return 1;
        if (r->writer && (st = snn_model_save(r->model, r->o.out)) != SNN_OK) {
            cli_report("saving the model", st);
            fprintf(stderr, "snncl train: stopping; the checkpoint %s holds this epoch; resume with --resume %s\n",
                    r->ckpt_path, r->ckpt_path);
            return 1;
        }
        if (r->hist && draw_plot(r) != 0) return 1;
        if (r->o.max_steps > 0 && where(r).global_step >= r->o.max_steps && where(r).epoch < r->o.epochs) {
            printf("stopped after %d steps at the end of epoch %d; resume with --resume %s\n", r->o.max_steps,
                   where(r).epoch, r->ckpt_path);
            return 0;
        }
    }
    printf("saved %s (checkpoint %s); peak device memory %.0f MB\n", r->o.out, r->ckpt_path, peak_mb(r));
    if (!have_eval && !r->o.no_eval) {
        if ((st = cli_evaluate(r->model, r->test, r->o.eval_batch, r->o.seed, 0, r->o.lyap_eps, 0.0f, !r->o.quiet,
                               &stop_signal, &r->par, &ev)) != SNN_OK)
            return cli_report("evaluating", st);
        have_eval = !ev.interrupted;
    }
    if (stop_signal) { /* arrived after the last step: everything is saved already */
        fprintf(stderr, "snncl: interrupted by %s after the last epoch; %s and its checkpoint %s are saved\n",
                stop_signal == SIGINT ? "SIGINT" : "SIGTERM", r->o.out, r->ckpt_path);
        return 128 + (int)stop_signal;
    }
    if (have_eval) printf("test accuracy: %.4f\n", ev.accuracy);
    return 0;
}

int cmd_train(int argc, char **argv) {
    train_run r;
    memset(&r, 0, sizeof r);
    train_opts *o = &r.o;
    /* Defaults: the library's (the seed's) for the model and the objective; the run's
     * own (epochs, batch, files) here. --help prints them from these values. */
    snn_model_config mdef;
    snn_train_config tdef;
    snn_model_config_default(&mdef, "simple");
    snn_train_config_default(&tdef);
    *o = (train_opts){.model = "simple", .init_scheme = "seed", .encoding = snn_encoding_name(mdef.encoding), .data = "fashion-mnist",
                      .out = "model.safetensors", .optimizer = snn_optimizer_name(tdef.optimizer),
                      .schedule = snn_schedule_name(tdef.schedule), .T = mdef.T, .epochs = 2, .batch = 64,
                      .eval_batch = 256, .beta = mdef.beta, .threshold = mdef.threshold, .gain = mdef.encoding_gain,
                      .dropout = -1.0f, .lyap_weight = tdef.lyap_weight, .lyap_target = tdef.lyap_target, .lyap_target_text = "0",
                      .lyap_eps = tdef.lyap_eps, .lr = tdef.lr, .beta1 = tdef.beta1, .beta2 = tdef.beta2,
                      .adam_eps = tdef.adam_eps, .momentum = tdef.momentum, .weight_decay = tdef.weight_decay,
                      .gamma = tdef.gamma, .step_size = (int)tdef.step_size, .clip = tdef.grad_clip};
    cli_option opts[] = {
        {"model", CLI_STRING, &o->model, "simple|vgg", "architecture: a preset of the seed's", 0, 0},
        {"net", CLI_STRING, &o->net, "FILE.json", "architecture: a network description (docs/network.md) instead of a preset", 0, 0},
        {"channels", CLI_STRING, &o->channels, "C1,C2,..", "simple: channels per block (default 64,128,256)", 0, 0},
        {"T", CLI_INT, &o->T, "N", "time steps", 0, 0},
        {"beta", CLI_FLOAT, &o->beta, "B", "membrane decay", 0, 0},
        {"threshold", CLI_FLOAT, &o->threshold, "V", "firing threshold", 0, 0},
        {"encoding", CLI_STRING, &o->encoding, "rate|direct", "input encoding", 0, 0},
        {"encoding-gain", CLI_FLOAT, &o->gain, "G", "rate encoding gain", 0, 0},
        {"dropout", CLI_FLOAT, &o->dropout, "P", "dropout before the readout (default 0.2 simple, 0.3 vgg)", 0, 0},
        {"init", CLI_STRING, &o->init, "PATH", "start from this model instead of a fresh initialization", 0, 0},
        {"init-scheme", CLI_STRING, &o->init_scheme, "seed|pytorch",
         "a fresh model's initialization: the seed's, or PyTorch's module defaults", 0, 0},
        {"lyap-weight", CLI_FLOAT, &o->lyap_weight, "W", "weight of (lambda - target)^2; 0: off", 0, 0},
        {"lyap-target", CLI_STRING, &o->lyap_target_text, "L|floor+D",
         "target Lyapunov exponent: a number, or relative to the estimate's floor (floor, floor+0.1)", 0, 0},
        {"lyap-eps", CLI_FLOAT, &o->lyap_eps, "E", "perturbation size", 0, 0},
        {"lyap-warmup", CLI_INT, &o->lyap_warmup, "N", "raise the regularizer's weight linearly over the first N steps",
         0, 0},
        {"optimizer", CLI_STRING, &o->optimizer, "adam|sgd", "optimizer", 0, 0},
        {"lr", CLI_FLOAT, &o->lr, "LR", "learning rate", 0, 0},
        {"beta1", CLI_FLOAT, &o->beta1, "B1", "Adam beta1", 0, 0},
        {"beta2", CLI_FLOAT, &o->beta2, "B2", "Adam beta2", 0, 0},
        {"adam-eps", CLI_FLOAT, &o->adam_eps, "E", "Adam epsilon", 0, 0},
        {"momentum", CLI_FLOAT, &o->momentum, "M", "SGD momentum", 0, 0},
        {"weight-decay", CLI_FLOAT, &o->weight_decay, "WD", "L2 weight decay", 0, 0},
        {"schedule", CLI_STRING, &o->schedule, "cosine|step|constant", "learning-rate schedule, per step", 0, 0},
        {"step-size", CLI_INT, &o->step_size, "N", "step schedule: steps between decays", 0, 0},
        {"gamma", CLI_FLOAT, &o->gamma, "G", "step schedule: decay factor", 0, 0},
        {"clip", CLI_FLOAT, &o->clip, "NORM", "clip the gradient's global L2 norm (default 0: off)", 0, 0},
        {"data", CLI_STRING, &o->data, "NAME", "fashion-mnist (default), mnist or cifar10", 0, 0},
        {"data-dir", CLI_STRING, &o->data_dir, "DIR", "dataset directory (default: Debian's package location)", 0, 0},
        {"limit", CLI_INT, &o->limit, "N", "train on the first N images only (0: all)", 0, 0},
        {"test-limit", CLI_INT, &o->test_limit, "N", "evaluate on the first N test images only (0: all)", 0, 0},
        {"epochs", CLI_INT, &o->epochs, "N", "epochs", 0, 0},
        {"batch", CLI_INT, &o->batch, "N", "batch size", 0, 0},
        {"eval-batch", CLI_INT, &o->eval_batch, "N", "batch size for evaluation", 0, 0},
        {"seed", CLI_U64, &o->seed, "N", "seed of initialization, shuffling, encoding, dropout", 0, 0},
        {"out", CLI_STRING, &o->out, "PATH", "trained model, written after every epoch", 0, 0},
        {"checkpoint", CLI_STRING, &o->checkpoint, "PATH", "checkpoint (default: OUT with .ckpt before the extension)", 0, 0},
        {"checkpoint-every", CLI_INT, &o->checkpoint_every, "N", "also checkpoint every N steps (default 0: epoch ends)", 0, 0},
        {"max-steps", CLI_INT, &o->max_steps, "N", "stop (with a checkpoint) after N steps in all; resume later (0: no limit)", 0, 0},
        {"resume", CLI_STRING, &o->resume, "PATH", "continue a run from its checkpoint (its settings unless given)", 0, 0},
        {"json", CLI_STRING, &o->json, "PATH", "append one JSON line of metrics per epoch to PATH", 0, 0},
        {"plot", CLI_STRING, &o->plot, "PATH", "draw loss, accuracy, Lyapunov estimate per epoch (.png or .svg)", 0, 0},
        {"no-eval", CLI_FLAG, &o->no_eval, NULL, "skip the test-set evaluation", 0, 0},
        {"sync-bn", CLI_FLAG, &o->sync_bn, NULL,
         "under mpirun: BatchNorm and the regularizer use the whole global batch's statistics, summed over the "
         "ranks every step (default: each rank's share's)", 0, 0},
        {"device", CLI_STRING, &o->device, "N|NAME|LIST", "OpenCL device (default $SNNCL_DEVICE or 0); under mpirun a list, one per local rank", 0, 0},
        {"quiet", CLI_FLAG, &o->quiet, NULL, "no progress display", 0, 0},
    };
    r.opts = opts;
    r.nopts = sizeof opts / sizeof opts[0];
    int rc = cli_parse_command("train", argc, argv, opts, r.nopts, "snncl train [options]",
                               "Trains a model on a dataset with backpropagation through time (fast-sigmoid\n"
                               "surrogate) and the Lyapunov regularizer:\n"
                               "  loss = cross_entropy + lyap_weight * (lambda - lyap_target)^2\n"
                               "Model and objective defaults are the seed's. Evaluates on the test split after\n"
                               "every epoch; the last line is 'test accuracy: 0.xxxx'.\n"
                               "Checkpoints are written atomically (temporary file, fsync, rename): a crash or\n"
                               "a full disk never damages the previous one. SIGINT (Ctrl-C) or SIGTERM stops\n"
                               "the run at the next step (or evaluation batch), writes a checkpoint there and\n"
                               "exits with 130 or 143; --resume CKPT then ends with the same model, bit for bit,\n"
                               "as an uninterrupted run. A second signal quits at once. A failed write or a loss\n"
                               "or model that becomes inf or nan stops the run with exit status 1 and leaves\n"
                               "the last checkpoint as it was.\n"
                               "Under mpirun (an snncl built with MPI), each rank trains on its share of every\n"
                               "batch with the gradients averaged over the ranks, and on its share of the\n"
                               "evaluation; rank 0 prints and writes the files; --device may list one device\n"
                               "per local rank (0,1,2,3).");
    if (rc >= 0) return rc;
    int status = cli_parallel_init(&r.par, "train");
    if (status != 0) return status;
    r.writer = r.par.rank == 0;
    status = 1;
    if (o->resume && (status = restore_from_checkpoint(&r)) != 0) goto done;
    if (!r.writer) { /* rank 0 alone writes files (all evaluate, each a part) */
        o->quiet = 1;
        o->json = o->plot = NULL;
    }
    status = 2;
    if (o->T < 1 || o->epochs < 0 || o->batch < 1 || o->eval_batch < 1 || o->limit < 0 || o->test_limit < 0 ||
        o->checkpoint_every < 0 || o->max_steps < 0 || o->step_size < 1 || o->lyap_warmup < 0) {
        fprintf(stderr, "snncl train: --T >= 1, --epochs >= 0, --batch >= 1, --eval-batch >= 1, --step-size >= 1 and "
                        "non-negative --limit, --test-limit, --checkpoint-every, --max-steps, --lyap-warmup are required\n");
        goto done;
    }
    plot_format plot_fmt;
    if (o->plot && plot_format_of(o->plot, &plot_fmt) != 0) {
        fprintf(stderr, "snncl train: --plot must end in .png or .svg, got '%s'\n", o->plot);
        goto done;
    }
    if (o->checkpoint)
        snprintf(r.ckpt_path, sizeof r.ckpt_path, "%s", o->checkpoint);
    else {
        const char *dot = strrchr(o->out, '.'), *slash = strrchr(o->out, '/');
        int stem = (dot && (!slash || dot > slash)) ? (int)(dot - o->out) : (int)strlen(o->out);
        snprintf(r.ckpt_path, sizeof r.ckpt_path, "%.*s.ckpt%s", stem, o->out, dot && stem < (int)strlen(o->out) ? dot : "");
    }
    r.last_ckpt = o->resume;
    if (r.writer) {
        snn_file_remove_stale(r.ckpt_path);
        snn_file_remove_stale(o->out);
        snn_file_remove_stale(o->plot);
    }
    catch_stop_signals();
    if ((status = cli_load_split("train", o->data, o->data_dir, 1, (size_t)o->limit, &r.train)) != 0) goto done;
    if (!o->no_eval && (status = cli_load_split("train", o->data, o->data_dir, 0, (size_t)o->test_limit, &r.test)) != 0)
        goto done;
    status = 1;
    snn_context_params cp;
    snn_context_params_default(&cp);
    char device[256];
    cp.device = cli_parallel_device(&r.par, o->device, device, sizeof device);
    cp.clblast_tuning = 1; /* the whole process is snncl: its tuning may be process-wide */
    snn_status st;
    if ((st = snn_context_create(&r.ctx, &cp)) != SNN_OK) {
        cli_report("opening the device", st);
        goto done;
    }
    if ((status = make_model(&r)) != 0) goto done;
    snn_model_config cfg;
    snn_model_get_config(r.model, &cfg);
    if ((status = cli_check_model_fits("train", &cfg, r.train)) != 0) goto done;
    if ((status = make_trainer(&r)) != 0) goto done;
    if (r.writer && ((status = check_writable(r.ckpt_path)) != 0 || (status = check_writable(o->out)) != 0)) goto done;
    print_config(&r);
    if ((status = start_plot(&r)) != 0) goto done;
    status = train(&r);
done:
    free(r.hist);
    snn_run_free(r.run);
    snn_trainer_free(r.tr);
    snn_model_free(r.model);
    snn_dataset_free(r.train);
    snn_dataset_free(r.test);
    snn_safetensors_free(r.resume);
    snn_context_free(r.ctx);
    cli_parallel_finish(&r.par, status);
    return status;
}
