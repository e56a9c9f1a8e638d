// Redis Cluster key hashing: CRC16 and the slot of a key.
#pragma once

#include <cstdint>
#include <string_view>

namespace kvpool::redis {

// Number of hash slots of a Redis Cluster.
inline constexpr uint16_t kClusterSlots = 16384;

// CRC16-CCITT (XModem: polynomial 0x1021, initial value 0, no reflection, no
// final xor), the checksum Redis Cluster hashes keys with.
// Crc16("123456789") == 0x31C3.
uint16_t Crc16(std::string_view data);

// The hash slot (0..16383) of `key`. Hash-tag rule: when the key holds a '{'
// and, after it, a '}' with at least one character between the two, only the
// characters between the first '{' and the first '}' after it are hashed.
uint16_t KeySlot(std::string_view key);

}  // namespace kvpool::redis
