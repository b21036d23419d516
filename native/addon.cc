// Entry point of the native shim: the flat table of functions the TypeScript
// side calls (src/native.ts is the typed view of this table).
//
// The shim is flat: an opaque handle (an External wrapping a Volume, tagged
// so that no other External passes for one) plus functions over it. It knows
// nothing of buckets, logs or compression; only files, devices, buffers and
// bytes. Every function runs on the main thread of the calling environment.
// Arguments are validated in TypeScript first and again here: a wrong type is
// a TypeError (a bug in the caller); a request the volume cannot serve is an
// Error with `kind` (see failure.h), thrown before any I/O is issued.
//
//   open(path, { readOnly, create, buffered, ioPath }) -> {
//       handle, kind: 'file' | 'block', size, sectorSize, physicalSectorSize,
//       directIo, ioPath: 'io_uring' | 'threadpool', ioUringUnavailable?,
//       deviceMajor, deviceMinor }
//   read(handle, descriptors: Float64Array, count, buffers: Uint8Array[]) -> Promise<void>
//   write(handle, descriptors, count, buffers) -> Promise<void>
//       one batch of `count` requests laid out as kDescriptorFields numbers
//       each (constants.h); `buffers` is kept alive until the batch settles
//   readEach(handle, descriptors, count, buffers, onRequest) -> Promise<void>
//       a read batch whose requests are reported one by one as they finish,
//       onRequest(index, error | undefined); the promise resolves after the
//       last report (volume.h, Batch::onRequest)
//   sync(handle) -> Promise<void>                      fdatasync
//   discard(handle, offset, length) -> Promise<void>   punch hole / discard
//   grow(handle, size) -> void                         ftruncate, files only
//   allocatedBytes(handle) -> number                   st_blocks * 512, or the device size
//   close(handle) -> Promise<void>                     waits for I/O in flight
//   allocate(bytes) -> Buffer                          zero-filled, kBufferAlignment-aligned
//   crc32c(data, start, end, seed) -> number
//   lz4Decode(source, start, end, target, targetStart, targetEnd) -> number
//       bytes decoded into target[targetStart, targetEnd), or -1 (lz4.h)
//   constants                                          everything in constants.h
#include <napi.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "allocation.h"
#include "constants.h"
#include "crc32c.h"
#include "lz4.h"
#include "volume.h"

namespace cubby {
namespace {

// Marks Externals created by open(), so that no other External passes for a volume.
constexpr napi_type_tag kVolumeTag = {0x6375626279646221ULL, 0x766f6c756d650001ULL};

// Node's largest Buffer (buffer.constants.MAX_LENGTH on 64-bit Node 20).
constexpr double kMaxAllocationBytes = 4294967296.0;

void ThrowFailure(Napi::Env env, const Failure& failure, const std::string& path) {
  napi_throw(env, MakeJavaScriptError(env, failure, path));
}

// What an N-API entry returns for an operation the volume accepted (its
// promise) or refused (undefined, with the failure thrown).
Napi::Value PromiseOrThrow(Napi::Env env, const Volume& volume, bool accepted, napi_value promise, const Failure& failure) {
  if (accepted) return Napi::Value(env, promise);
  ThrowFailure(env, failure, volume.path());
  return env.Undefined();
}

Napi::Value ThrowTypeError(Napi::Env env, const char* message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

// The Volume behind a handle argument, or nullptr with a TypeError thrown.
Volume* VolumeOf(Napi::Env env, Napi::Value handle) {
  bool tagged = false;
  if (handle.IsExternal() && napi_check_object_type_tag(env, handle, &kVolumeTag, &tagged) == napi_ok && tagged) {
    return handle.As<Napi::External<Volume>>().Data();
  }
  ThrowTypeError(env, "expected a volume handle from open()");
  return nullptr;
}

// An integer argument in [0, 2^53), or false with a TypeError thrown.
bool ByteCount(Napi::Env env, Napi::Value value, uint64_t* out) {
  if (value.IsNumber()) {
    const double number = value.As<Napi::Number>().DoubleValue();
    if (number >= 0 && number <= 9007199254740991.0 && std::floor(number) == number) {
      *out = static_cast<uint64_t>(number);
      return true;
    }
  }
  ThrowTypeError(env, "expected a non-negative integer byte count");
  return false;
}

bool BooleanOption(Napi::Object options, const char* name) {
  Napi::Value value = options.Get(name);
  return value.IsBoolean() && value.As<Napi::Boolean>().Value();
}

Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsString() || !info[1].IsObject()) {
    return ThrowTypeError(env, "open(path, options) expects a string and an object");
  }
  OpenOptions options;
  options.path = info[0].As<Napi::String>().Utf8Value();
  Napi::Object given = info[1].As<Napi::Object>();
  options.readOnly = BooleanOption(given, "readOnly");
  options.create = BooleanOption(given, "create");
  options.buffered = BooleanOption(given, "buffered");
  const Napi::Value ioPath = given.Get("ioPath");
  const std::string ioPathName = ioPath.IsString() ? ioPath.As<Napi::String>().Utf8Value() : "";
  IoPathChoice choice;
  if (ioPathName == "auto") choice = IoPathChoice::kAuto;
  else if (ioPathName == "io_uring") choice = IoPathChoice::kIoUring;
  else if (ioPathName == "threadpool") choice = IoPathChoice::kThreadPool;
  else return ThrowTypeError(env, "options.ioPath must be 'auto', 'io_uring' or 'threadpool'");

  Failure failure;
  Volume* volume = Volume::Open(env, options, choice, &failure);
  if (volume == nullptr) {
    ThrowFailure(env, failure, options.path);
    return env.Undefined();
  }
  napi_value handle;
  napi_ref self;
  const napi_finalize finalize = [](napi_env, void* data, void*) { static_cast<Volume*>(data)->Finalize(); };
  if (napi_create_external(env, volume, finalize, nullptr, &handle) != napi_ok ||
      napi_type_tag_object(env, handle, &kVolumeTag) != napi_ok || napi_create_reference(env, handle, 0, &self) != napi_ok) {
    std::fprintf(stderr, "cubbydb native shim: cannot create a volume handle\n");
    std::abort();
  }
  volume->SetHandle(self);

  const OpenedTarget& target = volume->target();
  Napi::Object result = Napi::Object::New(env);
  result.Set("handle", Napi::Value(env, handle));
  result.Set("kind", target.kind == TargetKind::kBlockDevice ? "block" : "file");
  result.Set("size", static_cast<double>(target.size));
  result.Set("sectorSize", target.sectorSize);
  result.Set("physicalSectorSize", target.physicalSectorSize);
  result.Set("directIo", target.directIo);
  result.Set("ioPath", volume->usesRing() ? "io_uring" : "threadpool");
  if (!volume->ringUnavailableReason().empty()) result.Set("ioUringUnavailable", volume->ringUnavailableReason());
  result.Set("deviceMajor", target.deviceMajor);
  result.Set("deviceMinor", target.deviceMinor);
  return result;
}

// read / write / readEach: the hot path. One call per batch, a handful of
// N-API calls per distinct buffer, and no allocation in steady state.
Napi::Value Transfer(const Napi::CallbackInfo& info, Operation operation, bool each) {
  Napi::Env env = info.Env();
  if (info.Length() != (each ? 5u : 4u)) return ThrowTypeError(env, "read/write(handle, descriptors, count, buffers) and readEach(..., onRequest) take four and five arguments");
  if (each && !info[4].IsFunction()) return ThrowTypeError(env, "readEach expects a function as its fifth argument");
  Volume* volume = VolumeOf(env, info[0]);
  if (volume == nullptr) return env.Undefined();
  napi_typedarray_type type;
  size_t descriptorCount;
  void* descriptorData;
  double count;
  if (napi_get_typedarray_info(env, info[1], &type, &descriptorCount, &descriptorData, nullptr, nullptr) != napi_ok ||
      type != napi_float64_array || napi_get_value_double(env, info[2], &count) != napi_ok || !info[3].IsArray()) {
    return ThrowTypeError(env, "read/write(handle, descriptors, count, buffers) expects a handle, a Float64Array, a number and an array");
  }
  if (!(count >= 0 && count <= kMaxBatchRequests) || std::floor(count) != count || count * kDescriptorFields > descriptorCount) {
    return ThrowTypeError(env, "count exceeds the descriptors given or the largest batch");
  }
  Napi::Array bufferArray = info[3].As<Napi::Array>();
  const uint32_t bufferCount = bufferArray.Length();
  if (bufferCount > kMaxBatchRequests) return ThrowTypeError(env, "more buffers than the largest batch has requests");
  std::vector<BufferView>& views = volume->bufferScratch();
  if (views.size() < bufferCount) views.resize(bufferCount);
  for (uint32_t index = 0; index < bufferCount; index++) {
    napi_value element;
    BufferView& view = views[index];
    if (napi_get_element(env, bufferArray, index, &element) != napi_ok ||
        (view.allocation = FindAllocation(env, element, &view.data, &view.length)) == nullptr) {
      ThrowFailure(env, Failure::Of(ErrorKind::kInvalidArgument, Message(volume->path(), ": buffer ", index, " does not come from allocate()")),
                   volume->path());
      return env.Undefined();
    }
  }
  napi_value promise;
  Failure failure;
  const bool accepted = volume->Transfer(operation, static_cast<const double*>(descriptorData), static_cast<uint32_t>(count),
                                         views.data(), bufferCount, each ? static_cast<napi_value>(info[4]) : nullptr, &promise, &failure);
  return PromiseOrThrow(env, *volume, accepted, promise, failure);
}

Napi::Value Read(const Napi::CallbackInfo& info) { return Transfer(info, Operation::kRead, false); }
Napi::Value ReadEach(const Napi::CallbackInfo& info) { return Transfer(info, Operation::kRead, true); }
Napi::Value Write(const Napi::CallbackInfo& info) { return Transfer(info, Operation::kWrite, false); }

Napi::Value Sync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Volume* volume = VolumeOf(env, info[0]);
  if (volume == nullptr) return env.Undefined();
  napi_value promise;
  Failure failure;
  const bool accepted = volume->Sync(&promise, &failure);
  return PromiseOrThrow(env, *volume, accepted, promise, failure);
}

Napi::Value Discard(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Volume* volume = VolumeOf(env, info[0]);
  uint64_t offset, length;
  if (volume == nullptr || !ByteCount(env, info[1], &offset) || !ByteCount(env, info[2], &length)) return env.Undefined();
  napi_value promise;
  Failure failure;
  const bool accepted = volume->Discard(offset, length, &promise, &failure);
  return PromiseOrThrow(env, *volume, accepted, promise, failure);
}

Napi::Value Grow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Volume* volume = VolumeOf(env, info[0]);
  uint64_t size;
  if (volume == nullptr || !ByteCount(env, info[1], &size)) return env.Undefined();
  Failure failure;
  if (!volume->Grow(size, &failure)) ThrowFailure(env, failure, volume->path());
  return env.Undefined();
}

Napi::Value AllocatedBytesFunction(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Volume* volume = VolumeOf(env, info[0]);
  if (volume == nullptr) return env.Undefined();
  uint64_t bytes = 0;
  Failure failure;
  if (!volume->AllocatedBytes(&bytes, &failure)) {
    ThrowFailure(env, failure, volume->path());
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(bytes));
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Volume* volume = VolumeOf(env, info[0]);
  if (volume == nullptr) return env.Undefined();
  return Napi::Value(env, volume->Close());
}

// allocate(bytes): memory the shim owns (allocation.h), aligned for direct
// I/O, freed when neither the Buffer nor a batch in flight uses it. V8 is
// told of it so that it paces collection.
Napi::Value Allocate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsNumber()) return ThrowTypeError(env, "allocate(bytes) expects a number");
  const double requested = info[0].As<Napi::Number>().DoubleValue();
  if (!(requested >= 0 && requested <= kMaxAllocationBytes) || std::floor(requested) != requested) {
    Napi::RangeError::New(env, "allocate: bytes must be an integer from 0 to 2^32").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const size_t bytes = static_cast<size_t>(requested);
  napi_value buffer;
  if (!NewAllocation(env, bytes, &buffer)) {
    Failure failure = Failure::System(errno, "posix_memalign");
    failure.message = Message("cannot allocate ", bytes, " aligned bytes: ", DescribeErrno(errno));
    ThrowFailure(env, failure, "");
    return env.Undefined();
  }
  return Napi::Value(env, buffer);
}

// crc32c(data: Uint8Array, start: number, end: number, seed: number): number
Napi::Value Crc32cFunction(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4 || !info[0].IsTypedArray() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber()) {
    return ThrowTypeError(env, "crc32c(data, start, end, seed) expects a Uint8Array and three numbers");
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

// lz4Decode(source, start, end, target, targetStart, targetEnd): number
Napi::Value Lz4DecodeFunction(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto isBytes = [](const Napi::Value& value) {
    return value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
  };
  if (info.Length() != 6 || !isBytes(info[0]) || !isBytes(info[3])) {
    return ThrowTypeError(env, "lz4Decode(source, start, end, target, targetStart, targetEnd) expects two Uint8Arrays and four numbers");
  }
  for (size_t index : {1, 2, 4, 5}) {
    if (!info[index].IsNumber()) return ThrowTypeError(env, "lz4Decode: offsets must be numbers");
  }
  Napi::Uint8Array source = info[0].As<Napi::Uint8Array>();
  Napi::Uint8Array target = info[3].As<Napi::Uint8Array>();
  const double start = info[1].As<Napi::Number>().DoubleValue();
  const double end = info[2].As<Napi::Number>().DoubleValue();
  const double targetStart = info[4].As<Napi::Number>().DoubleValue();
  const double targetEnd = info[5].As<Napi::Number>().DoubleValue();
  if (!(start >= 0 && start <= end && end <= static_cast<double>(source.ByteLength())) ||
      !(targetStart >= 0 && targetStart <= targetEnd && targetEnd <= static_cast<double>(target.ByteLength())) ||
      std::floor(start) != start || std::floor(end) != end || std::floor(targetStart) != targetStart || std::floor(targetEnd) != targetEnd) {
    Napi::RangeError::New(env, "lz4Decode: a range lies outside its buffer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int64_t written = Lz4DecodeBlock(source.Data() + static_cast<size_t>(start), static_cast<size_t>(end - start),
                                         target.Data() + static_cast<size_t>(targetStart), static_cast<size_t>(targetEnd - targetStart));
  return Napi::Number::New(env, static_cast<double>(written));
}

Napi::Object ExportConstants(Napi::Env env) {
  Napi::Object constants = Napi::Object::New(env);
  constants.Set("BLOCK_SIZE", kBlockSize);
  constants.Set("BUFFER_ALIGNMENT", kBufferAlignment);
  constants.Set("MAX_BATCH_REQUESTS", kMaxBatchRequests);
  constants.Set("MAX_REQUEST_BYTES", kMaxRequestBytes);
  constants.Set("QUEUE_DEPTH", kQueueDepth);
  constants.Set("MAX_PENDING_BATCHES", kMaxPendingBatches);
  constants.Set("THREAD_POOL_THREADS", kThreadPoolThreads);
  constants.Set("DESCRIPTOR_FIELDS", kDescriptorFields);
  constants.Set("DESCRIPTOR_OFFSET", kDescriptorOffset);
  constants.Set("DESCRIPTOR_LENGTH", kDescriptorLength);
  constants.Set("DESCRIPTOR_BUFFER_INDEX", kDescriptorBufferIndex);
  constants.Set("DESCRIPTOR_BUFFER_OFFSET", kDescriptorBufferOffset);
  Napi::Object kinds = Napi::Object::New(env);
  for (const ErrorKindName& kind : kErrorKindNames) kinds.Set(kind.key, kind.value);
  constants.Set("ERROR_KINDS", kinds);
  return constants;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (!InitializeEnvironment(env)) {
    Napi::Error::New(env, "cubbydb: cannot initialize the native shim for this environment").ThrowAsJavaScriptException();
    return exports;
  }
  exports.Set("constants", ExportConstants(env));
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("read", Napi::Function::New(env, Read, "read"));
  exports.Set("readEach", Napi::Function::New(env, ReadEach, "readEach"));
  exports.Set("write", Napi::Function::New(env, Write, "write"));
  exports.Set("sync", Napi::Function::New(env, Sync, "sync"));
  exports.Set("discard", Napi::Function::New(env, Discard, "discard"));
  exports.Set("grow", Napi::Function::New(env, Grow, "grow"));
  exports.Set("allocatedBytes", Napi::Function::New(env, AllocatedBytesFunction, "allocatedBytes"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("allocate", Napi::Function::New(env, Allocate, "allocate"));
  exports.Set("crc32c", Napi::Function::New(env, Crc32cFunction, "crc32c"));
  exports.Set("lz4Decode", Napi::Function::New(env, Lz4DecodeFunction, "lz4Decode"));
  return exports;
}

}  // namespace cubby

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return cubby::Init(env, exports); }

NODE_API_MODULE(cubbydb, InitAddon)
