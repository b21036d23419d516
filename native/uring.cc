// Ring: see uring.h.
#include "uring.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace cubby {
namespace {

#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif

int SetupSystemCall(uint32_t entries, io_uring_params* params) {
  return static_cast<int>(syscall(__NR_io_uring_setup, entries, params));
}

int EnterSystemCall(int ringFd, uint32_t toSubmit, uint32_t minimumComplete, uint32_t flags) {
  return static_cast<int>(syscall(__NR_io_uring_enter, ringFd, toSubmit, minimumComplete, flags, nullptr, 0));
}

int RegisterSystemCall(int ringFd, uint32_t opcode, const void* argument, uint32_t count) {
  return static_cast<int>(syscall(__NR_io_uring_register, ringFd, opcode, argument, count));
}

// Adds the io_uring_disabled sysctl to an EPERM from io_uring_setup: it is
// the usual reason (1: only members of kernel.io_uring_group; 2: nobody).
void ExplainSetupFailure(Failure* failure) {
  if (failure->errorNumber != EPERM) return;
  FILE* file = std::fopen("/proc/sys/kernel/io_uring_disabled", "r");
  if (file == nullptr) return;
  int disabled = 0;
  if (std::fscanf(file, "%d", &disabled) == 1 && disabled != 0) {
    failure->message = Message("io_uring_setup: ", DescribeErrno(EPERM), "; kernel.io_uring_disabled is ", disabled);
  }
  std::fclose(file);
}

void* MapRing(int ringFd, size_t bytes, off_t offset) {
  void* address = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ringFd, offset);
  return address == MAP_FAILED ? nullptr : address;
}

template <typename T>
T* At(void* base, uint32_t offset) {
  return reinterpret_cast<T*>(static_cast<uint8_t*>(base) + offset);
}

}  // namespace

Ring::~Ring() {
  if (sqes_ != nullptr) munmap(sqes_, sqesBytes_);
  if (cqRing_ != nullptr && cqRing_ != sqRing_) munmap(cqRing_, cqRingBytes_);
  if (sqRing_ != nullptr) munmap(sqRing_, sqRingBytes_);
  if (ringFd_ >= 0) close(ringFd_);
}

bool Ring::Setup(uint32_t entries, int fd, int eventFd, Failure* failure) {
  io_uring_params params;
  std::memset(&params, 0, sizeof params);
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN;
  params.cq_entries = entries * 2;
  ringFd_ = SetupSystemCall(entries, &params);
  if (ringFd_ < 0 && errno == EINVAL) {
    // A kernel older than 6.0 does not know the two optional flags.
    std::memset(&params, 0, sizeof params);
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = entries * 2;
    ringFd_ = SetupSystemCall(entries, &params);
  }
  if (ringFd_ < 0) {
    *failure = Failure::System(errno, "io_uring_setup");
    ExplainSetupFailure(failure);
    return false;
  }

  sqRingBytes_ = params.sq_off.array + params.sq_entries * sizeof(uint32_t);
  cqRingBytes_ = params.cq_off.cqes + params.cq_entries * sizeof(io_uring_cqe);
  const bool singleMapping = (params.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (singleMapping) sqRingBytes_ = cqRingBytes_ = std::max(sqRingBytes_, cqRingBytes_);
  sqRing_ = MapRing(ringFd_, sqRingBytes_, IORING_OFF_SQ_RING);
  if (sqRing_ != nullptr) cqRing_ = singleMapping ? sqRing_ : MapRing(ringFd_, cqRingBytes_, IORING_OFF_CQ_RING);
  sqesBytes_ = params.sq_entries * sizeof(io_uring_sqe);
  if (cqRing_ != nullptr) sqes_ = static_cast<io_uring_sqe*>(MapRing(ringFd_, sqesBytes_, IORING_OFF_SQES));
  if (sqes_ == nullptr) {
    *failure = Failure::System(errno, "mmap(io_uring)");
    return false;
  }

  sqTail_ = At<uint32_t>(sqRing_, params.sq_off.tail);
  sqMask_ = *At<uint32_t>(sqRing_, params.sq_off.ring_mask);
  sqEntries_ = params.sq_entries;
  uint32_t* indexes = At<uint32_t>(sqRing_, params.sq_off.array);
  for (uint32_t index = 0; index < sqEntries_; index++) indexes[index] = index;
  sqeTail_ = submitted_ = *sqTail_;
  cqHead_ = At<uint32_t>(cqRing_, params.cq_off.head);
  cqTail_ = At<uint32_t>(cqRing_, params.cq_off.tail);
  cqMask_ = *At<uint32_t>(cqRing_, params.cq_off.ring_mask);
  cqes_ = At<io_uring_cqe>(cqRing_, params.cq_off.cqes);

  // IORING_OP_READ and IORING_OP_WRITE arrived in Linux 5.6, with the probe.
  std::vector<uint8_t> probeBytes(sizeof(io_uring_probe) + IORING_OP_LAST * sizeof(io_uring_probe_op), 0);
  auto* probe = reinterpret_cast<io_uring_probe*>(probeBytes.data());
  if (RegisterSystemCall(ringFd_, IORING_REGISTER_PROBE, probe, IORING_OP_LAST) < 0) {
    *failure = Failure::System(errno, "io_uring_register(PROBE)");
    return false;
  }
  for (const int opcode : {IORING_OP_READ, IORING_OP_WRITE}) {
    if (opcode > probe->last_op || (probe->ops[opcode].flags & IO_URING_OP_SUPPORTED) == 0) {
      *failure = Failure::Of(ErrorKind::kSystem, "io_uring: this kernel has no IORING_OP_READ / IORING_OP_WRITE (Linux 5.6 or later needed)");
      failure->errorNumber = EOPNOTSUPP;
      failure->syscall = "io_uring_register(PROBE)";
      return false;
    }
  }

  // The fd is not registered as a fixed file: a registered file would stay
  // referenced (and its flock held) until the kernel's asynchronous ring
  // teardown, after close() has already reported the volume closed.
  fd_ = fd;
  if (RegisterSystemCall(ringFd_, IORING_REGISTER_EVENTFD, &eventFd, 1) < 0) {
    *failure = Failure::System(errno, "io_uring_register(EVENTFD)");
    return false;
  }
  return true;
}

io_uring_sqe* Ring::NextSubmission() {
  if (sqeTail_ - submitted_ >= sqEntries_) return nullptr;
  io_uring_sqe* entry = &sqes_[sqeTail_ & sqMask_];
  sqeTail_++;
  std::memset(entry, 0, sizeof *entry);
  entry->fd = fd_;
  return entry;
}

bool Ring::Submit(Failure* failure) {
  __atomic_store_n(sqTail_, sqeTail_, __ATOMIC_RELEASE);
  while (submitted_ != sqeTail_) {
    const int consumed = EnterSystemCall(ringFd_, sqeTail_ - submitted_, 0, 0);
    if (consumed > 0) {
      submitted_ += static_cast<uint32_t>(consumed);
      continue;
    }
    if (consumed < 0 && errno == EINTR) continue;
    *failure = Failure::System(consumed < 0 ? errno : EAGAIN, "io_uring_enter");
    return false;
  }
  return true;
}

bool Ring::WaitForCompletion(Failure* failure) {
  for (;;) {
    if (EnterSystemCall(ringFd_, 0, 1, IORING_ENTER_GETEVENTS) >= 0) return true;
    if (errno == EINTR) continue;
    *failure = Failure::System(errno, "io_uring_enter");
    return false;
  }
}

}  // namespace cubby
