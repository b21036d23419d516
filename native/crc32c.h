// CRC-32C (Castagnoli), the checksum of every CubbyDB block and record.
//
// Uses the SSE4.2 crc32 instruction when the CPU has it (checked once at
// run time), and a slice-by-8 table otherwise. Same results either way.
// Convention: crc32c(seed = 0) of "123456789" is 0xE3069283.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cubby {

uint32_t Crc32c(uint32_t seed, const uint8_t* data, size_t length);

}  // namespace cubby
