/**
 * @file snncl_opencl.h
 * @brief snncl inside an OpenCL program: contexts on the caller's OpenCL objects.
 *
 * A program that already uses OpenCL hands snncl its own `cl_context`, device and
 * (optionally) command queue, so that snncl's work and the program's run on the
 * same queue, in order, without copies between contexts. snncl.h stays free of
 * OpenCL types; this header adds the functions that need them.
 *
 * **References.** snncl retains what it is given (clRetainContext,
 * clRetainCommandQueue) and releases only those references in snn_context_free():
 * the caller keeps, and releases, its own. The handles snn_context_get_cl() returns
 * are borrowed: valid while the snncl context lives; retain them to keep them longer.
 *
 * **Ordering.** snncl enqueues its work on the context's queue, which must execute
 * in order: work the caller enqueues before an snncl call runs before it, and work
 * enqueued after runs after. Calls that return results in host memory wait for them.
 *
 * **Threads.** As for any snn_context: one thread at a time per context (and so per
 * queue, from snncl's side); different contexts may be used from different threads.
 *
 * **Device buffers and events.** The `_cl` calls take `cl_mem` buffers of the
 * context's OpenCL context, with offsets counted in elements (as CLBlast's C API
 * does), and an OpenCL wait list: they enqueue their work after the listed events and
 * return without waiting; `*event` (when not NULL) completes with the call's work and
 * is the caller's to release. It is written last (NULL when the call fails), so one
 * variable may serve as the wait list and receive the new event, but keep the old
 * one to release it. Until then the input must not change and the outputs
 * must not be read, unless on the context's queue (which runs in order). A call
 * never copies through host memory; it waits for the device inside only where
 * the context's density-dependent paths read a count back (create the context with
 * snn_context_params::dense_only to rule that out; SNNCL_PROFILE counts every wait),
 * where host arrays are handed in (params->perturb), and once after training, when
 * a model's parameters come back from its trainer.
 */
#ifndef SNNCL_OPENCL_H
#define SNNCL_OPENCL_H

#ifndef CL_TARGET_OPENCL_VERSION
/** The OpenCL headers' target: snncl needs 1.2 only; a program that uses more
 *  defines it first. */
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#include "snncl.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Makes a context on the caller's OpenCL objects: `device` must be one of
 *  `context`'s devices; `queue` (NULL: snncl makes its own on that context and
 *  device) must belong to both and execute in order (no
 *  CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE); SNN_ERR_INVALID_ARG says which does not.
 *  Builds snncl's kernels for the device as snn_context_create() does;
 *  `params->device` is ignored (the device is given), `params` may be NULL. */
SNN_API snn_status snn_context_create_cl(snn_context **out, cl_context context, cl_device_id device,
                                         cl_command_queue queue, const snn_context_params *params);

/** The context's OpenCL objects (borrowed, see the file's notes): any of the three
 *  pointers may be NULL when that one is not wanted. For a context made by
 *  snn_context_create(), these are the ones snncl made. */
SNN_API snn_status snn_context_get_cl(const snn_context *ctx, cl_context *context, cl_device_id *device,
                                      cl_command_queue *queue);

/** snn_model_forward() on device buffers: the batch from `input` (floats from
 *  element input_offset, laid out as snn_model_forward() takes them), the logits
 *  (B, num_classes) to `logits` from element logits_offset and, with
 *  params->lyapunov, each sample's estimate to `lyap_per_sample` (NULL: not wanted).
 *  Enqueued after the `num_wait` events of `wait_list`; `event` (may be NULL)
 *  receives an event that completes with the call's work. The results equal
 *  snn_model_forward()'s bit for bit. An input at offset 0 is read in place;
 *  elsewhere it is copied once on the device. */
SNN_API snn_status snn_model_forward_cl(snn_model *model, cl_mem input, size_t input_offset, int batch,
                                        const snn_forward_params *params, cl_mem logits, size_t logits_offset,
                                        cl_mem lyap_per_sample, size_t lyap_offset, cl_uint num_wait,
                                        const cl_event *wait_list, cl_event *event);

/** snn_model_forward_cl() in a session's workspace (see snn_session in snncl.h):
 *  the session's buffers are in use until `event` completes. */
SNN_API snn_status snn_session_forward_cl(snn_session *s, cl_mem input, size_t input_offset, int batch,
                                          const snn_forward_params *params, cl_mem logits, size_t logits_offset,
                                          cl_mem lyap_per_sample, size_t lyap_offset, cl_uint num_wait,
                                          const cl_event *wait_list, cl_event *event);

/** One training batch on device buffers, for snn_trainer_step_cl(). Start from
 *  snn_batch_cl_init() or a designated initializer. */
typedef struct snn_batch_cl {
    cl_mem input;          /**< floats laid out as snn_batch::input */
    size_t input_offset;   /**< in elements */
    cl_mem labels;         /**< `size` int32 (cl_int) labels, each in [0, num_classes) */
    size_t labels_offset;  /**< in elements */
    int size;              /**< B, as snn_batch::size */
    uint64_t seed;         /**< as snn_batch::seed */
    int pre_encoded;       /**< as snn_batch::pre_encoded */
    int64_t first;         /**< as snn_batch::first */
    uint8_t reserved[24];  /**< zero (room for future fields without breaking the ABI) */
} snn_batch_cl;

/** Zeroes every field, the reserved bytes included (NULL is fine). */
SNN_API void snn_batch_cl_init(snn_batch_cl *batch);

/** snn_trainer_step() on device buffers, asynchronous: enqueues forward, backward and
 *  the update after the events of `wait_list` and returns; `event` (may be NULL)
 *  completes with them. The step's figures stay on the device until
 *  snn_trainer_wait(), so a loop can enqueue N steps and wait once. Labels cannot be
 *  checked on the host: one outside [0, num_classes) leaves its sample out of the
 *  loss and gradients, and the next snn_trainer_wait() (or host-array step) fails
 *  with SNN_ERR_INVALID_ARG saying so. */
SNN_API snn_status snn_trainer_step_cl(snn_trainer *tr, const snn_batch_cl *batch, cl_uint num_wait,
                                       const cl_event *wait_list, cl_event *event);
/** snn_trainer_gradients() on device buffers, asynchronous as snn_trainer_step_cl():
 *  the gradients then wait in the buffers of snn_trainer_param_cl(), for
 *  snn_trainer_apply(). */
SNN_API snn_status snn_trainer_gradients_cl(snn_trainer *tr, const snn_batch_cl *batch, cl_uint num_wait,
                                            const cl_event *wait_list, cl_event *event);
/** Waits for the steps enqueued since the last wait and gives the figures of the
 *  last of them (stats may be NULL); SNN_ERR_INVALID_ARG when none was enqueued or
 *  when one of their labels was out of range. */
SNN_API snn_status snn_trainer_wait(snn_trainer *tr, snn_step_stats *stats);
/** The device buffers of trainable tensor i (its name and shape from
 *  snn_trainer_grad_info()): its values and its last gradient, `count` floats each,
 *  borrowed (valid while the trainer lives; either pointer may be NULL). Read and
 *  write them on the context's queue, between snncl's calls: a caller can average the
 *  gradients across devices or processes before snn_trainer_apply(), or run its own
 *  optimizer. Asking for the values marks the device copy as the model's newest, so
 *  snn_model_save() and the host API see what the caller wrote there. */
SNN_API snn_status snn_trainer_param_cl(snn_trainer *tr, int i, cl_mem *param, cl_mem *grad);

#ifdef __cplusplus
}
#endif

#endif
