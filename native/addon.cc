// Entry point of the native shim: registers every function the TypeScript
// side calls (see src/native.ts for the typed view of this table).
//
// The shim is flat: an opaque handle plus functions over it. It knows nothing
// of buckets, logs or compression; only files, devices, buffers and bytes.
#include <napi.h>

#include "constants.h"
#include "crc32c.h"

namespace cubby {
namespace {

// crc32c(data: Uint8Array, start: number, end: number, seed: number): number
Napi::Value Crc32cFunction(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4 || !info[0].IsTypedArray() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber()) {
    Napi::TypeError::New(env, "crc32c(data, start, end, seed) expects a Uint8Array and three numbers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  const double start = info[1].As<Napi::Number>().DoubleValue();
  const double end = info[2].As<Napi::Number>().DoubleValue();
  if (!(start >= 0 && start <= end && end <= static_cast<double>(data.ByteLength()))) {
    Napi::RangeError::New(env, "crc32c: range outside the buffer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const uint32_t seed = info[3].As<Napi::Number>().Uint32Value();
  const uint32_t crc = Crc32c(seed, data.Data() + static_cast<size_t>(start), static_cast<size_t>(end - start));
  return Napi::Number::New(env, crc);
}

Napi::Object Constants(Napi::Env env) {
  Napi::Object constants = Napi::Object::New(env);
  constants.Set("BLOCK_SIZE", kBlockSize);
  constants.Set("BUFFER_ALIGNMENT", kBufferAlignment);
  constants.Set("MAX_BATCH_REQUESTS", kMaxBatchRequests);
  return constants;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("constants", Constants(env));
  exports.Set("crc32c", Napi::Function::New(env, Crc32cFunction, "crc32c"));
  return exports;
}

}  // namespace cubby

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return cubby::Init(env, exports); }

NODE_API_MODULE(cubbydb, InitAddon)
