// Allocation: see allocation.h.
#include "allocation.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "constants.h"

namespace cubby {

// Lives right after the bytes JavaScript sees, at an offset rounded up to its alignment.
struct AllocationHeader {
  uint64_t magic;
  uint32_t references;
  size_t bytes;
};

namespace {

constexpr uint64_t kHeaderMagic = 0x636275626279616cULL;  // "cbubbyal"

// Marks the ArrayBuffers of allocations (napi_type_tag_object).
constexpr napi_type_tag kAllocationTag = {0x6375626279646221ULL, 0x616c6c6f63000001ULL};

size_t HeaderOffset(size_t bytes) { return (bytes + alignof(AllocationHeader) - 1) / alignof(AllocationHeader) * alignof(AllocationHeader); }

AllocationHeader* HeaderOf(void* base, size_t bytes) {
  return reinterpret_cast<AllocationHeader*>(static_cast<uint8_t*>(base) + HeaderOffset(bytes));
}

void Release(napi_env env, AllocationHeader* allocation) {
  const size_t bytes = allocation->bytes;
  void* base = reinterpret_cast<uint8_t*>(allocation) - HeaderOffset(bytes);
  allocation->magic = 0;
  std::free(base);
  int64_t adjusted;
  napi_adjust_external_memory(env, -static_cast<int64_t>(bytes), &adjusted);
}

}  // namespace

bool NewAllocation(napi_env env, size_t bytes, napi_value* buffer) {
  void* base = nullptr;
  const int error = posix_memalign(&base, kBufferAlignment, HeaderOffset(bytes) + sizeof(AllocationHeader));
  if (error != 0) {
    errno = error;
    return false;
  }
  std::memset(base, 0, bytes);
  AllocationHeader* allocation = HeaderOf(base, bytes);
  *allocation = AllocationHeader{kHeaderMagic, 1, bytes};
  const napi_finalize dropJavaScriptReference = [](napi_env finalizingEnv, void*, void* hint) {
    Unpin(finalizingEnv, static_cast<AllocationHeader*>(hint));
  };
  napi_value arrayBuffer;
  napi_typedarray_type type;
  size_t length;
  if (napi_create_external_buffer(env, bytes, base, dropJavaScriptReference, allocation, buffer) != napi_ok) {
    std::free(base);
    errno = ENOMEM;
    return false;
  }
  int64_t adjusted;
  napi_adjust_external_memory(env, static_cast<int64_t>(bytes), &adjusted);
  if (napi_get_typedarray_info(env, *buffer, &type, &length, nullptr, &arrayBuffer, nullptr) != napi_ok ||
      napi_type_tag_object(env, arrayBuffer, &kAllocationTag) != napi_ok) {
    errno = ENOMEM;
    return false;
  }
  return true;
}

AllocationHeader* FindAllocation(napi_env env, napi_value typedArray, uint8_t** data, size_t* length) {
  napi_typedarray_type type;
  void* viewData;
  napi_value arrayBuffer;
  size_t byteOffset;
  bool tagged = false;
  void* base;
  size_t bytes;
  if (napi_get_typedarray_info(env, typedArray, &type, length, &viewData, &arrayBuffer, &byteOffset) != napi_ok ||
      type != napi_uint8_array || napi_check_object_type_tag(env, arrayBuffer, &kAllocationTag, &tagged) != napi_ok || !tagged ||
      napi_get_arraybuffer_info(env, arrayBuffer, &base, &bytes) != napi_ok || base == nullptr) {
    return nullptr;
  }
  AllocationHeader* allocation = HeaderOf(base, bytes);
  if (allocation->magic != kHeaderMagic || allocation->bytes != bytes) return nullptr;
  *data = static_cast<uint8_t*>(viewData);
  return allocation;
}

void Pin(AllocationHeader* allocation) { allocation->references++; }

void Unpin(napi_env env, AllocationHeader* allocation) {
  if (--allocation->references == 0) Release(env, allocation);
}

}  // namespace cubby
