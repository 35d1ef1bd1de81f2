// Tiny phantom sites on disk for the training tests: a few knee subjects of 48 x 48 pixels
// (2.67 mm, the phantom's 128 mm field of view) and 6 slices, with a manifest, made once per test
// process in a temporary folder.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/data/phantom.h"
#include "common/data/volume_io.h"
#include "fedjoint/v1/config.pb.h"

namespace fedjoint::site_agent::training::test_util {

// Writes `subjects` phantoms of `joint` and a manifest into `dir`; returns the manifest path.
inline std::filesystem::path WriteTinySite(const std::filesystem::path& dir,
                                           const std::string& joint, int subjects,
                                           uint64_t seed = 3) {
  std::filesystem::create_directories(dir);
  std::string yaml = "subjects:\n";
  common::data::PhantomOptions options;
  options.joint = joint;
  options.domain = "pd";
  options.seed = seed;
  options.in_plane_size = 48;
  options.in_plane_spacing_mm = 128.0 / 48.0;
  options.num_slices = 6;
  options.slice_thickness_mm = 6.0;
  options.sub_slices = 2;
  for (int s = 0; s < subjects; ++s) {
    auto phantom = common::data::GeneratePhantom(options, s);
    EXPECT_TRUE(phantom.ok()) << phantom.status();
    const std::string image = fmt::format("{}_image.nii.gz", phantom->id);
    const std::string label = fmt::format("{}_label.nii.gz", phantom->id);
    EXPECT_TRUE(common::data::WriteVolume(phantom->image, dir / image).ok());
    EXPECT_TRUE(common::data::WriteVolume(phantom->label, dir / label).ok());
    yaml += fmt::format("  - {{id: {}, image: {}, label: {}, joint: {}, domain: pd}}\n",
                        phantom->id, image, label, joint);
  }
  auto bones = common::data::PhantomBoneNames(joint);
  yaml += fmt::format("labels:\n  {}: {{", joint);
  for (size_t b = 0; b < bones->size(); ++b) {
    yaml += fmt::format("{}{}: {}", b ? ", " : "", b + 1, (*bones)[b]);
  }
  yaml += "}\n";
  std::ofstream(dir / "manifest.yaml") << yaml;
  return dir / "manifest.yaml";
}

// A small, fast network for 64 x 64 slices of 2 mm.
inline v1::ModelConfig TinyModel(const std::vector<std::string>& joints = {"knee"}) {
  v1::ModelConfig model;
  model.set_architecture("unet_resnet");
  model.set_encoder_depth(18);
  model.set_width_multiplier(0.125);
  model.set_input_size(64);
  model.set_variant("domain");
  model.set_in_plane_spacing_mm(2.0);
  model.set_slice_axis("auto");
  for (const std::string& name : joints) {
    auto* joint = model.add_joints();
    joint->set_name(name);
    const auto bones = common::data::PhantomBoneNames(name);
    for (const auto& bone : *bones) joint->add_structures(bone);
  }
  return model;
}

inline v1::LocalTrainingConfig TinyTraining(int steps, int batch_size = 4) {
  v1::LocalTrainingConfig training;
  training.set_steps(steps);
  training.set_batch_size(batch_size);
  training.set_validation_fraction(0.25);
  training.set_validation_interval(1);
  training.set_augment(true);
  training.set_foreground_probability(0.5);
  auto* optimizer = training.mutable_optimizer();
  optimizer->set_name("adamw");
  optimizer->set_learning_rate(3e-3);
  optimizer->set_weight_decay(1e-4);
  optimizer->set_schedule("constant");
  optimizer->set_grad_clip_norm(1.0);
  auto* loss = training.mutable_loss();
  loss->set_dice_weight(1.0);
  loss->set_ce_weight(1.0);
  loss->set_contrastive_weight(0.0);
  loss->set_contrastive_temperature(0.1);
  loss->set_shape_prior_weight(0.0);
  loss->set_shape_prior_phase("shape_prior");
  loss->set_reconstruction("dice_ce");
  return training;
}

inline std::filesystem::path TempDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             fmt::format("fedjoint-training-{}-{}", getpid(), name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace fedjoint::site_agent::training::test_util
