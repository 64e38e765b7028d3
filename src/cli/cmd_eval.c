/* snncl eval: accuracy of a model on a dataset split (eval mode). */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "batch_io.h"
#include "commands.h"
#include "evaluate.h"
#include "parallel.h"
#include "snncl.h"

int cli_load_split(const char *cmd, const char *data, const char *dir, int train, size_t limit, snn_dataset **out) {
    snn_dataset_kind kind;
    snn_status st = snn_dataset_kind_parse(data, &kind);
    if (st != SNN_OK) {
        fprintf(stderr, "snncl %s: %s\n", cmd, snn_last_error());
        return 2;
    }
    if (!dir) dir = snn_dataset_default_dir(kind);
    if (!dir) {
        fprintf(stderr, "snncl %s: --data-dir is required for %s\n", cmd, data);
        return 2;
    }
    if ((st = snn_dataset_load(out, kind, dir, train)) != SNN_OK) return cli_report("loading the dataset", st);
    if (limit && (st = snn_dataset_truncate(*out, limit)) != SNN_OK) return cli_report("limiting the dataset", st);
    return 0;
}

int cli_check_model_fits(const char *cmd, const snn_model_config *cfg, const snn_dataset *ds) {
    int C, H, W;
    snn_dataset_shape(ds, &C, &H, &W);
    if (cfg->in_channels != C || cfg->height != H || cfg->width != W ||
        cfg->num_classes < snn_dataset_num_classes(ds)) {
        fprintf(stderr,
                "snncl %s: the model takes %dx%dx%d images with %d classes; the dataset has %dx%dx%d with %d\n", cmd,
                cfg->in_channels, cfg->height, cfg->width, cfg->num_classes, C, H, W, snn_dataset_num_classes(ds));
        return 2;
    }
    if (cfg->encoding == SNN_ENCODING_NONE) {
        fprintf(stderr, "snncl %s: the model takes pre-encoded spikes (encoding none); datasets hold images\n", cmd);
        return 2;
    }
    return 0;
}

int cmd_eval(int argc, char **argv) {
    const char *model_path = NULL, *data = "fashion-mnist", *dir = NULL, *split = "test", *device = NULL,
               *json = NULL;
    int batch = 256, limit = 0, lyapunov = 0, quiet = 0, steps = 0;
    float eps = 1e-4f, noise = 0.0f;
    uint64_t seed = 0;
    cli_option opts[] = {
        {"model", CLI_STRING, &model_path, "PATH", "model or checkpoint (safetensors)", 1, 0},
        {"data", CLI_STRING, &data, "NAME", "fashion-mnist (default), mnist or cifar10", 0, 0},
        {"data-dir", CLI_STRING, &dir, "DIR", "dataset directory (default: Debian's package location)", 0, 0},
        {"split", CLI_STRING, &split, "test|train", "which split", 0, 0},
        {"batch", CLI_INT, &batch, "N", "images per forward pass", 0, 0},
        {"limit", CLI_INT, &limit, "N", "only the first N images (0: all)", 0, 0},
        {"lyapunov", CLI_FLAG, &lyapunov, NULL, "also report the mean Lyapunov estimate", 0, 0},
        {"lyap-eps", CLI_FLOAT, &eps, "E", "perturbation size", 0, 0},
        {"seed", CLI_U64, &seed, "N", "seed for rate encoding, the perturbation and --noise", 0, 0},
        {"noise", CLI_FLOAT, &noise, "SIGMA", "add Gaussian noise of this deviation to every pixel before encoding", 0, 0},
        {"T", CLI_INT, &steps, "N", "run the model over N time steps instead of its own (0: its own)", 0, 0},
        {"device", CLI_STRING, &device, "N|NAME", "OpenCL device (default $SNNCL_DEVICE or 0)", 0, 0},
        {"json", CLI_STRING, &json, "PATH", "also write the result as one JSON line to PATH", 0, 0},
        {"quiet", CLI_FLAG, &quiet, NULL, "no progress display", 0, 0},
    };
    const size_t nopts = sizeof opts / sizeof opts[0];
    int rc = cli_parse_command("eval", argc, argv, opts, nopts, "snncl eval --model M [options]",
                               "Classifies every image of a dataset split in eval mode and prints\n"
                               "'test accuracy: 0.xxxx' (or 'train accuracy: ...') as its last line.");
    if (rc >= 0) return rc;
    if (batch < 1 || limit < 0 || !(eps > 0.0f) || !(noise >= 0.0f) || steps < 0 ||
        (strcmp(split, "test") != 0 && strcmp(split, "train") != 0)) {
        fprintf(stderr, "snncl eval: --batch must be >= 1, --limit >= 0, --lyap-eps > 0, --noise >= 0, --T >= 0, "
                        "--split test|train\n");
        return 2;
    }
    cli_parallel par; /* under mpirun: the ranks share the batches; rank 0 prints and writes */
    int status = cli_parallel_init(&par, "eval");
    if (status) return status;
    snn_context *ctx = NULL;
    snn_model *model = NULL;
    snn_dataset *ds = NULL;
    snn_status st;
    char dev[256];
    if (par.rank != 0) { /* rank 0 alone shows progress and writes the JSON */
        quiet = 1;
        json = NULL;
    }
    status = cli_load_split("eval", data, dir, strcmp(split, "train") == 0, (size_t)limit, &ds);
    if (status) goto done;
    status = 1;
    if ((st = cli_open_model_T(cli_parallel_device(&par, device, dev, sizeof dev), model_path, steps, &ctx, &model)) !=
        SNN_OK)
        goto done;
    snn_model_config cfg;
    snn_model_get_config(model, &cfg);
    if ((status = cli_check_model_fits("eval", &cfg, ds)) != 0) goto done;
    status = 1;
    cli_eval_result r;
    if ((st = cli_evaluate(model, ds, batch, seed, lyapunov, eps, noise, !quiet, NULL, &par, &r)) != SNN_OK) {
        cli_report("evaluating", st);
        goto done;
    }
    printf("evaluated %zu images in %.1f s (%.0f images/s)\n", r.images, r.seconds,
           r.seconds > 0 ? (double)r.images / r.seconds : 0.0);
    double floor_value = 0;
    if (lyapunov && (st = snn_model_lyapunov_floor(model, eps, &floor_value)) != SNN_OK) {
        cli_report("the estimate's floor", st);
        goto done;
    }
    if (lyapunov)
        printf("lyapunov: %.6f (mean estimate; its floor, where no spike flips: %.6f)\n", r.lyapunov, floor_value);
    if (json) {
        FILE *f = fopen(json, "a");
        if (!f) {
            fprintf(stderr, "snncl eval: cannot open %s for writing\n", json);
            goto done;
        }
        fprintf(f, "{\"split\": \"%s\", \"images\": %zu, \"correct\": %zu, \"accuracy\": %.6f, \"T\": %d, "
                   "\"noise\": %g",
                split, r.images, r.correct, r.accuracy, cfg.T, (double)noise);
        if (lyapunov) fprintf(f, ", \"lyapunov\": %.6f, \"lyapunov_floor\": %.6f", r.lyapunov, floor_value);
        fprintf(f, ", \"seconds\": %.3f}\n", r.seconds);
        if (fclose(f) != 0) {
            fprintf(stderr, "snncl eval: writing %s failed\n", json);
            goto done;
        }
    }
    printf("%s accuracy: %.4f\n", split, r.accuracy);
    status = 0;
done:
    snn_dataset_free(ds);
    snn_model_free(model);
    snn_context_free(ctx);
    cli_parallel_finish(&par, status);
    return status;
}
