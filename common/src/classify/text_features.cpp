#include "ticketflow/classify/text_features.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <type_traits>

#include "text_normalize.hpp"
#include "ticketflow/core/utf8.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace ticketflow::classify {
namespace {
std::uint64_t seedFor(std::string_view space) {
  return fnv1a64(space);
}
const std::uint64_t kWordSeed = seedFor("tf.word");
const std::uint64_t kBigramSeed = seedFor("tf.bigram");
const std::uint64_t kCharSeed = seedFor("tf.char");
const std::uint64_t kLeadSeed = seedFor("tf.lead");
const std::uint64_t kSkipSeed = seedFor("tf.skip");

// 1 + ln(tf) for small counts, which are nearly all of them; std::log per feature is a
// measurable share of featurisation time.
const std::array<float, 256> kLogTable = [] {
  std::array<float, 256> t{};
  for (std::size_t i = 1; i < t.size(); ++i) t[i] = static_cast<float>(1.0 + std::log(static_cast<double>(i)));
  return t;
}();

// Character n-grams of up to 7 bytes (every ASCII n-gram here) are keyed by their bytes packed
// little-endian into an integer, mixed by two multiply-xorshift rounds: no byte-serial hash on
// the hot path. Longer ones (multi-byte scripts) use FNV-1a. Either way the key depends only on
// the n-gram's bytes, so the same n-gram always gets the same feature.
constexpr std::size_t kPackedBytes = 7;
inline std::uint64_t packedNgramKey(std::uint64_t v) {
  std::uint64_t k = (v ^ 0x51A3C2E5B7D9F1ULL) * 0x9E3779B97F4A7C15ULL;
  k ^= k >> 32;
  k *= 0xD6E8FEB86659FD93ULL;
  k ^= k >> 32;
  return k;
}

std::size_t nextPow2(std::size_t v) {
  std::size_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

}  // namespace

Featurizer::Featurizer(FeatureSettings settings, std::vector<float> idf) : settings_(settings), idf_(std::move(idf)) {
  if (settings_.dim_bits < 10) settings_.dim_bits = 10;
  if (settings_.dim_bits > 26) settings_.dim_bits = 26;
  mask_ = settings_.dimension() - 1;
  if (idf_.size() != settings_.dimension()) idf_.clear();
}

namespace {

struct CountTable {
  FeatureWorkspace& ws;
  std::uint64_t mask;
  bool want_names;

  // Counts one occurrence of n-gram hash h; `name` is only materialised for a new n-gram.
  // The table key is the mixed hash (mix64 is a bijection): its low bits pick the table slot,
  // bits 32.. the feature index and bit 63 the sign, so each n-gram is mixed once.
  template <typename NameFn>
  void add(std::uint64_t raw, NameFn&& name) {
    const std::uint64_t h = mix64(raw ^ 0x9E3779B97F4A7C15ULL);
    std::uint64_t slot = h & mask;
    while (true) {
      auto& e = ws.slots[slot];
      if (e.stamp != ws.stamp) {
        e = {h, 1, ws.stamp};
        ws.used_slots.push_back(static_cast<std::uint32_t>(slot));
        if (want_names) ws.names.push_back(name());
        return;
      }
      if (e.key == h) {
        ++e.count;
        return;
      }
      slot = (slot + 1) & mask;
    }
  }
};

}  // namespace

void Featurizer::addBlock(FeatureWorkspace& ws, std::size_t block_begin, double weight) const {
  const std::size_t first_feature = ws.features.size();
  double norm2 = 0.0;
  for (std::size_t u = block_begin; u < ws.used_slots.size(); ++u) {
    const std::uint32_t slot = ws.used_slots[u];
    const std::uint64_t m = ws.slots[slot].key;
    const std::uint32_t tf = ws.slots[slot].count;
    float v = !settings_.sublinear_tf ? static_cast<float>(tf)
              : tf < kLogTable.size() ? kLogTable[tf]
                                      : 1.0f + static_cast<float>(std::log(static_cast<double>(tf)));
    if (m >> 63) v = -v;
    const auto index = static_cast<std::uint32_t>((m >> 32) & mask_);
    if (!idf_.empty()) v *= idf_[index];
    norm2 += static_cast<double>(v) * v;
    ws.features.push_back({index, v});
  }
  if (norm2 <= 0.0) return;
  const auto scale = static_cast<float>(weight / std::sqrt(norm2));
  for (std::size_t k = first_feature; k < ws.features.size(); ++k) ws.features[k].value *= scale;
}

void Featurizer::featurize(std::string_view text, FeatureWorkspace& ws, bool want_names) const {
  featurizeWords(text, ws, want_names);
  featurizeChars(ws, want_names);
}

void Featurizer::featurizeWords(std::string_view text, FeatureWorkspace& ws, bool want_names) const {
  normalizeInto(text, ws.normalized, &ws.token_starts, &ws.token_ends);
  ws.features.clear();
  ws.names.clear();
  ws.used_slots.clear();
  const std::string& s = ws.normalized;
  const std::size_t ntok = ws.token_starts.size();
  if (ntok == 0) return;

  // Upper bound on distinct n-grams, to size the count table at most half full.
  const std::size_t bound =
      ntok * static_cast<std::size_t>(settings_.word_ngram_max + 1 + std::max(0, settings_.skip_window));
  const std::size_t cap = nextPow2(std::max<std::size_t>(2 * bound, 256));
  // Only the first `cap` slots are used for this text, so a short ticket after a long one still
  // works in a small, cache-resident part of the table.
  if (ws.slots.size() < cap) {
    ws.slots.assign(cap, FeatureWorkspace::Slot{0, 0, 0});
    ws.stamp = 0;
  }
  if (++ws.stamp == 0) {  // wrapped: stale stamps could match, so clear once
    for (auto& e : ws.slots) e.stamp = 0;
    ws.stamp = 1;
  }
  CountTable table{ws, static_cast<std::uint64_t>(cap - 1), want_names};
  auto tokenView = [&](std::size_t t) {
    return std::string_view(s).substr(ws.token_starts[t], ws.token_ends[t] - ws.token_starts[t]);
  };

  // Word unigrams and bigrams.
  std::uint64_t prev = 0;
  for (std::size_t t = 0; t < ntok; ++t) {
    const std::string_view tok = tokenView(t);
    const std::uint64_t h = fnv1a64(tok, kWordSeed);
    table.add(h, [&] { return "w:" + std::string(tok); });
    if (settings_.word_ngram_max >= 2 && t > 0) {
      const std::uint64_t hb = mix64(prev * kFnvPrime + h) ^ kBigramSeed;
      table.add(hb, [&] { return "w:" + std::string(tokenView(t - 1)) + " " + std::string(tok); });
    }
    if (static_cast<int>(t) < settings_.lead_words) {
      table.add(fnv1a64(tok, kLeadSeed), [&] { return "s:" + std::string(tok); });
    }
    for (int d = 2; d <= settings_.skip_window && static_cast<std::size_t>(d) <= t; ++d) {
      const std::string_view other = tokenView(t - static_cast<std::size_t>(d));
      const std::uint64_t ho = fnv1a64(other, kWordSeed);
      table.add(mix64(ho * kFnvPrime + h) ^ kSkipSeed,
                [&] { return "p:" + std::string(other) + " .. " + std::string(tok); });
    }
    prev = h;
  }
  addBlock(ws, 0, settings_.word_weight);
}

void Featurizer::featurizeChars(FeatureWorkspace& ws, bool want_names) const {
  const std::string& s = ws.normalized;
  if (ws.token_starts.empty()) return;

  if (settings_.char_ngram_max > 0) {
    const std::size_t first = ws.features.size();
    std::size_t occurrences = 0;
    forEachCharNgram(ws, [&](std::uint64_t key, std::size_t from, std::size_t stop) {
      ++occurrences;
      ws.features.push_back({static_cast<std::uint32_t>((key >> 32) & mask_), (key >> 63) ? -1.0f : 1.0f});
      if (want_names) ws.names.push_back("c:" + s.substr(from, stop - from));
    });
    if (occurrences > 0) {
      const auto scale = static_cast<float>(settings_.char_weight / std::sqrt(static_cast<double>(occurrences)));
      for (std::size_t k = first; k < ws.features.size(); ++k) ws.features[k].value *= scale;
    }
  }
}

template <typename Fn>
void Featurizer::forEachCharNgram(FeatureWorkspace& ws, Fn&& fn) const {
  const std::string& s = ws.normalized;
  const std::size_t nmin = static_cast<std::size_t>(settings_.char_ngram_min);
  const std::size_t nmax = static_cast<std::size_t>(settings_.char_ngram_max);
  const auto* bytes = reinterpret_cast<const unsigned char*>(s.data());
  for (std::size_t t = 0; t < ws.token_starts.size(); ++t) {
    // The padded token " tok " is a slice of the buffer; code point offsets are only needed
    // when it holds non-ASCII bytes.
    const std::size_t b = ws.token_starts[t] - 1;
    const std::size_t e = ws.token_ends[t] + 1;
    bool ascii = true;
    for (std::size_t k = b; k < e; ++k) ascii &= bytes[k] < 0x80;
    if (ascii) {
      const std::size_t m = e - b;
      for (std::size_t i = 0; i + nmin <= m; ++i) {
        std::uint64_t v = 0;
        const std::size_t top = std::min(nmax, m - i);
        for (std::size_t n = 1; n <= top; ++n) {
          v |= static_cast<std::uint64_t>(bytes[b + i + n - 1]) << (8 * (n - 1));
          if (n >= nmin) fn(packedNgramKey(v), b + i, b + i + n);
        }
      }
      continue;
    }
    ws.cp_offsets.clear();
    for (std::size_t k = b; k < e; ++k)
      if ((bytes[k] & 0xC0) != 0x80) ws.cp_offsets.push_back(static_cast<std::uint32_t>(k));
    ws.cp_offsets.push_back(static_cast<std::uint32_t>(e));
    const std::size_t m = ws.cp_offsets.size() - 1;
    for (std::size_t i = 0; i + nmin <= m; ++i) {
      std::uint64_t v = 0;
      std::uint64_t h = kCharSeed;
      const std::size_t from = ws.cp_offsets[i];
      std::size_t pos = from;
      for (std::size_t n = 1; n <= nmax && i + n <= m; ++n) {
        const std::size_t stop = ws.cp_offsets[i + n];
        for (; pos < stop; ++pos) {
          if (pos - from < kPackedBytes) v |= static_cast<std::uint64_t>(bytes[pos]) << (8 * (pos - from));
          h ^= bytes[pos];
          h *= kFnvPrime;
        }
        if (n >= nmin)
          fn(stop - from <= kPackedBytes ? packedNgramKey(v) : mix64(h ^ 0x9E3779B97F4A7C15ULL), from, stop);
      }
    }
  }
}

template <typename W>
void Featurizer::score(std::string_view text, FeatureWorkspace& ws, const W* weights, std::size_t classes,
                       float* acc) const {
  featurizeWords(text, ws, false);
  for (const auto& f : ws.features) {
    const W* row = weights + static_cast<std::size_t>(f.index) * classes;
    for (std::size_t c = 0; c < classes; ++c) acc[c] += f.value * static_cast<float>(row[c]);
  }
  if (settings_.char_ngram_max <= 0 || ws.token_starts.empty()) return;
  // The character block summed with unit values and scaled once: the same linear function as
  // the materialised features of featurize(), without writing them out.
  float block[kMaxScoreClasses] = {};
  std::size_t occurrences = 0;
  bool done = false;
  if constexpr (std::is_same_v<W, std::int8_t>) {
    if (classes == 8) {
      occurrences = sumCharRows8x8(ws, weights, block);
      done = true;
    }
  }
  if (!done)
    occurrences =
        classes == 8 ? sumCharRows<W, 8>(ws, weights, classes, block) : sumCharRows<W, 0>(ws, weights, classes, block);
  if (occurrences == 0) return;
  const auto scale = static_cast<float>(settings_.char_weight / std::sqrt(static_cast<double>(occurrences)));
  for (std::size_t c = 0; c < classes; ++c) acc[c] += block[c] * scale;
}

std::size_t Featurizer::sumCharRows8x8(FeatureWorkspace& ws, const std::int8_t* weights, float* block) const {
  // The common shipped shape (8 classes, int8 weights): one 8-byte row per n-gram summed in
  // eight int16 lanes, flushed every 256 rows (256 * 127 < 32767). Integer sums are exact, so
  // the SSE2 path and the portable one give identical results.
  std::size_t occurrences = 0;
  std::size_t pending = 0;
  const std::uint64_t mask = mask_;
#if defined(__SSE2__)
  __m128i sums = _mm_setzero_si128();
  auto flush = [&] {
    alignas(16) std::int16_t lanes[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(lanes), sums);
    for (int c = 0; c < 8; ++c) block[c] += static_cast<float>(lanes[c]);
    sums = _mm_setzero_si128();
    pending = 0;
  };
  forEachCharNgram(ws, [&](std::uint64_t key, std::size_t, std::size_t) {
    const std::int8_t* row = weights + static_cast<std::size_t>((key >> 32) & mask) * 8;
    const __m128i bytes8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row));
    const __m128i wide = _mm_srai_epi16(_mm_unpacklo_epi8(bytes8, bytes8), 8);  // sign-extend to int16
    const __m128i neg = _mm_set1_epi16(static_cast<std::int16_t>(-static_cast<int>(key >> 63)));
    sums = _mm_add_epi16(sums, _mm_sub_epi16(_mm_xor_si128(wide, neg), neg));  // (w ^ m) - m = -w when m = -1
    ++occurrences;
    if (++pending == 256) flush();
  });
  flush();
#else
  std::int32_t sums[8] = {};
  forEachCharNgram(ws, [&](std::uint64_t key, std::size_t, std::size_t) {
    const std::int8_t* row = weights + static_cast<std::size_t>((key >> 32) & mask) * 8;
    const std::int32_t sign = (key >> 63) ? -1 : 1;
    for (int c = 0; c < 8; ++c) sums[c] += sign * row[c];
    ++occurrences;
  });
  for (int c = 0; c < 8; ++c) block[c] += static_cast<float>(sums[c]);
  (void)pending;
#endif
  return occurrences;
}

template <typename W, std::size_t kClasses>
std::size_t Featurizer::sumCharRows(FeatureWorkspace& ws, const W* weights, std::size_t classes, float* block) const {
  // Integer weights are summed in int32 registers (flushed to float before they could
  // overflow); a compile-time class count lets the compiler keep them in vector registers.
  using Acc = std::conditional_t<std::is_integral_v<W>, std::int32_t, float>;
  const std::size_t n_classes = kClasses ? kClasses : classes;
  Acc sums[kClasses ? kClasses : kMaxScoreClasses] = {};
  std::size_t occurrences = 0;
  std::size_t pending = 0;
  const std::uint64_t mask = mask_;
  auto flush = [&] {
    for (std::size_t c = 0; c < n_classes; ++c) {
      block[c] += static_cast<float>(sums[c]);
      sums[c] = 0;
    }
    pending = 0;
  };
  forEachCharNgram(ws, [&](std::uint64_t key, std::size_t, std::size_t) {
    const W* row = weights + static_cast<std::size_t>((key >> 32) & mask) * n_classes;
    const Acc sign = (key >> 63) ? Acc(-1) : Acc(1);
    for (std::size_t c = 0; c < (kClasses ? kClasses : n_classes); ++c) sums[c] += sign * static_cast<Acc>(row[c]);
    ++occurrences;
    if (++pending == 4096) flush();
  });
  flush();
  return occurrences;
}

template void Featurizer::score<std::int8_t>(std::string_view, FeatureWorkspace&, const std::int8_t*, std::size_t,
                                             float*) const;
template void Featurizer::score<std::int16_t>(std::string_view, FeatureWorkspace&, const std::int16_t*, std::size_t,
                                              float*) const;
template void Featurizer::score<float>(std::string_view, FeatureWorkspace&, const float*, std::size_t, float*) const;

}  // namespace ticketflow::classify
