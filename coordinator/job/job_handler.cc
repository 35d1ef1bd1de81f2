#include "coordinator/job/job_handler.h"

#include <chrono>

namespace fedjoint::coordinator {

double SystemClockSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace fedjoint::coordinator
