#include "ticketflow/classify/category_model.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <sstream>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "model_math.hpp"

namespace ticketflow::classify {
namespace {

using detail::kIdfScale;
using detail::softmaxInPlace;

constexpr char kMagic[8] = {'T', 'F', 'C', 'A', 'T', 'M', 'D', 'L'};

void putU32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void putU64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void putF32(std::string& out, float f) {
  std::uint32_t v = 0;
  std::memcpy(&v, &f, 4);
  putU32(out, v);
}
std::uint32_t getU32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
std::uint64_t getU64(const unsigned char* p) {
  return static_cast<std::uint64_t>(getU32(p)) | (static_cast<std::uint64_t>(getU32(p + 4)) << 32);
}
float getF32(const unsigned char* p) {
  const std::uint32_t v = getU32(p);
  float f = 0;
  std::memcpy(&f, &v, 4);
  return f;
}

nlohmann::json settingsJson(const FeatureSettings& s) {
  return {{"dim_bits", s.dim_bits},
          {"word_ngram_max", s.word_ngram_max},
          {"char_ngram_min", s.char_ngram_min},
          {"char_ngram_max", s.char_ngram_max},
          {"lead_words", s.lead_words},
          {"skip_window", s.skip_window},
          {"word_weight", s.word_weight},
          {"char_weight", s.char_weight},
          {"sublinear_tf", s.sublinear_tf},
          {"idf", s.idf}};
}

// splitmix64: a small, portable, seeded generator so training is reproducible everywhere.
}  // namespace

CategoryModel CategoryModel::fromFloat(const FeatureSettings& settings, std::vector<std::string> labels,
                                       const std::vector<float>& weights, const std::vector<float>& bias,
                                       int quant_bits, double temperature) {
  CategoryModel m(settings);
  m.labels_ = std::move(labels);
  m.classes_ = m.labels_.size();
  m.quant_bits_ = quant_bits;
  m.bias_ = bias;
  m.temperature_ = temperature;
  m.scale_.assign(m.classes_, 0.0f);
  const double qmax = quant_bits == 8 ? 127.0 : 32767.0;
  std::vector<double> maxabs(m.classes_, 0.0);
  for (std::size_t i = 0; i < weights.size(); ++i)
    maxabs[i % m.classes_] = std::max(maxabs[i % m.classes_], static_cast<double>(std::abs(weights[i])));
  for (std::size_t c = 0; c < m.classes_; ++c)
    m.scale_[c] = maxabs[c] > 0 ? static_cast<float>(maxabs[c] / qmax) : 1.0f;
  if (quant_bits == 8)
    m.w8_.resize(weights.size());
  else
    m.w16_.resize(weights.size());
  for (std::size_t i = 0; i < weights.size(); ++i) {
    const double q = std::nearbyint(weights[i] / m.scale_[i % m.classes_]);
    const double clamped = std::clamp(q, -qmax, qmax);
    if (quant_bits == 8)
      m.w8_[i] = static_cast<std::int8_t>(clamped);
    else
      m.w16_[i] = static_cast<std::int16_t>(clamped);
  }
  return m;
}

void CategoryModel::logits(const std::vector<FeatureEntry>& features, double* out) const {
  // Accumulate in float per class with the integer weights, scale once at the end.
  float acc[64] = {};
  std::vector<float> big;
  float* a = acc;
  if (classes_ > 64) {
    big.assign(classes_, 0.0f);
    a = big.data();
  }
  if (quant_bits_ == 8) {
    for (const auto& f : features) {
      const std::int8_t* row = w8_.data() + static_cast<std::size_t>(f.index) * classes_;
      for (std::size_t c = 0; c < classes_; ++c) a[c] += f.value * static_cast<float>(row[c]);
    }
  } else {
    for (const auto& f : features) {
      const std::int16_t* row = w16_.data() + static_cast<std::size_t>(f.index) * classes_;
      for (std::size_t c = 0; c < classes_; ++c) a[c] += f.value * static_cast<float>(row[c]);
    }
  }
  for (std::size_t c = 0; c < classes_; ++c) out[c] = static_cast<double>(a[c]) * scale_[c] + bias_[c];
}

void CategoryModel::predictInto(std::string_view text, FeatureWorkspace& ws, Prediction& out) const {
  float acc[Featurizer::kMaxScoreClasses] = {};
  if (quant_bits_ == 8)
    featurizer_.score(text, ws, w8_.data(), classes_, acc);
  else
    featurizer_.score(text, ws, w16_.data(), classes_, acc);
  out.probabilities.resize(classes_);
  for (std::size_t c = 0; c < classes_; ++c) out.probabilities[c] = static_cast<double>(acc[c]) * scale_[c] + bias_[c];
  for (auto& z : out.probabilities) z /= temperature_;
  softmaxInPlace(out.probabilities.data(), classes_);
  std::size_t best = 0;
  for (std::size_t c = 1; c < classes_; ++c)
    if (out.probabilities[c] > out.probabilities[best]) best = c;
  out.label = static_cast<int>(best);
  out.category = labels_[best];
  out.confidence = out.probabilities[best];
}

Prediction CategoryModel::predict(std::string_view text) const {
  thread_local FeatureWorkspace ws;
  Prediction p;
  predictInto(text, ws, p);
  return p;
}

Explanation CategoryModel::explain(std::string_view text, std::size_t top_k) const {
  FeatureWorkspace ws;
  Explanation e;
  featurizer_.featurize(text, ws, /*want_names=*/true);
  e.prediction.probabilities.resize(classes_);
  logits(ws.features, e.prediction.probabilities.data());
  for (auto& z : e.prediction.probabilities) z /= temperature_;
  softmaxInPlace(e.prediction.probabilities.data(), classes_);
  std::size_t best = 0;
  for (std::size_t c = 1; c < classes_; ++c)
    if (e.prediction.probabilities[c] > e.prediction.probabilities[best]) best = c;
  e.prediction.label = static_cast<int>(best);
  e.prediction.category = labels_.empty() ? "" : labels_[best];
  e.prediction.confidence = e.prediction.probabilities.empty() ? 0.0 : e.prediction.probabilities[best];
  std::map<std::string, double> by_name;
  for (std::size_t i = 0; i < ws.features.size() && i < ws.names.size(); ++i) {
    const auto& f = ws.features[i];
    double mean = 0;
    double chosen = 0;
    for (std::size_t c = 0; c < classes_; ++c) {
      const std::size_t at = static_cast<std::size_t>(f.index) * classes_ + c;
      const double w = (quant_bits_ == 8 ? w8_[at] : w16_[at]) * static_cast<double>(scale_[c]);
      mean += w;
      if (c == best) chosen = w;
    }
    mean /= static_cast<double>(classes_);
    by_name[ws.names[i]] += f.value * (chosen - mean);
  }
  for (const auto& [name, v] : by_name)
    if (v > 0) e.top_features.push_back({name, v});
  std::sort(e.top_features.begin(), e.top_features.end(),
            [](const auto& a, const auto& b) { return a.contribution > b.contribution; });
  if (e.top_features.size() > top_k) e.top_features.resize(top_k);
  return e;
}

std::string CategoryModel::toBytes() const {
  nlohmann::json header = {{"kind", "ticketflow category model"},
                           {"feature_algorithm_version", kFeatureAlgorithmVersion},
                           {"features", settingsJson(featurizer_.settings())},
                           {"labels", labels_},
                           {"temperature", temperature_},
                           {"quant_bits", quant_bits_}};
  if (!training_summary_.empty()) header["training"] = nlohmann::json::parse(training_summary_, nullptr, false);
  const std::string header_text = header.dump();
  std::string out(kMagic, sizeof kMagic);
  putU32(out, kCategoryModelFormatVersion);
  putU32(out, static_cast<std::uint32_t>(header_text.size()));
  out += header_text;
  for (float b : bias_) putF32(out, b);
  for (float s : scale_) putF32(out, s);
  if (quant_bits_ == 8) {
    for (std::int8_t w : w8_) out.push_back(static_cast<char>(w));
  } else {
    for (std::int16_t w : w16_) {
      const auto v = static_cast<std::uint16_t>(w);
      out.push_back(static_cast<char>(v & 0xFF));
      out.push_back(static_cast<char>(v >> 8));
    }
  }
  if (featurizer_.settings().idf)
    for (float v : featurizer_.idf()) {
      const auto q = static_cast<std::uint16_t>(std::clamp(std::nearbyint(v * kIdfScale), 0.0f, 65535.0f));
      out.push_back(static_cast<char>(q & 0xFF));
      out.push_back(static_cast<char>(q >> 8));
    }
  putU64(out, fnv1a64(out));
  return out;
}

Status CategoryModel::save(const std::string& path) const {
  const std::string bytes = toBytes();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return Error::io("cannot write " + tmp);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f) return Error::io("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return Error::io("cannot rename " + tmp + " to " + path);
  return {};
}

Result<CategoryModel> CategoryModel::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Error::io("cannot open category model " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return fromBytes(ss.str(), path);
}

Result<CategoryModel> CategoryModel::fromBytes(std::string_view bytes, const std::string& source) {
  const auto bad = [&](const std::string& why) { return Error::malformed("category model " + source + ": " + why); };
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 16 + 8 || std::memcmp(p, kMagic, sizeof kMagic) != 0)
    return bad("not a ticketflow category model file (bad magic)");
  const std::uint32_t version = getU32(p + 8);
  if (version != kCategoryModelFormatVersion)
    return bad("format version " + std::to_string(version) + ", this build reads version " +
               std::to_string(kCategoryModelFormatVersion) + "; retrain with `ticketflow train`");
  const std::uint64_t stored = getU64(p + bytes.size() - 8);
  if (fnv1a64(bytes.substr(0, bytes.size() - 8)) != stored)
    return bad("checksum mismatch: the file is corrupt or truncated");
  const std::uint32_t header_len = getU32(p + 12);
  if (16 + static_cast<std::size_t>(header_len) + 8 > bytes.size()) return bad("header length beyond end of file");
  const auto header = nlohmann::json::parse(bytes.substr(16, header_len), nullptr, false);
  if (header.is_discarded() || !header.is_object()) return bad("header is not JSON");
  try {
    if (header.at("feature_algorithm_version").get<std::uint32_t>() != kFeatureAlgorithmVersion)
      return bad("trained with feature algorithm version " + header.at("feature_algorithm_version").dump() +
                 ", this build computes version " + std::to_string(kFeatureAlgorithmVersion) + "; retrain");
    const auto& fj = header.at("features");
    FeatureSettings s;
    s.dim_bits = fj.at("dim_bits").get<int>();
    s.word_ngram_max = fj.at("word_ngram_max").get<int>();
    s.char_ngram_min = fj.at("char_ngram_min").get<int>();
    s.char_ngram_max = fj.at("char_ngram_max").get<int>();
    s.lead_words = fj.at("lead_words").get<int>();
    s.skip_window = fj.at("skip_window").get<int>();
    s.word_weight = fj.at("word_weight").get<double>();
    s.char_weight = fj.at("char_weight").get<double>();
    s.sublinear_tf = fj.at("sublinear_tf").get<bool>();
    s.idf = fj.value("idf", false);
    if (s.dim_bits < 10 || s.dim_bits > 26) return bad("dim_bits out of range");
    CategoryModel m(s);
    m.labels_ = header.at("labels").get<std::vector<std::string>>();
    m.classes_ = m.labels_.size();
    m.temperature_ = header.at("temperature").get<double>();
    m.quant_bits_ = header.at("quant_bits").get<int>();
    if (header.contains("training")) m.training_summary_ = header["training"].dump();
    if (m.classes_ < 2 || m.classes_ > Featurizer::kMaxScoreClasses) return bad("label count out of range (2 to 256)");
    if (m.quant_bits_ != 8 && m.quant_bits_ != 16) return bad("quant_bits must be 8 or 16");
    if (!(m.temperature_ > 0)) return bad("temperature must be positive");
    const std::size_t n = static_cast<std::size_t>(s.dimension()) * m.classes_;
    const std::size_t wbytes = n * static_cast<std::size_t>(m.quant_bits_ / 8);
    const std::size_t idf_bytes = s.idf ? 2 * static_cast<std::size_t>(s.dimension()) : 0;
    const std::size_t expected = 16 + header_len + 8 * m.classes_ + wbytes + idf_bytes + 8;
    if (bytes.size() != expected)
      return bad("size " + std::to_string(bytes.size()) + " bytes does not match its header (expected " +
                 std::to_string(expected) + ")");
    const unsigned char* q = p + 16 + header_len;
    m.bias_.resize(m.classes_);
    m.scale_.resize(m.classes_);
    for (std::size_t c = 0; c < m.classes_; ++c) m.bias_[c] = getF32(q + 4 * c);
    q += 4 * m.classes_;
    for (std::size_t c = 0; c < m.classes_; ++c) m.scale_[c] = getF32(q + 4 * c);
    q += 4 * m.classes_;
    if (m.quant_bits_ == 8) {
      m.w8_.resize(n);
      for (std::size_t i = 0; i < n; ++i) m.w8_[i] = static_cast<std::int8_t>(q[i]);
    } else {
      m.w16_.resize(n);
      for (std::size_t i = 0; i < n; ++i)
        m.w16_[i] = static_cast<std::int16_t>(static_cast<std::uint16_t>(q[2 * i] | (q[2 * i + 1] << 8)));
    }
    q += wbytes;
    if (s.idf) {
      std::vector<float> idf(s.dimension());
      for (std::size_t i = 0; i < idf.size(); ++i)
        idf[i] = static_cast<float>(q[2 * i] | (q[2 * i + 1] << 8)) / kIdfScale;
      m.featurizer_ = Featurizer(s, std::move(idf));
    }
    return m;
  } catch (const nlohmann::json::exception& e) {
    return bad(std::string("header field missing or of the wrong type: ") + e.what());
  }
}

}  // namespace ticketflow::classify
