// Status propagation helpers for absl::Status / absl::StatusOr (absl ships none publicly).
//
// Conventions (see docs/development.md): functions that can fail on outside input return
// absl::Status or absl::StatusOr<T>; codes follow gRPC's meaning (InvalidArgument for malformed
// input, NotFound for a missing file, DataLoss for a digest mismatch, ...); the message names the
// file, field or peer and says what is wrong.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FEDJOINT_CONCAT_INNER_(a, b) a##b
#define FEDJOINT_CONCAT_(a, b) FEDJOINT_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                                 \
  do {                                                        \
    if (absl::Status _fj_status = (expr); !_fj_status.ok()) { \
      return _fj_status;                                      \
    }                                                         \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates the StatusOr `expr`; on error returns its status,
// otherwise moves the value into `lhs` (which may be a declaration such as `auto x`).
#define ASSIGN_OR_RETURN(lhs, expr) \
  FEDJOINT_ASSIGN_OR_RETURN_IMPL_(FEDJOINT_CONCAT_(_fj_statusor_, __LINE__), lhs, expr)

#define FEDJOINT_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                    \
  if (!statusor.ok()) {                                      \
    return std::move(statusor).status();                     \
  }                                                          \
  lhs = std::move(statusor).value()
