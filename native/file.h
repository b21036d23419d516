// Opening a target (image file or block device) for direct I/O, and the
// blocking system calls on it.
//
// Nothing here knows N-API or any thread: OpenTarget runs on the main thread
// when a volume opens; the Blocking* transfers run on pool worker threads;
// GrowFile and AllocatedBytes run on the main thread. Every function reports
// failure through a Failure and returns false, never throws.
//
// Opening takes, in order: the open(2) of the path (O_CLOEXEC, O_RDWR or
// O_RDONLY, O_CREAT when asked); for a block device a second open with
// O_EXCL | O_DIRECT, which fails with EBUSY when it is mounted or held, and a
// BLKROGET check that refuses a writable open of a read-only device; for a
// file O_DIRECT through fcntl(F_SETFL), whose EINVAL means the file system
// cannot do direct I/O (then either a plain error that says so, or buffered
// I/O if the caller allowed it); an exclusive flock (LOCK_EX | LOCK_NB), which
// belongs to this open file description, so a second open in the same process
// conflicts like one from another process; and the geometry.
#pragma once

#include <cstdint>
#include <string>

#include "failure.h"

namespace cubby {

enum class TargetKind : uint8_t { kFile, kBlockDevice };

struct OpenOptions {
  std::string path;
  bool readOnly = false;
  bool create = false;    // create a regular file when the path does not exist (writable opens only)
  bool buffered = false;  // accept buffered I/O where the file system refuses O_DIRECT
};

struct OpenedTarget {
  int fd = -1;
  TargetKind kind = TargetKind::kFile;
  uint64_t size = 0;                // bytes; files: st_size rounded down to sectorSize
  uint32_t sectorSize = 0;          // alignment of offsets, lengths and buffer addresses
  uint32_t physicalSectorSize = 0;  // block devices: BLKPBSZGET; files: 0 (unknown here)
  bool directIo = false;            // opened with O_DIRECT
  uint32_t deviceMajor = 0;         // the block device itself, or the one holding the file
  uint32_t deviceMinor = 0;
};

// Opens, locks and measures the target. On failure nothing stays open.
bool OpenTarget(const OpenOptions& options, OpenedTarget* target, Failure* failure);

// Extends a regular file to `size` bytes without allocating (ftruncate).
bool GrowFile(int fd, uint64_t size, Failure* failure);

// Bytes the target occupies: st_blocks * 512 for a file, the size of a block device.
bool AllocatedBytes(int fd, TargetKind kind, uint64_t size, uint64_t* bytes, Failure* failure);

// Transfers all `length` bytes with pread/pwrite, resuming after short
// transfers and EINTR; `*done` is the count transferred, also on failure.
bool BlockingRead(int fd, uint8_t* address, uint64_t length, uint64_t offset, uint64_t* done, Failure* failure);
bool BlockingWrite(int fd, const uint8_t* address, uint64_t length, uint64_t offset, uint64_t* done, Failure* failure);

// fdatasync. Never retried after a failure other than EINTR.
bool BlockingSync(int fd, Failure* failure);

// Makes [offset, offset + length) read as zeros and releases its space:
// fallocate(PUNCH_HOLE | KEEP_SIZE) on files and on block devices (where the
// kernel turns it into a zero-guaranteeing discard); a block device that
// cannot discard with zeroing gets BLKZEROOUT instead.
bool BlockingDiscard(int fd, TargetKind kind, uint64_t offset, uint64_t length, Failure* failure);

}  // namespace cubby
