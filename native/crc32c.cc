// CRC-32C: see crc32c.h.
#include "crc32c.h"

#include <cstring>

namespace cubby {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78u;  // reflected Castagnoli polynomial

struct Tables {
  uint32_t table[8][256];
  Tables() {
    for (uint32_t index = 0; index < 256; index++) {
      uint32_t crc = index;
      for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (kPolynomial & (0u - (crc & 1u)));
      table[0][index] = crc;
    }
    for (uint32_t index = 0; index < 256; index++) {
      for (int slice = 1; slice < 8; slice++) {
        table[slice][index] = (table[slice - 1][index] >> 8) ^ table[0][table[slice - 1][index] & 0xFF];
      }
    }
  }
};

const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

uint32_t Crc32cPortable(uint32_t crc, const uint8_t* data, size_t length) {
  const Tables& t = GetTables();
  while (length >= 8) {
    uint32_t low;
    uint32_t high;
    std::memcpy(&low, data, 4);
    std::memcpy(&high, data + 4, 4);
    low ^= crc;
    crc = t.table[7][low & 0xFF] ^ t.table[6][(low >> 8) & 0xFF] ^ t.table[5][(low >> 16) & 0xFF] ^
          t.table[4][low >> 24] ^ t.table[3][high & 0xFF] ^ t.table[2][(high >> 8) & 0xFF] ^
          t.table[1][(high >> 16) & 0xFF] ^ t.table[0][high >> 24];
    data += 8;
    length -= 8;
  }
  while (length-- > 0) crc = (crc >> 8) ^ t.table[0][(crc ^ *data++) & 0xFF];
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(uint32_t crc, const uint8_t* data, size_t length) {
  uint64_t wide = crc;
  while (length >= 8) {
    uint64_t word;
    std::memcpy(&word, data, 8);
    wide = __builtin_ia32_crc32di(wide, word);
    data += 8;
    length -= 8;
  }
  uint32_t narrow = static_cast<uint32_t>(wide);
  while (length-- > 0) narrow = __builtin_ia32_crc32qi(narrow, *data++);
  return narrow;
}

bool HasHardwareCrc() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#endif

}  // namespace

uint32_t Crc32c(uint32_t seed, const uint8_t* data, size_t length) {
  uint32_t crc = ~seed;
#if defined(__x86_64__)
  if (HasHardwareCrc()) return ~Crc32cHardware(crc, data, length);
#endif
  return ~Crc32cPortable(crc, data, length);
}

}  // namespace cubby
