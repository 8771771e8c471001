// JSON string literals for the describe/info texts the ABI returns.
#pragma once

#include <string>

namespace mps_shim {

// `s` as a quoted JSON string, control characters escaped.
inline std::string json_string(const std::string& s) {
  static const char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += "\\u00";
      out += hex[(c >> 4) & 0xf];
      out += hex[c & 0xf];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace mps_shim
