#include "site_agent/training/shape_prior_trainer.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "common/base/status_macros.h"
#include "common/losses/cross_entropy_loss.h"
#include "common/losses/dice_ce_loss.h"
#include "common/model/model_factory.h"
#include "site_agent/inference/weights.h"

namespace fedjoint::site_agent::training {
namespace {

namespace data = common::data;
namespace losses = common::losses;
namespace model = common::model;
using common::tensors::TensorMap;

}  // namespace

struct ShapePriorTrainer::State {
  TrainerOptions options;
  TrainingData data;
  model::ShapeAutoEncoder net{nullptr};
  int64_t channels = 0;
  std::unique_ptr<torch::optim::Optimizer> optimizer;

  at::Tensor Loss(const at::Tensor& logits, const at::Tensor& target) const {
    if (options.training.loss().reconstruction() == "ce") {
      return losses::functional::cross_entropy_loss(logits, target);
    }
    return losses::functional::dice_ce_loss(
        logits, target,
        losses::DiceCELossOptions().dice(
            losses::DiceLossOptions().include_background(false).batch(true).reduction(
                losses::DiceReduction::kMeanPresent)));
  }

  absl::StatusOr<std::map<std::string, double>> Step(const data::Batch& batch) {
    try {
      net->train();
      at::Tensor x = model::OneHotPadded(batch.labels, channels);
      at::Tensor loss = Loss(net->forward(x), batch.labels);
      optimizer->zero_grad();
      loss.backward();
      const double clip = options.training.optimizer().grad_clip_norm();
      if (clip > 0) torch::nn::utils::clip_grad_norm_(net->parameters(), clip);
      optimizer->step();
      return std::map<std::string, double>{{"loss", loss.item<double>()}};
    } catch (const c10::Error& e) {
      return absl::InternalError(
          fmt::format("shape auto-encoder step failed: {}", e.what_without_backtrace()));
    }
  }
};

ShapePriorTrainer::ShapePriorTrainer(std::unique_ptr<State> state) : state_(std::move(state)) {}
ShapePriorTrainer::~ShapePriorTrainer() = default;

absl::StatusOr<std::unique_ptr<ShapePriorTrainer>> ShapePriorTrainer::Create(TrainerOptions options,
                                                                             TrainingData data) {
  if (options.model.architecture() != "shape_autoencoder") {
    return absl::InvalidArgumentError(
        fmt::format("shape-prior trainer: model.architecture is '{}', expected shape_autoencoder",
                    options.model.architecture()));
  }
  if (!data.train || data.train->size() == 0) {
    return absl::InvalidArgumentError("shape-prior trainer: no training slices");
  }
  if (!data.validation) data.validation = std::make_shared<const data::SliceDataset>();
  SetTrainingThreads(options.threads);
  auto state = std::make_unique<State>();
  ASSIGN_OR_RETURN(state->net, model::BuildShapeAutoEncoder(options.model, options.init_seed));
  state->channels = state->net->options().in_channels();
  ASSIGN_OR_RETURN(state->optimizer,
                   MakeOptimizer(state->net->parameters(), options.training.optimizer()));
  state->options = std::move(options);
  state->data = std::move(data);
  return std::unique_ptr<ShapePriorTrainer>(new ShapePriorTrainer(std::move(state)));
}

absl::Status ShapePriorTrainer::LoadWeights(const TensorMap& weights) {
  return inference::LoadStateDict(*state_->net, weights, "the shape auto-encoder weights");
}

absl::StatusOr<TrainSummary> ShapePriorTrainer::Train() {
  State& s = *state_;
  // Masks carry no intensity: intensity augmentation would be wasted work.
  v1::LocalTrainingConfig training = s.options.training;
  ASSIGN_OR_RETURN(auto sampler, MakeSampler(s.data.train, training, s.options.seed));
  LoopHooks hooks;
  hooks.step = [&s](const data::Batch& batch) { return s.Step(batch); };
  if (s.data.validation->size() > 0) hooks.validate = [this] { return Validate(); };
  hooks.weights = [this] { return Weights(); };
  hooks.load_weights = [this](const TensorMap& w) { return LoadWeights(w); };
  return RunTrainer(s.options, training,
                    s.options.label == "segmentation" ? "shape prior" : s.options.label, sampler,
                    *s.optimizer, std::move(hooks), s.data.train->size());
}

absl::StatusOr<ValidationResult> ShapePriorTrainer::Validate() {
  State& s = *state_;
  model::ShapeAutoEncoder net = s.net;
  net->eval();
  const int64_t channels = s.channels;
  const v1::ModelConfig& config = s.options.model;
  SlicePredictor predict = [net, channels, &config](const at::Tensor&, const at::Tensor& labels,
                                                    int64_t joint) mutable {
    const int64_t classes = config.joints(static_cast<int>(joint)).structures_size() + 1;
    at::Tensor logits = net->forward(model::OneHotPadded(labels, channels));
    return logits.narrow(1, 0, classes).argmax(1);
  };
  absl::StatusOr<ValidationResult> result = ValidateSlices(
      *s.data.validation, config, predict, 2 * std::max(1, s.options.training.batch_size()));
  net->train();
  return result;
}

TensorMap ShapePriorTrainer::Weights() const { return inference::StateDict(*state_->net); }
common::model::ShapeAutoEncoder ShapePriorTrainer::model() const { return state_->net; }

}  // namespace fedjoint::site_agent::training
