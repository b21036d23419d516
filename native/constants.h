// Constants shared by the native shim and TypeScript.
//
// This header is their one source: the addon exports every value below as
// `binding.constants`, and src/native.ts reads them from there at load time
// (and asserts the ones TypeScript also needs at compile time), so the two
// sides cannot drift apart (the lmdb-js lesson, ../shared/STYLE.md #11).
#pragma once

#include <cstdint>

namespace cubby {

// Logical block size of every block device. Stored on disk: never changes.
constexpr uint32_t kBlockSize = 4096;

// Alignment of buffers allocated by the shim (covers every DIO memory alignment).
constexpr uint32_t kBufferAlignment = 4096;

// Most I/O requests one batch may carry.
constexpr uint32_t kMaxBatchRequests = 4096;

}  // namespace cubby
