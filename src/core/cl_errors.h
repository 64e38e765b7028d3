/* OpenCL error codes by name, and the snn_status an OpenCL error becomes: a leaf that
 * every file reporting an OpenCL call's result can include. */
#ifndef SNNCL_CL_ERRORS_H
#define SNNCL_CL_ERRORS_H

#include <CL/cl.h>

#include "internal.h"

/* OpenCL error code -> "CL_OUT_OF_RESOURCES". */
const char *snn_cl_error_name(cl_int err);

/* SNN_OK, or SNN_ERR_OPENCL (SNN_ERR_OUT_OF_MEMORY for allocation codes) with a
 * message naming the call. */
snn_status snn_cl_check(cl_int err, const char *what);

#endif
