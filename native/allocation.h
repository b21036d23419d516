// Allocation: memory handed out by allocate(), owned by the shim.
//
// Each allocation is one posix_memalign block: the bytes JavaScript sees
// (zero-filled, aligned to kBufferAlignment), then an AllocationHeader. The
// block is freed when its last reference goes: one reference belongs to the
// JavaScript Buffer (dropped by its finalizer), and one more to every batch
// in flight that reads or writes it (dropped when the batch settles or is
// drained). So the kernel or a pool worker never touches freed memory, in
// whatever order garbage collection or environment teardown finalizes things.
//
// The ArrayBuffer behind each such Buffer carries a type tag; Find() accepts
// only tagged ones, which is how the shim refuses a buffer that does not come
// from allocate() before any I/O.
//
// Threads: main thread of the environment only (references are plain counts).
#pragma once

#include <node_api.h>

#include <cstddef>
#include <cstdint>

namespace cubby {

struct AllocationHeader;

// Creates a zero-filled Buffer of `bytes` owned by the shim; false (with
// errno set) when memory is short.
bool NewAllocation(napi_env env, size_t bytes, napi_value* buffer);

// The allocation behind `typedArray` and the span the typed array covers, or
// nullptr when it is not a Uint8Array over memory from NewAllocation.
AllocationHeader* FindAllocation(napi_env env, napi_value typedArray, uint8_t** data, size_t* length);

// One more reference (a batch that will use the memory).
void Pin(AllocationHeader* allocation);

// One reference fewer; the memory is freed with the last.
void Unpin(napi_env env, AllocationHeader* allocation);

}  // namespace cubby
