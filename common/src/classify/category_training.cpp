// Training the category model: averaged SGD with L2 and class weights, early-stopped on a
// validation slice, temperature scaling fitted on that slice, optional ensembles and refit.
// Only the tools that train link this object (`ticketflow train`); the roles only predict.
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
#include "ticketflow/classify/category_model.hpp"

namespace ticketflow::classify {
namespace {

using detail::kIdfScale;
using detail::softmaxInPlace;

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
