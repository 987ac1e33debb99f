#pragma once
// The ticket category model: a multinomial logistic regression over hashed text features
// (text_features.hpp), trained in C++ by averaged SGD with L2 and class weights, early-stopped
// on a validation slice of the training data, with temperature scaling fitted on that slice so
// the reported confidence is calibrated.
//
// Model file (little-endian):
//   "TFCATMDL"  u32 format version  u32 header length  header JSON (feature settings, labels,
//   temperature, quantisation, training summary)  f32 bias[C]  f32 scale[C]
//   weights[2^dim_bits * C] (int8 or int16, multiplied by scale[c])  u64 FNV-1a-64 checksum of
//   every preceding byte.
// load() fails with a clear Error for a missing file, a file that is not a model, another
// format version, a checksum mismatch (corrupt or truncated) or an inconsistent header.
//
// Threading: a loaded CategoryModel is immutable; predict() and explain() may be called from
// any number of threads (each thread keeps its own scratch space).

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ticketflow/classify/labelled_data.hpp"
#include "ticketflow/classify/text_features.hpp"
#include "ticketflow/core/result.hpp"

namespace ticketflow::classify {

constexpr std::uint32_t kCategoryModelFormatVersion = 1;

struct Prediction {
  int label = -1;                     // index into CategoryModel::labels()
  std::string category;               // the label's name
  double confidence = 0.0;            // calibrated probability of `category`
  std::vector<double> probabilities;  // calibrated, one per label, summing to 1
};

struct FeatureContribution {
  std::string feature;  // "w:printer", "w:printer jam", "c:ter "
  double contribution;  // effect on the chosen class's logit against the mean of all classes
};

struct Explanation {
  Prediction prediction;
  std::vector<FeatureContribution> top_features;  // largest positive contributions first
};

// Training choices (CLI flags and the model's training summary carry their names).
enum class StopOn { kLoss, kAccuracy };                    // validation log-loss, or accuracy
enum class ClassWeight { kNone, kBalanced, kSqrt };        // sqrt: the square root of balanced
enum class TrainingLoss { kLog, kHinge, kModifiedHuber };  // multinomial log, or one-vs-rest
const char* nameOf(StopOn v);
const char* nameOf(ClassWeight v);
const char* nameOf(TrainingLoss v);
std::optional<StopOn> parseStopOn(std::string_view name);
std::optional<ClassWeight> parseClassWeight(std::string_view name);
std::optional<TrainingLoss> parseTrainingLoss(std::string_view name);

struct TrainOptions {
  FeatureSettings features;
  int max_epochs = 16;
  int patience = 3;                // stop after this many epochs without a better validation score
  StopOn stop_on = StopOn::kLoss;  // early-stopping criterion
  double l2 = 1e-6;                // L2 strength (per step, on the features an example touches)
  double eta0 = 1.0;               // initial learning rate; decays as eta0 / (1 + eta0 * l2 * t)
  bool average = true;             // averaged SGD: the model is the mean of the iterates
  ClassWeight class_weight = ClassWeight::kSqrt;
  double validation_fraction = 0.1;  // stratified slice of the training data
  bool refit = false;                // after choosing the epoch count, retrain on all the data
  int quant_bits = 8;                // 8 or 16
  TrainingLoss loss = TrainingLoss::kLog;
  bool nb_scaling = false;  // scale features by NB log-count ratios (NB-SVM style)
  double nb_alpha = 1.0;    // NB smoothing
  double nb_power = 1.0;    // ratios are |log ratio|^power
  std::uint64_t seed = 20261122;
  int ensemble = 1;  // members trained with different shuffles, averaged into one model
  int threads = 2;   // members trained in parallel
};

struct TrainReport {
  std::size_t examples = 0;
  std::size_t validation_examples = 0;
  int epochs_run = 0;
  int best_epoch = 0;
  double validation_accuracy = 0.0;  // of the early-stopped model, before refit
  double temperature = 1.0;
  double seconds = 0.0;
};

// Progress lines ("epoch 3: validation accuracy 0.8712"), for the CLI to print.
using ProgressFn = std::function<void(const std::string&)>;

class CategoryModel {
 public:
  static Result<CategoryModel> load(const std::string& path);
  static Result<CategoryModel> fromBytes(std::string_view bytes, const std::string& source);

  static Result<CategoryModel> train(const std::vector<LabelledText>& data, const TrainOptions& options,
                                     TrainReport* report = nullptr, const ProgressFn& progress = {});

  std::string toBytes() const;
  Status save(const std::string& path) const;

  Prediction predict(std::string_view text) const;
  // The allocation-free form used on the hot path and by the benchmark: fills `out` using `ws`.
  void predictInto(std::string_view text, FeatureWorkspace& ws, Prediction& out) const;
  Explanation explain(std::string_view text, std::size_t top_k = 10) const;

  const std::vector<std::string>& labels() const { return labels_; }
  const FeatureSettings& featureSettings() const { return featurizer_.settings(); }
  double temperature() const { return temperature_; }
  int quantBits() const { return quant_bits_; }

 private:
  CategoryModel(FeatureSettings settings) : featurizer_(settings) {}  // NOLINT
  void logits(const std::vector<FeatureEntry>& features, double* out) const;
  static CategoryModel fromFloat(const FeatureSettings& settings, std::vector<std::string> labels,
                                 const std::vector<float>& weights, const std::vector<float>& bias, int quant_bits,
                                 double temperature);

  Featurizer featurizer_;
  std::vector<std::string> labels_;
  std::size_t classes_ = 0;
  int quant_bits_ = 16;
  std::vector<std::int8_t> w8_;
  std::vector<std::int16_t> w16_;
  std::vector<float> scale_;
  std::vector<float> bias_;
  double temperature_ = 1.0;
  std::string training_summary_;  // JSON text kept in the header, informative only
};

// Fits the softmax temperature T > 0 minimising the negative log-likelihood of `labels` under
// softmax(logits / T); logits is row-major n x classes.
double fitTemperature(const std::vector<double>& logits, const std::vector<int>& labels, std::size_t classes);

// Confusion-matrix based metrics for `ticketflow eval`.
struct ClassMetrics {
  double precision = 0, recall = 0, f1 = 0;
  std::size_t support = 0;
};
struct EvalMetrics {
  double accuracy = 0;
  double macro_f1 = 0;
  std::vector<ClassMetrics> per_class;
  std::vector<std::vector<std::size_t>> confusion;  // [true][predicted]
  double expected_calibration_error = 0;            // 10 equal-width confidence bins
};
EvalMetrics computeMetrics(const std::vector<int>& truth, const std::vector<int>& predicted,
                           const std::vector<double>& confidence, std::size_t classes);

}  // namespace ticketflow::classify
