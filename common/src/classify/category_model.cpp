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

namespace ticketflow::classify {
namespace {

constexpr float kIdfScale = 2048.0f;  // idf weights are stored as uint16 in units of 1/2048
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

void softmaxInPlace(double* z, std::size_t n) {
  double mx = z[0];
  for (std::size_t c = 1; c < n; ++c) mx = std::max(mx, z[c]);
  double sum = 0;
  for (std::size_t c = 0; c < n; ++c) {
    z[c] = std::exp(z[c] - mx);
    sum += z[c];
  }
  for (std::size_t c = 0; c < n; ++c) z[c] /= sum;
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
struct SplitMix {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
};

// The training set featurised once: CSR rows of hashed features.
struct SparseRows {
  std::vector<std::size_t> offsets{0};
  std::vector<FeatureEntry> entries;
  std::vector<int> labels;
  std::size_t rows() const { return labels.size(); }
};

class SgdTrainer {
 public:
  SgdTrainer(std::size_t dim, std::size_t classes, const TrainOptions& options, std::vector<double> class_weights,
             const std::vector<float>* nb_ratios)
      : classes_(classes),
        options_(options),
        class_weights_(std::move(class_weights)),
        nb_(nb_ratios),
        w_(dim * classes, 0.0f),
        u_(options.average || nb_ratios ? dim * classes : 0, 0.0f),
        b_(classes, 0.0),
        ub_(classes, 0.0) {}

  void epoch(const SparseRows& data, const std::vector<std::size_t>& rows, SplitMix& rng) {
    std::vector<std::size_t> order = rows;
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
    std::vector<double> z(classes_);
    std::vector<float> g(classes_);
    const double l2 = options_.l2;
    for (const std::size_t r : order) {
      const double eta = options_.eta0 / (1.0 + options_.eta0 * l2 * static_cast<double>(t_));
      const FeatureEntry* f = data.entries.data() + data.offsets[r];
      const std::size_t nnz = data.offsets[r + 1] - data.offsets[r];
      for (std::size_t c = 0; c < classes_; ++c) z[c] = b_[c];
      for (std::size_t k = 0; k < nnz; ++k) {
        const float* w = w_.data() + static_cast<std::size_t>(f[k].index) * classes_;
        if (nb_) {
          const float* rr = nb_->data() + static_cast<std::size_t>(f[k].index) * classes_;
          for (std::size_t c = 0; c < classes_; ++c) z[c] += f[k].value * w[c] * rr[c];
        } else {
          for (std::size_t c = 0; c < classes_; ++c) z[c] += f[k].value * w[c];
        }
      }
      const int y = data.labels[r];
      const double cw = class_weights_[static_cast<std::size_t>(y)];
      if (options_.loss == TrainingLoss::kLog) {
        softmaxInPlace(z.data(), classes_);
        for (std::size_t c = 0; c < classes_; ++c)
          g[c] = static_cast<float>(eta * cw * (z[c] - (static_cast<int>(c) == y ? 1.0 : 0.0)));
      } else {
        // One-vs-rest hinge or modified Huber (a smoothed hinge) per class on the raw margin.
        for (std::size_t c = 0; c < classes_; ++c) {
          const double yc = static_cast<int>(c) == y ? 1.0 : -1.0;
          const double m = yc * z[c];
          double dz = 0;
          if (options_.loss == TrainingLoss::kHinge) {
            dz = m < 1.0 ? -yc : 0.0;
          } else if (m < -1.0) {
            dz = -4.0 * yc;
          } else if (m < 1.0) {
            dz = -2.0 * (1.0 - m) * yc;
          }
          g[c] = static_cast<float>(eta * cw * dz);
        }
      }
      const float decay = static_cast<float>(eta * l2);
      const float tw = static_cast<float>(t_ - 1);
      for (std::size_t k = 0; k < nnz; ++k) {
        float* w = w_.data() + static_cast<std::size_t>(f[k].index) * classes_;
        const float x = f[k].value;
        if (nb_) {
          const float* rr = nb_->data() + static_cast<std::size_t>(f[k].index) * classes_;
          float* u = u_.data() + static_cast<std::size_t>(f[k].index) * classes_;
          for (std::size_t c = 0; c < classes_; ++c) {
            const float d = -(g[c] * x * rr[c] + decay * w[c]);
            w[c] += d;
            if (options_.average) u[c] += tw * d;
          }
        } else if (options_.average) {
          float* u = u_.data() + static_cast<std::size_t>(f[k].index) * classes_;
          for (std::size_t c = 0; c < classes_; ++c) {
            const float d = -(g[c] * x + decay * w[c]);
            w[c] += d;
            u[c] += tw * d;
          }
        } else {
          for (std::size_t c = 0; c < classes_; ++c) w[c] -= g[c] * x + decay * w[c];
        }
      }
      for (std::size_t c = 0; c < classes_; ++c) {
        const double d = -g[c];
        b_[c] += d;
        ub_[c] += static_cast<double>(t_ - 1) * d;
      }
      ++t_;
    }
  }

  // The model as it stands: the averaged iterate with averaging on, else the last one.
  void snapshot(std::vector<float>& w, std::vector<float>& b) const {
    w.resize(w_.size());
    b.resize(classes_);
    const double steps = static_cast<double>(t_ - 1);
    if (!options_.average || steps <= 0) {
      w = w_;
      for (std::size_t c = 0; c < classes_; ++c) b[c] = static_cast<float>(b_[c]);
    } else {
      const float inv = static_cast<float>(1.0 / steps);
      for (std::size_t i = 0; i < w_.size(); ++i) w[i] = w_[i] - u_[i] * inv;
      for (std::size_t c = 0; c < classes_; ++c) b[c] = static_cast<float>(b_[c] - ub_[c] / steps);
    }
    // With NB scaling the model is linear in x with weights w * r.
    if (nb_)
      for (std::size_t i = 0; i < w.size(); ++i) w[i] *= (*nb_)[i];
  }

 private:
  std::size_t classes_;
  TrainOptions options_;
  std::vector<double> class_weights_;
  const std::vector<float>* nb_;  // per (feature, class) NB log-count ratio, or null
  std::vector<float> w_;
  std::vector<float> u_;
  std::vector<double> b_;
  std::vector<double> ub_;
  std::uint64_t t_ = 1;
};

void floatLogits(const SparseRows& data, std::size_t r, const std::vector<float>& w, const std::vector<float>& b,
                 std::size_t classes, double* z) {
  for (std::size_t c = 0; c < classes; ++c) z[c] = b[c];
  for (std::size_t k = data.offsets[r]; k < data.offsets[r + 1]; ++k) {
    const auto& f = data.entries[k];
    const float* row = w.data() + static_cast<std::size_t>(f.index) * classes;
    for (std::size_t c = 0; c < classes; ++c) z[c] += f.value * row[c];
  }
}

// NB-SVM style log-count ratios (Wang & Manning 2012), one-vs-rest per class: how much more
// often a feature occurs in class c than elsewhere. Scaling feature i of class c's logit by
// r[i][c] acts as a per-feature prior; the trained model is still linear in x (weights w * r),
// so prediction costs nothing extra. `power` < 1 shrinks the ratios towards 1.
std::vector<float> nbRatios(const SparseRows& data, const std::vector<std::size_t>& rows, std::size_t dim,
                            std::size_t classes, double alpha, double power) {
  std::vector<float> count(dim * classes, 0.0f);
  for (std::size_t r : rows) {
    const auto y = static_cast<std::size_t>(data.labels[r]);
    for (std::size_t k = data.offsets[r]; k < data.offsets[r + 1]; ++k)
      count[static_cast<std::size_t>(data.entries[k].index) * classes + y] += std::abs(data.entries[k].value);
  }
  std::vector<double> class_total(classes, 0.0);
  double total = 0;
  for (std::size_t i = 0; i < count.size(); ++i) class_total[i % classes] += count[i];
  for (double t : class_total) total += t;
  std::vector<float> ratios(dim * classes, 1.0f);
  for (std::size_t i = 0; i < dim; ++i) {
    double row_total = 0;
    for (std::size_t c = 0; c < classes; ++c) row_total += count[i * classes + c];
    for (std::size_t c = 0; c < classes; ++c) {
      const double p = (alpha + count[i * classes + c]) / (alpha * static_cast<double>(dim) + class_total[c]);
      const double q =
          (alpha + row_total - count[i * classes + c]) / (alpha * static_cast<double>(dim) + total - class_total[c]);
      ratios[i * classes + c] = static_cast<float>(std::pow(std::abs(std::log(p / q)), power));
    }
  }
  return ratios;
}

// Runs fn(0..n-1) on up to `threads` threads.
void runParallel(int n, int threads, const std::function<void(int)>& fn) {
  const int t = std::clamp(threads, 1, n);
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int i = 1; i < t; ++i)
    pool.emplace_back([&] {
      for (int k = next++; k < n; k = next++) fn(k);
    });
  for (int k = next++; k < n; k = next++) fn(k);
  for (auto& th : pool) th.join();
}

double seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

std::string fmt4(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

}  // namespace

double fitTemperature(const std::vector<double>& logits, const std::vector<int>& labels, std::size_t classes) {
  if (labels.empty()) return 1.0;
  auto nll = [&](double temp) {
    double total = 0;
    std::vector<double> z(classes);
    for (std::size_t i = 0; i < labels.size(); ++i) {
      for (std::size_t c = 0; c < classes; ++c) z[c] = logits[i * classes + c] / temp;
      softmaxInPlace(z.data(), classes);
      total -= std::log(std::max(z[static_cast<std::size_t>(labels[i])], 1e-12));
    }
    return total;
  };
  // Golden-section search on log T over [1/20, 20]; NLL is unimodal in T for fixed logits.
  double lo = std::log(0.05);
  double hi = std::log(20.0);
  const double phi = (std::sqrt(5.0) - 1) / 2;
  double a = hi - phi * (hi - lo);
  double b = lo + phi * (hi - lo);
  double fa = nll(std::exp(a));
  double fb = nll(std::exp(b));
  for (int it = 0; it < 60; ++it) {
    if (fa < fb) {
      hi = b;
      b = a;
      fb = fa;
      a = hi - phi * (hi - lo);
      fa = nll(std::exp(a));
    } else {
      lo = a;
      a = b;
      fa = fb;
      b = lo + phi * (hi - lo);
      fb = nll(std::exp(b));
    }
  }
  return std::exp((lo + hi) / 2);
}

EvalMetrics computeMetrics(const std::vector<int>& truth, const std::vector<int>& predicted,
                           const std::vector<double>& confidence, std::size_t classes) {
  EvalMetrics m;
  m.confusion.assign(classes, std::vector<std::size_t>(classes, 0));
  std::size_t correct = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    m.confusion[static_cast<std::size_t>(truth[i])][static_cast<std::size_t>(predicted[i])]++;
    if (truth[i] == predicted[i]) ++correct;
  }
  m.accuracy = truth.empty() ? 0.0 : static_cast<double>(correct) / static_cast<double>(truth.size());
  m.per_class.resize(classes);
  double f1_sum = 0;
  for (std::size_t c = 0; c < classes; ++c) {
    std::size_t tp = m.confusion[c][c];
    std::size_t pred = 0;
    std::size_t actual = 0;
    for (std::size_t k = 0; k < classes; ++k) {
      pred += m.confusion[k][c];
      actual += m.confusion[c][k];
    }
    auto& pc = m.per_class[c];
    pc.support = actual;
    pc.precision = pred ? static_cast<double>(tp) / static_cast<double>(pred) : 0.0;
    pc.recall = actual ? static_cast<double>(tp) / static_cast<double>(actual) : 0.0;
    pc.f1 = (pc.precision + pc.recall) > 0 ? 2 * pc.precision * pc.recall / (pc.precision + pc.recall) : 0.0;
    f1_sum += pc.f1;
  }
  m.macro_f1 = classes ? f1_sum / static_cast<double>(classes) : 0.0;
  if (!confidence.empty() && !truth.empty()) {
    std::vector<double> conf_sum(10, 0), acc_sum(10, 0);
    std::vector<std::size_t> count(10, 0);
    for (std::size_t i = 0; i < truth.size(); ++i) {
      const auto bin = std::min<std::size_t>(9, static_cast<std::size_t>(confidence[i] * 10));
      conf_sum[bin] += confidence[i];
      acc_sum[bin] += truth[i] == predicted[i] ? 1.0 : 0.0;
      ++count[bin];
    }
    for (std::size_t k = 0; k < 10; ++k)
      if (count[k])
        m.expected_calibration_error += std::abs(acc_sum[k] - conf_sum[k]) / static_cast<double>(truth.size());
  }
  return m;
}

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

Result<CategoryModel> CategoryModel::train(const std::vector<LabelledText>& data, const TrainOptions& options,
                                           TrainReport* report, const ProgressFn& progress) {
  const auto started = std::chrono::steady_clock::now();
  auto say = [&](const std::string& line) {
    if (progress) progress(line);
  };
  if (data.size() < 2) return Error::invalidArgument("need at least two labelled texts to train");
  if (options.quant_bits != 8 && options.quant_bits != 16) return Error::invalidArgument("quant_bits must be 8 or 16");
  std::vector<std::string> labels;
  for (const auto& d : data) labels.push_back(d.label);
  std::sort(labels.begin(), labels.end());
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  if (labels.size() < 2) return Error::invalidArgument("need at least two distinct labels to train");
  if (labels.size() > Featurizer::kMaxScoreClasses) return Error::invalidArgument("at most 256 distinct labels");
  const std::size_t classes = labels.size();
  std::unordered_map<std::string, int> label_index;
  for (std::size_t c = 0; c < classes; ++c) label_index[labels[c]] = static_cast<int>(c);

  Featurizer featurizer(options.features);
  const FeatureSettings settings = featurizer.settings();
  if (settings.idf) {
    // Document frequency per hashed slot over the training texts, smoothed as scikit-learn does:
    // idf = ln((1 + n) / (1 + df)) + 1.
    std::vector<std::uint32_t> df(settings.dimension(), 0);
    std::vector<std::uint32_t> last(settings.dimension(), 0);
    FeatureWorkspace ws;
    std::uint32_t doc = 0;
    for (const auto& d : data) {
      ++doc;
      featurizer.featurize(d.text, ws);
      for (const auto& f : ws.features)
        if (last[f.index] != doc) {
          last[f.index] = doc;
          ++df[f.index];
        }
    }
    std::vector<float> idf(settings.dimension());
    const double n = static_cast<double>(data.size());
    for (std::size_t i = 0; i < idf.size(); ++i)
      // Rounded as the model file stores it, so training and prediction see the same values.
      idf[i] = std::nearbyint(static_cast<float>(std::log((1.0 + n) / (1.0 + df[i])) + 1.0) * kIdfScale) / kIdfScale;
    featurizer = Featurizer(settings, std::move(idf));
  }
  SparseRows rows;
  rows.labels.reserve(data.size());
  {
    FeatureWorkspace ws;
    for (const auto& d : data) {
      featurizer.featurize(d.text, ws);
      rows.entries.insert(rows.entries.end(), ws.features.begin(), ws.features.end());
      rows.offsets.push_back(rows.entries.size());
      rows.labels.push_back(label_index[d.label]);
    }
  }
  say("featurised " + std::to_string(data.size()) + " texts (" + std::to_string(rows.entries.size()) +
      " non-zeros, dimension 2^" + std::to_string(settings.dim_bits) + ") in " + fmt4(seconds(started)) + " s");

  // Stratified validation slice: every k-th example of each class, in file order.
  std::vector<std::size_t> train_rows, val_rows;
  std::vector<std::size_t> per_class(classes, 0), seen(classes, 0);
  for (int y : rows.labels) per_class[static_cast<std::size_t>(y)]++;
  const double vf = std::clamp(options.validation_fraction, 0.0, 0.5);
  for (std::size_t r = 0; r < rows.rows(); ++r) {
    const auto y = static_cast<std::size_t>(rows.labels[r]);
    const std::size_t k = seen[y]++;
    const bool to_val = vf > 0 && static_cast<std::size_t>(static_cast<double>(k + 1) * vf) !=
                                      static_cast<std::size_t>(static_cast<double>(k) * vf);
    (to_val ? val_rows : train_rows).push_back(r);
  }
  if (val_rows.empty()) val_rows = train_rows;  // tiny sets: early-stop on the training data

  std::vector<double> class_weights(classes, 1.0);
  if (options.class_weight != ClassWeight::kNone) {
    for (std::size_t c = 0; c < classes; ++c) {
      const double bal = per_class[c] ? static_cast<double>(rows.rows()) /
                                            (static_cast<double>(classes) * static_cast<double>(per_class[c]))
                                      : 1.0;
      class_weights[c] = options.class_weight == ClassWeight::kSqrt ? std::sqrt(bal) : bal;
    }
  }

  const std::size_t dim = settings.dimension();
  std::vector<float> nb;
  if (options.nb_scaling) {
    nb = nbRatios(rows, train_rows, dim, classes, options.nb_alpha, options.nb_power);
    say("computed NB log-count ratios");
  }
  // Ensemble members differ only in their shuffling seed; all are linear in the same features,
  // so their mean is one linear model and prediction costs the same as for a single member.
  const int members = std::max(1, options.ensemble);
  struct Member {
    std::vector<float> w, b;
    double score = -1;
    double accuracy = 0;
    int best_epoch = 0;
    int epochs_run = 0;
  };
  std::vector<Member> results(static_cast<std::size_t>(members));
  std::mutex say_mutex;
  auto member_say = [&](int m, const std::string& line) {
    std::lock_guard<std::mutex> lock(say_mutex);
    say(members > 1 ? "member " + std::to_string(m + 1) + ": " + line : line);
  };
  auto train_member = [&](int m) {
    Member& out = results[static_cast<std::size_t>(m)];
    const std::uint64_t seed = options.seed + static_cast<std::uint64_t>(m) * 7919;
    SgdTrainer trainer(dim, classes, options, class_weights, nb.empty() ? nullptr : &nb);
    SplitMix rng{seed};
    std::vector<float> w, b;
    std::vector<double> zz(classes);
    for (int epoch = 1; epoch <= options.max_epochs; ++epoch) {
      trainer.epoch(rows, train_rows, rng);
      out.epochs_run = epoch;
      trainer.snapshot(w, b);
      std::size_t correct = 0;
      double loss = 0;
      for (std::size_t r : val_rows) {
        floatLogits(rows, r, w, b, classes, zz.data());
        const auto arg = static_cast<int>(std::max_element(zz.begin(), zz.end()) - zz.begin());
        if (arg == rows.labels[r]) ++correct;
        softmaxInPlace(zz.data(), classes);
        loss -= std::log(std::max(zz[static_cast<std::size_t>(rows.labels[r])], 1e-12));
      }
      const double acc = static_cast<double>(correct) / static_cast<double>(val_rows.size());
      loss /= static_cast<double>(val_rows.size());
      member_say(m, "epoch " + std::to_string(epoch) + ": validation accuracy " + fmt4(acc) + ", log-loss " +
                        fmt4(loss) + " (" + fmt4(seconds(started)) + " s)");
      // Higher is better; log-loss is the smoother criterion, accuracy the one reported.
      const double score = options.stop_on == StopOn::kLoss ? -loss : acc;
      if (epoch == 1 || score > out.score) {
        out.score = score;
        out.accuracy = acc;
        out.best_epoch = epoch;
        out.w = w;
        out.b = b;
      } else if (epoch - out.best_epoch >= options.patience) {
        break;
      }
    }
  };
  runParallel(members, options.threads, train_member);

  std::vector<float> best_w(dim * classes, 0.0f), best_b(classes, 0.0f);
  auto average_into = [&](std::vector<Member>& ms) {
    std::fill(best_w.begin(), best_w.end(), 0.0f);
    std::fill(best_b.begin(), best_b.end(), 0.0f);
    const float inv = 1.0f / static_cast<float>(ms.size());
    for (auto& mem : ms) {
      for (std::size_t i = 0; i < best_w.size(); ++i) best_w[i] += mem.w[i] * inv;
      for (std::size_t c = 0; c < classes; ++c) best_b[c] += mem.b[c] * inv;
      std::vector<float>().swap(mem.w);
    }
  };
  int best_epoch = 0;
  int epochs_run = 0;
  for (const auto& mem : results) {
    best_epoch = std::max(best_epoch, mem.best_epoch);
    epochs_run = std::max(epochs_run, mem.epochs_run);
  }
  std::vector<int> member_epochs;
  for (const auto& mem : results) member_epochs.push_back(mem.best_epoch);
  average_into(results);

  std::vector<double> z(classes);
  std::vector<double> val_logits;
  std::vector<int> val_labels;
  std::size_t correct = 0;
  for (std::size_t r : val_rows) {
    floatLogits(rows, r, best_w, best_b, classes, z.data());
    val_logits.insert(val_logits.end(), z.begin(), z.end());
    val_labels.push_back(rows.labels[r]);
    if (std::max_element(z.begin(), z.end()) - z.begin() == rows.labels[r]) ++correct;
  }
  const double best_score = static_cast<double>(correct) / static_cast<double>(val_rows.size());
  const double temperature = fitTemperature(val_logits, val_labels, classes);
  say("validation accuracy " + fmt4(best_score) + ", temperature " + fmt4(temperature));

  if (options.refit && options.validation_fraction > 0) {
    std::vector<std::size_t> all(rows.rows());
    std::iota(all.begin(), all.end(), std::size_t{0});
    if (options.nb_scaling) nb = nbRatios(rows, all, dim, classes, options.nb_alpha, options.nb_power);
    std::vector<Member> refits(static_cast<std::size_t>(members));
    runParallel(members, options.threads, [&](int m) {
      const int epochs = member_epochs[static_cast<std::size_t>(m)];
      SgdTrainer full(dim, classes, options, class_weights, nb.empty() ? nullptr : &nb);
      SplitMix rng2{options.seed + static_cast<std::uint64_t>(m) * 7919};
      for (int epoch = 1; epoch <= epochs; ++epoch) {
        full.epoch(rows, all, rng2);
        member_say(m, "refit on all " + std::to_string(all.size()) + " texts: epoch " + std::to_string(epoch) + "/" +
                          std::to_string(epochs) + " (" + fmt4(seconds(started)) + " s)");
      }
      full.snapshot(refits[static_cast<std::size_t>(m)].w, refits[static_cast<std::size_t>(m)].b);
    });
    average_into(refits);
  }

  CategoryModel model = fromFloat(settings, labels, best_w, best_b, options.quant_bits, temperature);
  model.featurizer_ = featurizer;
  nlohmann::json summary = {{"examples", data.size()},
                            {"validation_examples", val_rows.size()},
                            {"best_epoch", best_epoch},
                            {"validation_accuracy", best_score},
                            {"l2", options.l2},
                            {"eta0", options.eta0},
                            {"class_weight", nameOf(options.class_weight)},
                            {"averaged", options.average},
                            {"refit", options.refit},
                            {"ensemble", members},
                            {"loss", nameOf(options.loss)}};
  model.training_summary_ = summary.dump();
  if (report) {
    report->examples = data.size();
    report->validation_examples = val_rows.size();
    report->epochs_run = epochs_run;
    report->best_epoch = best_epoch;
    report->validation_accuracy = best_score;
    report->temperature = temperature;
    report->seconds = seconds(started);
  }
  return model;
}

const char* nameOf(StopOn v) {
  return v == StopOn::kLoss ? "loss" : "accuracy";
}

const char* nameOf(ClassWeight v) {
  switch (v) {
    case ClassWeight::kNone:
      return "none";
    case ClassWeight::kBalanced:
      return "balanced";
    case ClassWeight::kSqrt:
      return "sqrt";
  }
  return "sqrt";
}

const char* nameOf(TrainingLoss v) {
  switch (v) {
    case TrainingLoss::kLog:
      return "log";
    case TrainingLoss::kHinge:
      return "hinge";
    case TrainingLoss::kModifiedHuber:
      return "modified_huber";
  }
  return "log";
}

std::optional<StopOn> parseStopOn(std::string_view name) {
  for (StopOn v : {StopOn::kLoss, StopOn::kAccuracy})
    if (name == nameOf(v)) return v;
  return std::nullopt;
}

std::optional<ClassWeight> parseClassWeight(std::string_view name) {
  for (ClassWeight v : {ClassWeight::kNone, ClassWeight::kBalanced, ClassWeight::kSqrt})
    if (name == nameOf(v)) return v;
  return std::nullopt;
}

std::optional<TrainingLoss> parseTrainingLoss(std::string_view name) {
  for (TrainingLoss v : {TrainingLoss::kLog, TrainingLoss::kHinge, TrainingLoss::kModifiedHuber})
    if (name == nameOf(v)) return v;
  return std::nullopt;
}

}  // namespace ticketflow::classify
