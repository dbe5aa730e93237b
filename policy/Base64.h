#pragma once
// Standard base64 (RFC 4648 section 4, `+/` alphabet), as Mosquitto writes password hashes.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace moat::policy {

std::string base64Encode(const unsigned char* data, size_t size);

// Strict decode: standard alphabet only, `=` padding optional but correct when present, no
// whitespace, no bits set in the unused tail of the last symbol. False on any violation.
bool base64Decode(std::string_view text, std::vector<unsigned char>& out);

}  // namespace moat::policy
