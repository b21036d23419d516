// LZ4 block decoding: see lz4.h.
#include "lz4.h"

#include <cstring>

namespace cubby {

int64_t Lz4DecodeBlock(const uint8_t* source, size_t sourceLength, uint8_t* target, size_t targetCapacity) {
  size_t input = 0;
  size_t output = 0;
  while (input < sourceLength) {
    const uint8_t token = source[input++];
    size_t literals = token >> 4;
    if (literals == 15) {
      uint8_t more;
      do {
        if (input >= sourceLength) return -1;
        more = source[input++];
        literals += more;
      } while (more == 255);
    }
    if (literals > sourceLength - input || literals > targetCapacity - output) return -1;
    if (literals > 0) {  // memcpy's pointers must be valid even for 0 bytes; an empty target has none
      std::memcpy(target + output, source + input, literals);
      input += literals;
      output += literals;
    }
    if (input == sourceLength) break;  // the last sequence: literals only
    if (sourceLength - input < 2) return -1;
    const size_t distance = source[input] | (static_cast<size_t>(source[input + 1]) << 8);
    input += 2;
    if (distance == 0 || distance > output) return -1;
    size_t length = (token & 15u) + 4;
    if ((token & 15u) == 15) {
      uint8_t more;
      do {
        if (input >= sourceLength) return -1;
        more = source[input++];
        length += more;
      } while (more == 255);
    }
    if (length > targetCapacity - output) return -1;
    const uint8_t* from = target + output - distance;
    uint8_t* to = target + output;
    output += length;
    if (distance == 1) {
      std::memset(to, *from, length);
    } else {
      // The match may overlap its own output (distance < length): it repeats
      // the last `distance` bytes. Copy what is already final, doubling.
      while (length > 0) {
        const size_t step = length < static_cast<size_t>(to - from) ? length : static_cast<size_t>(to - from);
        std::memcpy(to, from, step);
        to += step;
        length -= step;
      }
    }
  }
  return static_cast<int64_t>(output);
}

}  // namespace cubby
