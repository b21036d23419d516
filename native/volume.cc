// Volume: see volume.h.
#include "volume.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "constants.h"

namespace cubby {
namespace {

// What the volumes of one environment share: the async context their
// completion callbacks run in (async_hooks sees them as "cubbydb:io").
struct EnvironmentData {
  napi_async_context asyncContext = nullptr;
};

EnvironmentData* DataOf(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<EnvironmentData*>(data);
}

// A broken invariant in the shim: stop the process with a message rather than
// corrupt memory or a store (TIGER_STYLE).
[[noreturn]] void Crash(const char* what) {
  std::fprintf(stderr, "cubbydb native shim: invariant broken: %s\n", what);
  std::abort();
}

void Check(napi_status status, const char* what) {
  if (status != napi_ok) Crash(what);
}

// Completions handled before the follow-up I/O they cause is submitted (see
// OnRingReadable). Smaller keeps the device busier, larger saves system calls:
// 4 KiB random reads at queue depth 32 on this project's virtio disk went
// from about 42K/s (all at once) to 56K/s with 4, while on tmpfs, where only
// the CPU counts, 4 costs about a fifth of the rate of handling all at once.
constexpr uint32_t kCompletionsPerTurn = 4;

const char* RingOpcodeName(Operation operation) {
  return operation == Operation::kRead ? "IORING_OP_READ" : "IORING_OP_WRITE";
}

// A descriptor field must be an exact non-negative integer below 2^53.
bool ReadField(double value, uint64_t* out) {
  if (!(value >= 0 && value <= 9007199254740991.0) || std::floor(value) != value) return false;
  *out = static_cast<uint64_t>(value);
  return true;
}

std::string Range(uint64_t offset, uint64_t length) {
  return Message("[", offset, ", ", offset + length, ")");
}

}  // namespace

bool InitializeEnvironment(napi_env env) {
  auto* data = new EnvironmentData;
  napi_value name;
  if (napi_create_string_utf8(env, "cubbydb:io", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, nullptr, name, &data->asyncContext) != napi_ok) {
    delete data;
    return false;
  }
  const napi_finalize release = [](napi_env finalizingEnv, void* finalizeData, void*) {
    auto* environment = static_cast<EnvironmentData*>(finalizeData);
    napi_async_destroy(finalizingEnv, environment->asyncContext);
    delete environment;
  };
  return napi_set_instance_data(env, data, release, nullptr) == napi_ok;
}

Volume::Volume(napi_env env, std::string path) : env_(env), path_(std::move(path)) {}

Volume::~Volume() {
  while (freeBatches_ != nullptr) delete std::exchange(freeBatches_, freeBatches_->nextSettled);
}

Volume* Volume::Open(napi_env env, const OpenOptions& options, IoPathChoice choice, Failure* failure) {
  auto* volume = new Volume(env, options.path);
  volume->readOnly_ = options.readOnly;
  if (!OpenTarget(options, &volume->target_, failure)) {
    delete volume;
    return nullptr;
  }

  if (choice != IoPathChoice::kThreadPool) {
    Failure ringFailure;
    volume->eventFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    auto ring = std::make_unique<Ring>();
    if (volume->eventFd_ < 0) {
      ringFailure = Failure::System(errno, "eventfd");
    } else if (ring->Setup(kQueueDepth, volume->target_.fd, volume->eventFd_, &ringFailure)) {
      volume->ring_ = std::move(ring);
    }
    if (volume->ring_ == nullptr) {
      if (volume->eventFd_ >= 0) close(std::exchange(volume->eventFd_, -1));
      if (choice == IoPathChoice::kIoUring) {
        close(volume->target_.fd);
        *failure = std::move(ringFailure);
        delete volume;
        return nullptr;
      }
      volume->ringUnavailableReason_ = ringFailure.message.empty()
                                           ? Message(ringFailure.syscall, ": ", DescribeErrno(ringFailure.errorNumber))
                                           : ringFailure.message;
    }
  }

  uv_loop_t* loop = nullptr;
  Check(napi_get_uv_event_loop(env, &loop), "napi_get_uv_event_loop");
  volume->workerResultsReady_.data = volume;
  if (uv_async_init(loop, &volume->workerResultsReady_, OnWorkerResultsReady) != 0) Crash("uv_async_init");
  uv_unref(reinterpret_cast<uv_handle_t*>(&volume->workerResultsReady_));
  volume->openUvHandles_++;
  if (volume->ring_ != nullptr) {
    volume->ringPoll_.data = volume;
    if (uv_poll_init(loop, &volume->ringPoll_, volume->eventFd_) != 0) Crash("uv_poll_init");
    if (uv_poll_start(&volume->ringPoll_, UV_READABLE, OnRingReadable) != 0) Crash("uv_poll_start");
    uv_unref(reinterpret_cast<uv_handle_t*>(&volume->ringPoll_));
    volume->openUvHandles_++;
  }
  Check(napi_add_async_cleanup_hook(env, OnEnvironmentTeardown, volume, &volume->teardownHook_), "napi_add_async_cleanup_hook");
  return volume;
}

void Volume::SetHandle(napi_ref self) { self_ = self; }

napi_value MakeJavaScriptError(napi_env env, const Failure& failure, const std::string& path) {
  std::string message = failure.message;
  if (message.empty()) {
    message = Message(failure.syscall, " ", path, ": ",
                      failure.errorNumber != 0 ? DescribeErrno(failure.errorNumber) : std::string(ErrorKindValue(failure.kind)));
  }
  napi_value text;
  napi_value error;
  Check(napi_create_string_utf8(env, message.c_str(), message.size(), &text), "create error message");
  Check(napi_create_error(env, nullptr, text, &error), "napi_create_error");
  auto setString = [&](const char* key, const std::string& value) {
    napi_value string;
    Check(napi_create_string_utf8(env, value.c_str(), value.size(), &string), "create error property");
    Check(napi_set_named_property(env, error, key, string), "set error property");
  };
  setString("kind", ErrorKindValue(failure.kind));
  setString("path", path);
  if (failure.syscall[0] != '\0') setString("syscall", failure.syscall);
  if (failure.lockHolderExited) {
    napi_value yes;
    Check(napi_get_boolean(env, true, &yes), "create lockHolderExited");
    Check(napi_set_named_property(env, error, "lockHolderExited", yes), "set lockHolderExited");
  }
  if (failure.errorNumber != 0) {
    setString("errno", ErrnoName(failure.errorNumber));
    napi_value number;
    Check(napi_create_int32(env, failure.errorNumber, &number), "create errno");
    Check(napi_set_named_property(env, error, "errnoNumber", number), "set errnoNumber");
  }
  return error;
}

// ---- accepting work (main thread, inside an N-API call) ----

Batch* Volume::NewBatch(Operation operation, uint32_t count) {
  Batch* batch = freeBatches_;
  if (batch != nullptr) {
    freeBatches_ = batch->nextSettled;
    freeBatchCount_--;
  } else {
    batch = new Batch;
  }
  batch->volume = this;
  batch->operation = operation;
  batch->requests.resize(count);
  for (Request& request : batch->requests) {
    request = Request{};
    request.batch = batch;
    request.run = RunOnWorker;
  }
  batch->nextToIssue = 0;
  batch->finished = 0;
  batch->failedIndex = -1;
  batch->onRequest = nullptr;
  batch->nextWaiting = nullptr;
  batch->nextSettled = nullptr;
  return batch;
}

void Volume::Recycle(Batch* batch) {
  if (batch->requests.capacity() > kRetainedRequestsPerBatch) std::vector<Request>().swap(batch->requests);
  if (freeBatchCount_ >= kMaxPendingBatches) {
    delete batch;
    return;
  }
  batch->nextSettled = freeBatches_;
  freeBatches_ = batch;
  freeBatchCount_++;
}

// Whether the volume can be used: open, and writable if `writing`.
bool Volume::Usable(bool writing, Failure* failure) const {
  if (closing_) {
    *failure = Failure::Of(ErrorKind::kClosed, path_ + " is closed");
    return false;
  }
  if (writing && readOnly_) {
    *failure = Failure::Of(ErrorKind::kReadOnly, path_ + " is open read-only");
    return false;
  }
  return true;
}

// Whether the volume takes another batch: usable, and under kMaxPendingBatches
// (NativeVolume waits for a slot rather than going past it).
bool Volume::Admit(bool writing, Failure* failure) const {
  if (!Usable(writing, failure)) return false;
  if (openBatches_ >= kMaxPendingBatches) {
    *failure = Failure::Of(ErrorKind::kInvalidArgument, Message(path_, ": ", kMaxPendingBatches, " batches are already pending; wait for one to settle"));
    return false;
  }
  return true;
}

bool Volume::Transfer(Operation operation, const double* descriptors, uint32_t count, const BufferView* buffers,
                      uint32_t bufferCount, napi_value onRequest, napi_value* promise, Failure* failure) {
  if (!Admit(operation == Operation::kWrite, failure)) return false;
  if (count == 0 || count > kMaxBatchRequests) {
    *failure = Failure::Of(ErrorKind::kInvalidArgument, Message("a batch holds 1 to ", kMaxBatchRequests, " requests, not ", count));
    return false;
  }
  const uint64_t sector = target_.sectorSize;
  Batch* batch = NewBatch(operation, count);
  for (uint32_t index = 0; index < count; index++) {
    const double* fields = descriptors + static_cast<size_t>(index) * kDescriptorFields;
    uint64_t offset, length, bufferIndex, bufferOffset;
    std::string problem;
    if (!ReadField(fields[kDescriptorOffset], &offset) || !ReadField(fields[kDescriptorLength], &length) ||
        !ReadField(fields[kDescriptorBufferIndex], &bufferIndex) || !ReadField(fields[kDescriptorBufferOffset], &bufferOffset)) {
      problem = "a descriptor field is not a non-negative integer";
    } else if (bufferIndex >= bufferCount) {
      problem = Message("buffer index ", bufferIndex, " is past the ", bufferCount, " buffers given");
    } else if (length == 0 || length > kMaxRequestBytes || length % sector != 0) {
      problem = Message("length ", length, " is not a positive multiple of the ", sector, "-byte sector up to ", kMaxRequestBytes);
    } else if (offset % sector != 0) {
      problem = Message("offset ", offset, " is not a multiple of the ", sector, "-byte sector");
    } else if (bufferOffset > buffers[bufferIndex].length || length > buffers[bufferIndex].length - bufferOffset) {
      problem = Message(length, " bytes at buffer offset ", bufferOffset, " overrun a ", buffers[bufferIndex].length, "-byte buffer");
    } else if (reinterpret_cast<uintptr_t>(buffers[bufferIndex].data + bufferOffset) % sector != 0) {
      problem = Message("the buffer memory at offset ", bufferOffset, " is not aligned to the ", sector, "-byte sector (use a buffer from allocate())");
    } else if (offset > target_.size || length > target_.size - offset) {
      problem = Message("bytes ", Range(offset, length), " lie past the end of the volume (", target_.size, " bytes)");
    }
    if (!problem.empty()) {
      Recycle(batch);
      *failure = Failure::Of(ErrorKind::kInvalidArgument, Message(path_, ": request ", index, ": ", problem));
      return false;
    }
    Request& request = batch->requests[index];
    request.address = buffers[bufferIndex].data + bufferOffset;
    request.offset = offset;
    request.length = length;
  }
  for (uint32_t index = 0; index < bufferCount; index++) {
    Pin(buffers[index].allocation);
    batch->pinned.push_back(buffers[index].allocation);
  }
  if (onRequest != nullptr) Check(napi_create_reference(env_, onRequest, 1, &batch->onRequest), "napi_create_reference");
  *promise = Accept(batch);
  return true;
}

bool Volume::Sync(napi_value* promise, Failure* failure) {
  if (!Admit(false, failure)) return false;
  *promise = Accept(NewBatch(Operation::kSync, 1));
  return true;
}

bool Volume::Discard(uint64_t offset, uint64_t length, napi_value* promise, Failure* failure) {
  if (!Admit(true, failure)) return false;
  const uint64_t sector = target_.sectorSize;
  if (length == 0 || offset % sector != 0 || length % sector != 0 || offset > target_.size || length > target_.size - offset) {
    *failure = Failure::Of(ErrorKind::kInvalidArgument, Message(path_, ": cannot discard ", Range(offset, length), " of a ", target_.size, "-byte volume with ", sector, "-byte sectors"));
    return false;
  }
  Batch* batch = NewBatch(Operation::kDiscard, 1);
  batch->requests[0].offset = offset;
  batch->requests[0].length = length;
  *promise = Accept(batch);
  return true;
}

bool Volume::Grow(uint64_t size, Failure* failure) {
  if (!Usable(true, failure)) return false;
  if (target_.kind != TargetKind::kFile || size % target_.sectorSize != 0) {
    *failure = Failure::Of(ErrorKind::kInvalidArgument, Message(path_, ": cannot grow to ", size, " bytes"));
    return false;
  }
  if (size <= target_.size) return true;
  if (!GrowFile(target_.fd, size, failure)) return false;
  target_.size = size;
  return true;
}

bool Volume::AllocatedBytes(uint64_t* bytes, Failure* failure) {
  if (!Usable(false, failure)) return false;
  return cubby::AllocatedBytes(target_.fd, target_.kind, target_.size, bytes, failure);
}

napi_value Volume::Accept(Batch* batch) {
  napi_value promise;
  Check(napi_create_promise(env_, &batch->deferred, &promise), "napi_create_promise");
  BeginWork();
  if (waitingTail_ == nullptr) waitingHead_ = batch;
  else waitingTail_->nextWaiting = batch;
  waitingTail_ = batch;
  Issue();
  SettleBatches();
  return promise;
}

// ---- issuing (main thread) ----

Request* Volume::NextRequest() {
  if (retryHead_ != nullptr) {
    Request* request = retryHead_;
    retryHead_ = request->nextRetry;
    request->nextRetry = nullptr;
    return request;
  }
  while (waitingHead_ != nullptr) {
    Batch* batch = waitingHead_;
    if (batch->nextToIssue < batch->requests.size()) return &batch->requests[batch->nextToIssue++];
    waitingHead_ = batch->nextWaiting;
    if (waitingHead_ == nullptr) waitingTail_ = nullptr;
    batch->nextWaiting = nullptr;
  }
  return nullptr;
}

void Volume::Issue() {
  while (inFlight_ < kQueueDepth) {
    Request* request = NextRequest();
    if (request == nullptr) break;
    if (request->batch->failedIndex >= 0 && request->batch->onRequest == nullptr) {
      FinishRequest(request);  // skipped: an earlier request of its batch failed
      continue;
    }
    const Operation operation = request->batch->operation;
    if (ring_ != nullptr && (operation == Operation::kRead || operation == Operation::kWrite)) {
      IssueToRing(request);
    } else {
      IssueToPool(request);
    }
  }
  if (!deferRingSubmit_) SubmitRing();
}

void Volume::IssueToRing(Request* request) {
  io_uring_sqe* entry = ring_->NextSubmission();
  if (entry == nullptr) Crash("io_uring submission queue full although in-flight requests are bounded by its size");
  entry->opcode = request->batch->operation == Operation::kRead ? IORING_OP_READ : IORING_OP_WRITE;
  entry->addr = reinterpret_cast<uintptr_t>(request->address + request->done);
  entry->len = static_cast<uint32_t>(request->length - request->done);
  entry->off = request->offset + request->done;
  entry->user_data = reinterpret_cast<uintptr_t>(request);
  inFlight_++;
  ringInFlight_++;
}

void Volume::IssueToPool(Request* request) {
  inFlight_++;
  poolInFlight_++;
  if (RunOnPool(request)) return;
  inFlight_--;
  poolInFlight_--;
  request->failure = Failure::System(errno, "pthread_create");
  FailRequest(request);
}

void Volume::SubmitRing() {
  if (ring_ == nullptr || ring_->Unsubmitted() == 0) return;
  Failure failure;
  if (ring_->Submit(&failure)) return;
  ring_->Withdraw([&](uint64_t userData) {
    Request* request = reinterpret_cast<Request*>(static_cast<uintptr_t>(userData));
    inFlight_--;
    ringInFlight_--;
    request->failure = failure;
    FailRequest(request);
  });
}

// ---- completing (main thread) ----

void Volume::FinishRequest(Request* request) {
  Batch* batch = request->batch;
  if (batch->onRequest != nullptr) {
    if (reportedTail_ == nullptr) reportedHead_ = request;
    else reportedTail_->nextReported = request;
    reportedTail_ = request;
  }
  batch->finished++;
  if (batch->finished == batch->requests.size()) {
    batch->nextSettled = settledHead_;
    settledHead_ = batch;
  }
}

void Volume::FailRequest(Request* request) {
  request->failed = true;
  Batch* batch = request->batch;
  if (batch->failedIndex < 0) batch->failedIndex = request - batch->requests.data();
  FinishRequest(request);
}

void Volume::OnRingCompletion(const io_uring_cqe& completion) {
  Request* request = reinterpret_cast<Request*>(static_cast<uintptr_t>(completion.user_data));
  inFlight_--;
  ringInFlight_--;
  if (draining_) {
    FinishRequest(request);
    return;
  }
  const Operation operation = request->batch->operation;
  if (completion.res < 0) {
    const int error = -completion.res;
    const bool batchGoesOn = request->batch->failedIndex < 0 || request->batch->onRequest != nullptr;
    if ((error == EINTR || error == EAGAIN) && request->retries < kMaxTransientRetries && batchGoesOn) {
      request->retries++;
      request->nextRetry = retryHead_;
      retryHead_ = request;
      return;
    }
    request->failure = Failure::System(error, RingOpcodeName(operation));
    FailRequest(request);
    return;
  }
  if (completion.res == 0) {
    request->failure = Failure::Of(ErrorKind::kEndOfFile, "");
    request->failure.syscall = RingOpcodeName(operation);
    FailRequest(request);
    return;
  }
  request->done += static_cast<uint64_t>(completion.res);
  request->retries = 0;
  if (request->done < request->length) {  // short transfer: issue the rest
    request->nextRetry = retryHead_;
    retryHead_ = request;
    return;
  }
  FinishRequest(request);
}

void Volume::OnWorkerResult(Request* request) {
  inFlight_--;
  poolInFlight_--;
  if (request->failed) FailRequest(request);
  else FinishRequest(request);
}

// The failure of a failed request, with a message naming the call, the
// volume and the byte range.
Failure Volume::DescribeRequestFailure(const Batch& batch, const Request& request) const {
  Failure failure = request.failure;
  if (!failure.message.empty()) return failure;
  const std::string range = batch.operation == Operation::kSync ? "" : Message(" ", Range(request.offset, request.length));
  std::string reason;
  if (failure.kind != ErrorKind::kEndOfFile) reason = DescribeErrno(failure.errorNumber);
  else if (batch.operation == Operation::kRead) reason = "end of file: the file is shorter than the volume (truncated by another program?)";
  else reason = "the write made no progress";
  failure.message = Message(failure.syscall, " ", path_, range, ": ", reason);
  return failure;
}

// Reports the finished requests of readEach batches, then settles finished
// batches. A batch finishes with its last request, which was queued for its
// report first, so a batch is released only after all its reports.
void Volume::SettleBatches() {
  while (reportedHead_ != nullptr) {
    Request* request = reportedHead_;
    reportedHead_ = request->nextReported;
    if (reportedHead_ == nullptr) reportedTail_ = nullptr;
    request->nextReported = nullptr;
    Report(request);
  }
  while (settledHead_ != nullptr) {
    Batch* batch = settledHead_;
    settledHead_ = batch->nextSettled;
    if (batch->failedIndex < 0 || batch->onRequest != nullptr) {
      napi_value undefined;
      Check(napi_get_undefined(env_, &undefined), "napi_get_undefined");
      Check(napi_resolve_deferred(env_, batch->deferred, undefined), "napi_resolve_deferred");
    } else {
      const Failure failure = DescribeRequestFailure(*batch, batch->requests[batch->failedIndex]);
      Check(napi_reject_deferred(env_, batch->deferred, MakeJavaScriptError(env_, failure, path_)), "napi_reject_deferred");
    }
    batch->deferred = nullptr;
    ReleaseBatch(batch);
    EndWork();
  }
}

// Calls a readEach batch's callback for one finished request. The callback
// must not throw (src/device/file.ts makes sure); if it does, the error is
// reported as uncaught, as for any other callback from the event loop.
void Volume::Report(Request* request) {
  const Batch& batch = *request->batch;
  napi_value callback, receiver, argv[2];
  Check(napi_get_reference_value(env_, batch.onRequest, &callback), "napi_get_reference_value");
  Check(napi_get_undefined(env_, &receiver), "napi_get_undefined");
  Check(napi_create_uint32(env_, static_cast<uint32_t>(request - batch.requests.data()), &argv[0]), "napi_create_uint32");
  if (request->failed) argv[1] = MakeJavaScriptError(env_, DescribeRequestFailure(batch, *request), path_);
  else argv[1] = receiver;
  if (napi_call_function(env_, receiver, callback, 2, argv, nullptr) == napi_pending_exception) {
    napi_value error;
    Check(napi_get_and_clear_last_exception(env_, &error), "napi_get_and_clear_last_exception");
    napi_fatal_exception(env_, error);
  }
}

// Unpins a finished batch's memory and keeps the record for reuse.
void Volume::ReleaseBatch(Batch* batch) {
  for (AllocationHeader* allocation : batch->pinned) Unpin(env_, allocation);
  batch->pinned.clear();
  if (batch->onRequest != nullptr) napi_delete_reference(env_, std::exchange(batch->onRequest, nullptr));
  Recycle(batch);
}

void Volume::BeginWork() {
  if (openBatches_++ > 0) return;
  uint32_t count;
  Check(napi_reference_ref(env_, self_, &count), "hold the handle while busy");
  uv_ref(reinterpret_cast<uv_handle_t*>(&workerResultsReady_));
  if (ring_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(&ringPoll_));
}

void Volume::EndWork() {
  if (--openBatches_ > 0) return;
  uint32_t count;
  Check(napi_reference_unref(env_, self_, &count), "release the handle when idle");
  uv_unref(reinterpret_cast<uv_handle_t*>(&workerResultsReady_));
  if (ring_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(&ringPoll_));
  if (closing_ && !closed_) CompleteClose();
}

napi_value Volume::Close() {
  napi_value promise;
  napi_deferred deferred;
  Check(napi_create_promise(env_, &deferred, &promise), "napi_create_promise");
  closeWaiters_.push_back(deferred);
  closing_ = true;
  if (openBatches_ == 0) CompleteClose();
  return promise;
}

void Volume::CompleteClose() {
  if (!closed_) ReleaseResources();
  napi_value undefined;
  Check(napi_get_undefined(env_, &undefined), "napi_get_undefined");
  for (napi_deferred waiter : closeWaiters_) Check(napi_resolve_deferred(env_, waiter, undefined), "resolve close");
  closeWaiters_.clear();
}

// ---- callbacks from the event loop (main thread) ----

template <typename Work>
void Volume::InCallbackScope(Work work) {
  napi_handle_scope handleScope;
  Check(napi_open_handle_scope(env_, &handleScope), "napi_open_handle_scope");
  // Promise reactions run when the callback scope closes, and may ask for
  // more I/O: it is held back until then and goes to the kernel in one
  // io_uring_enter. Should that submission fail, its batches settle in a
  // second scope, so that their reactions run too.
  deferRingSubmit_ = true;
  for (bool first = true;; first = false) {
    napi_callback_scope callbackScope;
    Check(napi_open_callback_scope(env_, nullptr, DataOf(env_)->asyncContext, &callbackScope), "napi_open_callback_scope");
    if (first) work();
    SettleBatches();
    Check(napi_close_callback_scope(env_, callbackScope), "napi_close_callback_scope");
    if (closed_ || !JavaScriptCanRun()) break;  // closed, or a reaction stopped the environment (process.exit in a worker)
    SubmitRing();
    if (settledHead_ == nullptr) break;
  }
  deferRingSubmit_ = false;
  Check(napi_close_handle_scope(env_, handleScope), "napi_close_handle_scope");
}

// False once the environment is stopping (a worker's process.exit, or its
// teardown running the loop one last time): then completions are left for
// OnEnvironmentTeardown to drain, and no promise is touched.
bool Volume::JavaScriptCanRun() const {
  napi_value undefined;
  bool same = false;
  return napi_get_undefined(env_, &undefined) == napi_ok && napi_strict_equals(env_, undefined, undefined, &same) == napi_ok;
}

void Volume::OnRingReadable(uv_poll_t* handle, int status, int) {
  auto* volume = static_cast<Volume*>(handle->data);
  if (status < 0 || volume->closed_) return;
  uint64_t signals;
  while (read(volume->eventFd_, &signals, sizeof signals) < 0 && errno == EINTR) {
  }
  if (!volume->JavaScriptCanRun()) return;
  // Completions are handled a few at a time, each group's follow-up I/O
  // submitted before the next group: handling all of them first would leave
  // the device idle while JavaScript runs.
  do {
    volume->InCallbackScope([volume] {
      volume->ring_->Reap([volume](const io_uring_cqe& completion) { volume->OnRingCompletion(completion); }, kCompletionsPerTurn);
      volume->Issue();
    });
  } while (!volume->closed_ && volume->ring_->HasCompletions() && volume->JavaScriptCanRun());
}

void Volume::OnWorkerResultsReady(uv_async_t* handle) {
  auto* volume = static_cast<Volume*>(handle->data);
  if (volume->closed_ || !volume->JavaScriptCanRun()) return;
  volume->InCallbackScope([volume] {
    for (Request* request = volume->TakeWorkerResults(); request != nullptr;) {
      Request* next = static_cast<Request*>(request->next);
      volume->OnWorkerResult(request);
      request = next;
    }
    volume->Issue();
  });
}

// ---- pool workers ----

void Volume::RunOnWorker(PoolTask* task) {
  auto* request = static_cast<Request*>(task);
  Batch* batch = request->batch;
  const Volume* volume = batch->volume;
  const int fd = volume->target_.fd;
  bool ok = false;
  switch (batch->operation) {
    case Operation::kRead:
      ok = BlockingRead(fd, request->address, request->length, request->offset, &request->done, &request->failure);
      break;
    case Operation::kWrite:
      ok = BlockingWrite(fd, request->address, request->length, request->offset, &request->done, &request->failure);
      break;
    case Operation::kSync:
      ok = BlockingSync(fd, &request->failure);
      break;
    case Operation::kDiscard:
      ok = BlockingDiscard(fd, volume->target_.kind, request->offset, request->length, &request->failure);
      break;
  }
  request->failed = !ok;
  batch->volume->PostWorkerResult(request);
}

void Volume::PostWorkerResult(Request* request) {
  // uv_async_send happens under the lock: once the main thread has taken the
  // last result it may close the async handle and free this volume.
  std::lock_guard<std::mutex> lock(completionMutex_);
  request->next = workerResults_;
  workerResults_ = request;
  uv_async_send(&workerResultsReady_);
  workerResultPosted_.notify_one();
}

Request* Volume::TakeWorkerResults() {
  Request* reversed;
  {
    std::lock_guard<std::mutex> lock(completionMutex_);
    reversed = std::exchange(workerResults_, nullptr);
  }
  Request* inOrder = nullptr;
  while (reversed != nullptr) {
    Request* next = static_cast<Request*>(reversed->next);
    reversed->next = inOrder;
    inOrder = reversed;
    reversed = next;
  }
  return inOrder;
}

// ---- teardown (main thread) ----

// Teardown without JavaScript: waits for every request in flight, skips the
// ones not yet issued, and releases every open batch (unpinning its memory)
// without settling its promise, which nobody can observe any more.
void Volume::DrainSynchronously() {
  draining_ = true;
  if (ring_ != nullptr) {
    ring_->Withdraw([&](uint64_t userData) {
      inFlight_--;
      ringInFlight_--;
      FinishRequest(reinterpret_cast<Request*>(static_cast<uintptr_t>(userData)));
    });
  }
  for (Request* request = NextRequest(); request != nullptr; request = NextRequest()) FinishRequest(request);
  while (inFlight_ > 0) {
    if (ringInFlight_ > 0) {
      Failure failure;
      if (!ring_->WaitForCompletion(&failure)) Crash("io_uring_enter failed while waiting for in-flight I/O at teardown");
      ring_->Reap([this](const io_uring_cqe& completion) { OnRingCompletion(completion); });
      continue;
    }
    {
      std::unique_lock<std::mutex> lock(completionMutex_);
      workerResultPosted_.wait(lock, [this] { return workerResults_ != nullptr; });
    }
    for (Request* request = TakeWorkerResults(); request != nullptr;) {
      Request* next = static_cast<Request*>(request->next);
      OnWorkerResult(request);
      request = next;
    }
  }
  reportedHead_ = reportedTail_ = nullptr;  // nobody can observe the reports any more
  while (settledHead_ != nullptr) {
    Batch* batch = std::exchange(settledHead_, settledHead_->nextSettled);
    ReleaseBatch(batch);
    openBatches_--;
  }
}

void Volume::ReleaseResources() {
  if (inFlight_ != 0) Crash("releasing a volume with I/O in flight");
  closing_ = true;
  closed_ = true;
  if (ring_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(&ringPoll_), OnHandleClosed);
    ring_.reset();
    close(eventFd_);
    eventFd_ = -1;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&workerResultsReady_), OnHandleClosed);
  close(target_.fd);  // releases the flock and the O_EXCL claim
  target_.fd = -1;
}

void Volume::OnHandleClosed(uv_handle_t* handle) {
  auto* volume = static_cast<Volume*>(handle->data);
  if (--volume->openUvHandles_ > 0) return;
  napi_remove_async_cleanup_hook(volume->teardownHook_);
  volume->teardownHook_ = nullptr;
  volume->DeleteWhenUnused();
}

void Volume::OnEnvironmentTeardown(napi_async_cleanup_hook_handle, void* data) {
  auto* volume = static_cast<Volume*>(data);
  if (volume->closed_) return;  // its handles are closing; the last one removes this hook
  volume->DrainSynchronously();
  volume->ReleaseResources();
}

void Volume::Finalize() {
  finalized_ = true;
  if (self_ != nullptr) napi_delete_reference(env_, self_);
  self_ = nullptr;
  if (!closed_) {
    DrainSynchronously();
    ReleaseResources();
  }
  DeleteWhenUnused();
}

void Volume::DeleteWhenUnused() {
  if (finalized_ && openUvHandles_ == 0) delete this;
}

}  // namespace cubby
