// SHA-256 (FIPS 180-4). Standard library only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace mps_shim {

class Sha256 {
 public:
  Sha256();

  // Feed bytes. Any split of the input across calls gives the same digest.
  Sha256& update(const void* data, size_t n);
  Sha256& update(const std::string& s);

  // Finalise and return the 32-byte digest as 64 lowercase hex characters.
  std::string hex_digest();
  // Finalise and write the raw 32-byte digest.
  void digest(unsigned char out[32]);

 private:
  void compress(const unsigned char* block);
  void finalize();

  uint32_t h_[8];
  unsigned char buf_[64];
  size_t buf_len_;
  uint64_t total_len_;  // bytes
  bool finalized_;
};

std::string sha256_hex(const void* data, size_t n);

}  // namespace mps_shim
