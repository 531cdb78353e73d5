/*
 * nde/nde.h - everything a plugin or a program needs from libnde. The
 * trainer and the data readers (libnde-train, nde-train.pc) are not
 * included: a program that trains includes <nde/train.h> and <nde/data.h>.
 */
#ifndef NDE_NDE_H
#define NDE_NDE_H

#include "api.h"
#include "status.h"
#include "plugin.h"
#include "config.h"
#include "registry.h"
#include "field.h"
#include "input.h"
#include "solver.h"
#include "brownian.h"
#include "trajectory.h"
#include "solve.h"
#include "event.h"
#include "adjoint.h"
#include "regularizer.h"
#include "task.h"
#include "pool.h"
#include "run.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "0.1.0" */
NDE_API const char *nde_version(void);

#ifdef __cplusplus
}
#endif
#endif
