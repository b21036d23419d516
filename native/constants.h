// Constants shared by the native shim and TypeScript.
//
// This header is their one source: the addon exports every value below as
// `binding.constants` (see ExportConstants in addon.cc), and src/native.ts
// reads them from there at load time and checks that none is missing, so the
// two sides cannot drift apart (the lmdb-js lesson, ../shared/STYLE.md #11).
// Every bound the shim enforces is here, with the reason for its value.
#pragma once

#include <cstdint>

namespace cubby {

// Logical block size of every block device. Stored on disk: never changes.
constexpr uint32_t kBlockSize = 4096;

// Alignment of buffers allocated by the shim (covers every DIO memory alignment).
constexpr uint32_t kBufferAlignment = 4096;

// Most I/O requests one batch may carry. NativeVolume splits larger batches.
constexpr uint32_t kMaxBatchRequests = 4096;

// Most bytes one request may transfer (io_uring lengths are 32-bit; the kernel
// caps one read or write at just under 2 GiB anyway).
constexpr uint32_t kMaxRequestBytes = 1u << 30;

// Requests one volume keeps in flight at once, on either I/O path. It is the
// io_uring submission ring's size (the completion ring is twice that, so it
// can never overflow). Requests beyond it wait, in order, inside their batch.
constexpr uint32_t kQueueDepth = 128;

// Batches one volume accepts before they settle. NativeVolume waits for a
// free slot instead of going past it (backpressure); the shim refuses more.
constexpr uint32_t kMaxPendingBatches = 256;

// A settled batch goes back to a free list for reuse; it keeps the memory of
// at most this many requests so that one huge batch is not held forever.
constexpr uint32_t kRetainedRequestsPerBatch = 64;

// Worker threads of the process-wide pool that runs the thread-pool I/O path,
// fdatasync and discard. They are started on demand and mostly sleep in
// system calls, so the number bounds concurrency, not CPU use.
constexpr uint32_t kThreadPoolThreads = 32;

// How many times a request failing with EINTR or EAGAIN is reissued before
// its error is reported.
constexpr uint32_t kMaxTransientRetries = 16;

// Layout of a batch descriptor: a Float64Array holding, for request i,
// kDescriptorFields numbers starting at index i * kDescriptorFields. Numbers
// are exact integers below 2^53.
constexpr uint32_t kDescriptorFields = 4;
constexpr uint32_t kDescriptorOffset = 0;        // byte offset on the volume
constexpr uint32_t kDescriptorLength = 1;        // bytes to transfer
constexpr uint32_t kDescriptorBufferIndex = 2;   // index into the batch's buffer array
constexpr uint32_t kDescriptorBufferOffset = 3;  // byte offset into that buffer

// What kind of failure a native error reports (its `kind` property).
// src/device/file.ts maps each to a CubbyError code.
enum class ErrorKind : uint8_t {
  kSystem,           // the operating system said no: errno, syscall, path
  kLocked,           // another opener holds the target
  kInvalidArgument,  // misaligned or out-of-range request, bad option, unsupported target
  kClosed,           // the volume is closed or closing
  kReadOnly,         // a write to a volume opened read-only
  kEndOfFile,        // a read found the end of the file before the bytes asked for
};

// Export names (constants.ERROR_KINDS.<key>) and values of each ErrorKind, in enum order.
struct ErrorKindName {
  const char* key;
  const char* value;
};
constexpr ErrorKindName kErrorKindNames[] = {
    {"SYSTEM", "system"},       {"LOCKED", "locked"},       {"INVALID_ARGUMENT", "invalid-argument"},
    {"CLOSED", "closed"},       {"READ_ONLY", "read-only"}, {"END_OF_FILE", "end-of-file"},
};

constexpr const char* ErrorKindValue(ErrorKind kind) { return kErrorKindNames[static_cast<int>(kind)].value; }

// Relationships the code relies on, checked once at compile time.
static_assert(kBufferAlignment % 512 == 0 && kBlockSize % kBufferAlignment == 0);
static_assert(kMaxRequestBytes % kBufferAlignment == 0);
static_assert((kQueueDepth & (kQueueDepth - 1)) == 0, "io_uring ring sizes are powers of two");
static_assert(kDescriptorBufferOffset < kDescriptorFields);
static_assert(kRetainedRequestsPerBatch <= kMaxBatchRequests);

}  // namespace cubby
