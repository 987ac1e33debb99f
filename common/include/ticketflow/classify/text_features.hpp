#pragma once
// Text features for the ticket classifier: normalisation, word and character n-grams, signed
// feature hashing, sublinear TF and L2 normalisation.
//
// Everything here is deterministic across platforms and compilers: hashing is FNV-1a 64 written
// out (no std::hash), case folding is table-free code, and floating point only enters after the
// feature indices are fixed. A model file records the FeatureSettings it was trained with, so
// the same text always gives the same features at train and at predict time.
//
// Threading: Featurizer is immutable after construction; featurize() takes a caller-owned
// FeatureWorkspace, so one Featurizer serves any number of threads, one workspace per thread.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ticketflow::classify {

// Bumped when normalisation or hashing changes in a way that changes feature indices.
constexpr std::uint32_t kFeatureAlgorithmVersion = 1;

// FNV-1a 64-bit over bytes, continuing from `seed` (the FNV offset basis by default).
constexpr std::uint64_t kFnvOffset = 14695981039346656037ULL;
constexpr std::uint64_t kFnvPrime = 1099511628211ULL;
inline std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t seed = kFnvOffset) {
  std::uint64_t h = seed;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= kFnvPrime;
  }
  return h;
}
// A finaliser (murmur3 fmix64) so that low bits used for the index are well mixed.
inline std::uint64_t mix64(std::uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

struct FeatureSettings {
  int dim_bits = 18;       // hashed feature space has 2^dim_bits slots
  int word_ngram_max = 2;  // 1: unigrams, 2: unigrams + bigrams
  // Character n-grams inside word boundaries (padded " word "). They count every occurrence
  // (no sublinear TF) and the block is scaled by char_weight / sqrt(occurrences), which is L2
  // normalisation when no n-gram repeats; that keeps prediction free of a per-n-gram table.
  int char_ngram_min = 2;
  int char_ngram_max = 7;    // 0 disables character n-grams
  int lead_words = 0;        // the first N tokens (the e-mail subject, usually) also count as
                             // position-tagged features "s:word"; 0 disables
  int skip_window = 0;       // word pairs up to this many tokens apart (beyond bigrams); 0: off
  double word_weight = 1.0;  // each block is L2-normalised, then scaled by its weight
  double char_weight = 0.6;
  bool sublinear_tf = true;  // word features: 1 + ln(tf) instead of tf
  bool idf = false;          // multiply by inverse document frequency (learned at training time)

  std::uint32_t dimension() const { return 1u << dim_bits; }
};

// Normalises `text` into space-separated tokens in `out` (cleared first): invalid UTF-8 bytes
// are dropped, letters are case-folded (ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic), and
// URLs, e-mail addresses, IPv4 addresses, error codes, file paths and numbers become the typed
// tokens _url_ _email_ _ip_ _errcode_ _path_ _num_. Other punctuation separates tokens.
void normalizeText(std::string_view text, std::string& out);
std::string normalizeText(std::string_view text);

// One non-zero of a hashed feature vector. An index may occur more than once (two n-grams that
// hash to the same slot); every consumer treats the vector as a sum, so that is harmless.
struct FeatureEntry {
  std::uint32_t index;
  float value;
};

// Scratch space reused between calls (no allocation per ticket once warmed up).
struct FeatureWorkspace {
  std::string normalized;
  std::vector<std::uint32_t> token_starts;
  std::vector<std::uint32_t> token_ends;
  std::vector<std::uint32_t> cp_offsets;
  // Open-addressing count table keyed by the 64-bit n-gram hash; stamp_ avoids clearing it.
  struct Slot {
    std::uint64_t key;
    std::uint32_t count;
    std::uint32_t stamp;
  };
  std::vector<Slot> slots;
  std::vector<std::uint32_t> used_slots;
  std::uint32_t stamp = 0;
  std::vector<FeatureEntry> features;
  // Filled only when names are requested (explanations): the n-gram text of each feature.
  std::vector<std::string> names;
};

class Featurizer {
 public:
  // `idf` (one weight per hashed slot) is used only when settings.idf is set; it must then have
  // settings.dimension() entries.
  explicit Featurizer(FeatureSettings settings, std::vector<float> idf = {});

  const FeatureSettings& settings() const { return settings_; }
  const std::vector<float>& idf() const { return idf_; }

  // Computes the L2-normalised hashed feature vector of `text` into ws.features.
  // With want_names, ws.names[i] describes ws.features[i] ("w:printer", "w:printer jam",
  // "c: pri"). Cost is linear in the text length.
  void featurize(std::string_view text, FeatureWorkspace& ws, bool want_names = false) const;

  // Adds the linear scores sum_i x_i * weights[x_i.index * classes + c] to acc[c] for the
  // feature vector featurize() would produce, without writing out the character n-grams (the
  // prediction hot path). W is std::int8_t, std::int16_t or float; classes <= kMaxScoreClasses.
  template <typename W>
  void score(std::string_view text, FeatureWorkspace& ws, const W* weights, std::size_t classes, float* acc) const;
  static constexpr std::size_t kMaxScoreClasses = 256;

 private:
  void featurizeWords(std::string_view text, FeatureWorkspace& ws, bool want_names) const;
  void featurizeChars(FeatureWorkspace& ws, bool want_names) const;
  template <typename Fn>
  void forEachCharNgram(FeatureWorkspace& ws, Fn&& fn) const;
  template <typename W, std::size_t kClasses>
  std::size_t sumCharRows(FeatureWorkspace& ws, const W* weights, std::size_t classes, float* block) const;
  std::size_t sumCharRows8x8(FeatureWorkspace& ws, const std::int8_t* weights, float* block) const;
  void addBlock(FeatureWorkspace& ws, std::size_t block_begin, double weight) const;

  FeatureSettings settings_;
  std::vector<float> idf_;
  std::uint32_t mask_;
};

}  // namespace ticketflow::classify
