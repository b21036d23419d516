// Failure: see failure.h.
#include "failure.h"

#include <cstring>

namespace cubby {

std::string ErrnoName(int errorNumber) {
  const char* name = strerrorname_np(errorNumber);
  return name != nullptr ? name : Message("E", errorNumber);
}

std::string DescribeErrno(int errorNumber) {
  const char* description = strerrordesc_np(errorNumber);
  return Message(description != nullptr ? description : "Unknown error", " (", ErrnoName(errorNumber), ")");
}

}  // namespace cubby
