// Failure: what went wrong in the shim, as plain data.
//
// Code that runs off the main thread (pool workers) or that knows nothing of
// N-API (file.cc, uring.cc) describes a failure with this struct; only the
// main thread turns it into a JavaScript Error (ToJavaScriptError in
// volume.cc), adding the path. The JavaScript error carries `kind` (see
// ErrorKind), `errno` ('EIO'), `errnoNumber` (5), `syscall` and `path` (and
// `lockHolderExited` for a lock whose holders are gone), and
// src/device/file.ts maps it to a CubbyError.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <type_traits>

#include "constants.h"

namespace cubby {

struct Failure {
  ErrorKind kind = ErrorKind::kSystem;
  int errorNumber = 0;          // errno, or 0 when the operating system reported none
  const char* syscall = "";     // a static string naming the call that failed
  std::string message;          // complete sentence; empty means "describe from errno"
  bool lockHolderExited = false;  // kLocked: every process holding the lock has exited (see file.cc)

  static Failure System(int errorNumber, const char* syscall) { return Failure{ErrorKind::kSystem, errorNumber, syscall, {}, false}; }
  static Failure Of(ErrorKind kind, std::string message) { return Failure{kind, 0, "", std::move(message), false}; }
};

// Builds a message from strings and integers: Message("offset ", 4096, " is not aligned").
template <typename... Parts>
std::string Message(const Parts&... parts) {
  std::string text;
  auto append = [&text](const auto& part) {
    if constexpr (std::is_integral_v<std::decay_t<decltype(part)>>) text += std::to_string(part);
    else text += std::string_view(part);
  };
  (append(parts), ...);
  return text;
}

// The symbolic name of an errno value ("EIO"), or "E<number>" when unknown.
std::string ErrnoName(int errorNumber);

// "Input/output error (EIO)".
std::string DescribeErrno(int errorNumber);

}  // namespace cubby
