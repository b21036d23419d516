// LZ4 block-format decoding, for the compressed device's read path
// (docs/format.md 3.6: a record of kind 1 holds one LZ4 block).
//
// Written from the LZ4 block format description: sequences of a token (high
// nibble: literal count, low nibble: match length - 4; 15 means more bytes
// follow, each added, until one is not 255), the literals, then a 16-bit
// little-endian match offset; the last sequence has literals only. Every read
// of the input and every write of the output is bounds-checked, so a
// malformed payload yields -1, never an access outside the two ranges.
// Allocates nothing. Compression stays with lz4-napi (src/device/compressed/codec.ts).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cubby {

// Decodes the LZ4 block source[0, sourceLength) into target[0, targetCapacity).
// Returns the bytes written, or -1 when the payload is malformed or does not fit.
int64_t Lz4DecodeBlock(const uint8_t* source, size_t sourceLength, uint8_t* target, size_t targetCapacity);

}  // namespace cubby
