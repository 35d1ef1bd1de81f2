// The initial weights of a phase, built from the phase's ModelConfig with a fixed seed, so a
// restarted coordinator (or a test) makes bit-identical initial models.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/job/federated_job.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::coordinator {

absl::StatusOr<std::vector<OwnedTensor>> BuildInitialModel(const fedjoint::v1::PhaseConfig& phase);

}  // namespace fedjoint::coordinator
