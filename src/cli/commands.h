/* The `snncl` subcommands. Each returns the process exit status:
 * 0 success, 1 failure while running, 2 bad command line. */
#ifndef SNNCL_CLI_COMMANDS_H
#define SNNCL_CLI_COMMANDS_H

#include "snncl.h"

int cmd_devices(int argc, char **argv);
int cmd_infer(int argc, char **argv);
int cmd_grad(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_raster(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_describe(int argc, char **argv);
int cmd_create(int argc, char **argv);

/* The description of --net FILE.json, or else of the model file model_path
 * (cmd_network.c). */
snn_status cli_load_network(const char *net_path, const char *model_path, snn_network **out);

/* --init-scheme NAME ("seed" or "pytorch") as an snn_init_scheme; prints the error and
 * returns 2 for another name, else 0 (cmd_network.c). */
int cli_init_scheme(const char *cmd, const char *name, snn_init_scheme *out);

/* Shared by train and eval (cmd_eval.c): loads one split of a dataset (limit 0: all),
 * and checks a model takes its images. Return 0 or an exit status. */
int cli_load_split(const char *cmd, const char *data, const char *dir, int train, size_t limit,
                   snn_dataset **out);
int cli_check_model_fits(const char *cmd, const snn_model_config *cfg, const snn_dataset *ds);

/* Prints "snncl: <what>: <status text>: <detail>" to stderr; returns 1. */
int cli_report(const char *what, int status);

#endif
