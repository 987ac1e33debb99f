#include "ticketflow/core/crypto.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "ticketflow/core/check.hpp"

namespace ticketflow {
namespace {
std::string toHex(const unsigned char* bytes, unsigned int length) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += kDigits[bytes[i] >> 4];
    out += kDigits[bytes[i] & 0xF];
  }
  return out;
}
}  // namespace

std::string sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  TF_CHECK(EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) == 1, "EVP_Digest failed");
  return toHex(digest, length);
}

std::string hmacSha256Hex(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  TF_CHECK(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &length) != nullptr,
           "HMAC failed");
  return toHex(digest, length);
}

}  // namespace ticketflow

namespace ticketflow {

std::string randomTraceId() {
  unsigned char bytes[16];
  TF_CHECK(RAND_bytes(bytes, sizeof bytes) == 1, "RAND_bytes failed");
  return toHex(bytes, sizeof bytes);
}

bool isTraceId(std::string_view s) {
  return s.size() == 32 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace ticketflow
