#include "ticketflow/stage/offset_tracker.hpp"

#include <algorithm>
#include <charconv>
#include <vector>

#include "ticketflow/core/check.hpp"

namespace ticketflow::stage {

namespace {
// "tf1:<base>:<hex bitmap>": bit i (LSB first within each byte) set means offset base+i is done.
constexpr std::string_view kMetadataPrefix = "tf1:";
constexpr char kHex[] = "0123456789abcdef";

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}
}  // namespace

PartitionOffsets::PartitionOffsets(std::int64_t committed, std::set<std::int64_t> already_done)
    : next_(committed), already_done_(std::move(already_done)) {}

bool PartitionOffsets::track(std::int64_t offset) {
  // A redelivery of something already seen (a fetch reset) is skipped: the first copy is
  // tracked and will be, or was, done.
  if (!entries_.empty() ? offset <= entries_.back().offset : (next_ >= 0 && offset < next_)) return true;
  while (!already_done_.empty() && *already_done_.begin() < offset) already_done_.erase(already_done_.begin());
  const bool done_before = !already_done_.empty() && *already_done_.begin() == offset;
  if (done_before) already_done_.erase(already_done_.begin());
  if (entries_.empty() && next_ < 0) next_ = offset;
  entries_.push_back({offset, done_before});
  if (!done_before) ++pending_;
  advance();
  return done_before;
}

void PartitionOffsets::complete(std::int64_t offset) {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), offset,
                             [](const Entry& e, std::int64_t o) { return e.offset < o; });
  TF_CHECK(it != entries_.end() && it->offset == offset, "completing an offset that is not tracked");
  TF_CHECK(!it->done, "completing an offset twice");
  it->done = true;
  --pending_;
  advance();
}

void PartitionOffsets::advance() {
  while (!entries_.empty() && entries_.front().done) {
    next_ = entries_.front().offset + 1;
    entries_.pop_front();
  }
}

std::int64_t PartitionOffsets::nextCommit() const {
  return entries_.empty() ? next_ : entries_.front().offset;
}

std::string PartitionOffsets::metadata() const {
  if (entries_.empty()) return "";
  const std::int64_t base = entries_.front().offset;
  std::vector<std::uint8_t> bits;
  for (const Entry& e : entries_) {
    const std::int64_t i = e.offset - base;
    if (i >= kMaxMetadataOffsets) break;
    if (!e.done) continue;
    const auto byte = static_cast<std::size_t>(i / 8);
    if (bits.size() <= byte) bits.resize(byte + 1, 0);
    bits[byte] = static_cast<std::uint8_t>(bits[byte] | (1u << (i % 8)));
  }
  if (bits.empty()) return "";
  std::string out(kMetadataPrefix);
  out += std::to_string(base);
  out += ':';
  for (std::uint8_t b : bits) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

std::optional<std::set<std::int64_t>> PartitionOffsets::decodeMetadata(const std::string& metadata,
                                                                       std::int64_t committed) {
  if (metadata.rfind(kMetadataPrefix, 0) != 0) return std::nullopt;
  const std::size_t colon = metadata.find(':', kMetadataPrefix.size());
  if (colon == std::string::npos) return std::nullopt;
  std::int64_t base = -1;
  const char* first = metadata.data() + kMetadataPrefix.size();
  const char* last = metadata.data() + colon;
  auto [ptr, ec] = std::from_chars(first, last, base);
  if (ec != std::errc() || ptr != last || base != committed) return std::nullopt;
  const std::string_view hex(metadata.data() + colon + 1, metadata.size() - colon - 1);
  if (hex.size() % 2 != 0 || static_cast<std::int64_t>(hex.size()) * 4 > kMaxMetadataOffsets) return std::nullopt;
  std::set<std::int64_t> done;
  for (std::size_t byte = 0; byte < hex.size() / 2; ++byte) {
    const int hi = hexValue(hex[2 * byte]);
    const int lo = hexValue(hex[2 * byte + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    const int value = hi * 16 + lo;
    for (int bit = 0; bit < 8; ++bit)
      if (value & (1 << bit)) done.insert(base + static_cast<std::int64_t>(byte) * 8 + bit);
  }
  return done;
}

}  // namespace ticketflow::stage
